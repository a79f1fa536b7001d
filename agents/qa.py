"""Question answering over indexed filings, with citations that are checked.

The retrieval agent finds evidence (filters from the arguments or detected in
the question); the model answers from the numbered, delimited excerpts with
JSON ``{answer, sufficient, citations: [{evidence, quote}]}``. Each quote is
checked against the cited excerpt, which is an exact span of the filing: a
quote that does not occur there is reported as unverified. When nothing
relevant is found, or the model says the excerpts are insufficient, the
answer says so instead of guessing.

Metric questions (a value to look up or compute; :func:`is_metric_question`)
use the ``compute`` prompt (:data:`COMPUTE_VERSION`): the model names the
figures it uses, each quoted from an excerpt, and an arithmetic expression;
``agents/compute.py`` checks every figure's number against its excerpt,
evaluates the expression safely and the answer shows the calculation -- or
refuses with the reason when a figure is missing or cannot be traced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from filinglens.agents.calls import call_parsed, extract_json
from filinglens.agents.compute import compose, is_metric_question, trace_numbers
from filinglens.agents.compute import compute as compute_answer
from filinglens.agents.evidence import EvidenceItem, render_evidence, verify_quotes
from filinglens.errors import InputError, ModelCallError, ModelOutputError
from filinglens.prompts.loader import load_qa_prompt
from filinglens.store import Store

INSUFFICIENT = "The indexed filings do not contain enough evidence to answer this question."
#: The prompt for metric questions (``prompts/qa/compute-v1.yaml``); a ``-p compute-…`` version forces it.
COMPUTE_VERSION = "compute-v1"


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
    calculation: dict | None = None  # compute prompt: figures, expression, value, shown calculation, refusal
    refusal: str | None = None  # why the question was not answered, when known

    @property
    def unverified(self) -> int:
        return sum(1 for c in self.citations if not c.verified)

    def numbers(self) -> dict:
        """Which numbers of the answer trace to a verified quote or the shown calculation (``trace_numbers``)."""
        if not self.sufficient:
            return {"numbers": 0, "traced": 0, "untraced": [], "all_traced": None}
        return trace_numbers(self.answer, [c.quote for c in self.citations if c.verified], self.calculation)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["unverified_quotes"] = self.unverified
        data["numbers"] = self.numbers()
        return data


def parse_answer(text: str) -> dict:
    """The model's JSON answer (a plain answer, or a compute reply's figures and expression);
    ``ModelOutputError`` (a ``ValueError``) when it is not usable."""
    data = extract_json(text)
    if not ({"answer", "expression", "figures"} & set(data)):
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
    compute: bool | None = None,
) -> Answer:
    """Answer ``question`` from retrieved ``evidence`` (retrieval ``Evidence`` objects or ``EvidenceItem``s).

    ``compute``: use the compute prompt (figures + expression, checked and
    evaluated here); default: for metric questions (:func:`is_metric_question`)
    or a ``compute-…`` ``prompt_version``.
    """
    if not question.strip():
        raise InputError("the question is empty")
    prompt = load_qa_prompt(_prompt_version(question, prompt_version, compute))
    if prompt.max_tokens:  # the prompt file says how long its replies are (figures with quotes, reasons)
        params = {"max_tokens": prompt.max_tokens, **(params or {})}
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


def _prompt_version(question: str, version: str | None, compute: bool | None) -> str | None:
    """The QA prompt version for ``question``: the compute prompt for metric questions unless told otherwise."""
    if version and version.startswith("compute"):
        return version if compute is not False else None
    if compute is None:
        compute = is_metric_question(question)
    return COMPUTE_VERSION if compute else version


def _fill(result: Answer, data: dict, used: list[EvidenceItem]) -> None:
    if result.prompt.startswith("qa@compute"):
        _fill_computed(result, data, used)
        return
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


def _fill_computed(result: Answer, data: dict, used: list[EvidenceItem]) -> None:
    """A compute reply: figures checked against the excerpts, the expression evaluated, the calculation shown."""
    calc = compute_answer(data, used)
    result.calculation = calc.to_dict()
    for f in calc.figures:
        result.citations.append(Citation(f.evidence, f.chunk_id, f.citation, f.quote, f.quote_verified))
    if calc.refusal:
        result.refusal = calc.refusal
        result.sufficient = False
        result.answer = f"{INSUFFICIENT[:-1]}: {calc.refusal}."
        return
    result.sufficient = True
    result.answer = compose(calc)
