"""The statement-table reader checked against the filings' own inline XBRL (evals/xbrl_gold.py).

Each filing below once read a figure wrong or not at all; the regression is named after it.
"""
from __future__ import annotations

import pytest

from filinglens.evals.xbrl_gold import check_filing, gold_values, read_facts, same_figure


def _html(shared, name):
    return shared / "filings" / "html" / name


def test_xbrl_facts_of_apple_fy2024(shared):
    facts = read_facts(_html(shared, "aapl-10-k-2024-11-01.html"))
    assert facts.fiscal_year == 2024 and str(facts.period_end) == "2024-09-28"
    assert gold_values(facts, "revenue", balance=False) == [391_035e6]
    assert gold_values(facts, "total_current_assets", 1, balance=True) == [143_566e6]
    assert gold_values(facts, "inventory", balance=True) == [7_286e6]
    assert same_figure(391_035, 391_035e6) and not same_figure(391_036, 391_035e6)


def test_a_filing_without_inline_xbrl_has_no_facts(shared):
    assert read_facts(_html(shared, "medicis-10-k-fy1999-0000950153-99-001234.html")) is None


@pytest.mark.parametrize("name,expected", [
    # fiscal 2024 ends February 2, 2025: the balance sheet's "February 2, 2025" column is fiscal 2024
    ("hd-10-k-2025-03-21.html", {("total_current_assets", 0): 31_683, ("accounts_payable", 1): 10_037}),
    # statements after the auditor's report (the heading chunk opened with the report's last words), and a
    # cash flow statement over five chunks
    ("nflx-10-k-2025-01-27.html", {("revenue", 0): 39_000_966, ("cash_from_financing", 0): -4_074_427}),
    # the income statement's last rows share a chunk with the next statement's heading
    ("adbe-10-k-2025-01-13.html", {("net_income", 0): 5_560, ("income_before_taxes", 1): 6_799,
                                   ("total_equity", 0): 14_105}),
    # the income statement and the comprehensive income statement's heading in one chunk: the first heading
    # was passed over for the last (Alphabet's income statement was not found)
    ("googl-10-k-2025-02-05.html", {("revenue", 0): 350_018, ("cost_of_revenue", 1): 133_332}),
    # "Current portion of long-term debt | $— | $1,000": a dash is nothing printed, 0 for an optional line
    ("nke-10-k-2025-07-17.html", {("current_portion_long_term_debt", 0): 0.0,
                                  ("current_portion_long_term_debt", 1): 1_000}),
    # a net loss attributable to the company (not to its common shareholders), a loss from operations,
    # a shareholders' deficit
    ("ba-10-k-2025-02-03.html", {("net_income", 0): -11_817, ("operating_income", 0): -10_707,
                                 ("total_equity", 0): -3_908}),
])
def test_table_reader_reads_the_tagged_figures(shared, name, expected):
    reads = check_filing(_html(shared, name))
    by_key = {(r.item, r.years_back): r for r in reads}
    for key, value in expected.items():
        assert by_key[key].read == value, (key, by_key[key])
    wrong = [r for r in reads if r.verdict == "wrong"]
    tagged = [r for r in reads if r.verdict in ("correct", "wrong", "missed")]
    assert not wrong, wrong
    assert sum(r.verdict == "correct" for r in reads) >= 0.8 * len(tagged)
