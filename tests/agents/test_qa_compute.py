"""Answers that compute, on real 10-K text (FinanceBench PDFs in ../shared) with scripted fake models.

The model names figures (quoted, with their excerpt) and an expression (``compute-v1``, forced here: metrics the
library covers are planned by the program, tests/agents/test_qa_metrics.py); the
code checks each number against the excerpt's chunk text, evaluates the
expression safely and shows the calculation -- or refuses with the reason.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from filinglens.agents.compute import amounts, is_metric_question, read_amount, same_amount, trace_numbers
from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.models import get_chat_model
from filinglens.agents.qa import COMPUTE_VERSION, INSUFFICIENT, answer_question
from filinglens.evals.financebench import load_jsonl
from filinglens.evals.qa_eval import score_answer
from filinglens.retrieval.chunking import chunk_filing
from filinglens.store import Store

LMT_QUESTION = ("What is Lockheed Martin's FY2021 net working capital? Define net working capital as total current "
                "assets less total current liabilities. Answer in USD millions.")
ADBE_QUESTION = ("What is Adobe's year-over-year change in unadjusted operating income from FY2015 to FY2016 "
                 "(in units of percents and round to one decimal place)?")


def _chunks(parsed, name: str, *needles: str, page: int | None = None) -> list[EvidenceItem]:
    filing = parsed(f"pdf/{name}.pdf")
    out = []
    for c in chunk_filing(filing):
        if all(n in c.text for n in needles) and (page is None or c.page == page):
            out.append(EvidenceItem(f"{name}-{c.seq}", c.text, c.item, f"{name}, Item {c.item}, page {c.page}"))
    assert out, (name, needles)
    return out


@pytest.fixture(scope="module")
def lmt(parsed):
    """Lockheed Martin FY2021: E1 the balance sheet's liabilities (page 67), E2 the selected financial data."""
    return (_chunks(parsed, "LOCKHEEDMARTIN_2021_10K", "Total current liabilities", page=67)
            + _chunks(parsed, "LOCKHEEDMARTIN_2021_10K", "Total current assets", "Backlog"))


@pytest.fixture(scope="module")
def adbe(parsed):
    """Adobe FY2016: the income statement (page 61), USD thousands."""
    return _chunks(parsed, "ADOBE_2016_10K", "Operating income", "Total revenue", page=61)


def fig(name, evidence, quote, value):
    return {"name": name, "evidence": evidence, "quote": quote, "value": value}


def ask(tmp_path, question, evidence, *replies, **kwargs):
    model = get_chat_model("fake", responses=[r if isinstance(r, str) else json.dumps(r) for r in replies])
    db = tmp_path / f"r{len(list(tmp_path.glob('r*.db')))}.db"  # a fresh call cache per question
    kwargs.setdefault("prompt_version", COMPUTE_VERSION)  # the model writes the expression (test_qa_metrics: the library)
    answer = answer_question(question, evidence, store=Store(db), model_id="fake", model=model, **kwargs)
    return answer, model


LMT_FIGURES = [fig("total current assets 2021", 2, "Total current assets | 19,815", "19,815"),
               fig("current_liabilities_2021", 1, "Total current liabilities 13,997", 13997)]


def test_metric_answer_shows_the_calculation_from_quoted_figures(tmp_path, lmt):
    answer, model = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": LMT_FIGURES, "expression": "total current assets 2021 - current_liabilities_2021",
        "unit": "USD millions", "answer": "Net working capital is about 5,800.", "sufficient": True})
    assert answer.prompt == f"qa@{COMPUTE_VERSION}" and answer.sufficient and answer.error is None
    assert answer.answer.startswith("$5,818 million.")
    assert ("Calculation: total_current_assets_2021 \u2212 current_liabilities_2021 = 19,815 \u2212 13,997 = "
            "$5,818 million") in answer.answer
    assert "5,800" not in answer.answer  # the model's own arithmetic is never shown
    assert [c.chunk_id for c in answer.citations] == [lmt[1].chunk_id, lmt[0].chunk_id]
    assert all(c.verified for c in answer.citations)  # quotes checked against the filing ("|" of tables ignored)
    calc = answer.calculation
    assert calc["value"] == 5818.0 and calc["refusal"] is None
    assert [f["traced"] for f in calc["figures"]] == [True, True]
    assert answer.numbers()["all_traced"] is True
    assert score_answer("$5818.00", answer.answer, LMT_QUESTION)["correct"]  # the eval's accuracy rule agrees
    user = model.calls[-1][-1].content
    assert LMT_QUESTION in user and "Total current liabilities | 13,997" in user and "{{" not in user
    assert answer.to_dict()["numbers"]["untraced"] == []


def test_percentage_change_is_computed_not_guessed(tmp_path, adbe):
    answer, _ = ask(tmp_path, ADBE_QUESTION, adbe, {
        "figures": [fig("op_income_2016", 1, "Operating income | 1,493,602", "1,493,602"),
                    fig("op_income_2015", 1, "Operating income | 1,493,602 | 903,095", "903,095")],
        "expression": "(op_income_2016 - op_income_2015) / op_income_2015 * 100", "unit": "%",
        "answer": "It grew by about 70%", "sufficient": True})
    assert answer.sufficient and answer.answer.startswith("65.39%.")
    assert "(1,493,602 \u2212 903,095) \u00f7 903,095 \u00d7 100 = 65.39%" in answer.answer
    assert "70" not in answer.answer
    assert score_answer("65.4%", answer.answer, ADBE_QUESTION)["correct"]
    assert answer.numbers()["all_traced"] is True


def test_figure_not_in_its_excerpt_is_refused_with_the_reason(tmp_path, lmt):
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": [fig("current_assets", 2, "Total current assets | 19,900", "19,900"), LMT_FIGURES[1]],
        "expression": "current_assets - current_liabilities_2021", "unit": "USD millions", "sufficient": True})
    assert not answer.sufficient and answer.error is None
    assert answer.refusal == "figure 'current_assets' (19,900) does not occur in excerpt E2"
    assert answer.answer == f"{INSUFFICIENT[:-1]}: {answer.refusal}."
    assert answer.calculation["value"] is None and answer.numbers()["numbers"] == 0


def test_a_figure_in_no_excerpt_at_all_is_refused(tmp_path, lmt):
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": [fig("ppe", None, "", "4,321"), LMT_FIGURES[1]], "expression": "ppe - current_liabilities_2021",
        "sufficient": True})
    assert not answer.sufficient and answer.refusal == "figure 'ppe' (4,321) does not occur in any excerpt"


def test_missing_figure_is_refused_with_the_models_reason(tmp_path, lmt):
    answer, _ = ask(tmp_path, "What is Lockheed Martin's FY2021 fixed asset turnover ratio?", lmt, {
        "figures": [], "expression": "", "answer": "", "sufficient": False, "missing": "property, plant and equipment"})
    assert not answer.sufficient and "property, plant and equipment" in answer.answer
    assert answer.answer.startswith(INSUFFICIENT[:-1]) and answer.refusal


def test_hostile_expression_from_the_model_is_refused_not_run(tmp_path, lmt):
    marker = tmp_path / "pwned"
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": LMT_FIGURES, "sufficient": True,
        "expression": f"__import__('os').system('touch {marker}') or current_liabilities_2021"})
    assert not answer.sufficient and not marker.exists()
    assert "not allowed" in answer.refusal or "not valid" in answer.refusal


@pytest.mark.parametrize("expression, reason", [
    ("current_liabilities_2021 / (total_current_assets_2021 - 19815)", "division by zero"),
    ("current_liabilities_2021 ** 1000", "exponent"),
    ("revenue - current_liabilities_2021", "'revenue', which is not one of the named figures"),
    ("", "no expression combining the figures"),
])
def test_undefined_or_unknown_arithmetic_is_refused(tmp_path, lmt, expression, reason):
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {"figures": LMT_FIGURES, "expression": expression,
                                                  "sufficient": True})
    assert not answer.sufficient and reason in answer.refusal


def test_a_single_figure_is_a_lookup_without_a_calculation(tmp_path, lmt):
    answer, _ = ask(tmp_path, "What were Lockheed Martin's FY2021 total current liabilities (in USD millions)?", lmt,
                    {"figures": [LMT_FIGURES[1]], "unit": "USD millions", "answer": "Total current liabilities.",
                     "sufficient": True})
    assert answer.answer == ("$13,997 million. Total current liabilities. "
                             "Figure: current_liabilities_2021 = 13,997 (E1).")
    assert "Calculation" not in answer.answer and answer.numbers()["all_traced"]


def test_thousands_tables_and_negatives_in_parentheses(tmp_path, adbe):
    """Adobe prints USD thousands; restructuring was (1,508) in FY2016: the sign is read from the parentheses."""
    answer, _ = ask(tmp_path, "What is Adobe's FY2016 operating income excluding restructuring, in USD millions?",
                    adbe, {"figures": [fig("op_income", 1, "Operating income | 1,493,602", "$1,493,602"),
                                       fig("restructuring", 1, "Restructuring and other charges | (1,508)", "(1,508)")],
                           "expression": "(op_income - restructuring) / 1000", "unit": "USD millions",
                           "sufficient": True})
    assert answer.sufficient and answer.calculation["figures"][1]["value"] == -1508.0
    assert answer.answer.startswith("$1,495.1 million.")  # 1,493,602 - (-1,508) = 1,495,110 thousand
    assert "(1,493,602 \u2212 (\u22121,508)) \u00f7 1000" in answer.answer
    assert answer.numbers()["all_traced"] is True


def test_figures_in_mixed_units_are_brought_to_the_smaller_unit(tmp_path, lmt):
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": [fig("assets", 2, "", "$19,815 million"), fig("liabilities", 1, "", "$13.997 billion")],
        "expression": "assets - liabilities", "unit": "USD millions", "sufficient": True})
    assert answer.sufficient and answer.calculation["value"] == pytest.approx(5818.0)
    assert answer.answer.startswith("$5,818 million.")
    assert "written as 13,997 million" in answer.calculation["figures"][1]["note"]


def test_numbers_typed_into_the_expression_must_be_quoted_figures(tmp_path, lmt):
    """A figure's value written in the expression becomes the figure; a number of the model's own is refused."""
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": LMT_FIGURES, "expression": "(19815 - current_liabilities_2021) * 1000 / 1000 = 5818",
        "unit": "USD millions", "sufficient": True})
    assert answer.sufficient and answer.calculation["value"] == 5818.0
    assert answer.calculation["expression"] == "(total_current_assets_2021 - current_liabilities_2021) * 1000 / 1000"
    invented, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": LMT_FIGURES, "expression": "5818 + 0 * current_liabilities_2021", "sufficient": True})
    assert not invented.sufficient
    assert invented.refusal == "the expression uses 5,818, which is not one of the quoted figures"
    average, _ = ask(tmp_path, LMT_QUESTION, lmt, {  # structural constants: averages, percentages, days
        "figures": LMT_FIGURES, "expression": "round((Total_Current_Assets_2021 + current_liabilities_2021) / 2, 1)",
        "sufficient": True})
    assert average.sufficient and average.calculation["value"] == 16906.0  # names matched in any case


def test_figures_given_as_a_mapping_are_found_in_the_excerpts(tmp_path, lmt):
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, {
        "figures": {"assets": "19,815", "liabilities": 13997}, "expression": "assets - liabilities",
        "unit": "USD millions", "sufficient": True})
    assert answer.sufficient and answer.answer.startswith("$5,818 million.")
    # no quotes given: each figure is quoted with the excerpt's own line that prints it
    assert [(c.n, c.quote, c.verified) for c in answer.citations] == [
        (2, "Total current assets | 19,815 | 19,378 | 17,095 | 16,103 | 17,505", True),
        (1, "Total current liabilities | 13,997 | 13,933", True)]
    assert answer.calculation["figures"][0]["note"] == "no quote given"


def test_a_quote_not_in_the_excerpt_is_replaced_by_the_excerpts_own_line(tmp_path, lmt):
    answer, _ = ask(tmp_path, "What were Lockheed Martin's FY2021 total current liabilities?", lmt, {
        "figures": [fig("liabilities", 1, "Current liabilities totalled 13,997 at year end", "13,997")],
        "expression": "liabilities", "unit": "USD millions", "sufficient": True})
    assert answer.sufficient and answer.citations[0].quote == "Total current liabilities | 13,997 | 13,933"
    assert answer.citations[0].verified
    assert "the model's quote 'Current liabilities totalled 13,997 at year end' is not in the excerpt" in \
        answer.calculation["figures"][0]["note"]


def test_garbage_compute_replies_end_in_a_recorded_error(tmp_path, lmt):
    answer, model = ask(tmp_path, LMT_QUESTION, lmt, "I think it is 5,818.")
    assert answer.error and "malformed" in answer.error and len(model.calls) == 3 and not answer.sufficient


def test_plain_questions_keep_the_plain_prompt(tmp_path, lmt):
    reply = {"answer": "No.", "sufficient": True, "citations": []}
    plain, _ = ask(tmp_path, "Is Lockheed Martin's business subject to cyclicality?", lmt, reply,
                   prompt_version=None)
    assert plain.prompt == "qa@v2" and plain.answer == "No." and plain.calculation is None
    forced_off, _ = ask(tmp_path, LMT_QUESTION, lmt, reply, compute=False)
    assert forced_off.prompt == "qa@v2"
    forced_on, _ = ask(tmp_path, "Is it positive?", lmt, {"figures": LMT_FIGURES[1:], "sufficient": True},
                       prompt_version=COMPUTE_VERSION)
    assert forced_on.prompt == f"qa@{COMPUTE_VERSION}" and forced_on.answer.startswith("13,997.")


def test_metric_questions_are_recognised(shared):
    questions = load_jsonl(shared / "financebench" / "questions_dev.jsonl")
    metric = [q for q in questions if q["question_type"] == "metrics-generated"]
    assert metric and all(is_metric_question(q["question"]) for q in metric)
    assert not any(is_metric_question(q["question"]) for q in questions
                   if q["question"].split()[0] in ("Does", "Is", "Has", "Are", "Was", "Were"))
    assert not is_metric_question("What was the largest liability in American Express's Balance Sheet in 2022?")
    assert not is_metric_question("What drove operating margin change as of FY2022 for 3M?")
    assert is_metric_question("How many full-time equivalent employees did Apple have?")
    assert not is_metric_question("What is Apple's strategy for revenue growth?")
    assert not is_metric_question("What is the company's revenue recognition policy?")


@pytest.mark.parametrize("printed, figure, same", [
    ("Total equity (deficit) | 10,959 | (776)", "-776", True),
    ("Total equity (deficit) | 10,959 | (776)", "776", True),  # signs are often said in words
    ("Net cash used for investing activities | (1,161)", "$(1,161)", True),
    ("Revenue was $1.2 billion", "1,200 million", True),
    ("Revenue | 1,200", "$1.2 billion", True),  # a table in millions
    ("Revenue was $1.2 billion", "1200000000", True),
    ("negative working capital of -$1561M", "1,561 million", True),
    ("effective tax rate of 23.0%", "23", True),
    ("Total current liabilities | 13,997 | 13,933", "13,998", False),
    ("Total current liabilities | 13,997 | 13,933", "1,399.7", False),
    ("FY2021 | 10-K", "10", False),  # neither a year label nor a form name is a figure
])
def test_printed_numbers_are_read_with_signs_scales_and_percents(printed, figure, same):
    assert any(same_amount(read_amount(figure), a) for a in amounts(printed)) is same


def test_a_figure_value_must_be_one_number():
    with pytest.raises(ValueError, match="one number"):
        read_amount("19,815 and 13,997")
    with pytest.raises(ValueError, match="no value"):
        read_amount("")
    with pytest.raises(ValueError, match="not true/false"):
        read_amount(True)


def test_numbers_of_a_plain_answer_trace_only_to_verified_quotes():
    quotes = ["The Company had approximately 164,000 full-time equivalent employees."]
    assert trace_numbers("About 164,000 employees in FY2024.", quotes)["all_traced"] is True  # the year is a label
    untraced = trace_numbers("About 164,000 employees, 12% more than before.", quotes)
    assert untraced["all_traced"] is False and untraced["untraced"] == ["12%"]
    assert trace_numbers("Yes, the business is cyclical.", quotes)["all_traced"] is None


def test_figures_printed_in_thousands_are_converted_to_the_unit_asked_for():
    """A statement printed "(In thousands)" and an answer asked in USD millions (Adobe FY2017 style): the
    result is converted and the conversion shown; a ratio of such figures is unchanged."""
    from filinglens.agents.compute import compute

    sheet = EvidenceItem("bs", "Total current assets | 7,247,813 | 5,839,774\nTotal current liabilities | 3,527,457 | "
                         "2,811,635", "8", "ADBE 10-K FY2017, Item 8",
                         context="CONSOLIDATED BALANCE SHEETS (In thousands, except par value) December 1, 2017")
    figures = [{"name": "assets", "evidence": 1, "quote": "Total current assets | 7,247,813", "value": "7,247,813"},
               {"name": "liabilities", "evidence": 1, "quote": "Total current liabilities | 3,527,457",
                "value": "3,527,457"}]
    amount = compute({"figures": figures, "expression": "assets - liabilities", "unit": "USD millions"}, [sheet])
    assert amount.value == pytest.approx(3720.356) and amount.result == "$3,720.4 million"
    assert amount.shown.endswith("(figures in thousands)")
    ratio = compute({"figures": figures, "expression": "assets / liabilities", "unit": "ratio"}, [sheet])
    assert ratio.value == pytest.approx(7247813 / 3527457) and not ratio.scale_note
    lookup = compute({"figures": figures[:1], "expression": "assets", "unit": "USD millions"}, [sheet])
    assert lookup.result == "$7,247.8 million" and "figures in thousands" in lookup.shown
    # an excerpt that does not say its unit: the numbers are taken as printed
    bare = EvidenceItem("x", sheet.text, "8", "x")
    assert compute({"figures": figures, "expression": "assets - liabilities", "unit": "USD millions"},
                   [bare]).value == pytest.approx(3720356)


# --------------------------------------------------------------------------- the library's formula (figures-v1)


def test_a_library_metric_is_computed_with_the_librarys_formula_not_the_models(tmp_path, lmt):
    reply = {"figures": [fig("total_current_assets_2021", 2, "Total current assets | 19,815", "19,815"),
                         fig("total_current_liabilities_2021", 1, "Total current liabilities | 13,997", "13,997")],
             "expression": "total_current_assets_2021 / total_current_liabilities_2021", "unit": "ratio"}
    answer, model = ask(tmp_path, LMT_QUESTION, lmt, reply, prompt_version=None)
    assert answer.prompt == "qa@figures-v1" and answer.sufficient
    assert answer.answer.startswith("$5,818 million. Net working capital, fiscal 2021 (metrics@v1 formula).")
    assert "19,815 \u2212 13,997 = $5,818 million" in answer.answer
    assert answer.calculation["plan"]["metric"] == "net working capital" and answer.numbers()["all_traced"]
    assert score_answer("$5818.00", answer.answer, LMT_QUESTION)["correct"]
    user = model.calls[-1][-1].content
    assert "- total_current_assets_2021: total current assets, at the end of fiscal 2021 (balance sheet)" in user
    assert "total_current_assets_2021 \u2212 total_current_liabilities_2021" in user  # the formula it serves


def test_a_library_figure_the_model_does_not_find_is_a_refusal_naming_it(tmp_path, lmt):
    reply = {"figures": [fig("total_current_assets_2021", 2, "Total current assets | 19,815", "19,815")],
             "missing": ["total_current_liabilities_2021"]}
    answer, _ = ask(tmp_path, LMT_QUESTION, lmt, reply, prompt_version=None)
    assert not answer.sufficient and answer.prompt == "qa@figures-v1"
    assert answer.refusal == "a needed figure is not in the excerpts (total_current_liabilities_2021)"


def test_a_library_percent_change_shows_each_year_in_the_tables_unit(tmp_path, adbe):
    reply = {"figures": [fig("operating_income_2016", 1, "Operating income | 1,493,602", "1,493,602"),
                         fig("operating_income_2015", 1, "Operating income | 1,493,602 | 903,095", "903,095")]}
    heading = "CONSOLIDATED STATEMENTS OF INCOME (In thousands, except per share data) 2016 2015 2014"
    adbe = [dataclasses.replace(e, context=heading) for e in adbe]  # as statement routing shows it
    answer, _ = ask(tmp_path, ADBE_QUESTION, adbe, reply, prompt_version=None)
    assert answer.answer.startswith("65.4%. Operating income, change from fiscal 2015 to 2016 in % (metrics@v1 "
                                    "formula). fiscal 2015: $903,095 thousand; fiscal 2016: $1,493,602 thousand.")
    assert score_answer("65.4%", answer.answer, ADBE_QUESTION)["correct"] and answer.numbers()["all_traced"]


def test_a_yes_no_question_a_library_metric_decides_is_answered_from_the_computed_value(tmp_path, lmt):
    question = "Does Lockheed Martin have positive working capital based on FY2021 data?"
    lmt = [dataclasses.replace(e, context="CONSOLIDATED BALANCE SHEETS (In millions) December 31, 2021 2020")
           for e in lmt]
    reply = {"figures": [fig("total_current_assets_2021", 2, "Total current assets | 19,815", "19,815"),
                         fig("total_current_liabilities_2021", 1, "Total current liabilities | 13,997", "13,997")]}
    answer, _ = ask(tmp_path, question, lmt, reply, prompt_version=None)
    assert answer.prompt == "qa@figures-v1" and answer.calculation["verdict"] == "Yes"
    assert answer.answer.startswith("Yes. $5,818 million. Net working capital, fiscal 2021")
    assert score_answer("Yes, Lockheed Martin had positive working capital of $5,818M in FY2021.",
                        answer.answer, question)["correct"]
    change = "Has Lockheed Martin's working capital ratio improved or declined between FY2021 and FY2020?"
    reply = {"figures": [fig("total_current_assets_2021", 2, "", "19,815"), fig("total_current_assets_2020", 2, "",
                                                                                "19,378"),
                         fig("total_current_liabilities_2021", 1, "", "13,997"),
                         fig("total_current_liabilities_2020", 1, "", "13,933")]}
    answer, _ = ask(tmp_path, change, lmt, reply, prompt_version=None)
    assert answer.answer.startswith("Improved. 0.02. Working capital ratio, fiscal 2021 \u2212 fiscal 2020")
    assert "fiscal 2020: 1.39; fiscal 2021: 1.42." in answer.answer  # 19,378 / 13,933 and 19,815 / 13,997


def test_the_answer_panel_cites_a_row_two_figures_came_from_once(tmp_path, adbe):
    from rich.console import Console

    from filinglens.display import answer_panel

    reply = {"figures": [fig("operating_income_2016", 1, "Operating income | 1,493,602 | 903,095", "1,493,602"),
                         fig("operating_income_2015", 1, "Operating income | 1,493,602 | 903,095", "903,095")]}
    answer, _ = ask(tmp_path, ADBE_QUESTION, adbe, reply, prompt_version=None)
    assert len(answer.citations) == 2
    console = Console(record=True, width=200)
    console.print(answer_panel(answer))
    assert console.export_text().count("\u201cOperating income | 1,493,602 | 903,095") == 1


def test_a_statement_heading_says_its_unit_without_parentheses():
    """Home Depot's balance sheet heading says "in millions, except per share data", Union Pacific's "Millions,
    Except Share and Per Share Amounts": a debt change of 8,956 was shown as "$8,956" with no unit."""
    from filinglens.agents.compute import table_scale

    for heading in ("CONSOLIDATED BALANCE SHEETS in millions, except per share data | February 2, 2025 | "
                    "January 28, 2024 Assets Current assets:",
                    "CONSOLIDATED STATEMENTS OF INCOME Union Pacific Corporation and Subsidiary Companies Millions, "
                    "Except Per Share Amounts, for the Years Ended December 31, | 2024 | 2023 | 2022"):
        assert table_scale(EvidenceItem("x", "Total current assets | 31,683 | 29,775", "8", "x", context=heading)) == 1e6
    prose = EvidenceItem("x", "Revenue grew by $5 billion, in millions of units sold", "7", "x")
    assert table_scale(prose) is None  # the bare form counts in a heading only
