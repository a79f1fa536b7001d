"""Split a parsed ``Filing`` into retrieval chunks that are exact spans of its items.

Rules (see ``bench/README.md`` for the measurement behind the default size):

- Narrative and tables are chunked separately: a chunk is either a run of
  ``text`` blocks or (part of) ``table`` blocks, never both.
- Boundaries respect paragraphs: chunks are packed greedily from whole
  paragraphs up to ``target_chars``; only a paragraph longer than the target is
  cut, at sentence boundaries (tables at row boundaries).
- A chunk never crosses a page of a PDF, so every chunk has one source page.
- A short heading-like paragraph that would end a chunk is moved to the start
  of the next one, so headings stay with the text they introduce.
- Every chunk's text is exactly ``item.text[start:end]`` (and, when the item's
  offset in the filing is known, ``filing.text[filing_start:filing_end]``).
- Text of the filing outside every item (the cover page, or statements after
  the signatures) is kept as pseudo-items ``cover`` and ``other`` so that it
  stays searchable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from filinglens.retrieval.filing import Block, Filing, Item

#: Default chunk size in characters, chosen by measurement (bench/README.md).
DEFAULT_CHUNK_CHARS = 1000
#: Smallest chunk size ``ingest`` accepts: below it chunks are fragments of a sentence or a table row.
MIN_CHUNK_CHARS = 200
#: Largest chunk size ``ingest`` accepts: the default evidence budget of a rating (6,000 characters)
#: must hold at least one whole chunk (the embedder reads only the first ~1,000 characters of each).
MAX_CHUNK_CHARS = 6000
#: Version of the chunking rules; part of the index manifest.
CHUNKER_VERSION = "para-v2"

PSEUDO_ITEMS = {
    "cover": "Cover page and front matter",
    "other": "Text outside the 10-K items",
}
_MIN_GAP_CHARS = 200  # uncovered filing text shorter than this is ignored (headings, page furniture)


@dataclass(frozen=True)
class Chunk:
    """One retrieval unit: an exact character span of an item's text."""

    item: str
    item_title: str
    kind: str  # "text" | "table"
    start: int  # offset in Item.text
    end: int
    text: str  # == item.text[start:end]
    seq: int = 0  # position of the chunk in the filing
    page: int | None = None  # 0-based source page (PDFs)
    filing_start: int | None = None  # offset in Filing.text, when the item's offset is known
    filing_end: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


#: Version of what is indexed: the chunk text is embedded as is; BM25 sees a context header + the text.
INDEXED_TEXT_VERSION = "raw-emb+hdr-bm25"


def context_header(meta: Mapping) -> str:
    """One line of context for the lexical index (never part of a chunk's stored or embedded text).

    ``"Apple Inc. (AAPL) 10-K FY2024. Item 1A. Risk Factors."`` -- so that BM25
    over a shared index can match company names and section titles.  (Putting
    it into the *embedded* text was measured to hurt: within one filing every
    chunk shares the header, which dilutes what distinguishes them; see
    bench/README.md.)
    """
    company = str(meta.get("company") or "").strip()
    ticker = str(meta.get("ticker") or "").strip()
    who = f"{company} ({ticker})" if company and ticker else company or ticker
    year = meta.get("fiscal_year")
    form = meta.get("form") or "10-K"
    item, title = meta.get("item") or "", meta.get("item_title") or ""
    where = title if item in PSEUDO_ITEMS else f"Item {item}. {title}".strip()
    head = " ".join(p for p in (who, form, f"FY{year}" if year else "") if p)
    return f"{head}. {where}." if where else f"{head}."


def indexed_text(meta: Mapping, text: str) -> str:
    """What BM25 indexes for a chunk: its context header and its text."""
    return f"{context_header(meta)}\n{text}"


def chunk_id(filing_key: str, chunk: Chunk) -> str:
    """Deterministic chunk id: a hash of the filing identity, item, kind, offsets and text.

    Metadata that is not part of the id (company name, item title, source
    hash...) is updated in place when it changes, without re-embedding.
    """
    h = hashlib.sha256()
    parts = (filing_key, chunk.item, chunk.kind, str(chunk.start), str(chunk.end), chunk.text, INDEXED_TEXT_VERSION)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:32]


# --------------------------------------------------------------------------- units


@dataclass
class _Unit:
    kind: str
    start: int
    end: int
    page: int | None
    heading: bool = False


_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"'”’)]?\s+(?=[\"“(\[]?[A-Z0-9•\-–—])")
_HEADING_MAX = 100


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _looks_like_heading(s: str) -> bool:
    s = s.strip()
    return 0 < len(s) <= _HEADING_MAX and not s.endswith((".", ":", ";", ",")) and "\n" not in s


def _cut_points(text: str, start: int, end: int, target: int, kind: str) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into pieces of at most ~target chars at natural boundaries."""
    if end - start <= target:
        return [(start, end)]
    segment = text[start:end]
    if kind == "table":
        bounds = [m.end() for m in re.finditer(r"\n", segment)]
    else:
        bounds = [m.end() for m in _SENTENCE_END.finditer(segment)]
        bounds += [m.end() for m in re.finditer(r"\n", segment)]
    bounds = sorted(set(b for b in bounds if 0 < b < len(segment)))
    pieces: list[tuple[int, int]] = []
    pos = 0
    while len(segment) - pos > target:
        limit = pos + target
        candidates = [b for b in bounds if pos < b <= limit]
        # avoid tiny pieces: prefer a boundary in the second half of the window
        good = [b for b in candidates if b - pos >= target // 2]
        if good:
            cut = good[-1]
        elif candidates:
            cut = candidates[-1]
        else:  # no boundary: cut at the last whitespace before the limit, else hard
            ws = segment.rfind(" ", pos + target // 2, limit)
            cut = ws + 1 if ws > pos else limit
        pieces.append((pos, cut))
        pos = cut
    pieces.append((pos, len(segment)))
    return _trimmed_spans(text, start, pieces)


def _paragraph_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Paragraph spans of raw text without blocks: blank lines, else single newlines."""
    segment = text[start:end]
    sep = r"\n\s*\n" if re.search(r"\n\s*\n", segment) else r"\n"
    spans, pos = [], 0
    for m in re.finditer(sep, segment):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(segment)))
    return _trimmed_spans(text, start, spans)


def _trimmed_spans(text: str, start: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` (relative to ``start``) made absolute, whitespace trimmed, empty ones dropped."""
    out = []
    for a, b in spans:
        a, b = _trim(text, start + a, start + b)
        if b > a:
            out.append((a, b))
    return out


_SHORT_IN_TABLE = 160  # a text line this short between two table blocks is a row/section label
_CAPTION_MAX = 400  # a short text right above a table, not ending a sentence, is its caption


def _table_kinds(spans: list[tuple[str, int, int, int | None]], text: str) -> list[str]:
    """Effective kinds: short labels inside a table and a table's caption count as table.

    PDFs often come out as table rows interleaved with one-line "text" blocks
    ("Current assets:"), and HTML tables are introduced by a line ending in a
    colon ("The following table shows ... (in millions):").  Keeping those
    with the table makes table chunks self-describing; narrative paragraphs
    (anything ending a sentence) stay text.
    """
    kinds = [k for k, _, _, _ in spans]
    n = len(spans)
    page = lambda x: spans[x][3]  # noqa: E731
    length = lambda x: spans[x][2] - spans[x][1]  # noqa: E731
    # 1. runs of short text lines between two tables on the same page are row / section labels
    i = 0
    while i < n:
        if kinds[i] != "text":
            i += 1
            continue
        j = i
        while j < n and kinds[j] == "text" and length(j) <= _SHORT_IN_TABLE and page(j) == page(i):
            j += 1
        if j > i and i > 0 and j < n and kinds[i - 1] == "table" and kinds[j] == "table" \
                and page(i - 1) == page(i) == page(j):
            for x in range(i, j):
                kinds[x] = "table"
        i = max(j, i + 1)
    # 2. captions: the text right above a table that does not end a sentence, plus headings above it
    for t in range(1, n):
        if kinds[t] != "table" or kinds[t - 1] != "text" or page(t - 1) != page(t):
            continue
        x, total = t - 1, 0
        while x >= 0 and kinds[x] == "text" and page(x) == page(t):
            piece = text[spans[x][1] : spans[x][2]].rstrip()
            total += length(x)
            first = x == t - 1
            if total > _CAPTION_MAX or piece.endswith((".", ";", "!", "?")):
                break
            if not first and not _looks_like_heading(piece):
                break
            kinds[x] = "table"
            x -= 1
    return kinds


def _units(item: Item, target: int, page_of) -> list[_Unit]:
    text = item.text
    units: list[_Unit] = []
    blocks: Iterable[Block] = item.blocks
    if not item.blocks:
        blocks = [Block("text", a, b) for a, b in _paragraph_spans(text, 0, len(text))]
    spans: list[tuple[str, int, int, int | None]] = []
    for block in blocks:
        start, end = _trim(text, max(0, block.start), min(len(text), block.end))
        if end <= start:
            continue
        kind = "table" if block.kind == "table" else "text"
        spans.append((kind, start, end, block.page))
    kinds = _table_kinds([(k, a, b, p if p is not None else page_of(a)) for k, a, b, p in spans], text)
    for (orig, start, end, page), kind in zip(spans, kinds):
        for a, b in _cut_points(text, start, end, target, orig):
            units.append(
                _Unit(kind, a, b, page if page is not None else page_of(a),
                      heading=orig == "text" and _looks_like_heading(text[a:b]))
            )
    return units


def _pack(units: list[_Unit], target: int, text: str) -> list[list[_Unit]]:
    """Greedy packing of units into groups.

    Hard boundaries: a change of kind or page, and any text between two units
    that belongs to neither (a chunk is one contiguous span of its item).
    """
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    for unit in units:
        hard = bool(current) and (
            unit.kind != current[-1].kind
            or unit.page != current[-1].page
            or bool(text[current[-1].end : unit.start].strip())
        )
        # a lone heading always stays with what follows it
        full = bool(current) and unit.end - current[0].start > target and not all(u.heading for u in current)
        if hard or full:
            carry: list[_Unit] = []
            # keep a trailing heading with the text it introduces
            if not hard and len(current) > 1 and current[-1].heading:
                carry = [current.pop()]
            groups.append(current)
            current = carry
        current.append(unit)
    if current:
        groups.append(current)
    # fold a tiny trailing group of a run into its predecessor when it still fits
    merged: list[list[_Unit]] = []
    for group in groups:
        prev = merged[-1] if merged else None
        glen = group[-1].end - group[0].start
        if (
            prev is not None
            and glen < target // 4
            and prev[-1].kind == group[0].kind
            and prev[-1].page == group[0].page
            and not text[prev[-1].end : group[0].start].strip()
            and group[-1].end - prev[0].start <= target * 5 // 4
        ):
            prev.extend(group)
        else:
            merged.append(group)
    return merged


def chunk_item(item: Item, target_chars: int = DEFAULT_CHUNK_CHARS, *, filing: Filing | None = None) -> list[Chunk]:
    """Chunk one item; offsets are into ``item.text`` (and ``filing.text`` when known).

    Filing offsets are set only where they are exact: when the item text is a
    verbatim slice of ``filing.text`` they follow from ``item.start``; when the
    parser cleaned the item text (e.g. dropped running page headers) each
    chunk is looked up verbatim in the item's region of the filing text, and
    a chunk not found there gets no filing offsets.
    """
    if target_chars < 100:
        raise ValueError("target_chars must be at least 100")
    base = item.start if item.start is not None else None
    ftext = filing.text if filing is not None else None
    verbatim = (
        ftext is not None and base is not None and ftext[base : base + len(item.text)] == item.text
    )

    def page_of(offset: int) -> int | None:
        if filing is None or base is None or not filing.page_starts:
            return None
        return filing.page_of(base + offset)

    chunks = []
    cursor = base or 0
    limit = (item.end if item.end is not None else len(ftext or "")) + 1
    for group in _pack(_units(item, target_chars, page_of), target_chars, item.text):
        start, end = group[0].start, group[-1].end
        text = item.text[start:end]
        fstart = fend = None
        if verbatim:
            fstart, fend = base + start, base + end
        elif ftext is not None and base is not None:
            found = ftext.find(text, cursor, max(limit, cursor) + len(text))
            if found < 0:
                found = ftext.find(text, base, max(limit, base) + len(text))
            if found >= 0:
                fstart, fend = found, found + len(text)
                cursor = fend
        chunks.append(
            Chunk(
                item=item.item,
                item_title=item.title,
                kind=group[0].kind,
                start=start,
                end=end,
                text=text,
                page=group[0].page,
                filing_start=fstart,
                filing_end=fend,
            )
        )
    return chunks


def _gap_items(filing: Filing) -> list[Item]:
    """Pseudo-items for filing text that no item covers (cover page, trailing statements).

    A pseudo-item's ``text`` is the whole ``Filing.text`` (``start`` = 0) and its
    blocks are the paragraphs of the uncovered span, so its chunk offsets are
    filing offsets and several ``other`` gaps never collide.
    """
    text = filing.text or ""
    if not text.strip():
        return []
    present = filing.present_items()
    spans = sorted((i.start, i.end) for i in present if i.start is not None and i.end is not None)
    if present and not spans:
        return []  # items without offsets: cannot tell what is uncovered
    gaps, pos = [], 0
    for a, b in spans:
        if a > pos:
            gaps.append((pos, a))
        pos = max(pos, b)
    if pos < len(text):
        gaps.append((pos, len(text)))
    by_key: dict[str, list[Block]] = {}
    for a, b in gaps:
        a, b = _trim(text, a, b)
        if len(re.sub(r"\s+", "", text[a:b])) < _MIN_GAP_CHARS:
            continue
        key = "cover" if spans and b <= spans[0][0] else "other"
        by_key.setdefault(key, []).extend(Block("text", x, y) for x, y in _paragraph_spans(text, a, b))
    return [
        Item(item=key, title=PSEUDO_ITEMS[key], part="", status="body", text=text, blocks=blocks, start=0, end=len(text))
        for key, blocks in by_key.items()
    ]


def chunk_filing(filing: Filing, target_chars: int = DEFAULT_CHUNK_CHARS, *, include_gaps: bool = True) -> list[Chunk]:
    """All chunks of a filing's present items (plus uncovered text), in document order."""
    items = [i for i in filing.present_items() if i.text.strip()]
    if include_gaps:
        items += _gap_items(filing)
    out: list[Chunk] = []
    for item in items:
        out.extend(chunk_item(item, target_chars, filing=filing))
    # number chunks in document order (chunks without filing offsets keep item order)
    out.sort(key=lambda c: c.filing_start if c.filing_start is not None else -1)
    return [Chunk(**{**c.to_dict(), "seq": n}) for n, c in enumerate(out)]
