"""QA evaluation on FinanceBench: the accuracy rule, ragas metrics, the judge path, the CLI.

The run tests use real FinanceBench questions with real retrieval over their
real PDF (one 10-K, ingested once per module) and scripted fake models; one
test runs the real ``local`` model on two questions (``-k "not local"`` skips it).
"""

from __future__ import annotations

import json
import math
import re

import pytest

from filinglens.agents.providers.fake import register_script
from filinglens.errors import InputError
from filinglens.evals.financebench import load_jsonl, split_of
from filinglens.evals.qa_eval import (
    ANCHORS,
    JUDGE_METRICS,
    NON_LLM_METRICS,
    extract_numbers,
    run_qa_eval,
    score_answer,
)
from filinglens.retrieval.index import ChunkStore
from filinglens.store import Store

# three dev questions on one 10-K (Boeing FY2022): yes/no, and yes/no with numbers
IDS = ("financebench_id_00464", "financebench_id_00517", "financebench_id_00678")


# --------------------------------------------------------------------------- the accuracy rule (no index)


def test_numbers_are_read_with_units_and_years_and_markers_dropped():
    nums = extract_numbers("In FY 2022 (1) revenue was $5,818.00, or -$1561M, 3.4% up, $2.5bn, 0.68 times.")
    assert [(n.value, n.pct, n.scale) for n in nums] == [
        (5818.0, False, None), (1561.0, False, 1e6), (3.4, True, None), (2.5, False, 1e9), (0.68, False, None)]
    assert nums[0].decimals == 0 and nums[4].decimals == 2


@pytest.mark.parametrize("reference,answer,correct", [
    ("$5818.00", "Net working capital was $5,818 million.", True),  # scale word vs. "in USD millions"
    ("$5818.00", "$5.818 billion", True),
    ("$5818.00", "$5,700 million", False),  # 2% off
    ("$5818.00", "5,860", True),  # within 1%
    ("0.68", "The ratio is 0.684.", True),  # rounding
    ("0.68", "0.67", False),
    ("7.9%", "About 7.94%.", True),
    ("7.9%", "0.079", True),  # a fraction for a percentage
    ("7.9%", "8.1%", False),
    ("No, it had negative working capital of -$1561M in FY 2022.",
     "No. Working capital was negative: $(1,561) million.", True),
    ("No, it had negative working capital of -$1561M in FY 2022.", "Yes, $1,561 million.", False),
    ("No, it had negative working capital of -$1561M in FY 2022.", "Working capital was -$1,561 million.", False),
    ("Yes, Boeing's business is subject to cyclicality.", "Yes. Airline demand is cyclical.", True),
    ("Customer deposits", "The largest liability was customer deposits.", True),
    ("United States, EMEA, APAC, and LACC", "The United States and EMEA.", False),
])
def test_accuracy_rule(reference, answer, correct):
    assert score_answer(reference, answer)["correct"] is correct


def test_numbers_from_the_question_and_refusals():
    # "20%" restates the question: it is not a key number of the reference
    result = score_answer("Yes, categories above 20%: Commercial Airplanes 39%.", "Yes: Commercial Airplanes, 39%.",
                          "Are there categories above 20% of revenue?")
    assert result["correct"] and [n["reference"] for n in result["numbers"]] == ["39%"]
    assert score_answer("$5818.00", "$5,818", answered=False) == {"correct": False, "rule": "refusal"}


def test_an_amount_is_read_in_the_unit_the_question_asks_for():
    """A table printed in thousands read as millions is off by 1,000: with the question's unit named
    ("Answer in USD millions") the reference is in millions and only that reading counts."""
    q = "What is the FY2018 amount of accounts payable for MGM Resorts? Answer in USD millions."
    assert not score_answer("$303.00", "$302,578 million.", q)["correct"]
    assert score_answer("$303.00", "$302.6 million.", q)["correct"]
    assert score_answer("$303.00", "$0.303 billion", q)["correct"]
    # a question that names no unit: any scale reading still counts
    assert score_answer("$303.00", "$302,578 million.", "What is MGM's accounts payable?")["correct"]


# --------------------------------------------------------------------------- runs with fake models


@pytest.fixture(scope="module")
def bench(shared, tmp_path_factory):
    """A questions file with three real dev questions, and an index of their 10-K."""
    root = tmp_path_factory.mktemp("qa-eval")
    wanted = [q for q in load_jsonl(shared / "financebench" / "questions_dev.jsonl") if q["financebench_id"] in IDS]
    assert len(wanted) == 3
    qpath = root / "questions.jsonl"
    qpath.write_text("".join(json.dumps(q) + "\n" for q in wanted))
    (root / "documents.jsonl").write_text((shared / "financebench" / "documents.jsonl").read_text())
    index = ChunkStore(root / "index")
    return {"questions": qpath, "index": index, "by_question": {q["question"]: q for q in wanted}, "root": root}


def _question_and_excerpt(messages) -> tuple[str, str]:
    user = messages[-1].content
    question = re.search(r"Question: (.*?)\n\nReply with JSON", user, re.S).group(1).strip()
    first = re.search(r"\[E1\] \(Item [^)]*\) (.*?)(?:\n\n\[E2\]|\n</evidence>)", user, re.S).group(1)
    return question, " ".join(first.split()[:8])


def _run(bench, tmp_path, model_id, **kwargs):
    """The plain QA prompt for every question (Boeing's gross-margin question would be computed otherwise:
    test_qa_eval_types.py)."""
    kwargs.setdefault("compute", False)
    return run_qa_eval(bench["questions"], model_id=model_id, index=bench["index"],
                       store=Store(tmp_path / "results.db"), out_dir=tmp_path / "out", **kwargs)


def test_reference_answers_with_quotes_are_correct_and_score_high(bench, tmp_path):
    def oracle(messages):
        question, quote = _question_and_excerpt(messages)
        ref = bench["by_question"][question]["answer"]
        return json.dumps({"answer": ref, "sufficient": True, "citations": [{"evidence": 1, "quote": quote}]})

    register_script("qa-oracle", func=oracle)
    events = []
    result = _run(bench, tmp_path, "fake:qa-oracle", progress=lambda *e: events.append(e))
    agg = result.aggregates
    assert agg["questions"] == 3 and agg["correct"] == 3 and agg["accuracy"] == 1.0
    assert agg["refusals"] == 0 and agg["errors"] == 0
    assert agg["quotes"] == 3 and agg["unverified_quotes"] == 0
    assert {e[0] for e in events} >= {"ingest", "answer", "score"}
    for item in result.items:
        assert item.correct and item.match["rule"] in ("yes/no", "yes/no+numbers")
        assert item.citations[0]["verified"] and item.unverified_quotes == 0
        assert len(item.retrieved) == 6 and item.tokens_in > 0
        assert set(NON_LLM_METRICS) <= set(item.metrics)
        for name in NON_LLM_METRICS:
            assert 0.0 <= item.metrics[name] <= 1.0, (name, item.metrics[name])
        # the answer is the reference: string metrics are perfect
        for name in ("exact_match", "string_present", "non_llm_string_similarity", "rouge_score(mode=fmeasure)",
                     "chrf_score"):
            assert item.metrics[name] == pytest.approx(1.0), name
        # ragas' id-based recall over page ids is the bench's evidence-page rule
        assert item.metrics["id_based_context_recall"] == pytest.approx(item.evidence_recall)
        assert item.evidence_pages and all(p.count("|") == 2 for p in item.evidence_pages)
    assert agg["evidence_recall"] is not None and 0.0 <= agg["evidence_recall"] <= 1.0
    # accuracy per half of the fixed split (what is tuned is chosen on "tune", "held-out" is reported)
    halves = split_of(load_jsonl(bench["questions"]))  # the halves of the whole question file
    assert [i.split for i in result.items] == [halves[i.id] for i in result.items]
    assert {k: v["n"] for k, v in agg["by_split"].items()} == {
        s: sum(1 for i in result.items if i.split == s) for s in {i.split for i in result.items}}
    assert all(v["accuracy"] == 1.0 for v in agg["by_split"].values())
    assert "faithfulness" not in agg["metrics"] and "judge_errors" not in agg  # no judge configured

    # written as JSON and Parquet
    data = json.loads((tmp_path / "out" / "qa_eval.json").read_text())
    assert data["aggregates"]["accuracy"] == 1.0 and len(data["questions"]) == 3
    assert data["anchors"]["shared store"] == ANCHORS["shared store"]
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "out" / "qa_eval.parquet")
    assert len(frame) == 3 and frame["correct"].all() and "exact_match" in frame.columns


def test_one_half_of_the_split_can_be_run_alone(bench, tmp_path):
    register_script("qa-refuse-split", responses=['{"answer": "", "sufficient": false, "citations": []}'])
    halves = split_of(load_jsonl(bench["questions"]))
    for half in ("tune", "held-out"):
        (tmp_path / half).mkdir()
        result = _run(bench, tmp_path / half, "fake:qa-refuse-split", split=half)
        assert sorted(i.id for i in result.items) == sorted(i for i, h in halves.items() if h == half)
        assert set(result.aggregates["by_split"]) == {half} and result.config["split"] == half
    (tmp_path / "bad").mkdir()
    with pytest.raises(InputError, match="--split"):
        _run(bench, tmp_path / "bad", "fake:qa-refuse-split", split="train")


def test_refusals_are_counted_and_never_correct(bench, tmp_path):
    register_script("qa-refuse", responses=['{"answer": "", "sufficient": false, "citations": []}'])
    result = _run(bench, tmp_path, "fake:qa-refuse", per_document=False)
    agg = result.aggregates
    assert agg["refusals"] == 3 and agg["refusal_rate"] == 1.0 and agg["correct"] == 0 and agg["errors"] == 0
    assert all(i.refused and not i.correct and i.match["rule"] == "refusal" for i in result.items)
    assert result.config["setting"] == "shared store"
    assert all(0.0 <= i.metrics["exact_match"] <= 1.0 for i in result.items)


def test_wrong_numbers_and_malformed_answers(bench, tmp_path):
    def reply(messages):
        question, _ = _question_and_excerpt(messages)
        if "cyclicality" in question:
            return '{"answer": "Yes. It was $9,999 million.", "sufficient": true}'
        if "gross margin" in question:
            return '{"answer": "Yes. Gross profit was $9,999 million.", "sufficient": true}'
        return "not json at all"

    register_script("qa-wrong", func=reply)
    result = _run(bench, tmp_path, "fake:qa-wrong", limit=3)
    by_id = {i.id: i for i in result.items}
    assert by_id["financebench_id_00464"].correct  # a yes/no reference without numbers: "Yes" suffices
    assert not by_id["financebench_id_00678"].correct  # right polarity, wrong numbers
    assert by_id["financebench_id_00678"].match["numbers_matched"] == 0
    bad = by_id["financebench_id_00517"]
    assert bad.error and "malformed" in bad.error and not bad.refused and not bad.correct
    assert result.aggregates["errors"] == 1 and result.aggregates["refusals"] == 0


# --------------------------------------------------------------------------- the judge


def _judge_reply(prompt: str, garbage_for: tuple[str, ...] = ()) -> str:
    if "Break down each sentence" in prompt:
        return "no idea" if "faithfulness" in garbage_for else json.dumps({"statements": ["The answer is stated."]})
    if "judge the faithfulness" in prompt:
        return "no idea" if "faithfulness" in garbage_for else json.dumps(
            {"statements": [{"statement": "The answer is stated.", "reason": "in the context", "verdict": 1}]})
    if "Generate a question for the given answer" in prompt:
        return "no idea" if "answer_relevancy" in garbage_for else json.dumps(
            {"question": "Is Boeing's business cyclical?", "noncommittal": 0})
    return "no idea"


@pytest.fixture
def answering(bench):
    register_script("qa-yes", responses=['{"answer": "Yes, see the filing.", "sufficient": true, "citations": []}'])
    return "fake:qa-yes"


def test_judge_with_well_formed_outputs(bench, tmp_path, answering):
    register_script("judge-ok", func=lambda m: _judge_reply(m[-1].content))
    result = _run(bench, tmp_path, answering, judge="fake:judge-ok")
    agg = result.aggregates
    assert agg["judge_errors"] == {"faithfulness": 0, "answer_relevancy": 0} and agg["judged"] == 3
    for item in result.items:
        assert item.metrics["faithfulness"] == pytest.approx(1.0) and not item.judge_errors
        assert 0.0 <= item.metrics["answer_relevancy"] <= 1.0
    assert set(JUDGE_METRICS) <= set(agg["metrics"])


def test_judge_garbage_is_counted_as_errors_not_zeros(bench, tmp_path, answering):
    register_script("judge-bad", func=lambda m: _judge_reply(m[-1].content, garbage_for=("faithfulness",)))
    result = _run(bench, tmp_path, answering, judge="fake:judge-bad")
    agg = result.aggregates
    assert agg["judge_errors"]["faithfulness"] == 3 and agg["judge_errors"]["answer_relevancy"] == 0
    assert agg["metrics"]["faithfulness"] is None  # no score, not 0
    for item in result.items:
        assert "faithfulness" not in item.metrics and item.judge_errors["faithfulness"]
        assert "answer_relevancy" in item.metrics
    assert result.ragas["judge"]["errors"]["faithfulness"] == 3


def test_refusals_are_not_judged(bench, tmp_path):
    register_script("qa-refuse2", responses=['{"answer": "", "sufficient": false}'])
    register_script("judge-never", func=lambda m: pytest.fail("a refusal was sent to the judge"))
    result = _run(bench, tmp_path, "fake:qa-refuse2", judge="fake:judge-never", limit=1)
    assert result.aggregates["judged"] == 0 and result.aggregates["judge_errors"] == {
        "faithfulness": 0, "answer_relevancy": 0}


# --------------------------------------------------------------------------- CLI


def test_cli_eval_qa_json_and_table(bench, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from filinglens import cli
    from filinglens.retrieval import index as index_module

    monkeypatch.setattr(index_module, "open_store", lambda *a, **kw: bench["index"])
    register_script("qa-cli", responses=['{"answer": "Yes.", "sufficient": true, "citations": []}'])
    runner = CliRunner()
    out = tmp_path / "cli-out"
    res = runner.invoke(cli.app, ["eval", "qa", "--questions", str(bench["questions"]), "--model", "fake:qa-cli",
                                  "--limit", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["aggregates"]["questions"] == 2 and (out / "qa_eval.parquet").is_file()
    res = runner.invoke(cli.app, ["eval", "qa", "--questions", str(bench["questions"]), "--model", "fake:qa-cli",
                                  "--limit", "1", "--shared-store", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "19.0%" in res.stdout and "shared store" in res.stdout
    res = runner.invoke(cli.app, ["eval", "qa", "--questions", str(tmp_path / "missing.jsonl")])
    message = " ".join(res.output.split())  # rich wraps long lines
    assert res.exit_code != 0 and "no such questions file" in message and "Traceback" not in message


# --------------------------------------------------------------------------- the real local model


@pytest.mark.timeout(1800)  # ~2 minutes per answer on a busy 2-core machine, plus ingest and model assembly
@pytest.mark.model
def test_local_model_end_to_end_on_one_question(bench, tmp_path):
    """The real Qwen 1.5B on one question: the pipeline runs and everything is scored (not a quality bar;
    one question keeps the suite's time: the fake-model tests above cover several)."""
    result = _run(bench, tmp_path, "local", limit=1)
    agg = result.aggregates
    assert agg["questions"] == 1 and agg["errors"] == 0
    assert agg["tokens_in"] > 0 and result.timings["answer_s"] > 0
    for item in result.items:
        assert item.answer and (item.refused or item.sufficient)
        assert all(0.0 <= item.metrics[m] <= 1.0 for m in NON_LLM_METRICS if not math.isnan(item.metrics[m]))
    print(json.dumps({"aggregates": agg, "answers": [(i.id, i.answer, i.correct) for i in result.items],
                      "timings": {k: v for k, v in result.timings.items() if k != "ingest"}}, indent=1, default=str))


def test_ingest_stage_stops_on_a_damaged_index_but_records_a_bad_document(tmp_path, monkeypatch):
    """A broken index (any IndexStoreError, subclasses too) stops the run; a bad PDF is one failed row."""
    from filinglens.errors import IndexDamagedError
    from filinglens.evals.qa_eval import Bench, ingest_documents
    from filinglens.retrieval import ingest as ingest_module

    bench = Bench(tmp_path / "q.jsonl", tmp_path / "d.jsonl", tmp_path,
                  [], {"BAD_2020": {"company": "Bad", "doc_period": 2020}})
    seen = []

    def bad_pdf(path, store=None, metadata=None):
        raise InputError(f"{path.name}: not a PDF")

    monkeypatch.setattr(ingest_module, "ingest_file", bad_pdf)
    report = ingest_documents(["BAD_2020"], bench, index=None, say=lambda *a: seen.append(a[0]))
    assert report == [{"doc": "BAD_2020", "status": "failed", "error": "BAD_2020.pdf: not a PDF"}]
    assert seen == ["ingest", "ingest"]

    def damaged(path, store=None, metadata=None):
        raise IndexDamagedError("index damaged: run `filinglens ingest --repair`")

    monkeypatch.setattr(ingest_module, "ingest_file", damaged)
    with pytest.raises(IndexDamagedError):
        ingest_documents(["BAD_2020"], bench, index=None, say=lambda *a: None)


def test_the_split_halves_every_question_type_and_never_moves(shared):
    """The fixed tuning / held-out split of the dev questions: half of each type (rounded up to tuning),
    decided by the ids alone, so adding or removing other questions never moves a question."""
    questions = load_jsonl(shared / "financebench" / "questions_dev.jsonl")
    split = split_of(questions)
    for qtype in {q["question_type"] for q in questions}:
        ids = [q["financebench_id"] for q in questions if q["question_type"] == qtype]
        tune = sum(1 for i in ids if split[i] == "tune")
        assert tune == (len(ids) + 1) // 2
    metrics = [q for q in questions if q["question_type"] == "metrics-generated"]
    assert split_of(metrics) == {q["financebench_id"]: split[q["financebench_id"]] for q in metrics}
    assert split["financebench_id_02987"] == "tune"  # the question tests/retrieval/test_statements.py uses
