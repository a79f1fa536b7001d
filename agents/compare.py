"""Pairwise judgments: which of two companies shows more of a category, from each one's own evidence.

For one category, each company's evidence is gathered from its own filing
with the category's rating prompt (same queries, same Items), rendered and
budgeted like a rating's, and the pair is put to the model with the
comparison prompt (``prompts/compare/<version>.yaml``): companies are named
only A and B and the verdict is JSON ``{"winner": "A"|"B"|"tie", "rationale"}``.
Every pair is judged in both orders, so the position bias can be measured
(see :mod:`filinglens.analysis.compare`). Calls go through the cached,
recorded model-call path; a malformed verdict is retried (each retry a
distinct recorded call) and then recorded as a failed judgment — never a
default winner.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from filinglens.agents.calls import ModelCallError, invoke_cached
from filinglens.agents.evidence import EvidenceItem, render_evidence
from filinglens.agents.rating import Target
from filinglens.errors import InputError, VerdictError
from filinglens.prompts.loader import ComparePrompt, RatingPrompt, load_compare_prompt, load_prompt
from filinglens.store import Store

MAX_ATTEMPTS = 3


@dataclass
class Judgment:
    """One ordered pair judged once: ``first`` was shown as A, ``second`` as B."""

    first: str  # company label (ticker, or company name)
    second: str
    sample_index: int
    status: str  # ok | failed
    verdict: str | None = None  # "A", "B" or "tie" (positions)
    rationale: str = ""
    error: str | None = None
    model_calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    latency_ms: float = 0.0
    evidence_first: list[dict] = field(default_factory=list)
    evidence_second: list[dict] = field(default_factory=list)

    @property
    def winner(self) -> str | None:
        """The winning company's label, ``"tie"``, or None when the judgment failed."""
        if self.status != "ok":
            return None
        return {"A": self.first, "B": self.second}.get(self.verdict or "", "tie")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["winner"] = self.winner
        return data


_VERDICT = re.compile(r'"?winner"?\s*:\s*"?\s*(?:company\s+)?(A|B|tie)\b', re.I)
_BARE = re.compile(r"^\W*(?:company\s+)?(A|B|tie)\b", re.I)


def parse_verdict(text: str) -> tuple[str, str]:
    """``(verdict, rationale)`` from the model's answer; ``VerdictError`` when there is no A/B/tie."""
    cleaned = re.sub(r"^```(?:json)?|```$", "", (text or "").strip(), flags=re.M).strip()
    match = re.search(r"\{.*\}", cleaned, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and "winner" in data:
            raw = str(data.get("winner") or "").strip()
            m = re.fullmatch(r"(?:company\s+)?(A|B|tie)\.?", raw, re.I)
            if not m:
                raise VerdictError(f"winner must be A, B or tie, got {data.get('winner')!r}")
            return _norm(m.group(1)), str(data.get("rationale") or "").strip()
    m = _VERDICT.search(cleaned) or _BARE.match(cleaned)
    if not m:
        raise VerdictError(f"no verdict (A, B or tie) in the answer: {text[:120]!r}")
    return _norm(m.group(1)), ""


# Sentences that address a pairwise judge ("answer A", "company B wins", "prefer the first company"): removed
# from each company's evidence on top of the rating chain's filter (agents/evidence.py), which knows scores only.
_PAIR_INSTRUCTION = re.compile(
    r"\b(?:answer|respond|reply|choose|pick|select|prefer|vote(?:\s+for)?)\s+(?:with\s+)?(?:company\s+)?[\"']?(?-i:[AB])\b"
    r"|\bcompany\s+(?-i:[AB])\s+(?:wins|is\s+(?:better|stronger|the\s+winner))"
    r"|\b(?:the\s+)?(?:first|second)\s+company\s+(?:wins|is\s+(?:better|stronger))",
    re.I,
)
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.](?=\d))*[.!?]?")


def redact_pair_instructions(text: str) -> str:
    """``text`` with sentences that tell a pairwise judge what to answer replaced by ``[instruction removed]``."""
    return _SENTENCE.sub(lambda m: " [instruction removed]" if m.group(0).strip() and
                         _PAIR_INSTRUCTION.search(m.group(0)) else m.group(0), text)


def _norm(word: str) -> str:
    return "tie" if word.lower() == "tie" else word.upper()


def target_label(target: Target) -> str:
    """How a company appears in rankings: its ticker, else its company name, else the filing id."""
    return target.ticker.upper() if target.ticker else (target.company or target.filing_id)


@dataclass
class PairJudge:
    """Judges ordered pairs of companies on one category with one model."""

    store: Store
    category: str
    model_id: str = "local"
    prompt_version: str = "v2"  # the rating prompt whose description, rubric and retrieval are used
    compare_version: str | None = None
    gather: Callable[[RatingPrompt, Target], list[EvidenceItem]] | None = None
    run_id: str | None = None
    temperature: float = 0.0
    model: Any = None  # a ready chat model (tests); otherwise built from model_id
    _evidence: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rating_prompt: RatingPrompt = load_prompt(f"{self.category}@{self.prompt_version}")
        self.prompt: ComparePrompt = load_compare_prompt(self.compare_version)

    # -- evidence

    def evidence(self, target: Target) -> tuple[str, list[EvidenceItem]]:
        """The company's rendered evidence for the category (gathered once per target)."""
        if target.filing_id not in self._evidence:
            items = self.gather(self.rating_prompt, target) if self.gather else []
            if not items:
                raise InputError(f"{target.label}: no evidence for {self.category} in the filing")
            text, used = render_evidence(items, self.prompt.evidence_chars)
            self._evidence[target.filing_id] = (redact_pair_instructions(text), used)
        return self._evidence[target.filing_id]

    def messages(self, first: Target, second: Target) -> list[tuple[str, str]]:
        """System and user messages for ``first`` shown as A and ``second`` as B."""
        text_a, _ = self.evidence(first)
        text_b, _ = self.evidence(second)
        rp = self.rating_prompt
        values = {
            "title": rp.title, "description": rp.description,
            "rubric_0": rp.rubric[0], "rubric_1": rp.rubric[1], "rubric_2": rp.rubric[2],
            "year_a": f"fiscal {first.fiscal_year}" if first.fiscal_year else "latest fiscal year",
            "year_b": f"fiscal {second.fiscal_year}" if second.fiscal_year else "latest fiscal year",
            "evidence_a": text_a, "evidence_b": text_b,
        }
        return [("system", self.prompt.system.format(**values)), ("user", self.prompt.user.format(**values))]

    # -- judging

    def _params(self, sample_index: int, attempt: int) -> dict:
        params: dict = {"temperature": self.temperature}
        if self.temperature > 0:
            params["seed"] = sample_index
        if attempt:
            params.update(attempt=attempt, seed=1000 * attempt + sample_index)
            if self.temperature == 0:
                params["temperature"] = 0.3
        return params

    def judge(self, first: Target, second: Target, sample_index: int = 0) -> Judgment:
        """Judge ``first`` (shown as A) against ``second`` (B); failures come back as ``status="failed"``."""
        judgment = Judgment(target_label(first), target_label(second), sample_index, status="failed")
        try:
            messages = self.messages(first, second)
            judgment.evidence_first = [{"chunk_id": e.chunk_id, "citation": e.citation} for e in self.evidence(first)[1]]
            judgment.evidence_second = [{"chunk_id": e.chunk_id, "citation": e.citation}
                                        for e in self.evidence(second)[1]]
            problems = []
            for attempt in range(MAX_ATTEMPTS):
                params = self._params(sample_index, attempt)
                model = self.model
                if model is None:
                    from filinglens.agents.models import get_chat_model

                    model = get_chat_model(self.model_id, **{k: v for k, v in params.items() if k != "attempt"})
                result = invoke_cached(
                    self.store, self.model_id, params, messages, prompt_ref=self.prompt.ref,
                    prompt_hash=self.prompt.hash, sample_index=sample_index, run_id=self.run_id, model=model,
                )
                judgment.model_calls += 1
                judgment.cached_calls += int(result.cached)
                judgment.tokens_in += result.tokens_in
                judgment.latency_ms += result.latency_ms
                try:
                    judgment.verdict, judgment.rationale = parse_verdict(result.text)
                except VerdictError as exc:
                    problems.append(str(exc))
                    continue
                judgment.status = "ok"
                return judgment
            judgment.error = f"malformed verdict after {MAX_ATTEMPTS} tries: {problems[-1]}"
        except (ModelCallError, InputError, VerdictError) as exc:
            judgment.error = str(exc)
        return judgment


def ordered_pairs(targets: Sequence[Target]) -> list[tuple[Target, Target]]:
    """Every pair of distinct targets in both orders: (A, B) and (B, A) next to each other."""
    out = []
    for a, b in itertools.combinations(targets, 2):
        out += [(a, b), (b, a)]
    return out


def judge_all(
    judge: PairJudge,
    targets: Sequence[Target],
    samples: int = 1,
    progress: Callable[[Judgment, int, int], None] | None = None,
) -> list[Judgment]:
    """Judge every ordered pair ``samples`` times; ``progress(judgment, done, total)`` after each."""
    labels = [target_label(t) for t in targets]
    if len(set(labels)) != len(labels):
        raise InputError(f"each company may appear once in a comparison: {', '.join(labels)}")
    if len(targets) < 2:
        raise InputError("a comparison needs at least two companies")
    pairs = ordered_pairs(targets)
    total = len(pairs) * samples
    out: list[Judgment] = []
    for sample in range(samples):
        for first, second in pairs:
            judgment = judge.judge(first, second, sample)
            out.append(judgment)
            if progress:
                progress(judgment, len(out), total)
    return out
