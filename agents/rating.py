"""The rating chain: evidence in, a validated 0–2 score with quotes out, every step recorded.

For one filing and category: the retrieval agent gathers evidence with the
prompt's queries (never the whole filing; the budget is configurable), the
prompt's method rates it, and the result is validated:

* ``direct`` / ``cot`` — one call answering JSON ``{score, rationale, quotes}``;
  malformed output is retried (bounded) and then recorded as a failure,
  never replaced by a default score;
* ``yesno`` — each rubric question is answered on its own; local models give
  P(yes) from next-token probabilities, hosted models a yes/no answer; the
  expected score ``E = P(level1) * (1 + mean P(level2))`` lies in [0, 2] and
  the prompt's cut-offs turn it into 0, 1 or 2;
* ``indicators`` — an analytic checklist: each indicator is a fact from the
  filing's own numbers (revenue growth, a net loss, R&D reported, going-concern
  doubt... see :mod:`filinglens.retrieval.facts`) or, when the filing lacks the
  fact or the indicator has none, a yes/no question answered from P(yes) on
  the category's evidence (all questions share one evidence block, so a local
  model reuses its prefix cache). ``E = gate × (bias + Σ weight × value)``,
  clipped to [0, 2], with the weights and the fitted cut-offs in the prompt
  file; ``E ± sd`` (sd from treating each P(yes) as a yes/no coin) is the
  interval; a cell is ``borderline`` when E lies in a cut-off's band (how far
  the cut-off moves when the labelled filings are resampled, fitted with it),
  or, for a prompt without bands, when its interval holds a cut-off. The
  rating cites the facts it used (concept, period, value) and, per deciding
  question, the evidence sentence closest to it.

Quotes are checked against the evidence (and so the filing); unverifiable
ones are flagged. Evidence is untrusted: it is delimited, any delimiter inside
it is neutralised, and the instructions say it is data.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from filinglens.agents.calls import CallResult, call_parsed, extract_json, next_token_probs_cached
from filinglens.agents.evidence import EvidenceItem, render_evidence, verify_quotes
from filinglens.agents.models import DEFAULT_MODEL
from filinglens.errors import FilingLensError, ModelCallError, ModelOutputError, RatingOutputError
from filinglens.prompts.loader import RatingPrompt, load_prompt
from filinglens.store import Store, encode_rating_row

DEFAULT_EVIDENCE_CHARS = 6000
#: Methods whose scores come from next-token probabilities on models that give them (deterministic).
PROBABILITY_METHODS = ("yesno", "indicators")


@dataclass
class Target:
    """The filing being rated."""

    filing_id: str
    company: str | None
    ticker: str | None
    cik: str | None
    fiscal_year: int | None
    content_hash: str

    @property
    def label(self) -> str:
        return f"{self.ticker or self.company or self.filing_id} FY{self.fiscal_year}"


@dataclass
class Rating:
    """A validated rating (or a recorded failure) for one filing × category × sample."""

    target: Target
    category: str
    prompt_version: str
    prompt_hash: str
    method: str
    model_id: str
    sample_index: int
    status: str  # ok | failed
    score: int | None = None
    expected_score: float | None = None
    rationale: str = ""
    quotes: list[dict] = field(default_factory=list)  # {"text", "verified", "chunk_id"}
    evidence: list[dict] = field(default_factory=list)  # {"chunk_id", "citation", "item"}
    error: str | None = None
    model_calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    interval: list[float] | None = None  # indicators: [E - sd, E + sd]
    borderline: bool = False  # indicators: the interval holds a cut-off
    indicators: list[dict] = field(default_factory=list)  # indicators: id, source, value, weight, contribution
    facts: list[dict] = field(default_factory=list)  # indicators: the filing's figures and signals it used

    @property
    def cell_key(self) -> str:
        return "|".join(
            [self.target.content_hash, self.category, self.prompt_hash, self.model_id, str(self.sample_index)]
        )

    @property
    def unverified_quotes(self) -> int:
        return sum(1 for q in self.quotes if not q["verified"])

    def to_row(self) -> dict:
        """The store's ``ratings`` row."""
        return {
            "cell_key": self.cell_key,
            "filing_hash": self.target.content_hash,
            "ticker": self.target.ticker,
            "cik": self.target.cik,
            "company": self.target.company,
            "fiscal_year": self.target.fiscal_year,
            "category": self.category,
            "prompt_version": self.prompt_version,
            "prompt_hash": self.prompt_hash,
            "method": self.method,
            "model_id": self.model_id,
            "sample_index": self.sample_index,
            "status": self.status,
            "score": self.score,
            "expected_score": self.expected_score,
            "rationale": self.rationale,
            "evidence": self.evidence,
            "quotes": self.quotes,
            "unverified_quotes": self.unverified_quotes,
            "error": self.error,
            "model_calls": self.model_calls,
            "cached_calls": self.cached_calls,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "latency_ms": round(self.latency_ms, 1),
            "interval": self.interval,
            "borderline": self.borderline,
            "indicators": self.indicators,
            "facts": self.facts,
        }

    def to_dict(self) -> dict:
        """The store row (with, for the indicators method, interval, borderline flag, indicators and
        cited facts) plus the target (``rate --json``)."""
        data = self.to_row()
        data["target"] = asdict(self.target)
        return data


# ----------------------------------------------------------------------------- prompt rendering

def _fields(prompt: RatingPrompt, target: Target, evidence_text: str) -> dict:
    return {
        "title": prompt.title,
        "description": prompt.description,
        "rubric_0": prompt.rubric[0],
        "rubric_1": prompt.rubric[1],
        "rubric_2": prompt.rubric[2],
        "strictness": (prompt.strictness + "\n") if prompt.strictness else "",
        "evidence": evidence_text,
        "company": target.company or target.ticker or "the company",
        "fiscal_year": f"fiscal {target.fiscal_year}" if target.fiscal_year else "its latest fiscal year",
    }


def build_messages(prompt: RatingPrompt, target: Target, evidence_text: str, question: str | None = None) -> list[tuple]:
    """The system and user messages for one call."""
    values = _fields(prompt, target, evidence_text)
    if question is not None:
        values["question"] = question
    return [("system", prompt.system.format(**values)), ("user", prompt.user.format(**values))]


# ----------------------------------------------------------------------------- output validation

def parse_rating_output(text: str) -> tuple[int, str, list[str]]:
    """Validate a model's JSON answer into ``(score, rationale, quotes)``; raise ``RatingOutputError``."""
    try:
        data = extract_json(text)
    except ModelOutputError as exc:
        raise RatingOutputError(str(exc)) from exc
    if "score" not in data:
        raise RatingOutputError(f"the answer has no score: {json.dumps(data)[:120]!r}")
    raw = data["score"]
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or raw not in (0, 1, 2):
        raise RatingOutputError(f"score must be 0, 1 or 2, got {data['score']!r}")
    quotes = data.get("quotes") or []
    if isinstance(quotes, str):
        quotes = [quotes]
    quotes = [str(q) for q in quotes if str(q).strip()][:5]
    return raw, str(data.get("rationale") or "").strip(), quotes


def parse_yes_no(text: str) -> float:
    """1.0 for an answer that starts with yes, 0.0 for no; ``RatingOutputError`` otherwise."""
    word = re.match(r"\W*(yes|no)\b", (text or "").strip(), re.I)
    if not word:
        raise RatingOutputError(f"no yes/no answer: {(text or '')[:120]!r}")
    return 1.0 if word.group(1).lower() == "yes" else 0.0


def score_from_expected(expected: float, cutoffs: Sequence[float]) -> int:
    """0, 1 or 2 from an expected score in [0, 2] and two cut-offs."""
    return 0 if expected < cutoffs[0] else (1 if expected < cutoffs[1] else 2)


# ----------------------------------------------------------------------------- the chain


@dataclass
class RatingChain:
    """Rates filings on categories with one model and one prompt version per category."""

    store: Store
    model_id: str = DEFAULT_MODEL
    temperature: float = 0.0
    evidence_chars: int = DEFAULT_EVIDENCE_CHARS
    run_id: str | None = None
    model_params: dict = field(default_factory=dict)
    gather: Callable[[RatingPrompt, Target], list[EvidenceItem]] | None = None
    model: Any = None  # a ready chat model (tests); otherwise built from model_id
    # where the model is served (e.g. {"base_url": ...} of one of several replicas): passed to the
    # model, but not recorded and not part of the cache key, since any replica gives the same answers
    connection: dict = field(default_factory=dict)
    facts: Callable[[Target], Any] | None = None  # the filing's key figures (``Financials``) or None
    attempts: int | None = None  # tries per malformed answer (default: settings.model_attempts())

    def rate(self, target: Target, category: str, prompt_version: str | None = None, sample_index: int = 0) -> Rating:
        """Rate one filing on one category; failures come back as ``status="failed"``, never as a score.

        ``prompt_version`` None: the default version when the category has it, else its newest
        (:func:`filinglens.prompts.loader.load_prompt`); the version used is recorded on the rating.
        """
        prompt = load_prompt(f"{category}@{prompt_version}" if prompt_version else category)
        rating = Rating(target, prompt.category, prompt.version, prompt.hash, prompt.method, self.model_id,
                        sample_index, status="failed")
        try:
            evidence = self.gather(prompt, target) if self.gather else []
            if not evidence:
                raise RatingOutputError("no evidence found for this category in the filing")
            evidence_text, used = render_evidence(evidence, self.evidence_chars)
            rating.evidence = [{"chunk_id": e.chunk_id, "citation": e.citation, "item": e.item} for e in used]
            if prompt.method == "yesno":
                self._rate_yesno(prompt, target, evidence_text, used, rating)
            elif prompt.method == "indicators":
                self._rate_indicators(prompt, target, evidence_text, used, rating)
            else:
                self._rate_direct(prompt, target, evidence_text, used, rating)
            rating.status = "ok"
        except (ModelOutputError, ModelCallError) as exc:
            rating.error = str(exc)
        return rating

    # -- methods

    def _params(self, sample_index: int) -> dict:
        """Generation parameters of a first try (retries: :func:`filinglens.agents.calls.retry_params`)."""
        params = {"temperature": self.temperature, **self.model_params}
        if self.temperature > 0:
            params["seed"] = sample_index
        return params

    def _ask(self, messages, prompt: RatingPrompt, rating: Rating, parse: Callable[[str], Any]) -> Any:
        """One answer, parsed, through the model-call path (cached, recorded, retried when malformed)."""
        return call_parsed(
            self.store, self.model_id, messages, parse, params=self._params(rating.sample_index),
            sample_index=rating.sample_index, attempts=self.attempts, prompt_ref=prompt.ref,
            prompt_hash=prompt.hash, run_id=self.run_id, model=self.model, connection=self.connection,
            # the indicators method: weights and cut-offs are not in the messages; refitting them
            # changes the prompt hash but must not invalidate the cached answers
            input_only_key=prompt.method == "indicators", on_call=lambda result: self._count(rating, result),
        )

    @staticmethod
    def _count(rating: Rating, result: CallResult) -> None:
        rating.model_calls += 1
        rating.cached_calls += int(result.cached)
        rating.tokens_in += result.tokens_in
        rating.tokens_out += result.tokens_out
        rating.latency_ms += result.latency_ms

    def _rate_direct(self, prompt, target, evidence_text, used, rating: Rating) -> None:
        messages = build_messages(prompt, target, evidence_text)
        score, rationale, quotes = self._ask(messages, prompt, rating, parse_rating_output)
        rating.score, rating.expected_score, rating.rationale = score, float(score), rationale
        rating.quotes = verify_quotes(quotes, used)

    def _rate_yesno(self, prompt, target, evidence_text, used, rating: Rating) -> None:
        questions = [prompt.questions.level1, *prompt.questions.level2]
        probs = [self._p_yes(prompt, target, evidence_text, q, rating) for q in questions]
        level1, level2 = probs[0], probs[1:]
        expected = level1 * (1 + sum(level2) / len(level2))
        rating.expected_score = round(expected, 4)
        rating.score = score_from_expected(expected, prompt.cutoffs)
        rating.rationale = "; ".join(f"P(yes | {q[:60]}…) = {p:.2f}" for q, p in zip(questions, probs))
        # the yes/no method quotes the strongest evidence verbatim (verified by construction)
        rating.quotes = verify_quotes([_first_sentence(ev.text) for ev in used[:2]], used)

    def _financials(self, target: Target):
        if self.facts is None:
            return None
        try:
            return self.facts(target)
        except FilingLensError:
            return None

    def _rate_indicators(self, prompt, target, evidence_text, used, rating: Rating) -> None:
        fin = self._financials(target) if any(i.fact for i in prompt.indicators) else None
        values: list[IndicatorValue] = []
        for ind in prompt.indicators:
            got = fact_value(fin, ind) if (ind.fact and fin is not None) else None
            if got is not None:
                values.append(IndicatorValue(ind, got[0], "fact", cited=got[1]))
            elif ind.question:
                p = self._p_yes(prompt, target, evidence_text, ind.question, rating)
                values.append(IndicatorValue(ind, p, "model"))
            else:
                values.append(IndicatorValue(ind, None, "unavailable"))
        result = combine_indicators(prompt, values)
        rating.expected_score = round(result.expected, 4)
        rating.score = score_from_expected(result.expected, prompt.cutoffs)
        low, high = max(0.0, result.expected - result.sd), min(2.0, result.expected + result.sd)
        rating.interval = [round(low, 4), round(high, 4)]
        if prompt.borderline_bands:  # fitted with the cut-offs: where the calibration itself is unsure
            rating.borderline = any(low <= result.expected <= high for low, high in prompt.borderline_bands)
        else:
            rating.borderline = is_borderline(result.expected, result.sd, prompt.cutoffs)
        rating.indicators = [v.to_dict() for v in values]
        rating.facts = [c for v in values if v.cited for c in v.cited]
        rating.quotes = verify_quotes(indicator_quotes(values, used), used)
        rating.rationale = result.explain(prompt)

    def _p_yes(self, prompt, target, evidence_text, question, rating: Rating) -> float:
        messages = build_messages(prompt, target, evidence_text, question)
        if self.model is None and token_probabilities(self.model_id):  # the provider declares it
            probs, result = next_token_probs_cached(
                self.store, self.model_id, messages, ("yes", "no"), prompt_ref=prompt.ref,
                prompt_hash=prompt.hash, run_id=self.run_id,
                input_only_key=prompt.method == "indicators",  # as in _ask
            )
            self._count(rating, result)
            total = probs["yes"] + probs["no"]
            if total < 1e-6:
                raise RatingOutputError(f"the model gives neither yes nor no to: {question}")
            return probs["yes"] / total
        try:
            return self._ask(messages, prompt, rating, parse_yes_no)
        except ModelOutputError as exc:
            raise RatingOutputError(f"{exc} (question: {question})") from exc


# ----------------------------------------------------------------------------- the indicators method


@dataclass
class IndicatorValue:
    """One indicator's value in [0, 1] (None: unavailable) and where it came from."""

    indicator: Any  # prompts.loader.Indicator
    value: float | None
    source: str  # fact | model | unavailable
    cited: list[dict] = field(default_factory=list)  # facts behind a fact value

    @property
    def contribution(self) -> float:
        if self.value is None or self.indicator.gate:
            return 0.0
        return self.indicator.weight * self.value

    def to_dict(self) -> dict:
        ind = self.indicator
        return {"id": ind.id, "source": self.source, "value": None if self.value is None else round(self.value, 4),
                "weight": ind.weight, "gate": ind.gate, "contribution": round(self.contribution, 4),
                "question": ind.question if self.source == "model" else None, "fact": ind.fact}


@dataclass
class Combined:
    """The expected score of the indicators method and its spread."""

    expected: float
    sd: float
    raw: float  # bias + Σ weight × value, before the gate and the clip
    gate: float | None
    values: list[IndicatorValue]

    def explain(self, prompt) -> str:
        """``E = 0.97 × (1 + 0.4·0.81 + …) = 1.36 ± 0.12; dated_target P(yes)=0.81 …``."""
        terms = " + ".join(f"{v.indicator.weight:g}·{v.value:.2f}" for v in self.values
                           if v.value is not None and not v.indicator.gate)
        head = f"{prompt.bias:g}" + (f" + {terms}" if terms else "")
        formula = f"{self.gate:.2f} × ({head})" if self.gate is not None else head
        parts = [f"E = {formula} = {self.expected:.2f} ± {self.sd:.2f}"]
        for v in self.values:
            what = {"fact": "fact", "model": "P(yes)", "unavailable": "unavailable"}[v.source]
            shown = "n/a" if v.value is None else f"{v.value:.2f}"
            parts.append(f"{v.indicator.id} {what}={shown}")
        return "; ".join(parts)


def combine_indicators(prompt, values: Sequence[IndicatorValue]) -> Combined:
    """``E = gate × (bias + Σ weight × value)`` clipped to [0, 2], and its sd.

    Unavailable indicators are left out (an unavailable gate counts as 1). The
    sd treats each P(yes) as a yes/no coin with that probability (facts are
    certain): ``var(raw) = Σ weight² p (1 − p)``, and with a gate ``g``
    ``var(E) ≈ g² var(raw) + raw² g (1 − g)``.
    """
    raw = prompt.bias + sum(v.contribution for v in values)
    var_raw = sum(v.indicator.weight ** 2 * v.value * (1 - v.value) for v in values
                  if v.source == "model" and v.value is not None and not v.indicator.gate)
    gate = next((v for v in values if v.indicator.gate and v.value is not None), None)
    if gate is None:
        expected, var = raw, var_raw
        g = None
    else:
        g = gate.value
        expected = g * raw
        var = g * g * var_raw + (raw * raw * g * (1 - g) if gate.source == "model" else 0.0)
    return Combined(min(2.0, max(0.0, expected)), var ** 0.5, raw, g, list(values))


def is_borderline(expected: float, sd: float, cutoffs: Sequence[float]) -> bool:
    """Whether a cut-off lies within ``expected ± sd`` (or ``expected`` sits on it)."""
    return any(abs(expected - c) < max(sd, 1e-9) for c in cutoffs)


def fact_value(fin, indicator) -> tuple[float, list[dict]] | None:
    """An indicator's value from the filing's figures (``Financials``) and the facts it cites; None when the
    filing does not have the fact (then the indicator's question, if any, is asked)."""
    fact = indicator.fact
    if fact.endswith("_change"):
        fig = fin.get(fact.removesuffix("_change"))
        if fig is None or fig.change is None:
            return None
        low, high = indicator.scale
        value = min(1.0, max(0.0, (fig.change - low) / (high - low)))
        return value, [_figure_fact(fig, indicator.id)]
    if fact in ("net_loss", "operating_cash_negative"):
        fig = fin.get("net_income" if fact == "net_loss" else "operating_cash_flow")
        if fig is None or fig.current is None:
            return None
        return (1.0 if fig.current < 0 else 0.0), [_figure_fact(fig, indicator.id)]
    if fact == "rnd_reported":
        fig = fin.get("rnd_expense")
        if fig is None or not fig.current or fig.current <= 0:
            return None
        return 1.0, [_figure_fact(fig, indicator.id)]
    # text signals (going_concern, downgrade, impairment): known whenever the filing was read
    found = fin.signals.get(fact) or []
    return (1.0 if found else 0.0), [{"indicator": indicator.id, "fact": fact, "text": s} for s in found[:2]]


def _figure_fact(fig, indicator_id: str) -> dict:
    return {"indicator": indicator_id, "fact": fig.metric, "concept": fig.concept, "source": fig.source,
            "period": fig.period, "prior_period": fig.prior_period, "current": fig.current, "prior": fig.prior,
            "change": None if fig.change is None else round(fig.change, 4), "text": fig.describe()}


_QUOTE_STOP = frozenset("""the and for that with this from are was were have has had does not any such its our their
which into than then them they these those about other only also more most some what when where will would could
evidence company company's describe describes say says state states report reports""".split())


def _words(text: str) -> set[str]:
    return {w[:6] for w in re.findall(r"[a-z][a-z0-9\-]{2,}", text.lower()) if w not in _QUOTE_STOP}


def indicator_quotes(values: Sequence[IndicatorValue], used: Sequence[EvidenceItem], limit: int = 3) -> list[str]:
    """Per deciding question (answered yes, largest contribution first), the evidence sentence that shares
    the most words with it and its queries: verbatim filing text, so the quote verifies."""
    deciding = sorted((v for v in values if v.source == "model" and (v.value or 0) >= 0.5
                       and (v.indicator.gate or v.indicator.weight > 0)),
                      key=lambda v: -(1.0 if v.indicator.gate else v.contribution))
    sentences = [sent for ev in used for sent in _sentences(ev.text)]
    quotes: list[str] = []
    for v in deciding:
        want = _words(" ".join([v.indicator.question or "", *v.indicator.queries]))
        best = max(sentences, key=lambda sent: len(want & _words(sent)), default=None)
        if best and want & _words(best) and best not in quotes:
            quotes.append(best)
        if len(quotes) >= limit:
            break
    return quotes


def _sentences(text: str, limit: int = 300) -> list[str]:
    out = []
    for sent in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text).strip()):
        if 30 <= len(sent) <= limit and "|" not in sent:
            out.append(sent)
    return out


def token_probabilities(model_id: str) -> bool:
    """Whether the model gives next-token probabilities (its provider declares the capability)."""
    from filinglens.agents.models import has_capability
    from filinglens.agents.providers import TOKEN_PROBABILITIES

    return has_capability(model_id, TOKEN_PROBABILITIES)


def _first_sentence(text: str, limit: int = 240) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    m = re.search(r"(?<=[.!?])\s", text[:limit])
    return text[: m.start()] if m else text[:limit].rsplit(" ", 1)[0]


def rate_many(
    chain: RatingChain,
    targets: Sequence[Target],
    categories: Sequence[str],
    prompt_version: str | None = None,
    samples: int = 1,
    progress: Callable[[Rating], None] | None = None,
) -> list[Rating]:
    """Rate every target × category × sample, saving each rating as it finishes (resumable).

    ``prompt_version`` None: each category's default version, or its newest when it lacks that one."""
    ratings = []
    for target in targets:
        for category in categories:
            for sample in range(samples):
                rating = chain.rate(target, category, prompt_version, sample)
                if chain.run_id:
                    chain.store.save_rating(chain.run_id, rating.to_row())
                ratings.append(rating)
                if progress:
                    progress(rating)
    return ratings


def deciding_indicators(rating: Rating, limit: int = 3) -> list[str]:
    """The indicators that moved the expected score most: ``"dated_target P(yes)=0.81 → +0.32"``, the gate
    first (``"gate discusses_sustainability P(yes)=0.97"``)."""
    out = []
    gate = next((i for i in rating.indicators if i["gate"] and i["value"] is not None), None)
    if gate:
        what = "P(yes)" if gate["source"] == "model" else gate["source"]
        out.append(f"gate {gate['id']} {what}={gate['value']:.2f}")
    rest = sorted((i for i in rating.indicators if not i["gate"] and i["value"] is not None),
                  key=lambda i: -abs(i["contribution"]))
    for i in rest[: max(0, limit - len(out))]:
        what = "P(yes)" if i["source"] == "model" else "fact"
        out.append(f"{i['id']} {what}={i['value']:.2f} → {i['contribution']:+.2f}")
    return out


def export_ratings(ratings: Sequence[Rating], path) -> None:
    """Write ratings to ``.csv``, ``.parquet`` or ``.json`` (by suffix)."""
    import pandas as pd
    from pathlib import Path

    path = Path(path)
    rows = []
    for r in ratings:
        rows.append(encode_rating_row(r.to_row()))
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".json":
        frame.to_json(path, orient="records", indent=2)
    else:
        frame.to_csv(path, index=False)
