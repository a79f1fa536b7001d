"""QA evaluation on FinanceBench: answer the questions, score them with our rule and ragas.

``run_qa_eval`` loads FinanceBench questions (jsonl; default the 54-question
dev set in ``../shared/data/financebench``), ingests the 10-K PDFs they
reference (idempotent), retrieves evidence for every question, answers it
with the QA agent (``agents/qa.py``) and scores:

* **accuracy** with our rule (below), next to the published FinanceBench
  anchor: GPT-4-Turbo answered about 19% correctly with a shared vector store
  and about 50% with one store per document (Islam et al. 2023,
  arXiv:2311.11944);
* **by question type** (FinanceBench ``question_type``: metrics-generated,
  domain-relevant, novel-generated): accuracy with its 95% Wilson interval,
  evidence-page recall, and the traced share below;
* **numbers traced**: of the answers that state numbers, the share whose every
  number (years excepted) occurs in a verified quote or in the shown
  calculation (``Answer.numbers()``); metric questions are answered by
  computing (``agents/compute.py``): figures quoted from the evidence and an
  expression evaluated safely, or a refusal with the reason;
* **refusal rate**: answers that say the evidence is insufficient (model
  errors -- malformed output after the agent's retries, failed calls -- are
  counted separately);
* **evidence-page recall** with the retrieval bench's hit rule
  (``evals/financebench.py``): the fraction of the question's evidence pages
  among the pages of the retrieved chunks;
* **ragas metrics without an LLM** (legacy ``ragas.evaluate``):
  ``non_llm_context_recall`` / ``non_llm_context_precision_with_reference``
  (retrieved chunk texts against the FinanceBench evidence texts, Levenshtein
  similarity >= 0.5 per pair, whitespace collapsed on both sides -- strict,
  since a 1,000-character chunk and a whole-table evidence text rarely reach
  0.5), ``id_based_context_recall`` / ``id_based_context_precision`` (the same
  with page ids ``company|year|page``, so the recall equals the evidence-page
  recall), ``non_llm_string_similarity``, ``exact_match``, ``string_present``
  (reference verbatim in the answer), ``rouge_score(mode=fmeasure)``,
  ``bleu_score``, ``chrf_score`` (answer against the reference answer);
* **LLM-judged ragas metrics** (``faithfulness``, ``answer_relevancy``) only
  when a ``judge`` model id is given: ``get_chat_model(judge)`` in ragas'
  ``LangchainLLMWrapper`` and our embedding model in
  ``LangchainEmbeddingsWrapper``, so any registry model (``local`` too) can
  judge.  Only answered questions are judged; a judgement that fails (the
  judge's output cannot be parsed, a timeout...) is counted per metric and its
  message kept -- never turned into a 0.

**Accuracy rule** (``score_answer``; conservative, fixed before looking at
model answers; it is not a human grade):

1. A refusal or an error is never correct.
2. *Key numbers* of the reference answer: every number in it (``$``, ``%``,
   ``million``/``M``/``billion``/``bn``/``thousand`` understood) except years
   (a bare integer 1900-2100), list markers (``(1)``) and numbers that also
   occur in the question.  Each must match a number of our answer: equal
   within max(1% of the reference, half a unit of the reference's last
   decimal), comparing absolute values (signs are often said in words:
   "negative working capital of $1,561 million"); ``%`` against a bare number
   may also compare x100; a number with a scale word against one without may
   differ by a factor of 10^3, 10^6 or 10^9 (the question said "in USD
   millions").
3. *Yes/no*: a reference that starts with "Yes" or "No" needs an answer that
   starts with the same word.
4. Correct = yes/no agreement (if the reference has one) and all key numbers
   matched (if it has any).  A reference with neither is compared as text:
   at least 80% of its content words (lower-cased, stop words removed,
   plural "s" dropped; negations kept) must occur in our answer.  This misses
   correct paraphrases; read the per-question ``match`` details.

Everything per question (answer, correctness and why, citations, unverified
quotes, metrics, latency, tokens) and the aggregates are written as JSON and
Parquet by :meth:`QAEvalResult.write`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from filinglens.errors import ConfigError, FilingLensError, InputError
from filinglens.evals.financebench import (
    default_documents_path,
    default_pdf_dir,
    default_questions_path,
    evidence_pages,
    hit_pages,
    load_documents,
    load_jsonl,
    SPLITS,
    question_documents,
    split_of,
)

#: FinanceBench paper (Islam et al. 2023, arXiv:2311.11944): GPT-4-Turbo, share of questions answered correctly.
ANCHORS = {"shared store": 0.19, "per document": 0.50}
ANCHOR_MODEL = "GPT-4-Turbo (FinanceBench paper)"

REL_TOL = 0.01  # numbers: 1% of the reference ...
TEXT_RECALL = 0.8  # text references: share of content words found in the answer

#: ragas metrics that need no model (names as ragas reports them).
NON_LLM_METRICS = (
    "non_llm_context_recall", "non_llm_context_precision_with_reference", "id_based_context_recall",
    "id_based_context_precision", "non_llm_string_similarity", "exact_match", "string_present",
    "rouge_score(mode=fmeasure)", "bleu_score", "chrf_score",
)
JUDGE_METRICS = ("faithfulness", "answer_relevancy")


# --------------------------------------------------------------------------- the accuracy rule


@dataclass
class Number:
    text: str
    value: float  # absolute value as written (no scale applied)
    pct: bool = False
    scale: float | None = None  # 1e3, 1e6, 1e9 when a scale word follows
    decimals: int = 0  # significant decimals as written ("5818.00" -> 0, "0.68" -> 2)


_NUMBER = re.compile(
    r"(?<![\w.])(?P<cur>\$|USD\s?)?\s?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<unit>\s?(?:%|percent\b|per\s?cent\b)|\s?(?:billion|bn|b)\b|\s?(?:million|mn|mm|m)\b|\s?(?:thousand|k)\b)?",
    re.I,
)
_SCALES = {"b": 1e9, "bn": 1e9, "billion": 1e9, "m": 1e6, "mn": 1e6, "mm": 1e6, "million": 1e6,
           "k": 1e3, "thousand": 1e3}


def extract_numbers(text: str) -> list[Number]:
    """Numbers in ``text`` without years and list markers."""
    out = []
    for m in _NUMBER.finditer(text or ""):
        raw = m.group("num")
        unit = (m.group("unit") or "").strip().lower().replace(" ", "")
        plain = raw.replace(",", "")
        value = float(plain)
        is_int = "." not in plain
        if is_int and not m.group("cur") and not unit and "," not in raw and 1900 <= value <= 2100:
            continue  # a year
        after = text[m.end(): m.end() + 1]
        if is_int and value < 10 and not unit and not m.group("cur") and after == ")":
            continue  # a list marker: (1), 2)
        frac = plain.split(".")[1].rstrip("0") if "." in plain else ""
        out.append(Number(text=m.group(0).strip(), value=abs(value), pct=unit == "%" or unit.startswith("per"),
                          scale=_SCALES.get(unit), decimals=len(frac)))
    return out


def question_scale(question: str) -> float | None:
    """The unit a question asks amounts in ("Answer in USD millions" -> 1e6), or None when it names none."""
    m = re.search(r"\b(?:in|usd|us\$|\$)\s*(?:usd\s*|us\$\s*|\$\s*)?(thousands|millions|billions)\b", question or "", re.I)
    return _SCALES[m.group(1).lower()[:-1]] if m else None


def _candidates(ref: Number, ans: Number, unit: float | None = None) -> list[float]:
    """``ans`` expressed in the units of ``ref`` (every reading the rule allows; ``unit``: the scale the
    question asks amounts in, which a reference without a scale word is written in)."""
    if ref.pct or ans.pct:
        if ans.scale or ref.scale:
            return []
        if ref.pct and not ans.pct:
            return [ans.value, ans.value * 100]
        if ans.pct and not ref.pct:
            return [ans.value, ans.value / 100]
        return [ans.value]
    if ref.scale and ans.scale:
        return [ans.value * ans.scale / ref.scale]
    if ans.scale:  # the reference is in the units the question named ("in USD millions"), else any
        return [ans.value * ans.scale / u for u in ((unit,) if unit else (1.0, 1e3, 1e6, 1e9))]
    return [ans.value]  # a bare number, or the answer dropped the scale word the reference has


def numbers_match(ref: Number, ans: Number, unit: float | None = None) -> bool:
    tol = max(REL_TOL * ref.value, 0.5 * 10 ** (-ref.decimals))
    return any(abs(c - ref.value) <= tol + 1e-12 for c in _candidates(ref, ans, unit))


_POLARITY = re.compile(r"^\W*(yes|no)\b", re.I)
_STOP = set("""a an the and or of to in on at by for from with as is are was were be been being has have had do does did
this that these those it its it's which who whom what when where why how than then there their they them he she his her
we our you your i me my mine can could would should will shall may might must also both each either such into over under
about after before between during through per via up down out off so very just only more most much many some any all
s t fy fiscal year years company company's""".split())
_NEGATIONS = {"not", "no", "none", "never", "nor", "neither"}


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", (text or "").lower())
    return {_stem(w) for w in words if w in _NEGATIONS or (w not in _STOP and len(w) > 1)}


def score_answer(reference: str, answer: str, question: str = "", *, answered: bool = True) -> dict:
    """Whether ``answer`` is correct against ``reference`` (the documented rule), with the details."""
    if not answered:
        return {"correct": False, "rule": "refusal"}
    question_values = {n.value for n in extract_numbers(question)}
    unit = question_scale(question)
    keys: list[Number] = []
    for n in extract_numbers(reference):
        if n.value in question_values or any(k.value == n.value and k.pct == n.pct for k in keys):
            continue
        keys.append(n)
    ours = extract_numbers(answer)
    detail: dict[str, Any] = {}
    checks: list[bool] = []
    m = _POLARITY.match(reference or "")
    if m:
        ref_pol = m.group(1).lower()
        a = _POLARITY.match(answer or "")
        ans_pol = a.group(1).lower() if a else None
        detail["polarity"] = {"reference": ref_pol, "answer": ans_pol}
        checks.append(ans_pol == ref_pol)
    if keys:
        matched = []
        for k in keys:
            hit = next((a.text for a in ours if numbers_match(k, a, unit)), None)
            matched.append({"reference": k.text, "answer": hit})
        detail["numbers"] = matched
        detail["numbers_matched"] = sum(1 for x in matched if x["answer"] is not None) / len(matched)
        checks.append(all(x["answer"] is not None for x in matched))
    if not checks:
        ref_words = content_words(reference)
        recall = len(ref_words & content_words(answer)) / len(ref_words) if ref_words else 0.0
        detail["text_recall"] = round(recall, 3)
        checks.append(bool(ref_words) and recall >= TEXT_RECALL)
        rule = "text"
    else:
        rule = "+".join(r for r, present in (("yes/no", "polarity" in detail), ("numbers", "numbers" in detail))
                        if present)
    return {"correct": all(checks), "rule": rule, **detail}


# --------------------------------------------------------------------------- results


@dataclass
class QAItem:
    """One question: what was asked, answered, retrieved, and how it scored."""

    id: str
    question: str
    reference: str
    company: str
    doc_name: str
    fiscal_year: int | None
    question_type: str
    split: str = ""  # its half of the fixed split of the question file: "tune" or "held-out"
    answer: str = ""
    sufficient: bool = False
    refused: bool = False
    error: str | None = None
    correct: bool = False
    match: dict = field(default_factory=dict)
    evidence_pages: list[str] = field(default_factory=list)  # company|year|page (0-based)
    retrieved: list[dict] = field(default_factory=list)  # chunk_id, citation, page, hit
    evidence_recall: float = 0.0
    evidence_hit: bool = False
    citations: list[dict] = field(default_factory=list)
    unverified_quotes: int = 0
    metrics: dict = field(default_factory=dict)
    judge_errors: dict = field(default_factory=dict)  # metric -> message
    retrieval_ms: float = 0.0
    latency_ms: float = 0.0  # the model's time for the answer (0 when served from the call cache)
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False
    prompt: str = ""  # qa@v2, or qa@compute-v1 for a metric question
    calculation: dict | None = None  # figures, expression, value, shown calculation, refusal (compute prompt)
    numbers: dict = field(default_factory=dict)  # numbers in the answer, traced to quotes or the calculation

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QAEvalResult:
    config: dict
    items: list[QAItem]
    aggregates: dict
    skipped: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    ragas: dict = field(default_factory=dict)  # which metrics ran, errors
    out_dir: str | None = None

    def to_dict(self) -> dict:
        return {
            "config": self.config, "aggregates": self.aggregates, "anchors": {
                "model": ANCHOR_MODEL, **ANCHORS}, "timings": self.timings, "ragas": self.ragas,
            "skipped": self.skipped, "questions": [i.to_dict() for i in self.items],
        }

    def frame(self):
        """One row per question (nested fields as JSON strings, metrics as columns)."""
        import pandas as pd

        rows = []
        for item in self.items:
            row = item.to_dict()
            metrics = row.pop("metrics")
            for key in ("match", "evidence_pages", "retrieved", "citations", "judge_errors", "calculation", "numbers"):
                row[key] = json.dumps(row[key], ensure_ascii=False, default=str)
            for name, value in metrics.items():
                row[name] = value
            rows.append(row)
        return pd.DataFrame(rows)

    def write(self, out_dir: str | Path) -> Path:
        """``qa_eval.json`` (everything) and ``qa_eval.parquet`` (per question) in ``out_dir``."""
        from filinglens import settings

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.out_dir = str(out)
        with settings.atomic_write(out / "qa_eval.json", "w") as handle:
            json.dump(self.to_dict(), handle, indent=1, ensure_ascii=False, default=_json_default)
        with settings.atomic_write(out / "qa_eval.parquet", "wb") as handle:
            self.frame().to_parquet(handle, index=False)
        return out


def _json_default(value: Any):
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion."""
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _traced(items: Sequence[QAItem]) -> dict:
    """How many answers state numbers, how many of those trace entirely, and the calculations shown/refused."""
    answered = [i for i in items if i.sufficient and not i.error]
    with_numbers = [i for i in answered if (i.numbers or {}).get("numbers")]
    traced = sum(1 for i in with_numbers if i.numbers.get("all_traced"))
    computed = [i for i in items if i.calculation is not None]
    return {
        "answers_with_numbers": len(with_numbers),
        "answers_traced": traced,
        "traced_share": traced / len(with_numbers) if with_numbers else None,
        "traced_share_ci95": wilson(traced, len(with_numbers)),
        "compute_questions": len(computed),
        "calculations_shown": sum(1 for i in computed if i.calculation.get("value") is not None
                                  and i.calculation.get("shown")),
        "compute_lookups": sum(1 for i in computed if i.calculation.get("value") is not None
                               and not i.calculation.get("shown")),
        "compute_refusals": sum(1 for i in computed if i.calculation.get("refusal")),
    }


def _accuracy(group: Sequence[QAItem]) -> dict:
    """n, correct, accuracy with its 95% Wilson interval, and evidence recall of a non-empty group."""
    k = sum(int(i.correct) for i in group)
    return {"n": len(group), "correct": k, "accuracy": k / len(group), "accuracy_ci95": wilson(k, len(group)),
            "evidence_recall": _mean([i.evidence_recall for i in group])}


def aggregate(items: Sequence[QAItem], judged: bool) -> dict:
    n = len(items)
    correct = sum(i.correct for i in items)
    refused = sum(i.refused for i in items)
    errors = sum(1 for i in items if i.error)
    quotes = sum(len(i.citations) for i in items)
    unverified = sum(i.unverified_quotes for i in items)
    by_type: dict[str, dict] = {}
    for qtype in sorted({i.question_type or "?" for i in items}):
        group = [i for i in items if (i.question_type or "?") == qtype]
        by_type[qtype] = {**_accuracy(group), "evidence_hit_rate": _mean([float(i.evidence_hit) for i in group]),
                          "refusals": sum(i.refused for i in group), **_traced(group)}
    by_split = {name: _accuracy(group) for name in SPLITS
                for group in [[i for i in items if i.split == name]] if group}
    answered = [i for i in items if not i.refused and not i.error]
    fresh = [i.latency_ms for i in items if not i.cached and i.latency_ms]
    out = {
        "questions": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "accuracy_ci95": wilson(correct, n),
        "accuracy_when_answered": (sum(i.correct for i in answered) / len(answered)) if answered else None,
        "refusals": refused,
        "refusal_rate": refused / n if n else None,
        "errors": errors,
        "evidence_recall": _mean([i.evidence_recall for i in items]),
        "evidence_hit_rate": _mean([float(i.evidence_hit) for i in items]),
        "quotes": quotes,
        "unverified_quotes": unverified,
        "unverified_quote_rate": unverified / quotes if quotes else None,
        "by_question_type": by_type,
        "by_split": by_split,  # the fixed tuning / held-out halves (evals/financebench.split_of)
        **_traced(items),
        "metrics": {},
        "tokens_in": sum(i.tokens_in for i in items),
        "tokens_out": sum(i.tokens_out for i in items),
        "cached_answers": sum(i.cached for i in items),
        "answer_latency_p50_ms": _percentile(fresh, 0.5),
        "answer_latency_p95_ms": _percentile(fresh, 0.95),
        "retrieval_p50_ms": _percentile([i.retrieval_ms for i in items], 0.5),
    }
    names: list[str] = list(JUDGE_METRICS) if judged else []  # reported even when every judgement failed
    for i in items:
        names.extend(k for k in i.metrics if k not in names)
    for name in names:
        out["metrics"][name] = _mean([i.metrics.get(name) for i in items])
    if judged:
        out["judge_errors"] = {m: sum(1 for i in items if m in i.judge_errors) for m in JUDGE_METRICS}
        out["judged"] = sum(1 for i in items if any(m in i.metrics for m in JUDGE_METRICS) or i.judge_errors)
    return out


# --------------------------------------------------------------------------- ragas


def import_ragas():
    """Import ragas 0.4.1 offline.

    ``RAGAS_DO_NOT_TRACK`` is forced on (ragas otherwise posts usage
    analytics).  ragas' ``llms/base.py`` imports
    ``langchain_community.chat_models.vertexai``, which langchain-community
    0.4.2 no longer ships (``No module named ...vertexai``); the class is only
    used there for an ``isinstance`` test, so a placeholder module stands in
    when the real one is missing.
    """
    from filinglens.settings import disable_telemetry

    disable_telemetry()
    name = "langchain_community.chat_models.vertexai"
    if name not in sys.modules:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.ChatVertexAI = type("ChatVertexAI", (), {"__doc__": "placeholder: not in langchain-community 0.4.2"})
            sys.modules[name] = stub
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ragas
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(f"ragas cannot be imported ({exc}); install the project dependencies (ragas==0.4.1)") from exc
    return ragas


class _RagasErrors(logging.Handler):
    """Collects the errors ragas logs for failed jobs (instead of printing them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.jobs: dict[int, str] = {}
        self.other: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "Exception raised in Job[%s]: %s(%s)" and record.args:
            job, name, message = record.args
            self.jobs[int(job)] = f"{name}: {message}"[:500]
        elif record.levelno >= logging.ERROR:
            self.other.append(record.getMessage()[:500])


def _evaluate(samples: list[dict], metrics: list, *, llm=None, embeddings=None, run_config=None):
    """Legacy ``ragas.evaluate``: (per-row scores per metric, job errors, other logged errors)."""
    import warnings

    ragas = import_ragas()
    from ragas import EvaluationDataset
    from ragas.dataset_schema import SingleTurnSample

    dataset = EvaluationDataset(samples=[SingleTurnSample(**s) for s in samples])
    handler = _RagasErrors()
    logger = logging.getLogger("ragas")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # collected here, not printed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = ragas.evaluate(
                dataset, metrics=metrics, llm=llm, embeddings=embeddings, run_config=run_config,
                show_progress=False, raise_exceptions=False,
            )
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    return result.scores, handler.jobs, handler.other


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def non_llm_scores(samples: list[dict]) -> tuple[list[dict], dict]:
    """The ragas metrics that need no model, per sample (values in [0, 1] or None)."""
    import_ragas()
    from ragas.metrics import (
        BleuScore,
        ChrfScore,
        ExactMatch,
        IDBasedContextPrecision,
        IDBasedContextRecall,
        NonLLMContextPrecisionWithReference,
        NonLLMContextRecall,
        NonLLMStringSimilarity,
        RougeScore,
        StringPresence,
    )

    metrics = [NonLLMContextRecall(), NonLLMContextPrecisionWithReference(), IDBasedContextRecall(),
               IDBasedContextPrecision(), NonLLMStringSimilarity(), ExactMatch(), StringPresence(), RougeScore(),
               BleuScore(), ChrfScore()]
    scores, jobs, other = _evaluate(samples, metrics)
    out = [{k: _num(v) for k, v in row.items()} for row in scores]
    return out, {"metrics": [m.name for m in metrics], "errors": len(jobs), "messages": sorted(set(jobs.values()))[:10]
                 + other[:10]}


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(f):
        return None
    return min(1.0, max(0.0, f)) if -1e-9 < f < 1 + 1e-9 else f  # 1.0000000000000004 from BLEU is 1


def judge_scores(
    samples: list[dict],
    judge: str,
    *,
    judge_model: Any = None,
    embedder: Any = None,
    strictness: int = 3,
    timeout: int | None = None,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> tuple[list[dict], list[dict], dict]:
    """Faithfulness and answer relevancy judged by the registry model ``judge``.

    Returns per-sample scores, per-sample errors (metric -> message) and a summary.
    A failed judgement is an error, never a 0.
    """
    import_ragas()
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import Faithfulness, ResponseRelevancy
    from ragas.run_config import RunConfig

    from filinglens.agents.models import get_chat_model, has_capability
    from filinglens.agents.providers import CONCURRENT_REQUESTS
    from filinglens.retrieval.embeddings import get_embedder

    chat = judge_model if judge_model is not None else get_chat_model(judge, temperature=0.0)
    parallel = has_capability(judge, CONCURRENT_REQUESTS)  # a hosted API: several requests at once
    run_config = RunConfig(timeout=timeout or (180 if parallel else 900), max_retries=2, max_wait=10,
                           max_workers=4 if parallel else 1)
    import warnings

    with warnings.catch_warnings():  # the legacy wrappers are deprecated in ragas 0.4 (and work)
        warnings.simplefilter("ignore")
        llm = LangchainLLMWrapper(chat, run_config=run_config)
        embeddings = LangchainEmbeddingsWrapper(get_embedder(embedder).langchain(), run_config=run_config)
    metrics = [Faithfulness(), ResponseRelevancy(strictness=strictness)]
    scores: list[dict] = [{} for _ in samples]
    errors: list[dict] = [{} for _ in samples]
    summary: dict = {"judge": judge, "metrics": [m.name for m in metrics], "errors": {}, "messages": []}
    for n, metric in enumerate(metrics):
        if progress:
            progress("judge", n, len(metrics), metric.name)
        rows, jobs, other = _evaluate(samples, [metric], llm=llm, embeddings=embeddings, run_config=run_config)
        count = 0
        for i, row in enumerate(rows):
            value = _num(row.get(metric.name))
            if value is None:
                count += 1
                errors[i][metric.name] = jobs.get(i) or (other[0] if other else "no score (the judge's output was unusable)")
            else:
                scores[i][metric.name] = value
        summary["errors"][metric.name] = count
        summary["messages"].extend(sorted(set(jobs.values()))[:5])
    if progress:
        progress("judge", len(metrics), len(metrics), "done")
    return scores, errors, summary


# --------------------------------------------------------------------------- the run


def _compute_versions() -> dict:
    from filinglens.agents.qa import COMPUTE_VERSION, METRIC_VERSION
    from filinglens.prompts.loader import load_metric_library

    return {"compute_prompt_version": COMPUTE_VERSION, "metric_prompt_version": METRIC_VERSION,
            "metric_library": load_metric_library().ref}


def _page_id(company: Any, year: Any, page: Any) -> str:
    return f"{company}|{year}|{page}"


def run_qa_eval(
    questions_path: str | Path | None = None,
    *,
    model_id: str = "local",
    judge: str | None = None,
    limit: int | None = None,
    split: str | None = None,
    per_document: bool = True,
    k: int = 6,
    store: Any = None,
    index: Any = None,
    documents_path: str | Path | None = None,
    pdf_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    model: Any = None,
    judge_model: Any = None,
    judge_strictness: int = 3,
    evidence_chars: int = 6000,
    prompt_version: str | None = None,
    compute: bool | None = None,
    progress: Callable[[str, int, int, str], None] | None = None,
) -> QAEvalResult:
    """Answer FinanceBench questions with the QA agent and score them (see the module docstring).

    ``store``: the results store (model-call cache; default ``Store()``);
    ``index``: the chunk index (default: the configured one); ``per_document``:
    retrieval filtered to the question's company and fiscal year (one store per
    document), else one search over everything indexed (shared store).
    ``progress(stage, done, total, label)`` with stage ``ingest``, ``answer``,
    ``score`` or ``judge``.  ``model`` / ``judge_model``: chat-model objects
    used instead of building ``model_id`` / ``judge`` (tests).  ``compute``:
    False answers every question with the plain prompt (no metric library,
    no calculation: the ablation); None computes metric questions.
    """
    from filinglens.prompts.loader import DEFAULT_QA_VERSION
    from filinglens.retrieval.index import open_store
    from filinglens.store import Store

    prompt_version = prompt_version or DEFAULT_QA_VERSION
    t_start = time.perf_counter()
    say = progress or (lambda *a: None)
    bench = load_bench(questions_path, documents_path, pdf_dir, limit, split)
    wanted, skipped, names = askable_questions(bench)

    index = index if index is not None else open_store()
    t0 = time.perf_counter()
    ingest_report = ingest_documents(names, bench, index, say)
    t_ingest = time.perf_counter() - t0

    results = store if store is not None else Store()
    run_id = results.start_run("qa_eval", {"questions": str(bench.questions_path), "model": model_id, "judge": judge,
                                           "k": k, "per_document": per_document, "limit": limit, "split": split,
                                           "prompt_version": prompt_version, "compute": compute})
    t0 = time.perf_counter()
    answered = answer_questions(wanted, bench.documents, index, results, say, model_id=model_id, model=model,
                                per_document=per_document, k=k, evidence_chars=evidence_chars,
                                prompt_version=prompt_version, compute=compute)
    t_answer = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = ragas_samples(answered, wanted)
    ragas_info = score_without_model(answered.items, samples, say)
    t_score = time.perf_counter() - t0

    t0 = time.perf_counter()
    judge_info = judge_answers(answered.items, samples, judge, judge_model=judge_model, embedder=index.embedder,
                               strictness=judge_strictness, progress=progress) if judge else {}
    t_judge = time.perf_counter() - t0
    results.finish_run(run_id)

    config = {
        "questions_path": str(bench.questions_path), "documents_path": str(bench.documents_path),
        "pdf_dir": str(bench.pdf_dir), "model": model_id,
        "judge": judge, "limit": limit, "split": split, "setting": "per document" if per_document else "shared store", "k": k,
        "evidence_chars": evidence_chars, "prompt_version": prompt_version, "run_id": run_id,
        "compute": compute is not False,
        **_compute_versions(),  # used for metric questions (agents/qa.py)
        "accuracy_rule": {"relative_tolerance": REL_TOL, "text_recall": TEXT_RECALL},
    }
    result = QAEvalResult(
        config=config, items=answered.items, aggregates=aggregate(answered.items, judged=bool(judge)),
        skipped=skipped,
        timings={"ingest_s": round(t_ingest, 1), "answer_s": round(t_answer, 1), "score_s": round(t_score, 1),
                 "judge_s": round(t_judge, 1), "total_s": round(time.perf_counter() - t_start, 1),
                 "ingest": ingest_report},
        ragas={"non_llm": ragas_info, **({"judge": judge_info} if judge else {})},
    )
    if out_dir is not None:
        result.write(out_dir)
    return result


# --------------------------------------------------------------------------- the stages


@dataclass
class Bench:
    """The FinanceBench inputs of a run: questions, documents (by name) and the folder of their PDFs."""

    questions_path: Path
    documents_path: Path
    pdf_dir: Path
    questions: list[dict]
    documents: dict[str, dict]


def load_bench(questions_path: str | Path | None = None, documents_path: str | Path | None = None,
               pdf_dir: str | Path | None = None, limit: int | None = None, split: str | None = None) -> Bench:
    """Stage 1: read the questions (``split``: one half of the fixed split of the whole file, then the first
    ``limit``) and the documents (beside them, else the shared set).  Each question records its half."""
    qpath = Path(questions_path) if questions_path else default_questions_path()
    if not qpath.is_file():
        raise InputError(f"{qpath}: no such questions file")
    if documents_path:
        dpath = Path(documents_path)
    else:
        beside = qpath.parent / "documents.jsonl"
        dpath = beside if beside.is_file() else default_documents_path()
    pdfs = Path(pdf_dir) if pdf_dir else default_pdf_dir()
    try:
        questions = load_jsonl(qpath)
        docs = load_documents(dpath)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read FinanceBench data ({qpath}, {dpath}): {exc}") from exc
    try:
        halves = split_of(questions)
    except (KeyError, TypeError) as exc:
        raise InputError(f"{qpath}: a question has no financebench_id ({exc})") from exc
    questions = [{**q, "split": halves[q["financebench_id"]]} for q in questions]
    if split is not None:
        if split not in SPLITS:
            raise InputError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
        questions = [q for q in questions if q["split"] == split]
    if limit is not None:
        if limit < 1:
            raise InputError("--limit must be at least 1")
        questions = questions[:limit]
    return Bench(qpath, dpath, pdfs, questions, docs)


def askable_questions(bench: Bench) -> tuple[list[dict], list[dict], list[str]]:
    """Stage 2: the questions whose documents are described and present, the skipped ones (with the reason),
    and the document names to ingest (in first-use order)."""
    skipped: list[dict] = []
    wanted: list[dict] = []
    for q in bench.questions:
        missing = [d for d in question_documents(q)
                   if d not in bench.documents or not (bench.pdf_dir / f"{d}.pdf").is_file()]
        if missing:
            skipped.append({"id": q.get("financebench_id"), "reason": f"documents not available: {missing}"})
        else:
            wanted.append(q)
    if not wanted:
        raise InputError(f"none of the {len(bench.questions)} questions has its documents in {bench.pdf_dir}")
    names: list[str] = []
    for q in wanted:
        names.extend(d for d in question_documents(q) if d not in names)
    return wanted, skipped, names


def ingest_documents(names: Sequence[str], bench: Bench, index: Any,
                     say: Callable[[str, int, int, str], None]) -> list[dict]:
    """Stage 3: index the PDFs (idempotent: unchanged ones are recognised before parsing); one report row each.

    A failed document is recorded and skipped; a broken index stops the run."""
    from filinglens.errors import IndexStoreError
    from filinglens.retrieval.ingest import ingest_file

    report = []
    for n, name in enumerate(names):
        say("ingest", n, len(names), name)
        doc = bench.documents[name]
        meta = {"company": doc.get("company")}
        if doc.get("doc_period"):
            meta["fiscal_year"] = int(doc["doc_period"])
        try:
            r = ingest_file(bench.pdf_dir / f"{name}.pdf", store=index, metadata=meta)
            report.append({"doc": name, "status": r.status, "seconds": r.seconds, "chunks": r.chunks})
        except IndexStoreError:
            raise
        except FilingLensError as exc:
            report.append({"doc": name, "status": "failed", "error": str(exc)})
    say("ingest", len(names), len(names), "done")
    return report


@dataclass
class Answered:
    """Stage 4's output: one scored :class:`QAItem` per question, with the texts and ids of what was retrieved."""

    items: list[QAItem] = field(default_factory=list)
    contexts: list[list[str]] = field(default_factory=list)
    retrieved_ids: list[list[str]] = field(default_factory=list)


def answer_questions(wanted: Sequence[dict], docs: dict[str, dict], index: Any, results: Any,
                     say: Callable[[str, int, int, str], None], *, model_id: str, model: Any = None,
                     per_document: bool = True, k: int = 6, evidence_chars: int = 6000,
                     prompt_version: str | None = None, compute: bool | None = None) -> Answered:
    """Stage 4: retrieve evidence for each question (its own 10-K, or everything indexed), answer it with
    citations (model calls cached in ``results``) and score the answer against the reference."""
    from filinglens.retrieval.agent import RetrievalAgent
    from filinglens.retrieval.search import HybridSearcher

    agent = RetrievalAgent(HybridSearcher(index))
    out = Answered()
    for n, q in enumerate(wanted):
        say("answer", n, len(wanted), q.get("financebench_id", ""))
        item, evidence = answer_one(q, n, docs, agent, results, model_id=model_id, model=model,
                                    per_document=per_document, k=k, evidence_chars=evidence_chars,
                                    prompt_version=prompt_version, compute=compute)
        out.items.append(item)
        out.contexts.append([_clean(e.text) for e in evidence])
        out.retrieved_ids.append([_page_id(e.company, e.fiscal_year, e.page if e.page is not None else e.chunk_id)
                                  for e in evidence])
    say("answer", len(wanted), len(wanted), "done")
    return out


def answer_one(q: dict, n: int, docs: dict[str, dict], agent: Any, results: Any, *, model_id: str,
               model: Any = None, per_document: bool = True, k: int = 6, evidence_chars: int = 6000,
               prompt_version: str | None = None, compute: bool | None = None) -> tuple[QAItem, list]:
    """One question: retrieval (with evidence-page recall), the answer, and its score; returns (item, evidence)."""
    from filinglens.agents.qa import answer_question

    doc = docs[q["doc_name"]]
    item = QAItem(
        id=str(q.get("financebench_id", n)), question=q["question"], reference=str(q.get("answer", "")),
        company=doc.get("company", ""), doc_name=q["doc_name"],
        fiscal_year=int(doc["doc_period"]) if doc.get("doc_period") else None,
        question_type=q.get("question_type", ""), split=q.get("split", ""),
    )
    pages = evidence_pages(q, docs)
    item.evidence_pages = sorted(_page_id(*p) for p in pages)
    evidence = []
    r0 = time.perf_counter()
    try:
        if per_document:
            evidence = agent.retrieve(q["question"], company=doc["company"], year=item.fiscal_year, k=k)
        else:
            evidence = agent.retrieve(q["question"], k=k)
    except FilingLensError as exc:
        item.error = f"retrieval: {exc}"
    item.retrieval_ms = (time.perf_counter() - r0) * 1000
    metas = [e.metadata_dict() for e in evidence]
    found = hit_pages(metas, pages)
    item.evidence_recall = len(found) / len(pages) if pages else 0.0
    item.evidence_hit = bool(found)
    item.retrieved = [
        {"chunk_id": e.chunk_id, "citation": e.citation(), "page": e.page,
         "hit": (e.company, e.fiscal_year, e.page) in pages}
        for e in evidence
    ]
    if item.error is None:
        try:
            statements = (lambda keys: agent.statement_evidence(q["question"], keys, company=doc["company"],
                                                                year=item.fiscal_year)) if per_document else None
            ans = answer_question(q["question"], evidence, store=results, model_id=model_id, model=model,
                                  evidence_chars=evidence_chars, prompt_version=prompt_version, statements=statements,
                                  compute=compute)
        except FilingLensError as exc:
            item.error = str(exc)
        else:
            item.answer = ans.answer
            item.sufficient = ans.sufficient
            item.error = ans.error
            item.refused = not ans.sufficient and not ans.error
            item.citations = [asdict(c) for c in ans.citations]
            item.unverified_quotes = ans.unverified
            item.latency_ms = round(ans.latency_ms, 1)
            item.tokens_in, item.tokens_out, item.cached = ans.tokens_in, ans.tokens_out, ans.cached
            item.prompt, item.calculation, item.numbers = ans.prompt, ans.calculation, ans.numbers()
    answered = item.sufficient and not item.error
    # a computed answer is its result: the figures it lists may not match the reference by coincidence
    calc = item.calculation or {}
    result = calc.get("result") if answered else None
    if result and calc.get("verdict"):  # a yes/no or "which" question decided by a computed metric
        result = f"{calc['verdict']}. {result}. {calc.get('parts') or ''}"
    elif result and calc.get("parts") and (calc.get("plan") or {}).get("mode") in ("change", "percent change"):
        result = f"{result}. {calc['parts']}"  # a change is stated with the metric in both years
    item.match = score_answer(item.reference, result or item.answer, item.question, answered=answered)
    if result:
        item.match["scored"] = "result"
    if item.error:
        item.match = {"correct": False, "rule": "error"}
    item.correct = bool(item.match["correct"])
    return item, list(evidence)


def ragas_samples(answered: Answered, wanted: Sequence[dict]) -> list[dict]:
    """Stage 5a: one ragas sample per question (answer, retrieved and reference contexts, their ids)."""
    samples = []
    for item, q, ctx, ids in zip(answered.items, wanted, answered.contexts, answered.retrieved_ids):
        samples.append({
            "user_input": item.question,
            "response": item.answer or "",
            "reference": item.reference,
            "retrieved_contexts": ctx or [""],
            "reference_contexts": [_clean(e.get("evidence_text", "")) for e in q["evidence"]] or [""],
            "retrieved_context_ids": ids or [""],
            "reference_context_ids": item.evidence_pages or [""],
        })
    return samples


def score_without_model(items: Sequence[QAItem], samples: list[dict],
                        say: Callable[[str, int, int, str], None]) -> dict:
    """Stage 5b: the ragas metrics that need no model, into each item's ``metrics``; returns ragas' summary."""
    say("score", 0, 1, "ragas")
    per_sample, ragas_info = non_llm_scores(samples)
    for item, scores in zip(items, per_sample):
        item.metrics.update(scores)
    say("score", 1, 1, "done")
    return ragas_info


def judge_answers(items: Sequence[QAItem], samples: list[dict], judge: str, *, judge_model: Any = None,
                  embedder: Any = None, strictness: int = 3,
                  progress: Callable[[str, int, int, str], None] | None = None) -> dict:
    """Stage 6: ragas metrics judged by the ``judge`` model, on the questions that were answered."""
    todo = [i for i, item in enumerate(items) if item.sufficient and not item.error]
    if not todo:
        return {"judge": judge, "metrics": list(JUDGE_METRICS), "errors": {}, "note": "nothing answered"}
    scores, errors, judge_info = judge_scores(
        [{"user_input": samples[i]["user_input"], "response": samples[i]["response"],
          "retrieved_contexts": samples[i]["retrieved_contexts"]} for i in todo],
        judge, judge_model=judge_model, embedder=embedder, strictness=strictness, progress=progress,
    )
    for i, s, e in zip(todo, scores, errors):
        items[i].metrics.update(s)
        items[i].judge_errors.update(e)
    return judge_info
