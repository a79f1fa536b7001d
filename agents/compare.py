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
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from filinglens.agents.calls import call_parsed, extract_json
from filinglens.agents.evidence import EvidenceItem, render_evidence
from filinglens.agents.models import DEFAULT_MODEL
from filinglens.agents.rating import Target
from filinglens.errors import InputError, ModelCallError, ModelOutputError, VerdictError
from filinglens.prompts.loader import ComparePrompt, RatingPrompt, load_compare_prompt, load_prompt
from filinglens.store import Store


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
    try:
        data = extract_json(cleaned)
    except ModelOutputError:  # no usable JSON: look for a bare verdict below
        data = None
    if data is not None and "winner" in data:
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
    model_id: str = DEFAULT_MODEL
    # the rating prompt whose description, rubric and retrieval are used (None: the category's default version,
    # else its newest)
    prompt_version: str | None = None
    compare_version: str | None = None
    gather: Callable[[RatingPrompt, Target], list[EvidenceItem]] | None = None
    run_id: str | None = None
    temperature: float = 0.0
    model: Any = None  # a ready chat model (tests); otherwise built from model_id
    attempts: int | None = None  # tries per malformed verdict (default: settings.model_attempts())
    _evidence: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.rating_prompt: RatingPrompt = load_prompt(
            f"{self.category}@{self.prompt_version}" if self.prompt_version else self.category)
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

    def _params(self, sample_index: int) -> dict:
        """Generation parameters of a first try (retries: :func:`filinglens.agents.calls.retry_params`)."""
        params: dict = {"temperature": self.temperature}
        if self.temperature > 0:
            params["seed"] = sample_index
        return params

    def _count(self, judgment: Judgment, result) -> None:
        judgment.model_calls += 1
        judgment.cached_calls += int(result.cached)
        judgment.tokens_in += result.tokens_in
        judgment.latency_ms += result.latency_ms

    def judge(self, first: Target, second: Target, sample_index: int = 0) -> Judgment:
        """Judge ``first`` (shown as A) against ``second`` (B); failures come back as ``status="failed"``."""
        judgment = Judgment(target_label(first), target_label(second), sample_index, status="failed")
        try:
            messages = self.messages(first, second)
            judgment.evidence_first = [{"chunk_id": e.chunk_id, "item": e.item, "citation": e.citation}
                                       for e in self.evidence(first)[1]]
            judgment.evidence_second = [{"chunk_id": e.chunk_id, "item": e.item, "citation": e.citation}
                                        for e in self.evidence(second)[1]]
            judgment.verdict, judgment.rationale = call_parsed(
                self.store, self.model_id, messages, parse_verdict, params=self._params(sample_index),
                sample_index=sample_index, attempts=self.attempts, what="verdict", prompt_ref=self.prompt.ref,
                prompt_hash=self.prompt.hash, run_id=self.run_id, model=self.model,
                on_call=lambda result: self._count(judgment, result),
            )
            judgment.status = "ok"
        except (ModelCallError, InputError, ModelOutputError) as exc:
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
