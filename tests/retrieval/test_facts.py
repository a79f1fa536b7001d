"""Key financial figures from real 10-Ks: iXBRL facts, statement tables for older filings, risk signals."""

from __future__ import annotations

import pytest

from filinglens.retrieval.facts import (
    cached_financials, financials_from_dict, key_financials, parse_ix_number, read_ixbrl, risk_signals,
)
from filinglens.settings import sha256_file

M = 1e6


@pytest.fixture(scope="session")
def figures(shared):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = key_financials(shared / "filings" / "html" / name)
        return cache[name]

    return get


def test_apple_fy2024_from_ixbrl(figures):
    fin = figures("aapl-10-k-2024-11-01.html")
    assert fin.source == "ixbrl" and fin.fiscal_period == "2023-10-01..2024-09-28"
    revenue = fin.get("revenue")
    assert (revenue.current, revenue.prior) == (391_035 * M, 383_285 * M)
    assert revenue.concept == "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax"
    assert revenue.change == pytest.approx(0.0202, abs=1e-4)
    assert (fin.get("net_income").current, fin.get("net_income").prior) == (93_736 * M, 96_995 * M)
    assert fin.get("operating_cash_flow").current == 118_254 * M
    assert fin.get("rnd_expense").current == 31_370 * M
    assert revenue.describe() == ("Revenue 391,035 million (2023-10-01..2024-09-28; prior year 383,285 million, "
                                  "+2.0%) [us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax]")


def test_nvidia_fy2023_and_boeing_losses(figures):
    nvda = figures("nvda-10-k-fy2023.html")
    assert nvda.fiscal_period == "2022-01-31..2023-01-29"
    assert (nvda.get("revenue").current, nvda.get("revenue").prior) == (26_974 * M, 26_914 * M)
    assert (nvda.get("net_income").current, nvda.get("net_income").prior) == (4_368 * M, 9_752 * M)
    ba = figures("ba-10-k-2025-02-03.html")
    assert ba.get("net_income").current == -11_817 * M  # sign="-" on the fact
    assert ba.get("operating_cash_flow").current == -12_080 * M
    assert any("Moody" in s and "downgraded" in s for s in ba.signals["downgrade"])


def test_a_filing_without_ixbrl_falls_back_to_its_statement_tables(figures):
    fin = figures("commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html")
    assert fin.source == "table" and fin.fiscal_period == "FY2015"
    assert (fin.get("revenue").current, fin.get("revenue").prior) == (898_036, 1_172_918)
    assert (fin.get("net_income").current, fin.get("net_income").prior) == (-127_841, -31_201)
    assert (fin.get("operating_cash_flow").current, fin.get("operating_cash_flow").prior) == (72_813, 200_333)
    # the accounting standard's "if substantial doubt exists ..." is not the company's going-concern doubt
    assert "going_concern" not in fin.signals


def test_hypothetical_risks_are_not_signals():
    assert risk_signals("If our credit ratings were to be downgraded, our borrowing costs could increase.") == {}
    assert risk_signals("Any downgrade of our credit ratings could increase our future borrowing costs.") == {}
    got = risk_signals("Our recurring losses raise substantial doubt about our ability to continue as a going "
                       "concern. In July 2025, our rating was downgraded by Standard & Poor's.")
    assert set(got) == {"going_concern", "downgrade"}


@pytest.mark.parametrize("text, fmt, value", [
    ("391,035", "ixt:num-dot-decimal", 391035.0), ("1.234,5", "ixt:num-comma-decimal", 1234.5),
    ("—", "ixt:fixed-zero", 0.0), ("no", "ixt-sec:numwordsen", 0.0), ("12.5", None, 12.5), ("n/a", None, None),
])
def test_ix_number_formats(text, fmt, value):
    assert parse_ix_number(text, fmt) == value


def test_scale_and_sign_attributes():
    doc = b"""<html xmlns="http://www.w3.org/1999/xhtml" xmlns:ix="http://www.xbrl.org/2013/inlineXBRL"
      xmlns:xbrli="http://www.xbrl.org/2003/instance"><body>
      <xbrli:context id="c1"><xbrli:entity><xbrli:identifier scheme="x">1</xbrli:identifier></xbrli:entity>
        <xbrli:period><xbrli:startDate>2024-01-01</xbrli:startDate><xbrli:endDate>2024-12-31</xbrli:endDate>
        </xbrli:period></xbrli:context>
      <ix:nonFraction name="us-gaap:NetIncomeLoss" contextRef="c1" scale="6" sign="-" format="ixt:num-dot-decimal"
        unitRef="usd">1,234</ix:nonFraction></body></html>"""
    [fact] = read_ixbrl(doc)
    assert fact.value == -1_234 * M and fact.days == 365 and not fact.dimensional


def test_figures_are_cached_per_content_hash(shared, tmp_path):
    path = shared / "filings" / "html" / "ibm-10-k-2025-02-25.html"  # statements in Exhibit 13: no figures
    first = cached_financials(path, sha256_file(path))
    assert first.figures == {} and first.source is None
    again = cached_financials(path, sha256_file(path))
    assert again.to_dict() == first.to_dict() == financials_from_dict(first.to_dict()).to_dict()
    with pytest.raises(ValueError):
        cached_financials(path, "../../etc/passwd")
