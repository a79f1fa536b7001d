"""The format-neutral intermediate: a document as a flat list of blocks.

HTML, full-submission text and PDF readers all produce ``DocBlock`` lists;
item segmentation (``retrieval.items``) works on those, so every input format
shares one heading detector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WS = re.compile(r"\s+")
# A currency sign or a closing parenthesis / percent sign printed in a cell of its own.
_PREFIX_CELL = re.compile(r"^[\$€£¥(]+$")
_SUFFIX_CELL = re.compile(r"^[)%]+\)?%?$")


@dataclass
class DocBlock:
    """A paragraph (``text``) or table (``table`` with ``rows``) of the source document."""

    kind: str
    text: str
    rows: list[list[str]] | None = None
    page: int | None = None


def collapse(text: str) -> str:
    """Collapse all whitespace (including non-breaking spaces) to single spaces."""
    return _WS.sub(" ", text.replace("\xa0", " ").replace("\u200b", "")).strip()


def clean_row(cells: list[str]) -> list[str]:
    """Drop empty cells and glue ``$``/``(`` to the next cell and ``)``/``%`` to the previous."""
    out: list[str] = []
    carry = ""
    for raw in cells:
        cell = collapse(raw)
        if not cell:
            continue
        if _PREFIX_CELL.match(cell):
            carry += cell
            continue
        if _SUFFIX_CELL.match(cell) and out:
            out[-1] += cell
            continue
        out.append(carry + cell)
        carry = ""
    if carry:
        out.append(carry)
    return out


def render_rows(rows: list[list[str]]) -> str:
    """Render table rows as lines of ``cell | cell``."""
    return "\n".join(" | ".join(row) for row in rows)


_LABEL = re.compile(r"^(?:[•●◦▪■□·\-–—*]|\(?[0-9]{1,2}[.)]|\(?[a-zA-Z][.)]|\(?[ivx]{1,4}[.)]|items?\s*\d{1,2}\s*[A-Ca-c]?(?:\s*\([Tt]\))?\s*[.:\-–—]?)$", re.I)


def table_blocks(rows: list[list[str]], page: int | None = None) -> list[DocBlock]:
    """Classify a cleaned table: layout tables become paragraphs, data tables stay tables.

    A table whose rows hold a single cell, or a short label (bullet, "(1)",
    "Item 1A.") and one text cell, is layout, not data: each row becomes a
    paragraph, so headings laid out as ``Item 1. | Business`` are found.
    """
    rows = [r for r in rows if r]
    if not rows:
        return []
    layout = all(len(r) == 1 or (len(r) == 2 and _LABEL.match(r[0])) for r in rows)
    if layout:
        return [DocBlock("text", " ".join(r), page=page) for r in rows]
    return [DocBlock("table", render_rows(rows), rows=rows, page=page)]
