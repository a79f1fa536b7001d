"""`eval qa` by question type: accuracy with 95% intervals, evidence recall, and numbers traced to quotes or a
shown calculation -- on real FinanceBench questions and their real 10-K PDFs, with a scripted fake model.

The index uses a hash embedder (retrieval is then mostly BM25) so the two PDFs index in seconds; the scripted
model answers the metric question with figures it finds in the retrieved excerpts.
"""

from __future__ import annotations

import json
import re

import pytest

from filinglens.agents.providers.fake import register_script
from filinglens.evals.financebench import load_jsonl
from filinglens.evals.qa_eval import QAItem, aggregate, run_qa_eval, wilson
from filinglens.display import qa_summary
from filinglens.retrieval.embeddings import HashEmbedder
from filinglens.retrieval.index import ChunkStore
from filinglens.store import Store

# Boeing FY2022: novel (cyclicality), domain (revenue categories), domain (gross margin);
# Lockheed Martin FY2021: metric (net working capital = 19,815 - 13,997 = $5,818 million)
IDS = ("financebench_id_00464", "financebench_id_00517", "financebench_id_00678", "financebench_id_03031")




@pytest.fixture(scope="module")
def bench(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("qa-types")
    wanted = [q for q in load_jsonl(shared / "financebench" / "questions_dev.jsonl") if q["financebench_id"] in IDS]
    assert len(wanted) == 4
    qpath = root / "questions.jsonl"
    qpath.write_text("".join(json.dumps(q) + "\n" for q in wanted))
    (root / "documents.jsonl").write_text((shared / "financebench" / "documents.jsonl").read_text())
    return {"questions": qpath, "index": ChunkStore(root / "index", embedder=HashEmbedder.name)}


_BLOCK = re.compile(r"\[E(\d+)\] \(Item [^)]*\) (.*?)(?=\n\n\[E\d+\] |\n</evidence>)", re.S)


def _excerpts(user: str) -> dict[int, str]:
    return {int(n): text for n, text in _BLOCK.findall(user)}


def analyst(messages) -> str:
    """Figures for the metric question when the excerpts print them; fixed plain answers otherwise."""
    user = messages[-1].content
    excerpts = _excerpts(user)
    if '"expression"' in user:  # the compute prompt
        figures = []
        for name, label in (("assets", "Total current assets"), ("liabilities", "Total current liabilities")):
            found = next(((n, m.group(0)) for n, text in excerpts.items()
                          for m in [re.search(rf"{label} \| \$?([\d,]+)", text)] if m), None)
            if found is None:
                return json.dumps({"figures": [], "expression": "", "answer": "", "sufficient": False,
                                   "missing": label})
            figures.append({"name": name, "evidence": found[0], "quote": found[1],
                            "value": found[1].rsplit("|", 1)[1].strip()})
        return json.dumps({"figures": figures, "expression": "assets - liabilities", "unit": "USD millions",
                           "answer": "Net working capital is about $6 billion.", "sufficient": True})
    first = " ".join(excerpts[1].split()[:8])
    if "cyclicality" in user:  # a number of its own, in no quote
        return json.dumps({"answer": "Yes. Its revenue fell 24% in the last downturn.", "sufficient": True,
                           "citations": [{"evidence": 1, "quote": first}]})
    if "20%" in user:  # a number copied from a quote of the excerpts
        n, words = next((n, m.group(0)) for n, text in sorted(excerpts.items())
                        for m in [re.search(r"(?:\S+\s+){0,4}\$?\d[\d,.]*\d(?:\s+\S+){0,4}", " ".join(text.split()))]
                        if m)
        number = re.search(r"\$?\d[\d,.]*\d", words).group(0)
        return json.dumps({"answer": f"Yes, {number}.", "sufficient": True,
                           "citations": [{"evidence": n, "quote": words}]})
    return json.dumps({"answer": "No.", "sufficient": True, "citations": [{"evidence": 1, "quote": first}]})


def test_eval_reports_accuracy_recall_and_traced_numbers_by_question_type(bench, tmp_path):
    register_script("qa-types", func=analyst)
    result = run_qa_eval(bench["questions"], model_id="fake:qa-types", index=bench["index"],
                         store=Store(tmp_path / "results.db"), out_dir=tmp_path / "out")
    by_id = {i.id: i for i in result.items}

    metric = by_id["financebench_id_03031"]
    assert metric.prompt == "qa@figures-v1" and metric.correct and metric.question_type == "metrics-generated"
    assert metric.calculation["value"] == 5818.0
    # the metric library's formula; both figures read from the balance sheet's rows, so the model was not asked
    assert metric.calculation["read_from_tables"] == ["total_current_assets_2021", "total_current_liabilities_2021"]
    assert metric.tokens_in == 0
    # scored on its result alone: a figure it lists cannot match the reference by coincidence
    assert metric.match["scored"] == "result" and metric.match["numbers"][0]["answer"] == "$5,818 million"
    assert metric.calculation["shown"] == ("Calculation: total_current_assets_2021 \u2212 "
                                           "total_current_liabilities_2021 = 19,815 \u2212 13,997 = $5,818 million")
    assert metric.numbers["all_traced"] is True
    assert all(by_id[i].prompt == "qa@v2" and by_id[i].calculation is None
               for i in ("financebench_id_00464", "financebench_id_00517"))
    # "Does Boeing have an improving gross margin profile as of FY2022?" is decided by the library's gross margin;
    # Boeing prints cost of products and cost of services and no total: their sum, each row read, no model call
    margin = by_id["financebench_id_00678"]
    assert margin.prompt == "qa@figures-v1" and not margin.refused and margin.calculation["plan"]["test"] == "> 0"
    assert margin.answer.startswith("Yes. ") and margin.tokens_in == 0 and margin.calculation["verdict"] == "Yes"
    assert "(cost_of_products_2022 + cost_of_services_2022)" in margin.calculation["shown"]
    assert by_id["financebench_id_00464"].numbers == {"numbers": 1, "traced": 0, "untraced": ["24%"],
                                                      "all_traced": False}
    assert by_id["financebench_id_00517"].numbers["all_traced"] is True
    assert margin.numbers["all_traced"] is True

    agg = result.aggregates
    assert (agg["answers_with_numbers"], agg["answers_traced"]) == (4, 3)
    assert agg["traced_share"] == pytest.approx(3 / 4) and agg["traced_share_ci95"] == wilson(3, 4)
    assert (agg["compute_questions"], agg["calculations_shown"], agg["compute_refusals"]) == (2, 2, 0)
    types = agg["by_question_type"]
    assert set(types) == {"metrics-generated", "domain-relevant", "novel-generated"}
    for qtype, entry in types.items():
        group = [i for i in result.items if i.question_type == qtype]
        assert entry["n"] == len(group) and entry["correct"] == sum(i.correct for i in group)
        assert entry["accuracy_ci95"] == wilson(entry["correct"], entry["n"])
        assert entry["evidence_recall"] == pytest.approx(sum(i.evidence_recall for i in group) / len(group))
    assert types["metrics-generated"]["accuracy"] == 1.0 and types["metrics-generated"]["traced_share"] == 1.0
    assert types["novel-generated"]["traced_share"] == 0.0
    assert types["domain-relevant"]["answers_with_numbers"] == 2 and types["domain-relevant"]["traced_share"] == 1.0
    assert types["metrics-generated"]["evidence_recall"] == 1.0  # page 67 retrieved (E2, E3)

    data = json.loads((tmp_path / "out" / "qa_eval.json").read_text())
    assert data["aggregates"]["by_question_type"]["metrics-generated"]["accuracy_ci95"] == list(wilson(1, 1))
    assert {q["id"]: q["prompt"] for q in data["questions"]}["financebench_id_03031"] == "qa@figures-v1"
    assert data["config"]["compute_prompt_version"] == "compute-v1" and data["config"]["prompt_version"] == "v2"
    assert (data["config"]["metric_prompt_version"], data["config"]["metric_library"]) == ("figures-v1", "metrics@v1")
    import pandas as pd

    frame = pd.read_parquet(tmp_path / "out" / "qa_eval.parquet").set_index("id")
    assert json.loads(frame.loc["financebench_id_03031", "calculation"])["value"] == 5818.0
    assert json.loads(frame.loc["financebench_id_00464", "numbers"])["untraced"] == ["24%"]

    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(qa_summary(result))
    text = console.export_text()
    assert "answers whose numbers all trace (quote or calculation)" in text and "75.0% (3/4)" in text
    assert "accuracy: metrics-generated" in text and "100.0% (1/1, 95% CI 20.7%-100.0%)" in text
    assert "calculations shown / lookups / refused" in text


def test_a_metric_questions_figures_come_from_the_statements_not_from_a_model_that_invents_one(bench, tmp_path):
    register_script("qa-none", func=lambda m: json.dumps(
        {"figures": [{"name": "total_current_assets_2021", "evidence": 1, "quote": "Total current assets | 99,999",
                      "value": "99,999"}], "missing": []}) if "A program computes" in m[-1].content else
        json.dumps({"answer": "No.", "sufficient": True}))
    result = run_qa_eval(bench["questions"], model_id="fake:qa-none", index=bench["index"],
                         store=Store(tmp_path / "results.db"))
    metric = next(i for i in result.items if i.id == "financebench_id_03031")
    assert metric.correct and metric.calculation["value"] == 5818.0 and metric.tokens_in == 0
    assert "99,999" not in metric.answer
    margin = next(i for i in result.items if i.id == "financebench_id_00678")
    assert not margin.refused and margin.tokens_in == 0  # every figure from the statement: the model is not asked
    agg = result.aggregates
    assert agg["compute_refusals"] == 0 and agg["calculations_shown"] == 2
    assert agg["by_question_type"]["domain-relevant"]["refusals"] == 0


def _item(qtype: str, correct: bool, recall: float, numbers: dict | None = None, **kw) -> QAItem:
    item = QAItem(id=f"{qtype}-{correct}-{recall}", question="q", reference="r", company="c", doc_name="d",
                  fiscal_year=2022, question_type=qtype, correct=correct, sufficient=True, evidence_recall=recall,
                  numbers=numbers or {}, **kw)
    return item


def test_aggregate_by_type_intervals_and_traced_share():
    traced = {"numbers": 2, "traced": 2, "untraced": [], "all_traced": True}
    untraced = {"numbers": 1, "traced": 0, "untraced": ["7"], "all_traced": False}
    items = [
        _item("metrics-generated", True, 1.0, traced, calculation={"value": 3.0, "shown": "Calculation: a = 3"}),
        _item("metrics-generated", False, 0.0, calculation={"value": None, "refusal": "figure 'a' ..."}),
        _item("metrics-generated", False, 0.5, untraced, calculation={"value": 7.0, "shown": ""}),
        _item("domain-relevant", True, 1.0),
        _item("novel-generated", False, 0.0, untraced),
    ]
    items[1].sufficient, items[1].refused = False, True
    agg = aggregate(items, judged=False)
    metric = agg["by_question_type"]["metrics-generated"]
    assert (metric["n"], metric["correct"]) == (3, 1) and metric["accuracy_ci95"] == wilson(1, 3)
    assert metric["accuracy_ci95"][0] == pytest.approx(0.0615, abs=1e-3)  # Wilson 1/3
    assert metric["evidence_recall"] == pytest.approx(0.5) and metric["refusals"] == 1
    assert (metric["answers_with_numbers"], metric["answers_traced"]) == (2, 1)
    assert (metric["calculations_shown"], metric["compute_lookups"], metric["compute_refusals"]) == (1, 1, 1)
    assert agg["by_question_type"]["domain-relevant"]["traced_share"] is None  # no numbers stated
    assert (agg["answers_with_numbers"], agg["answers_traced"]) == (3, 1)
    assert agg["accuracy_ci95"] == wilson(2, 5)
