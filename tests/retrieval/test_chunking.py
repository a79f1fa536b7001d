"""Chunking: exact spans, text and tables apart, paragraph boundaries, pages, captions, gaps, ids."""

from __future__ import annotations

import pytest

from filinglens.retrieval.chunking import Chunk, chunk_filing, chunk_id, chunk_item
from filinglens.retrieval.filing import Block, Filing, Item


def build_item(parts: list[tuple[str, str] | tuple[str, str, int]], item: str = "7", title: str = "MD&A") -> Item:
    """An item from (kind, text[, page]) parts; blocks separated by a blank line."""
    text, blocks = "", []
    for part in parts:
        kind, body = part[0], part[1]
        page = part[2] if len(part) > 2 else None
        if text:
            text += "\n\n"
        start = len(text)
        text += body
        rows = [line.split(" | ") for line in body.splitlines()] if kind == "table" else None
        blocks.append(Block(kind, start, len(text), rows=rows, page=page))
    return Item(item=item, title=title, part="II", status="body", text=text, blocks=blocks)


def build_filing(items: list[Item], cover: str = "", tail: str = "", page_starts=None) -> Filing:
    text = cover
    for it in items:
        if text:
            text += "\n\n"
        it.start = len(text)
        text += it.text
        it.end = len(text)
    if tail:
        text += "\n\n" + tail
    return Filing(
        company="Acme Corp", cik="0000001234", form="10-K", fiscal_year=2023, period_end="2023-12-31",
        source="acme.html", source_type="html", content_hash="abc", text=text,
        items={it.item: it for it in items}, ticker="ACME", page_starts=page_starts or [],
    )


PARA = ("Net sales grew in every segment because demand for widgets was strong. " * 4).strip()  # ~290 chars


def assert_exact(filing: Filing, chunks: list[Chunk]) -> None:
    for c in chunks:
        source = filing.items[c.item].text if c.item in filing.items else filing.text
        assert source[c.start : c.end] == c.text
        if c.filing_start is not None:
            assert filing.text[c.filing_start : c.filing_end] == c.text
        assert c.text == c.text.strip() and c.text


def test_chunks_are_exact_spans_packed_from_whole_paragraphs():
    item = build_item([("text", f"Paragraph {n}. " + PARA) for n in range(10)])
    filing = build_filing([item])
    chunks = chunk_filing(filing, 1000)
    assert_exact(filing, chunks)
    starts = {b.start for b in item.blocks}
    ends = {b.end for b in item.blocks}
    assert len(chunks) >= 3
    for c in chunks:
        assert c.start in starts and c.end in ends  # boundaries are paragraph boundaries
        assert len(c.text) <= 1000
    assert [c.seq for c in chunks] == list(range(len(chunks)))


def test_narrative_and_tables_are_chunked_separately_and_captions_stay_with_tables():
    table = "Region | 2023 | 2022\nNorth America | $250 | $240\nEurope | $160 | $140"
    item = build_item([
        ("text", "Net sales increased 8% to $410 million, driven by higher volumes in Europe."),
        ("text", "The following table shows net sales by region (in millions):"),
        ("table", table),
        ("text", "Europe grew faster than North America. " * 3),
    ])
    filing = build_filing([item])
    chunks = chunk_filing(filing, 1000)
    assert_exact(filing, chunks)
    kinds = [(c.kind, c.text.split("\n")[0][:20]) for c in chunks]
    assert kinds == [("text", "Net sales increased "), ("table", "The following table "), ("text", "Europe grew faster t")]
    assert chunks[1].text.endswith("$140")


def test_labels_between_table_rows_belong_to_the_table():
    item = build_item([
        ("table", "Cash | 85 | 116\nReceivables | 334 | 271"),
        ("text", "Current assets:"),
        ("table", "Inventory | 98 | 57\nTotal current assets | 1,250 | 1,554"),
        ("text", "The accompanying notes are an integral part of these statements."),
    ])
    chunks = chunk_filing(build_filing([item]), 1000)
    assert [c.kind for c in chunks] == ["table", "text"]
    assert "Current assets:" in chunks[0].text and "Total current assets" in chunks[0].text


def test_long_paragraphs_split_at_sentences_and_long_tables_at_rows():
    sentence = "The company recorded an impairment of goodwill in the fourth quarter. "
    table = "\n".join(f"Line item {n} | {n * 10} | {n * 11}" for n in range(120))
    item = build_item([("text", (sentence * 40).strip()), ("table", table)])
    filing = build_filing([item])
    chunks = chunk_filing(filing, 600)
    assert_exact(filing, chunks)
    text_chunks = [c for c in chunks if c.kind == "text"]
    table_chunks = [c for c in chunks if c.kind == "table"]
    assert len(text_chunks) >= 4 and len(table_chunks) >= 4
    assert all(c.text.endswith(".") for c in text_chunks)
    assert all(c.text.startswith("Line item") for c in table_chunks)
    assert all(len(c.text) <= 600 * 5 // 4 for c in chunks)


def test_a_heading_stays_with_the_paragraph_it_introduces():
    item = build_item([("text", PARA), ("text", PARA), ("text", "Liquidity and Capital Resources"), ("text", PARA)])
    chunks = chunk_filing(build_filing([item]), 700)
    heading_chunk = next(c for c in chunks if "Liquidity and Capital" in c.text)
    assert heading_chunk.text.startswith("Liquidity and Capital Resources")


def test_chunks_never_cross_a_page_and_carry_it():
    item = build_item([("text", PARA, 4), ("text", PARA, 4), ("text", PARA, 5), ("table", "a | 1\nb | 2", 5)])
    filing = build_filing([item], page_starts=[0])
    chunks = chunk_filing(filing, 2000)
    assert [(c.kind, c.page) for c in chunks] == [("text", 4), ("text", 5), ("table", 5)]


def test_text_outside_the_items_is_kept_as_cover_and_other():
    cover = "ANNUAL REPORT PURSUANT TO SECTION 13. Securities registered: 1.250% Notes due 2027, NYSE. " * 4
    tail = "Exhibit 21. Subsidiaries of the registrant: Acme Europe GmbH; Acme Asia Ltd. " * 4
    item = build_item([("text", PARA)], item="1", title="Business")
    filing = build_filing([item], cover=cover, tail=tail)
    chunks = chunk_filing(filing, 1000)
    assert [c.item for c in chunks] == ["cover", "1", "other"]
    assert_exact(filing, chunks)
    assert chunks[0].start == chunks[0].filing_start  # pseudo-item offsets are filing offsets
    assert "Notes due 2027" in chunks[0].text


def test_chunk_ids_are_deterministic_and_content_addressed():
    item = build_item([("text", PARA), ("text", "Different text. " * 10)])
    a = chunk_item(item, 1000)
    b = chunk_item(build_item([("text", PARA), ("text", "Different text. " * 10)]), 1000)
    assert [chunk_id("k", c) for c in a] == [chunk_id("k", c) for c in b]
    changed = chunk_item(build_item([("text", PARA), ("text", "Changed text!! " * 10)]), 1000)
    assert chunk_id("k", a[0]) != chunk_id("k", changed[0])
    assert chunk_id("k", a[0]) != chunk_id("other filing", a[0])


def test_rejects_a_silly_size():
    with pytest.raises(ValueError):
        chunk_item(build_item([("text", PARA)]), 10)


@pytest.mark.parametrize("relative", ["html/aapl-10-k-2024-11-01.html", "pdf/NETFLIX_2015_10K.pdf"])
def test_real_filings_chunk_exactly_and_cover_the_text(parsed, relative):
    filing = parsed(relative)
    chunks = chunk_filing(filing, 1000)
    assert_exact(filing, chunks)
    covered = sum(c.filing_end - c.filing_start for c in chunks if c.filing_start is not None)
    assert covered / len(filing.text) > 0.9
    assert {c.kind for c in chunks} == {"text", "table"}
    if filing.source_type == "pdf":
        for c in chunks:
            assert c.page is not None
            assert filing.page_of(c.filing_start) == c.page == filing.page_of(c.filing_end - 1)
