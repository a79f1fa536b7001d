"""One regression test per filing quirk, named after the filing."""

from __future__ import annotations

import pytest


@pytest.fixture
def html(parsed):
    return lambda name: parsed(f"html/{name}")


@pytest.fixture
def pdf(parsed):
    return lambda name: parsed(f"pdf/{name}")


def test_wfc_2024_items_pointing_to_exhibit_13_are_stubs_with_reference(html):
    f = html("wfc-10-k-2025-02-25.html")
    for item in ("1A", "7", "8", "9A"):
        assert f.items[item].status == "stub", item
        assert f.items[item].reference, item
    assert f.items["1"].status == "body" and len(f.items["1"].text) > 40000


def test_ibm_2024_items_7_and_8_incorporated_by_reference_are_stubs(html):
    f = html("ibm-10-k-2025-02-25.html")
    assert f.items["7"].status == "stub"
    assert f.items["8"].status == "stub"
    assert f.items["1A"].status == "body"


def test_medicis_1999_old_item_scheme_and_colon_headings(html):
    f = html("medicis-10-k-fy1999-0000950153-99-001234.html")
    for absent in ("1A", "1B", "1C", "9A", "9B", "9C", "15", "16"):
        assert f.items[absent].status == "absent", absent
    assert f.items["14"].status == "body"
    assert f.items["10"].status == "stub" and f.items["10"].text == ""  # bare heading
    assert f.fiscal_year == 1999 and f.period_end == "1999-06-30"
    # the power of attorney after Item 14 is not part of it
    assert "attorney" not in f.items["14"].text[-300:].lower()


def test_nvda_fy2023_no_item_1c_and_item_15_holds_the_financial_statements(html):
    f = html("nvda-10-k-fy2023.html")
    assert f.items["1C"].status == "absent"
    assert f.items["8"].status == "stub"
    assert len(f.items["15"].text) > 90000
    assert f.fiscal_year == 2023


def test_aapl_2024_executive_officers_section_is_not_item_4(html):
    f = html("aapl-10-k-2024-11-01.html")
    assert f.items["4"].text == "Not applicable."
    assert f.items["4"].status == "stub"


def test_aapl_2024_running_footer_is_not_text(html):
    f = html("aapl-10-k-2024-11-01.html")
    assert "2024 Form 10-K |" not in f.items["7"].text


def test_googl_2024_heading_without_space_after_item_number(html):
    f = html("googl-10-k-2025-02-05.html")
    assert f.items["1A"].status == "body"
    assert f.items["1A"].title.upper().startswith("RISK FACTORS")


def test_nflx_2024_financial_statements_after_item_16_are_not_item_16(html):
    f = html("nflx-10-k-2025-01-27.html")
    assert f.items["16"].status == "stub"
    assert len(f.items["16"].text) < 100
    assert f.items["8"].status == "stub"


def test_gainsco_2009_item_9a_t_heading_laid_out_as_table(html):
    f = html("gainsco-10-k-fy2009-0001193125-10-073212.html")
    assert f.items["9A"].status == "body"
    assert "control" in f.items["9A"].title.lower()


def test_meta_2024_statement_heading_repeated_on_few_pages_is_content(html):
    f = html("meta-10-k-2025-01-30.html")
    assert f.items["8"].text.startswith("META PLATFORMS, INC.")


def test_unh_2024_auditor_report_date_is_not_taken_for_a_running_footer(html):
    f = html("unh-10-k-2025-02-27.html")
    assert f.items["9A"].text.rstrip().endswith("February 27, 2025")


def test_ma_2024_running_headers_repeating_item_headings(html):
    f = html("ma-10-k-2025-02-12.html")
    for item in ("1", "1A", "7", "8"):
        assert f.items[item].status == "body", item
    item7 = f.items["7"]
    assert len(item7.text) > 30000
    # the heading is not repeated inside the item body
    assert item7.text.count(item7.title) <= 2


def test_v_2024_in_text_item_links_are_not_headings(html):
    f = html("v-10-k-2024-11-13.html")
    assert f.items["1A"].status == "body" and len(f.items["1A"].text) > 40000
    assert f.items["7"].status == "body" and len(f.items["7"].text) > 30000


def test_pfizer_2021_pdf_items_listed_only_in_contents_with_na_are_stubs(pdf):
    f = pdf("PFIZER_2021_10K.pdf")
    assert f.items["1B"].status == "stub"
    assert f.items["4"].status == "stub"
    # "... financial position. ITEM 2. PROPERTIES We own ..." on one PDF text line
    assert f.items["2"].status == "body"
    assert f.items["2"].text.startswith("We own and lease")


def test_americanexpress_2022_pdf_combined_heading_items_10_to_13(pdf):
    f = pdf("AMERICANEXPRESS_2022_10K.pdf")
    assert f.items["10"].status == "body"
    for item in ("11", "12", "13"):
        assert f.items[item].status == "stub"
        assert "Item 10" in (f.items[item].reference or "")


def test_microsoft_2019_pdf_page_top_item_markers_are_not_headings(pdf):
    f = pdf("MICROSOFT_2019_10K.pdf")
    assert f.items["9"].text.strip() == "Not applicable."
    assert f.items["8"].text.startswith("INCOME STATEMENTS")


def test_3m_2016_pdf_letter_spaced_signatures_heading_ends_item_16(pdf):
    f = pdf("3M_2016_10K.pdf")
    assert len(f.items["16"].text) < 2000
