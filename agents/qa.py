"""Question answering over indexed filings, with citations that are checked.

The retrieval agent finds evidence (filters from the arguments or detected in
the question); the model answers from the numbered, delimited excerpts with
JSON ``{answer, sufficient, citations: [{evidence, quote}]}``. Each quote is
checked against the cited excerpt, which is an exact span of the filing: a
quote that does not occur there is reported as unverified. When nothing
relevant is found, or the model says the excerpts are insufficient, the
answer says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from filinglens.agents.calls import call_parsed, extract_json
from filinglens.agents.evidence import EvidenceItem, render_evidence, verify_quotes
from filinglens.errors import InputError, ModelCallError, ModelOutputError
from filinglens.prompts.loader import load_qa_prompt
from filinglens.store import Store

INSUFFICIENT = "The indexed filings do not contain enough evidence to answer this question."


@dataclass
class Citation:
    n: int  # the excerpt number E<n>
    chunk_id: str
    citation: str  # filing, item, page, char span
    quote: str
    verified: bool


@dataclass
class Answer:
    question: str
    answer: str
    sufficient: bool
    citations: list[Citation] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)
    model_id: str = ""
    prompt: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cached: bool = False
    error: str | None = None

    @property
    def unverified(self) -> int:
        return sum(1 for c in self.citations if not c.verified)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["unverified_quotes"] = self.unverified
        return data


def parse_answer(text: str) -> dict:
    """The model's JSON answer; ``ValueError`` (``ModelOutputError``) when it is not usable."""
    data = extract_json(text)
    if "answer" not in data:
        raise ModelOutputError("the answer has no `answer` field")
    return data


def answer_question(
    question: str,
    evidence: Sequence[Any],
    *,
    store: Store,
    model_id: str = "local",
    model: Any = None,
    evidence_chars: int = 6000,
    prompt_version: str | None = None,
    params: dict | None = None,
) -> Answer:
    """Answer ``question`` from retrieved ``evidence`` (retrieval ``Evidence`` objects or ``EvidenceItem``s)."""
    if not question.strip():
        raise InputError("the question is empty")
    prompt = load_qa_prompt(prompt_version)
    items = [e if isinstance(e, EvidenceItem) else EvidenceItem.from_evidence(e) for e in evidence]
    result = Answer(question=question, answer=INSUFFICIENT, sufficient=False, model_id=model_id, prompt=prompt.ref)
    if not items:
        return result
    text, used = render_evidence(items, evidence_chars)
    result.evidence = [{"n": i + 1, "chunk_id": e.chunk_id, "citation": e.citation} for i, e in enumerate(used)]
    messages = [("system", prompt.system), ("user", prompt.user.format(evidence=text, question=question))]

    def count(call) -> None:
        result.tokens_in += call.tokens_in
        result.tokens_out += call.tokens_out
        result.latency_ms += call.latency_ms
        result.cached = call.cached

    try:
        data = call_parsed(store, model_id, messages, parse_answer, params={"temperature": 0.0, **(params or {})},
                           what="answer", prompt_ref=prompt.ref, prompt_hash=prompt.hash, model=model, on_call=count)
    except (ModelCallError, ModelOutputError) as exc:
        result.error = str(exc)
        return result
    _fill(result, data, used)
    return result


def _fill(result: Answer, data: dict, used: list[EvidenceItem]) -> None:
    answer = str(data.get("answer") or "").strip()
    sufficient = bool(data.get("sufficient", bool(answer))) and bool(answer)
    for cite in data.get("citations") or []:
        if not isinstance(cite, dict):
            continue
        try:
            n = int(str(cite.get("evidence", "")).lstrip("E"))
        except ValueError:
            continue
        if not 1 <= n <= len(used):
            continue
        quote = str(cite.get("quote") or "").strip()
        checked = verify_quotes([quote], [used[n - 1]])[0]
        result.citations.append(Citation(n, used[n - 1].chunk_id, used[n - 1].citation, quote, checked["verified"]))
    result.sufficient = sufficient
    result.answer = answer if sufficient else INSUFFICIENT
