"""Question answering over indexed filings, with citations that are checked.

The retrieval agent finds evidence (filters from the arguments or detected in
the question); the model answers from the numbered, delimited excerpts with
JSON ``{answer, sufficient, citations: [{evidence, quote}]}``. Each quote is
checked against the cited excerpt, which is an exact span of the filing: a
quote that does not occur there is reported as unverified. When nothing
relevant is found, or the model says the excerpts are insufficient, the
answer says so instead of guessing.

Metric questions (a value to look up or compute; :func:`is_metric_question`)
are computed, not guessed.  When the metric library covers the question
(``prompts/metrics/``, planned by ``agents/metrics.py``) the program knows the
formula and the model only finds the figures it names (:data:`METRIC_VERSION`);
otherwise the ``compute`` prompt (:data:`COMPUTE_VERSION`) has the model name
the figures and write the expression.  Either way ``agents/compute.py``
checks every figure's number against its excerpt, evaluates the expression
safely and the answer shows the calculation -- or refuses with the reason
when a figure is missing or cannot be traced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from filinglens.agents.calls import call_parsed, extract_json
from filinglens.agents.compute import compose, figure_list, is_metric_question, read_amount, trace_numbers
from filinglens.agents.compute import compute as compute_answer
from filinglens.agents.evidence import EvidenceItem, render_evidence, verify_quotes
from filinglens.agents.metrics import (MetricPlan, allows_not_useful, apply_plan, not_useful_reason, plan_choice,
                                       plan_judgement, plan_metric, read_from_tables, read_parts, same_row_clash)
from filinglens.errors import FilingLensError, InputError, ModelCallError, ModelOutputError
from filinglens.prompts.loader import load_qa_prompt
from filinglens.store import Store

INSUFFICIENT = "The indexed filings do not contain enough evidence to answer this question."
#: The prompt for metric questions the metric library does not cover (``prompts/qa/compute-v1.yaml``): the model
#: names the figures and writes the expression; a ``-p compute-…`` version forces it for every metric question.
COMPUTE_VERSION = "compute-v1"
#: The prompt for metric questions the metric library covers (``prompts/qa/figures-v1.yaml``): the model finds the
#: figures the library's formula names.
METRIC_VERSION = "figures-v1"


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
    statements: Callable[[Sequence[str]], Sequence[Any]] | None = None,
) -> Answer:
    """Answer ``question`` from retrieved ``evidence`` (retrieval ``Evidence`` objects or ``EvidenceItem``s).

    ``compute``: use the compute prompt (figures + expression, checked and
    evaluated here); default: for metric questions (:func:`is_metric_question`)
    or a ``compute-…`` ``prompt_version``.  ``statements(keys)``: the chunks
    of the filing's statement pages (``RetrievalAgent.statement_evidence``),
    where the program reads a library metric's figures when the evidence
    lacks their rows; an excerpt it reads a figure from joins the evidence.
    """
    if not question.strip():
        raise InputError("the question is empty")
    version, plan = _prompt_version(question, prompt_version, compute)
    prompt = load_qa_prompt(version)
    if prompt.max_tokens:  # the prompt file says how long its replies are (figures with quotes, reasons)
        params = {"max_tokens": prompt.max_tokens, **(params or {})}
    items = [e if isinstance(e, EvidenceItem) else EvidenceItem.from_evidence(e) for e in evidence]
    result = Answer(question=question, answer=INSUFFICIENT, sufficient=False, model_id=model_id, prompt=prompt.ref)
    if not items:
        return result
    text, used = render_evidence(items, evidence_chars)
    if _not_useful(result, question, plan, used, statements, evidence_chars):
        return result
    tables: dict[str, dict] = {}
    if plan:
        plan, text, used, tables = _read_tables(plan, text, used, statements, evidence_chars)
    result.evidence = [{"n": i + 1, "chunk_id": e.chunk_id, "citation": e.citation} for i, e in enumerate(used)]
    if plan and all(f.name in tables or f.item_def.optional for f in plan.figures):
        _fill(result, {"figures": list(tables.values())}, used, plan, tables)  # every figure read: no model call
        return result
    plan_text = {"figures": plan.figures_prompt(skip=tables), "formula": plan.formula_prompt()} if plan else {}
    messages = [("system", prompt.system), ("user", prompt.user.format(evidence=text, question=question, **plan_text))]

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
    _fill(result, data, used, plan, tables)
    return result


def _read_tables(plan: MetricPlan, text: str, used: list[EvidenceItem], statements: Callable | None,
                 evidence_chars: int) -> tuple[MetricPlan, str, list[EvidenceItem], dict[str, dict]]:
    """The plan's figures read from statement tables in the evidence, then in the filing's statement pages
    (``statements``); excerpts that supply a figure join the evidence (and its text), numbered after it.
    The plan comes back with a line item printed only as its parts replaced by them (:func:`read_parts`)."""
    shown = {e.chunk_id for e in used}
    try:
        needed = plan.statements()
        if needed == ["balance_sheet"]:  # a flow statement's years name the balance sheet's fiscal years
            needed = ["balance_sheet", "income"]
        pages = statements(needed) if statements else []
    except FilingLensError:  # no statement pages to read (no filter, nothing indexed): the evidence alone
        pages = []
    extra = [e if isinstance(e, EvidenceItem) else EvidenceItem.from_evidence(e) for e in pages]
    heading = {e.chunk_id: e.context for e in extra if e.context}
    if any(not e.context and e.chunk_id in heading for e in used):  # a statement chunk search found on its own
        budget = evidence_chars + sum(len(heading[e.chunk_id]) + 8 for e in used if not e.context
                                      and e.chunk_id in heading)
        used = [dataclasses.replace(e, context=heading[e.chunk_id]) if not e.context and e.chunk_id in heading
                else e for e in used]
        text, used = render_evidence(used, budget)
    extra = [e for e in extra if e.chunk_id not in shown]
    tables = read_from_tables(plan, used + extra)
    plan, tables = read_parts(plan, used + extra, tables)
    supplying = sorted({f["evidence"] for f in tables.values() if f["evidence"] > len(used)})
    if not supplying:
        return plan, text, used, tables
    renumber = {n: len(used) + i for i, n in enumerate(supplying, start=1)}
    for figure in tables.values():
        figure["evidence"] = renumber.get(figure["evidence"], figure["evidence"])
    added = [extra[n - len(used) - 1] for n in supplying]
    text, joined = render_evidence(used + added, evidence_chars + sum(len(e.text) + len(e.context) + 64 for e in added))
    return plan, text, joined, tables


def _not_useful(result: Answer, question: str, plan: MetricPlan | None, used: list[EvidenceItem],
                statements: Callable | None, evidence_chars: int) -> bool:
    """Answer "not a useful metric" (no model call) when the question allows it and the company is a lender
    whose statements print none of the metric's line items (:func:`not_useful_reason`); the row is cited."""
    if statements is None or not allows_not_useful(question):
        return False
    plan = plan or plan_metric(question)
    if plan is None:
        return False
    try:
        pages = [e if isinstance(e, EvidenceItem) else EvidenceItem.from_evidence(e)
                 for e in statements(list(dict.fromkeys(plan.statements() + ["income"])))]
    except FilingLensError:
        return False
    found = not_useful_reason(question, plan, pages)
    if found is None:
        return False
    why, n, row = found
    cited = pages[n - 1]
    if cited.chunk_id not in {e.chunk_id for e in used}:
        _, used = render_evidence(used + [cited], evidence_chars + len(cited.text) + len(cited.context) + 64)
    number = next(i for i, e in enumerate(used, start=1) if e.chunk_id == cited.chunk_id)
    result.evidence = [{"n": i + 1, "chunk_id": e.chunk_id, "citation": e.citation} for i, e in enumerate(used)]
    checked = verify_quotes([row], [used[number - 1]])[0]
    result.citations.append(Citation(number, cited.chunk_id, cited.citation, row, checked["verified"]))
    result.answer, result.sufficient = f"{why} ({row.split('|')[0].strip()}: E{number})", True
    result.calculation = {"not_useful": plan.metric, "plan": plan.to_dict(), "row": row}
    return True


def _values(figures: Sequence[Any]) -> dict[str, float]:
    """name -> number of the reply figures whose value reads as one number."""
    out = {}
    for figure in figures:
        try:
            out[str(figure.get("name"))] = read_amount(figure.get("value")).value
        except (ValueError, AttributeError):
            continue
    return out


def _prompt_version(question: str, version: str | None, compute: bool | None) -> tuple[str | None, MetricPlan | None]:
    """The QA prompt version for ``question`` and, for a metric the library covers, its plan.

    A yes/no question that a library metric decides (:func:`plan_judgement`)
    is computed too, and answered from the result.  Metric questions are
    computed unless ``compute`` is False: with the
    library's formula (:data:`METRIC_VERSION`, or a ``-p figures-…`` version)
    when it covers the question, else with the model's (:data:`COMPUTE_VERSION`;
    a ``-p compute-…`` version forces the model's formula).
    """
    forced = version if version and version.startswith(("compute", "figures")) else None
    if compute is False:
        return (None if forced else version), None
    if compute is None and not forced:
        compute = is_metric_question(question)
        judged = None if compute else plan_judgement(question) or plan_choice(question)
        if judged is not None:  # a yes/no question a library metric decides
            return METRIC_VERSION, judged
    if not compute:
        return version, None
    if forced and forced.startswith("compute"):
        return forced, None
    plan = plan_metric(question)
    if plan is None:
        return COMPUTE_VERSION, None
    return forced or METRIC_VERSION, plan


def _fill(result: Answer, data: dict, used: list[EvidenceItem], plan: MetricPlan | None = None,
          tables: dict[str, dict] | None = None) -> None:
    if plan is not None:  # figures read from statement tables are taken over the model's
        tables = tables or {}
        mine = [f for f in figure_list(data.get("figures")) if isinstance(f, dict) and str(f.get("name")) not in tables]
        clash = same_row_clash(plan, list(tables.values()) + mine)
        if clash:
            result.refusal, result.sufficient = clash, False
            result.answer = f"{INSUFFICIENT[:-1]}: {clash}."
            result.calculation = {"plan": plan.to_dict(), "refusal": clash, "read_from_tables": sorted(tables)}
            return
        reply, zeros = apply_plan(plan, {"figures": list(tables.values()) + mine})
        chosen = plan.choose(_values(reply.get("figures") or [])) if plan.options else None
        if chosen:  # a choice: the result is the chosen option's figure, every option is shown
            reply["expression"] = plan.options[chosen]
        about = plan.about + "".join(f"; {name} is not in the statements, taken as 0" for name in zeros)
        _fill_computed(result, reply, used, about=about, parts=plan.parts(zeros), parts_unit=plan.base_unit,
                       decimals=plan.decimals, keep_all=bool(plan.options))
        result.calculation["plan"] = plan.to_dict()
        result.calculation["read_from_tables"] = sorted(tables)
        value = result.calculation.get("value")
        verdict = plan.verdict(value) if plan.test and value is not None else ""
        if chosen and value is not None:
            verdict = chosen[0].upper() + chosen[1:]
        if verdict:  # a yes/no question: the program's answer to it, from the computed value
            result.calculation["verdict"] = verdict
            result.answer = f"{verdict}. {result.answer}"
        return
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


def _fill_computed(result: Answer, data: dict, used: list[EvidenceItem], **shown: Any) -> None:
    """A compute reply: figures checked against the excerpts, the expression evaluated, the calculation shown
    (``shown``: a metric plan's ``about``, ``parts`` and ``parts_unit`` for :func:`compute_answer`)."""
    calc = compute_answer(data, used, **shown)
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
