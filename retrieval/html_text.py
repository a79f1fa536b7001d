"""EDGAR HTML / iXBRL to blocks: visible text only, tables kept as rows.

Hidden content (``ix:header``, ``display:none``), scripts and styles are
dropped; source newlines count as spaces (old filings hard-wrap); block tags
end paragraphs; tables become structured rows (layout tables become text).
The iXBRL ``dei:`` cover facts are collected on the way for metadata.
"""

from __future__ import annotations

import re

from lxml import etree

from filinglens.errors import InputError
from filinglens.retrieval.blocks import DocBlock, clean_row, collapse, table_blocks

BLOCK_TAGS = frozenset(
    "p div br tr li ul ol h1 h2 h3 h4 h5 h6 center blockquote pre hr dl dt dd "
    "section article header footer body html form caption title".split()
)
SKIP_TAGS = frozenset("script style head noscript ix:header xbrli:context".split())
_HIDDEN = re.compile(r"display\s*:\s*none", re.I)
_PAGE_BREAK = re.compile(r"page-break-(?:before|after)\s*:\s*always|break-(?:before|after)\s*:\s*page", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_PARSER = etree.HTMLParser(remove_blank_text=False, recover=True, huge_tree=True)
DEI_FACTS = (
    "dei:EntityRegistrantName",
    "dei:EntityCentralIndexKey",
    "dei:DocumentType",
    "dei:DocumentPeriodEndDate",
    "dei:DocumentFiscalYearFocus",
    "dei:TradingSymbol",
)


def _tag(el) -> str:
    tag = el.tag
    return tag.lower() if isinstance(tag, str) else ""


def parse_html(markup: str) -> tuple[list[DocBlock], dict[str, str]]:
    """Return the visible blocks of an HTML document and its ``dei:`` cover facts."""
    markup = _XML_DECL.sub("", markup, count=1)
    try:
        root = etree.fromstring(markup, _PARSER)
        if root is None:
            raise ValueError("no document")
    except (etree.ParserError, ValueError) as exc:
        raise InputError(f"cannot parse HTML: {exc}") from exc
    facts = _dei_facts(root)
    blocks: list[DocBlock] = []
    buf: list[str] = []

    def flush() -> None:
        text = collapse("".join(buf))
        buf.clear()
        if text:
            blocks.append(DocBlock("text", text))

    walker = etree.iterwalk(root, events=("start", "end"))
    skipped: set[int] = set()
    for event, el in walker:
        tag = _tag(el)
        if event == "start":
            if el.tag is etree.Comment and "PAGEBREAK" in (el.text or "").upper():
                flush()
                blocks.append(DocBlock("pagebreak", ""))
            style = (el.get("style") or "") if tag else ""
            if style and _PAGE_BREAK.search(style):
                flush()
                blocks.append(DocBlock("pagebreak", ""))
            if (
                not tag
                or tag in SKIP_TAGS
                or _HIDDEN.search(el.get("style") or "")
                or el.get("hidden") is not None
            ):
                skipped.add(id(el))
                walker.skip_subtree()
                continue
            if tag == "table":
                flush()
                blocks.extend(table_blocks(_table_rows(el)))
                skipped.add(id(el))
                walker.skip_subtree()
                continue
            if tag in BLOCK_TAGS:
                flush()
            if el.text:
                buf.append(el.text)
        else:
            if id(el) not in skipped and tag in BLOCK_TAGS:
                flush()
            if el.tail:
                buf.append(el.tail)
    flush()
    return blocks, facts


def _cell_text(cell) -> str:
    """Text of a table cell; text pieces of nested elements are separated by spaces."""
    if len(cell) == 0:
        return cell.text or ""
    return " ".join(cell.itertext())


def _table_rows(table) -> list[list[str]]:
    rows = []
    for tr in table.xpath("./tr | ./*/tr"):
        row = clean_row([_cell_text(td) for td in tr if _tag(td) in ("td", "th")])
        if row:
            rows.append(row)
    return rows


def _dei_facts(root) -> dict[str, str]:
    facts: dict[str, str] = {}
    for el in root.xpath("//*[starts-with(@name, 'dei:')]"):
        name = el.get("name")
        if name in DEI_FACTS and name not in facts:
            value = collapse(" ".join(el.itertext()))
            if value:
                facts[name] = value
    return facts
