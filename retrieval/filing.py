"""The parsed filing: a ``Filing`` with its ``Item`` sections, each a sequence of blocks.

Narrative and tables are kept apart: an item's ``blocks`` are either ``text``
paragraphs or ``table`` blocks carrying structured ``rows``.  ``Item.text`` is
the reading-order rendering of all blocks (table rows as ``cell | cell``), and
every block records its character span in ``Item.text`` so that evidence can
be traced back to the exact characters of the filing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

ItemStatus = Literal["body", "stub", "absent"]
BlockKind = Literal["text", "table"]


@dataclass
class Block:
    """A paragraph (``text``) or a table (``table``, with ``rows``) inside an item."""

    kind: BlockKind
    start: int  # offset of the block in Item.text
    end: int
    rows: list[list[str]] | None = None
    page: int | None = None  # 0-based source page (PDFs), when known
    source_start: int | None = None  # offset of the block in Filing.text


@dataclass
class Item:
    """One 10-K Item (``"1A"``) with its title, status, text and blocks."""

    item: str
    title: str
    part: str
    status: ItemStatus
    text: str = ""
    blocks: list[Block] = field(default_factory=list)
    reference: str | None = None  # what a stub points to ("Exhibit 13", "Proxy Statement")
    start: int | None = None  # offset of the item text in Filing.text
    end: int | None = None

    @property
    def narrative(self) -> str:
        """The item's prose without its tables."""
        return "\n".join(self.text[b.start : b.end] for b in self.blocks if b.kind == "text")

    @property
    def tables(self) -> list[list[list[str]]]:
        """The item's tables as lists of rows of cells."""
        return [b.rows or [] for b in self.blocks if b.kind == "table"]

    def to_dict(self, with_blocks: bool = False) -> dict:
        data = {
            "title": self.title,
            "part": self.part,
            "status": self.status,
            "text": self.text,
            "reference": self.reference,
            "tables": self.tables,
        }
        if with_blocks:
            data["blocks"] = [asdict(b) for b in self.blocks]
        return data


@dataclass
class Filing:
    """A parsed 10-K: metadata plus its items keyed by item id in canonical order."""

    company: str | None
    cik: str | None
    form: str
    fiscal_year: int | None
    period_end: str | None  # ISO date when known
    source: str  # path or URL it was read from
    source_type: Literal["html", "text", "pdf"]
    content_hash: str  # sha256 of the source bytes
    text: str  # the whole document text the item offsets refer to
    items: dict[str, Item] = field(default_factory=dict)
    ticker: str | None = None
    accession: str | None = None
    page_starts: list[int] = field(default_factory=list)  # PDFs: offset in ``text`` where each page starts
    # problems found while reading (``retrieval.truncation``): a cut-off file, unreadable PDF pages
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False  # the document is incomplete: ingest refuses it unless told otherwise

    def page_of(self, offset: int) -> int | None:
        """0-based page holding ``offset`` of ``text`` (PDFs only)."""
        if not self.page_starts:
            return None
        import bisect

        return max(0, bisect.bisect_right(self.page_starts, offset) - 1)

    def metadata(self) -> dict:
        """Metadata without the texts (JSON-ready)."""
        return {
            "company": self.company,
            "cik": self.cik,
            "ticker": self.ticker,
            "form": self.form,
            "fiscal_year": self.fiscal_year,
            "period_end": self.period_end,
            "accession": self.accession,
            "source": self.source,
            "source_type": self.source_type,
            "content_hash": self.content_hash,
            "truncated": self.truncated,
            "warnings": list(self.warnings),
        }

    def present_items(self) -> list[Item]:
        """Items that are in the filing (body or stub), in order."""
        return [i for i in self.items.values() if i.status != "absent"]

    def to_dict(self) -> dict:
        return {
            "filing": self.metadata(),
            "items": {key: item.to_dict() for key, item in self.items.items()},
        }


def parse_years(years: Any) -> Optional[list[int]]:
    """Fiscal years, the one parser: ``2023``, ``"2019-2024"``, ``"2019,2021-2022"``,
    ``[2021, "2018-2019"]`` -> sorted years; ``None`` or ``""`` -> ``None`` (all years).

    Raises ``InputError`` for anything else, a range that ends before it starts,
    or a year EDGAR cannot have (before 1993 or after 2100).
    """
    from filinglens.errors import InputError

    if years is None or (isinstance(years, str) and not years.strip()):
        return None
    parts = list(years) if isinstance(years, (list, tuple, set)) else [years]
    values: set[int] = set()
    for part in parts:
        for piece in str(part).split(","):
            piece = piece.strip()
            m = re.fullmatch(r"(\d{4})(?:\s*(?:-|\.\.|–)\s*(\d{4}))?", piece)
            if not m:
                raise InputError(f"`{piece}` is not a year, a range like 2019-2024 or a list like 2019,2021")
            low, high = int(m.group(1)), int(m.group(2) or m.group(1))
            if high < low:
                raise InputError(f"`{piece}`: the range ends before it starts")
            values.update(range(low, high + 1))
    for y in values:
        if not 1993 <= y <= 2100:
            raise InputError(f"bad fiscal year {y}: EDGAR filings start in 1993")
    return sorted(values) or None
