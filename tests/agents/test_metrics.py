"""The metric library (prompts/metrics/v1.yaml) and the plans read from questions (agents/metrics.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from filinglens.agents.calc import evaluate
from filinglens.agents.compute import is_metric_question
from filinglens.agents.metrics import apply_plan, plan_metric
from filinglens.errors import ConfigError
from filinglens.evals.financebench import load_jsonl
from filinglens.prompts.loader import load_metric_library

WMT_DPO = ("What is FY2018 days payable outstanding (DPO) for Walmart? DPO is defined as: 365 * (average accounts "
           "payable between FY2017 and FY2018) / (FY2018 COGS + change in inventory between FY2017 and FY2018). "
           "Round your answer to two decimal places.")


def test_every_dev_metric_question_is_planned_and_no_yes_no_question_is(shared):
    """Coverage of the library on the 26 dev metric questions (its definitions are textbook ones, not fitted)."""
    questions = load_jsonl(shared / "financebench" / "questions_dev.jsonl")
    metric = [q["question"] for q in questions if q["question_type"] == "metrics-generated"]
    plans = [plan_metric(q) for q in metric]
    assert len(metric) == 26 and all(plans), [q for q, p in zip(metric, plans) if p is None]
    # every plan's expression is arithmetic over exactly the figures it asks the model for
    for plan in plans:
        assert evaluate(plan.expression, {f.name: 1.0 + i for i, f in enumerate(plan.figures)}) is not None


def test_dpo_plan_names_each_figure_and_year():
    plan = plan_metric(WMT_DPO)
    assert (plan.metric, plan.mode, plan.years, plan.unit) == ("days payable outstanding", "value", [2018], "days")
    assert [f.name for f in plan.figures] == ["accounts_payable_2018", "accounts_payable_2017",
                                               "cost_of_revenue_2018", "inventory_2018", "inventory_2017"]
    values = {"accounts_payable_2018": 46092, "accounts_payable_2017": 41433, "cost_of_revenue_2018": 373396,
              "inventory_2018": 43783, "inventory_2017": 43046}
    assert round(evaluate(plan.expression, values), 2) == 42.69  # FinanceBench's reference for Walmart FY2018
    lines = plan.figures_prompt().splitlines()
    assert lines[0] == "- accounts_payable_2018: accounts payable, at the end of fiscal 2018 (balance sheet)"
    assert "cost of revenue" in lines[2] and "for fiscal 2018 (income statement)" in lines[2]


@pytest.mark.parametrize("question, metric, mode, years, unit", [
    ("What is the FY2018 - FY2020 3 year average of capex as a % of revenue for MGM Resorts? Answer in units of "
     "percents and round to one decimal place.", "capex as a percentage of revenue", "average", [2018, 2019, 2020], "%"),
    ("What is Adobe's year-over-year change in unadjusted operating income from FY2015 to FY2016 (in units of "
     "percents and round to one decimal place)?", "operating income", "percent change", [2015, 2016], "%"),
    ("How much has the effective tax rate of Corning changed between FY2021 and FY2022?", "effective tax rate",
     "change", [2021, 2022], "%"),
    ("What is the FY2021 capital expenditure amount (in USD billions) for PepsiCo?", "capital expenditures", "value",
     [2021], "USD billions"),
    ("According to the P&L statement, what is the FY2015 depreciation and amortization (D&A from cash flow "
     "statement) % margin for AMD?", "depreciation and amortization as a % of revenue", "value", [2015], "%"),
    ("What is the FY2019 fixed asset turnover ratio for Activision Blizzard? Fixed asset turnover ratio is defined "
     "as: FY2019 revenue / (average PP&E between FY2018 and FY2019).", "fixed asset turnover", "value", [2019],
     "ratio"),
])
def test_metric_mode_years_and_unit_are_read_from_the_question(question, metric, mode, years, unit):
    plan = plan_metric(question)
    assert (plan.metric, plan.mode, plan.years, plan.unit) == (metric, mode, years, unit)


def test_an_average_and_a_change_show_each_year():
    plan = plan_metric("What is the FY2017 - FY2019 3 year average of capex as a % of revenue for Activision?")
    assert list(plan.parts()) == ["fiscal 2017", "fiscal 2018", "fiscal 2019"]
    values = {"capital_expenditures_2017": 155, "revenue_2017": 7017, "capital_expenditures_2018": 131,
              "revenue_2018": 7500, "capital_expenditures_2019": 116, "revenue_2019": 6489}
    assert round(evaluate(plan.expression, values), 1) == 1.9  # FinanceBench's reference
    change = plan_metric("What is Adobe's year-over-year change in operating income from FY2015 to FY2016 in %?")
    assert change.base_unit == "USD" and change.unit == "%"


@pytest.mark.parametrize("question", [
    "What is Apple's FY2022 revenue from the Services segment?",  # narrower than the statement line
    "What is Apple's FY2022 diluted earnings per share?",  # not in the library
    "What is Netflix's FY2022 adjusted EBITDA margin?",  # non-GAAP: not the statements' EBITDA
    "What was Coca-Cola's FY2023 organic revenue growth?",
    "What is the operating margin for 3M?",  # no fiscal year: the model must say which
    "What was the largest liability in American Express's Balance Sheet in 2022?",
])
def test_questions_the_library_does_not_cover_get_no_plan(question):
    assert plan_metric(question) is None or not is_metric_question(question)


def test_replies_are_mapped_to_the_plan_and_costs_are_positive():
    plan = plan_metric("What is the FY2020 free cash flow for General Mills? Answer in USD millions.")
    reply = {"figures": [{"name": "Cash From Operations 2020", "evidence": 1, "value": "3,676.2"},
                         {"name": "capital_expenditures_2020", "evidence": 1, "value": "(460.8)"},
                         {"name": "revenue_2020", "evidence": 1, "value": "17,626.6"}],
             "expression": "revenue_2020 * 2", "sufficient": False}  # the model's expression is never used
    data, zeros = apply_plan(plan, reply)
    assert data["expression"] == "cash_from_operations_2020 - capital_expenditures_2020" and zeros == []
    assert [(f["name"], f["value"]) for f in data["figures"]] == [("cash_from_operations_2020", "3,676.2"),
                                                                  ("capital_expenditures_2020", "460.8")]
    missing, _ = apply_plan(plan, {"figures": reply["figures"][:1]})
    assert missing == {"sufficient": False, "figures": [], "missing": "capital_expenditures_2020"}


def test_an_optional_figure_not_found_is_zero_and_said_so():
    plan = plan_metric("What is Verizon's FY2022 quick ratio?")
    reply = {"figures": [{"name": "cash_and_equivalents_2022", "value": "2,605"},
                         {"name": "accounts_receivable_2022", "value": "25,332"},
                         {"name": "total_current_liabilities_2022", "value": "50,171"}], "missing": []}
    data, zeros = apply_plan(plan, reply)
    assert zeros == ["short_term_investments_2022"]
    for nil in (0, "0", "\u2014", "n/a"):  # what a model writes for a line the balance sheet does not have
        given = {"figures": reply["figures"] + [{"name": "short_term_investments_2022", "value": nil}]}
        assert apply_plan(plan, given)[1] == ["short_term_investments_2022"]
    assert data["expression"] == ("(cash_and_equivalents_2022 + 0 + accounts_receivable_2022) / "
                                  "total_current_liabilities_2022")


def test_a_library_with_a_bad_formula_or_alias_is_a_config_error(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "bad.yaml").write_text(
        "items:\n  revenue: {label: revenue, statement: income statement}\n"
        "metrics:\n  - {name: x, aliases: ['x'], formula: revenue / ebitda}\n")
    with pytest.raises(ConfigError, match="'ebitda' is not a line item"):
        load_metric_library("bad", extra_dirs=[tmp_path])
    (tmp_path / "metrics" / "bad2.yaml").write_text(
        "items:\n  revenue: {label: revenue, statement: income statement, aliases: ['(unclosed']}\nmetrics: []\n")
    with pytest.raises(ConfigError, match="not a valid regex"):
        load_metric_library("bad2", extra_dirs=[tmp_path])
    (tmp_path / "metrics" / "bad3.yaml").write_text(
        "items:\n  revenue: {label: revenue, statement: income statement, parts: [cash]}\n"
        "  cash: {label: cash, statement: balance sheet}\nmetrics: []\n")
    with pytest.raises(ConfigError, match="part 'cash' is not a line item of its statement"):
        load_metric_library("bad3", extra_dirs=[tmp_path])


# --------------------------------------------------------------------------- figures read from statement tables


def _statement(parsed, name: str, page: int) -> list:
    """The chunks of a statement page as retrieval shows them: each with the page's heading as its context."""
    from filinglens.agents.evidence import EvidenceItem
    from filinglens.retrieval.chunking import chunk_filing
    from filinglens.retrieval.statements import heading_of

    chunks = [c for c in chunk_filing(parsed(f"pdf/{name}.pdf")) if c.page == page]
    heading = heading_of("\n".join(c.text for c in chunks))
    return [EvidenceItem(f"{name}-{c.seq}", c.text, c.item, f"{name}, page {c.page}", context=heading)
            for c in chunks]


def test_walmart_2018_dpo_figures_are_read_from_the_statements_by_row_and_year(parsed):
    """Walmart FY2018: income statement (page 56) and balance sheet (page 58); FinanceBench's DPO is 42.69."""
    from filinglens.agents.metrics import read_from_tables

    plan = plan_metric(WMT_DPO)
    used = _statement(parsed, "WALMART_2018_10K", 56) + _statement(parsed, "WALMART_2018_10K", 58)
    found = read_from_tables(plan, used)
    assert {k: v["value"] for k, v in found.items()} == {
        "accounts_payable_2018": "46,092", "accounts_payable_2017": "41,433", "cost_of_revenue_2018": "373,396",
        "inventory_2018": "43,783", "inventory_2017": "43,046"}
    assert found["cost_of_revenue_2018"]["quote"] == "Cost of sales | 373,396 | 361,256 | 360,984"
    values = {k: float(v["value"].replace(",", "")) for k, v in found.items()}
    assert round(evaluate(plan.expression, values), 2) == 42.69


def test_pepsico_2022_operating_profit_is_not_confused_with_net_income(parsed):
    """PepsiCo FY2022 (page 61): 'Operating Profit' 11,512; the model had taken net income, 8,978."""
    from filinglens.agents.metrics import read_from_tables

    plan = plan_metric("What is the FY2022 unadjusted EBITDA % margin for PepsiCo?")
    found = read_from_tables(plan, _statement(parsed, "PEPSICO_2022_10K", 61))
    assert found["operating_income_2022"]["value"] == "11,512" and found["revenue_2022"]["value"] == "$86,392"
    assert "depreciation_amortization_2022" not in found  # a cash-flow line is not read from the income statement


def test_amd_2015_cash_flow_changes_are_not_read_as_balances(parsed):
    """AMD FY2015's cash flow statement (page 59) prints 'Accounts receivable | 280 | 7 | (200)' -- a change."""
    from filinglens.agents.metrics import read_from_tables

    used = _statement(parsed, "AMD_2015_10K", 59)
    assert read_from_tables(plan_metric("What is AMD's FY2015 quick ratio?"), used) == {}
    da = read_from_tables(plan_metric("What is the FY2015 depreciation and amortization % margin for AMD?"), used)
    assert da["depreciation_amortization_2015"]["value"] == "167"


@pytest.mark.parametrize("question, metric, years, test", [
    ("Does American Water Works have positive working capital based on FY2022 data? If working capital is not a "
     "useful or relevant metric for this company, then please state that and explain why.", "net working capital",
     [2022], "> 0"),
    ("Does Verizon have a reasonably healthy liquidity profile based on its quick ratio for FY 2022?", "quick ratio",
     [2022], ">= 1"),
    ("Does Boeing have an improving gross margin profile as of FY2022? If gross margin is not a useful metric for a "
     "company like this, then state that and explain why.", "gross margin", [2021, 2022], "> 0"),
    ("Has AMCOR's quick ratio improved or declined between FY2023 and FY2022?", "quick ratio", [2022, 2023],
     "direction"),
    ("Has Netflix's operating margin declined in FY2017?", "operating margin", [2016, 2017], "< 0"),
    ("Has 3M reduced its debt-to-equity ratio between FY2021 and FY2022?", "debt to equity ratio", [2021, 2022],
     "< 0"),
    ("Has Verizon increased its debt on balance sheet between 2022 and the 2021 fiscal period?", "total debt",
     [2021, 2022], "> 0"),
])
def test_yes_no_questions_a_metric_decides_are_planned_with_their_test(question, metric, years, test):
    from filinglens.agents.metrics import plan_judgement

    plan = plan_judgement(question)
    assert (plan.metric, plan.years, plan.test) == (metric, years, test)
    assert plan.verdict(-0.5) in ("No", "Yes", "Declined")


@pytest.mark.parametrize("question", [
    "Is Boeing's business subject to cyclicality?",
    "Does AMEX have an improving operating margin profile?",  # no fiscal year
    "Has CVS Health reported any materially important ongoing legal battles from 2022, 2021 and 2020?",  # no metric
    "Does Pfizer's FY2019 10-K mention gross margin?",  # no test of the value
    "Has Pfizer's FY2019 adjusted operating margin improved?",  # non-GAAP
])
def test_yes_no_questions_no_metric_decides_are_left_to_the_model(question):
    from filinglens.agents.metrics import plan_judgement

    assert plan_judgement(question) is None


def test_mgm_2020_unlabelled_revenue_total_is_read_as_total_revenues(parsed):
    """MGM Resorts FY2020 (page 64) prints its revenue total without a label, under the section 'Revenues'."""
    from filinglens.agents.metrics import read_from_tables

    plan = plan_metric("What is the FY2018 - FY2020 3 year average of capex as a % of revenue for MGM Resorts?")
    found = read_from_tables(plan, _statement(parsed, "MGMRESORTS_2020_10K", 64))
    assert {k: v["value"] for k, v in found.items() if k.startswith("revenue")} == {
        "revenue_2018": "11,763,096", "revenue_2019": "12,899,672", "revenue_2020": "5,162,082"}
    assert found["revenue_2020"]["quote"] == "5,162,082 | 12,899,672 | 11,763,096"


@pytest.mark.parametrize("name, page, year, chosen, values", [
    ("NIKE_2023_10K", 61, 2023, "operating activities", {"cash_from_operations_2023": "5,841",
                                                         "cash_from_investing_2023": "564",
                                                         "cash_from_financing_2023": "(7,447)"}),
    ("BESTBUY_2023_10K", 41, 2023, "operating activities", {"cash_from_operations_2023": "1,824",
                                                            "cash_from_investing_2023": "(962)",
                                                            "cash_from_financing_2023": "(1,806)"}),
])
def test_which_activity_brought_in_the_most_cash_is_read_and_chosen(parsed, name, page, year, chosen, values):
    """Nike FY2023 labels its total 'Cash provided (used) by operations'; Best Buy 'Total cash provided by ...'."""
    from filinglens.agents.compute import read_amount
    from filinglens.agents.metrics import plan_choice, read_from_tables

    company = name.split("_")[0].title()
    plan = plan_choice(f"Among operations, investing, and financing activities, which brought in the most (or lost "
                       f"the least) cash flow for {company} in FY{year}?")
    found = read_from_tables(plan, _statement(parsed, name, page))
    assert {k: v["value"] for k, v in found.items()} == values
    assert plan.choose({k: read_amount(v).value for k, v in values.items()}) == chosen
    assert plan_choice(f"Among operations, investing, and financing activities, which used the least cash for "
                       f"{company} in FY{year}?").pick == "min"


def test_a_choice_is_answered_with_the_chosen_option_and_every_options_value(parsed, tmp_path):
    from filinglens.agents.models import get_chat_model
    from filinglens.agents.qa import answer_question
    from filinglens.evals.qa_eval import score_answer
    from filinglens.store import Store

    question = ("Among operations, investing, and financing activities, which brought in the most (or lost the least) "
                "cash flow for Best Buy in FY2023?")
    answer = answer_question(question, _statement(parsed, "BESTBUY_2023_10K", 41), store=Store(tmp_path / "r.db"),
                             model_id="fake", model=get_chat_model("fake", responses=["not JSON"]))
    assert answer.prompt == "qa@figures-v1" and answer.tokens_in == 0
    assert answer.answer.startswith("Operating activities. $1,824 million. Cash flow by activity, fiscal 2023: the "
                                    "largest of operating activities, investing activities and financing activities "
                                    "(metrics@v1). operating activities: $1,824 million; investing "
                                    "activities: \u2212$962 million; financing activities: \u2212$1,806 million.")
    assert answer.numbers()["all_traced"] is True and len(answer.citations) == 3  # every option cited
    reference = "Best Buy generated the most cash flow from operating activities in FY 2023 ($1.8 bn)"
    scored = f"{answer.calculation['verdict']}. {answer.calculation['result']}. {answer.calculation['parts']}"
    assert score_answer(reference, scored, question)["correct"]


def test_a_statement_chunk_search_found_without_its_heading_is_read_with_it(parsed, tmp_path):
    """Nike FY2023: search returned the cash flow statement's chunks bare (no heading); the statement pages
    give them their heading, so their rows are read (the model had taken 'Purchases of short-term investments')."""
    from filinglens.agents.models import get_chat_model
    from filinglens.agents.qa import answer_question
    from filinglens.store import Store

    question = ("Among operations, investing, and financing activities, which brought in the most (or lost the least) "
                "cash flow for Nike in FY2023?")
    pages = _statement(parsed, "NIKE_2023_10K", 61)
    bare = [dataclasses.replace(e, context="") for e in pages]
    answer = answer_question(question, bare, store=Store(tmp_path / "r.db"), model_id="fake",
                             model=get_chat_model("fake", responses=["not JSON"]), statements=lambda keys: pages)
    assert answer.answer.startswith("Operating activities. $5,841 million.") and answer.tokens_in == 0
    assert [e["chunk_id"] for e in answer.evidence] == [e.chunk_id for e in pages]  # no duplicates joined


def test_corning_2022_tax_row_with_a_note_reference_split_into_a_cell_is_read(parsed):
    """Corning FY2022 (page 57) prints 'Provision for income taxes (Note | 7) | (411) | (491) | (111)'."""
    from filinglens.agents.metrics import read_from_tables

    plan = plan_metric("How much has the effective tax rate of Corning changed between FY2021 and FY2022?")
    found = read_from_tables(plan, _statement(parsed, "CORNING_2022_10K", 57))
    assert {k: v["value"] for k, v in found.items()} == {
        "income_tax_expense_2022": "(411)", "income_before_taxes_2022": "1,797",
        "income_tax_expense_2021": "(491)", "income_before_taxes_2021": "2,426"}
    data, _ = apply_plan(plan, {"figures": list(found.values())})
    values = {f["name"]: float(str(f["value"]).replace(",", "")) for f in data["figures"]}
    assert [round(evaluate(plan.per_year[y], values), 1) for y in (2021, 2022)] == [20.2, 22.9]  # the reference: 20%, 23%


AMEX_OPERATING_MARGIN = ("Does AMEX have an improving operating margin profile as of 2022? If operating margin is not a "
                         "useful metric for a company like this, then state that and explain why.")


def test_american_express_2022_operating_margin_is_not_useful_for_a_lender(parsed, tmp_path):
    """American Express FY2022 (income statement, page 96): no operating income line, net interest income and
    provisions for credit losses instead; the question allows 'not a useful metric', so that is the answer,
    with the row cited and no model call (the 1.5B model had quoted 'Net income' for revenue and operating income)."""
    from filinglens.agents.models import get_chat_model
    from filinglens.agents.qa import answer_question
    from filinglens.store import Store

    pages = _statement(parsed, "AMERICANEXPRESS_2022_10K", 95)
    answer = answer_question(AMEX_OPERATING_MARGIN, pages[:1], store=Store(tmp_path / "r.db"), model_id="fake",
                             model=get_chat_model("fake", responses=["not JSON"]), statements=lambda keys: pages)
    assert answer.sufficient and answer.tokens_in == 0
    assert answer.answer.startswith("Operating margin is not a useful metric for this company: it is a lender, whose "
                                    "income statement reports net interest income rather than operating income.")
    [cite] = answer.citations
    assert cite.verified and cite.quote.startswith("Net interest income | 9,895")
    # without the clause that allows it, the metric is computed (here: asked of the model, which fails)
    plain = answer_question(AMEX_OPERATING_MARGIN.split("?")[0] + "?", pages[:1], store=Store(tmp_path / "s.db"),
                            model_id="fake", model=get_chat_model("fake", responses=["not JSON"]),
                            statements=lambda keys: pages)
    assert "not a useful metric" not in plain.answer and plain.tokens_in > 0


def test_a_seller_is_never_told_its_margin_is_not_useful(parsed):
    """Walmart FY2018's income statement (page 56) has cost of sales and operating income: no lender reason."""
    from filinglens.agents.metrics import not_useful_reason

    question = ("Does Walmart have an improving gross margin profile as of FY2018? If gross margin is not a useful "
                "metric for a company like this, then state that and explain why.")
    plan = plan_metric(question)
    assert plan is not None and not_useful_reason(question, plan, _statement(parsed, "WALMART_2018_10K", 56)) is None


def test_two_line_items_quoted_from_one_row_are_refused(parsed, tmp_path):
    """The model's reply for American Express's operating margin (eval qa, session 6): 'Net income' quoted for
    both revenue and operating income.  One row cannot be two line items: refused, never computed (it was 100%)."""
    from filinglens.agents.models import get_chat_model
    from filinglens.agents.qa import answer_question
    from filinglens.store import Store

    row = "Net income | $7,514 | $8,060 | $3,135"
    reply = {"figures": [{"name": n, "evidence": 1, "quote": row, "value": v} for n, v in (
        ("operating_income_2022", "7,514"), ("revenue_2022", "8,060"), ("operating_income_2021", "8,060"),
        ("revenue_2021", "8,060"))]}
    pages = _statement(parsed, "AMERICANEXPRESS_2022_10K", 95)
    answer = answer_question("What is American Express's operating margin change from FY2021 to FY2022?", pages,
                             store=Store(tmp_path / "r.db"), model_id="fake",
                             model=get_chat_model("fake", responses=[json.dumps(reply)]))
    assert not answer.sufficient and answer.tokens_in > 0
    assert "two line items quoted from the same row" in answer.refusal and "net income" in answer.refusal


@pytest.mark.parametrize("question,doc,page,answer", [
    ("Has Verizon increased its debt on balance sheet between 2022 and the 2021 fiscal period?",
     "VERIZON_2022_10K", 55, "No. \u2212$229 million. Total debt, fiscal 2022 \u2212 fiscal 2021"),
    ("Has Microsoft increased its debt on balance sheet between FY2023 and the FY2022 period?",
     "MICROSOFT_2023_10K", 59, "No. \u2212$2,544 million. Total debt, fiscal 2023 \u2212 fiscal 2022"),
])
def test_debt_increase_is_judged_from_the_balance_sheets_debt_lines(parsed, tmp_path, question, doc, page, answer):
    """Verizon FY2022 ('Debt maturing within one year' + 'Long-term debt') and Microsoft FY2023 ('Current portion
    of long-term debt' + 'Long-term debt'): total debt in both years from the balance sheet, no model call (the
    1.5B model had answered 'Yes' to both; FinanceBench: decreased by $229 million and by $2.5 billion)."""
    from filinglens.agents.models import get_chat_model
    from filinglens.agents.qa import answer_question
    from filinglens.store import Store

    pages = _statement(parsed, doc, page)
    got = answer_question(question, pages, store=Store(tmp_path / "r.db"), model_id="fake",
                          model=get_chat_model("fake", responses=["not JSON"]))
    assert got.answer.startswith(answer) and got.tokens_in == 0 and got.numbers()["all_traced"]


def test_boeing_2022_cost_of_revenue_printed_as_products_and_services_is_their_sum(parsed):
    """Boeing FY2022 (income statement, page 55) prints 'Cost of products' and 'Cost of services' and no total:
    the cost of revenue is their sum, each a quoted row (the model had taken the cost of products alone)."""
    from filinglens.agents.metrics import read_from_tables, read_parts

    plan = plan_metric("What is Boeing's FY2022 gross margin?")
    pages = _statement(parsed, "BOEING_2022_10K", 54)
    found = read_from_tables(plan, pages)
    assert "cost_of_revenue_2022" not in found
    split, found = read_parts(plan, pages, found)
    assert split.expression == "(revenue_2022 - (cost_of_products_2022 + cost_of_services_2022)) / revenue_2022 * 100"
    assert [f.name for f in split.figures] == ["revenue_2022", "cost_of_products_2022", "cost_of_services_2022"]
    assert {k: v["value"] for k, v in found.items()} == {
        "revenue_2022": "66,608", "cost_of_products_2022": "(53,969)", "cost_of_services_2022": "(9,109)"}
    data, _ = apply_plan(split, {"figures": list(found.values())})
    values = {f["name"]: float(str(f["value"]).replace(",", "")) for f in data["figures"]}
    assert round(evaluate(split.expression, values), 1) == 5.3  # FinanceBench: 5.3% in FY2022
    assert read_parts(plan, pages, {**found, "cost_of_revenue_2022": {}})[0] is plan  # a total read: no split


def test_verizon_2022_receivables_are_read_net_of_the_allowance(parsed):
    """Verizon FY2022 (balance sheet, page 56) prints 'Accounts receivable' 25,332, the allowance, then
    'Accounts receivable, net' 24,506: the net line is the item (quick ratio 0.54, as FinanceBench; 0.56 before)."""
    from filinglens.agents.metrics import read_from_tables

    plan = plan_metric("What is Verizon's FY2022 quick ratio?")
    found = read_from_tables(plan, _statement(parsed, "VERIZON_2022_10K", 55))
    assert found["accounts_receivable_2022"]["value"] == "24,506"
    assert found["accounts_receivable_2022"]["quote"].startswith("Accounts receivable, net")


@pytest.mark.parametrize("doc,page,question,expected", [
    # "INCOME STATEMENTS", not "Statements of Income": the page was not taken for a statement
    ("MICROSOFT_2023_10K", 57, "What is Microsoft's FY2023 effective tax rate?",
     {"income_tax_expense_2023": "16,950", "income_before_taxes_2023": "89,311"}),
    # per-share lines named like the amount ("Net income attributable to Pfizer Inc. common shareholders | $3.85"),
    # "provision/(benefit) for taxes on income" after "Income from continuing operations before"
    ("PFIZER_2021_10K", 56, "What is Pfizer's FY2021 effective tax rate?",
     {"income_tax_expense_2021": "1,852", "income_before_taxes_2021": "24,311"}),
    ("PFIZER_2021_10K", 56, "What is Pfizer's FY2021 net income?", {"net_income_2021": "$21,979"}),
    # "Income/(loss) before income taxes", "Provision for/(benefit from) income taxes", "Net income/(loss) ..."
    ("KRAFTHEINZ_2019_10K", 49, "What is Kraft Heinz's FY2019 effective tax rate?",
     {"income_tax_expense_2019": "728", "income_before_taxes_2019": "2,661"}),
])
def test_income_statement_wordings_of_dev_filings_are_read(parsed, doc, page, question, expected):
    from filinglens.agents.metrics import read_from_tables

    found = read_from_tables(plan_metric(question), _statement(parsed, doc, page))
    assert {k: v["value"] for k, v in found.items()} == expected
