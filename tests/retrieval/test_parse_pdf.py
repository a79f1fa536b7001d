"""10-K PDFs: items on the multi-year APPLE, MICROSOFT and 3M series, fiscal year from the document."""

from __future__ import annotations

import json
import shutil

import pytest

from filinglens.retrieval.parse import parse_filing

SERIES = ("APPLE", "MICROSOFT", "3M")


def _documents(shared):
    rows = [json.loads(line) for line in (shared / "financebench" / "documents.jsonl").read_text().splitlines() if line.strip()]
    return {r["doc_name"]: r for r in rows}


def test_multi_year_series_items_and_fiscal_years(shared, parsed):
    docs = _documents(shared)
    names = sorted(p.stem for p in (shared / "filings" / "pdf").glob("*.pdf") if p.stem.split("_")[0] in SERIES)
    assert len(names) >= 25
    for name in names:
        filing = parsed(f"pdf/{name}.pdf")
        assert filing.source_type == "pdf"
        assert filing.fiscal_year == int(docs[name]["doc_period"]), name
        for item in ("1", "1A", "7", "7A", "8", "9A"):
            assert filing.items[item].status == "body", (name, item)
        assert len(filing.items["1A"].text) > 8000, name
        assert len(filing.items["8"].text) > 50000, name
        # every block knows its page, and pages map back into the text
        for block in filing.items["7"].blocks:
            assert block.page is not None
        assert filing.page_of(filing.items["8"].start) >= filing.page_of(filing.items["7"].start)


def test_fiscal_year_comes_from_the_document_not_the_file_name(shared, tmp_path):
    misleading = tmp_path / "APPLE_1999_10K.pdf"
    shutil.copy(shared / "filings" / "pdf" / "APPLE_2017_10K.pdf", misleading)
    filing = parse_filing(misleading)
    assert filing.fiscal_year == 2017
    assert filing.period_end == "2017-09-30"
    assert filing.company == "Apple Inc."


@pytest.mark.parametrize("name", ["JOHNSON_JOHNSON_2022_10K.pdf"])
def test_johnson_johnson_2022_pdf_52_week_year_ending_in_january_belongs_to_2022(parsed, name):
    filing = parsed(f"pdf/{name}")
    assert filing.period_end.startswith("2023-01")
    assert filing.fiscal_year == 2022
