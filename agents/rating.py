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
  the prompt's cut-offs turn it into 0, 1 or 2.

Quotes are checked against the evidence (and so the filing); unverifiable
ones are flagged. Evidence is untrusted: it is delimited, any delimiter inside
it is neutralised, and the instructions say it is data.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from filinglens.agents.calls import ModelCallError, invoke_cached, next_token_probs_cached
from filinglens.agents.evidence import EvidenceItem, render_evidence, verify_quotes
from filinglens.errors import FilingLensError
from filinglens.prompts.loader import RatingPrompt, load_prompt
from filinglens.store import Store

MAX_ATTEMPTS = 3
DEFAULT_EVIDENCE_CHARS = 6000
LOCAL_PROB_MODELS = ("local", "local-small")


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
        }

    def to_dict(self) -> dict:
        data = self.to_row()
        data["target"] = asdict(self.target)
        return data


class RatingOutputError(FilingLensError):
    """The model's answer could not be validated into a rating."""


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

_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def parse_rating_output(text: str) -> tuple[int, str, list[str]]:
    """Validate a model's JSON answer into ``(score, rationale, quotes)``; raise ``RatingOutputError``."""
    cleaned = re.sub(r"^```(?:json)?|```$", "", text.strip(), flags=re.M).strip()
    match = _JSON_OBJECT.search(cleaned)
    if not match:
        raise RatingOutputError(f"no JSON object in the answer: {text[:120]!r}")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise RatingOutputError(f"invalid JSON ({exc.msg}): {match.group(0)[:120]!r}") from exc
    if not isinstance(data, dict) or "score" not in data:
        raise RatingOutputError(f"the answer has no score: {match.group(0)[:120]!r}")
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


def score_from_expected(expected: float, cutoffs: Sequence[float]) -> int:
    """0, 1 or 2 from an expected score in [0, 2] and two cut-offs."""
    return 0 if expected < cutoffs[0] else (1 if expected < cutoffs[1] else 2)


# ----------------------------------------------------------------------------- the chain


@dataclass
class RatingChain:
    """Rates filings on categories with one model and one prompt version per category."""

    store: Store
    model_id: str = "local"
    temperature: float = 0.0
    evidence_chars: int = DEFAULT_EVIDENCE_CHARS
    run_id: str | None = None
    model_params: dict = field(default_factory=dict)
    gather: Callable[[RatingPrompt, Target], list[EvidenceItem]] | None = None
    model: Any = None  # a ready chat model (tests); otherwise built from model_id
    # where the model is served (e.g. {"base_url": ...} of one of several replicas): passed to the
    # model, but not recorded and not part of the cache key, since any replica gives the same answers
    connection: dict = field(default_factory=dict)

    def rate(self, target: Target, category: str, prompt_version: str = "v1", sample_index: int = 0) -> Rating:
        """Rate one filing on one category; failures come back as ``status="failed"``, never as a score."""
        prompt = load_prompt(f"{category}@{prompt_version}")
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
            else:
                self._rate_direct(prompt, target, evidence_text, used, rating)
            rating.status = "ok"
        except (RatingOutputError, ModelCallError) as exc:
            rating.error = str(exc)
        return rating

    # -- methods

    def _params(self, sample_index: int, attempt: int) -> dict:
        """Generation parameters; a retry is a different call (and, at temperature 0, a warmer one)."""
        params = {"temperature": self.temperature, **self.model_params}
        if self.temperature > 0:
            params["seed"] = sample_index
        if attempt:
            params.update(attempt=attempt, seed=1000 * attempt + sample_index)
            if self.temperature == 0:
                params["temperature"] = 0.3
        return params

    def _call(self, messages, prompt: RatingPrompt, rating: Rating, attempt: int):
        params = self._params(rating.sample_index, attempt)
        model = self.model or self._model({k: v for k, v in params.items() if k != "attempt"})
        result = invoke_cached(
            self.store, self.model_id, params, messages, prompt_ref=prompt.ref, prompt_hash=prompt.hash,
            sample_index=rating.sample_index, run_id=self.run_id, model=model,
        )
        self._count(rating, result)
        return result

    def _model(self, params: dict):
        from filinglens.agents.models import get_chat_model

        return get_chat_model(self.model_id, **{**params, **self.connection})

    @staticmethod
    def _count(rating: Rating, result) -> None:
        rating.model_calls += 1
        rating.cached_calls += int(result.cached)
        rating.tokens_in += result.tokens_in
        rating.tokens_out += result.tokens_out
        rating.latency_ms += result.latency_ms

    def _rate_direct(self, prompt, target, evidence_text, used, rating: Rating) -> None:
        messages = build_messages(prompt, target, evidence_text)
        problems = []
        for attempt in range(MAX_ATTEMPTS):
            result = self._call(messages, prompt, rating, attempt)
            try:
                score, rationale, quotes = parse_rating_output(result.text)
            except RatingOutputError as exc:
                problems.append(str(exc))
                continue
            rating.score, rating.expected_score, rating.rationale = score, float(score), rationale
            rating.quotes = verify_quotes(quotes, used)
            return
        raise RatingOutputError(f"malformed output after {MAX_ATTEMPTS} tries: {problems[-1]}")

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

    def _p_yes(self, prompt, target, evidence_text, question, rating: Rating) -> float:
        messages = build_messages(prompt, target, evidence_text, question)
        if self.model is None and self.model_id in LOCAL_PROB_MODELS:
            probs, result = next_token_probs_cached(
                self.store, self.model_id, messages, ("yes", "no"), prompt_ref=prompt.ref,
                prompt_hash=prompt.hash, run_id=self.run_id,
            )
            self._count(rating, result)
            total = probs["yes"] + probs["no"]
            if total < 1e-6:
                raise RatingOutputError(f"the model gives neither yes nor no to: {question}")
            return probs["yes"] / total
        for attempt in range(MAX_ATTEMPTS):
            result = self._call(messages, prompt, rating, attempt)
            word = re.match(r"\W*(yes|no)\b", result.text.strip(), re.I)
            if word:
                return 1.0 if word.group(1).lower() == "yes" else 0.0
        raise RatingOutputError(f"no yes/no answer after {MAX_ATTEMPTS} tries to: {question}")


def _first_sentence(text: str, limit: int = 240) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    m = re.search(r"(?<=[.!?])\s", text[:limit])
    return text[: m.start()] if m else text[:limit].rsplit(" ", 1)[0]


def rate_many(
    chain: RatingChain,
    targets: Sequence[Target],
    categories: Sequence[str],
    prompt_version: str = "v1",
    samples: int = 1,
    progress: Callable[[Rating], None] | None = None,
) -> list[Rating]:
    """Rate every target × category × sample, saving each rating as it finishes (resumable)."""
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


def ratings_table(ratings: Sequence[Rating]):
    """A rich table: filing, category, score, the first evidence quote with its citation, calls."""
    from rich.table import Table

    setups = sorted({f"{r.model_id} · prompt {r.prompt_version} ({r.method})" for r in ratings})
    table = Table(title="Ratings — " + "; ".join(setups), show_lines=True, expand=True)
    table.add_column("filing", ratio=1)
    table.add_column("category", ratio=1)
    table.add_column("score", ratio=1)
    table.add_column("evidence", ratio=5)
    table.add_column("calls (cached)", ratio=1)
    for r in ratings:
        if r.status == "ok":
            expected = f"\nE={r.expected_score:.2f}" if r.method == "yesno" else ""
            score = f"[bold]{r.score}[/]{expected}"
            quote = next((q for q in r.quotes if q["verified"]), r.quotes[0] if r.quotes else None)
            evidence = ""
            if quote:
                evidence = f"“{quote['text'][:200]}”" + ("" if quote["verified"] else " [red](unverified)[/]")
            if r.evidence:
                evidence += f"\n[dim]{r.evidence[0]['citation']}[/]"
        else:
            score, evidence = "[red]failed[/]", f"[red]{(r.error or '')[:200]}[/]"
        sample = f" #{r.sample_index}" if r.sample_index else ""
        table.add_row(r.target.label + sample, r.category, score, evidence, f"{r.model_calls} ({r.cached_calls})")
    return table


def export_ratings(ratings: Sequence[Rating], path) -> None:
    """Write ratings to ``.csv``, ``.parquet`` or ``.json`` (by suffix)."""
    import pandas as pd
    from pathlib import Path

    path = Path(path)
    rows = []
    for r in ratings:
        row = r.to_row()
        row["quotes"] = json.dumps(row["quotes"], ensure_ascii=False)
        row["evidence"] = json.dumps(row["evidence"], ensure_ascii=False)
        rows.append(row)
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".json":
        frame.to_json(path, orient="records", indent=2)
    else:
        frame.to_csv(path, index=False)
