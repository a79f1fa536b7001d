"""Item segmentation against the item-boundary gold (19 real 10-Ks, 214 body items)."""

from __future__ import annotations

import pytest

from filinglens.evals.parser_gold import GoldScore, load_gold, score_filing


@pytest.fixture(scope="module")
def gold(shared):
    return load_gold(shared / "gold" / "items_gold.json")


@pytest.fixture
def filings(parsed, gold):
    return {name: parsed(f"html/{name}") for name in gold}


def test_gold_body_items_at_least_99_percent_and_no_absent_item_reported(gold, filings):
    total = GoldScore()
    for name, entry in gold.items():
        total.add(score_filing(filings[name], entry, name))
    assert total.body_total == 214
    assert total.accuracy >= 0.99, total.misses
    assert total.absent_reported == 0, total.misses


def test_gold_statuses_agree(gold, filings):
    """Body/stub/absent agree with gold for at least 98% of all items."""
    agree = total = 0
    wrong = []
    for name, entry in gold.items():
        for g in entry["items"]:
            total += 1
            ours = filings[name].items[g["item"]].status
            agree += ours == g["status"]
            if ours != g["status"]:
                wrong.append((name, g["item"], g["status"], ours))
    assert agree / total >= 0.98, wrong


def test_gold_metadata(gold, filings):
    for name, entry in gold.items():
        filing = filings[name]
        assert filing.form == "10-K"
        if entry["cik"]:
            assert filing.cik == entry["cik"]
        assert filing.company
        year = int(entry["fiscal_year_end"].strip()[-4:])
        # 52/53-week and January year-ends: the fiscal year is the one the filing names
        assert filing.fiscal_year in (year, year - 1), (name, filing.fiscal_year)


def test_item_offsets_point_into_the_document_text(filings):
    """Every block of every item maps back to the exact characters of Filing.text."""
    for filing in filings.values():
        for item in filing.present_items():
            for block in item.blocks:
                piece = item.text[block.start : block.end]
                assert filing.text[block.source_start : block.source_start + len(piece)] == piece


def test_tables_are_kept_apart_from_narrative(filings):
    filing = filings["aapl-10-k-2024-11-01.html"]
    item8 = filing.items["8"]
    assert len(item8.tables) > 10
    assert all(isinstance(cell, str) for row in item8.tables[0] for cell in row)
    assert "|" not in item8.narrative.split("\n")[0]
    # dollar signs printed in their own cell are glued to the figure
    assert any(cell.startswith("$") and any(ch.isdigit() for ch in cell) for t in item8.tables for row in t for cell in row)
