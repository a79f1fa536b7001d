"""Split a document's blocks into 10-K Items.

1. Page furniture (running headers/footers, page numbers) is dropped.
2. Every paragraph that starts like an item heading ("Item 1A.", "ITEM 7:",
   "Items 1 and 2.") becomes a candidate; in-text references ("see Item 1A,")
   are rejected by their shape.
3. One candidate per item is chosen, in increasing item order, by dynamic
   programming: a table-of-contents entry is followed almost at once by the
   next item's entry, a real heading by its section, so each candidate is
   valued by the length of text before the next later-item candidate.
4. An item's text runs to the next chosen heading, to a PART heading that
   starts a later Part, or to SIGNATURES.  Status is ``body``, ``stub`` (None /
   Not applicable / [Reserved] / incorporation by reference) or ``absent``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from filinglens.retrieval.blocks import DocBlock
from filinglens.retrieval.filing import Block, Item
from filinglens.retrieval.structure import item_specs

_ITEM_ORDER = {spec.item: i for i, spec in enumerate(item_specs())}
_SPECS = {spec.item: spec for spec in item_specs()}
_PART_NUM = {"I": 1, "II": 2, "III": 3, "IV": 4}

HEADING = re.compile(
    r"""^(?:part\s+(?:iv|i{1,3})\s*[,.:\-–—]?\s*)?
    items?\s*(?P<num>\d{1,2})\s?(?P<let>[a-c])?(?P<t>\s*\(t\))?(?![0-9a-z])
    (?P<more>(?:\s*(?:,\s*and|and|&|,|through|to|-|–)\s*\d{1,2}[a-c]?(?![0-9a-z]))+)?
    \s*(?P<sep>[.:\-–—]*)\s*(?P<rest>.*)$""",
    re.I | re.X | re.S,
)
PART_HEADING = re.compile(r"^part\s+(?P<part>iv|i{1,3})\b(?!\s*[,;]|\s+of\b)", re.I)
SIGNATURES = re.compile(r"^(?:signatures?|powerofattorney):?$", re.I)  # matched with spaces removed
# Headings that end an item early: the unnumbered executive-officers section
# after Item 4, and financial statements / exhibit index printed after Item 16.
FINANCIAL_PAGES = re.compile(
    r"^(?:.{0,60}\s)?(?:index to (?:the )?(?:consolidated )?financial statements|exhibit index|index to exhibits|"
    r"report of independent registered public accounting firm)\b",
    re.I,
)
EXEC_OFFICERS = re.compile(
    r"^(?:items?\s*(?:4a|4\(a\)|x)\s*[.:\-–—]?\s*)?(?:information about (?:our |the )?|our )?"
    r"executive officers(?: of (?:the )?(?:registrant|company))?\b",
    re.I,
)
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?(?:[ivxl]{1,5}|[a-z]?-?\d{1,4})\.?$", re.I)
_DATE = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december)\s+\d{1,2},?\s+\d{4}",
    re.I,
)
_TERMINATORS = {"4": EXEC_OFFICERS, "16": FINANCIAL_PAGES}
_LETTERS = re.compile(r"[^a-z0-9]+")
_TOC_TAIL = re.compile(r"\s\d{1,3}(?:\s*[-–]\s*\d{1,3})?$")


def _norm(text: str) -> str:
    return _LETTERS.sub("", text.lower().replace("’", "'"))


# ----------------------------------------------------------------------------- furniture


def strip_furniture(blocks: list[DocBlock]) -> list[DocBlock]:
    """Drop page numbers and running headers/footers (repeated short lines next to page breaks)."""
    breaks = [i for i, b in enumerate(blocks) if b.kind == "pagebreak"]
    near: set[int] = set()
    for i in breaks:
        near.update(_neighbours(blocks, i, -1))
        near.update(_neighbours(blocks, i, +1))
    keys = {i: _furniture_key(blocks[i].text) for i in near}
    counts = Counter(k for k in keys.values() if k)
    # running headers/footers are on most pages; a heading repeated on a few
    # statement pages ("META PLATFORMS, INC.") is content
    threshold = max(3, 0.3 * len(breaks))
    drop: set[int] = set()
    for i in near:
        text = blocks[i].text
        if _PAGE_NUMBER.match(text):
            drop.add(i)
        elif keys[i] and counts[keys[i]] >= threshold:
            heading = HEADING.match(text)
            if not heading or _bare_running_heading(heading, blocks, i):
                drop.add(i)
    if not breaks:  # no page markup: only unmistakable furniture
        all_keys = Counter(_furniture_key(b.text) for b in blocks if b.kind == "text" and len(b.text) < 120)
        for i, b in enumerate(blocks):
            if b.kind != "text":
                continue
            key = _furniture_key(b.text) if len(b.text) < 120 else ""
            if _PAGE_NUMBER.match(b.text) or (
                key and all_keys[key] >= 5 and re.search(r"\d|10-k|contents", b.text, re.I) and not HEADING.match(b.text)
            ):
                drop.add(i)
    return [b for i, b in enumerate(blocks) if i not in drop and b.kind != "pagebreak"] + []


def _bare_running_heading(heading: re.Match, blocks: list[DocBlock], i: int) -> bool:
    """A page-top "Item 8" / "Item 9, 9A" marker (no title, next line is not its title)."""
    if heading["rest"].strip():
        return False
    item = _item_id(heading["num"], heading["let"])
    nxt = blocks[i + 1].text if i + 1 < len(blocks) else ""
    return item not in _SPECS or not _match_title(item, nxt)


def _neighbours(blocks: list[DocBlock], start: int, step: int, limit: int = 3) -> list[int]:
    out, i = [], start + step
    while 0 <= i < len(blocks) and len(out) < limit:
        if blocks[i].kind == "pagebreak":
            break
        if blocks[i].kind == "text" and len(blocks[i].text) <= 150:
            out.append(i)
        elif blocks[i].kind == "table" and len(blocks[i].text) <= 150:
            out.append(i)
        else:
            break
        i += step
    return out


def _furniture_key(text: str) -> str:
    key = re.sub(r"[^a-z]+", " ", text.lower()).strip()
    if key in {"none", "not applicable", "reserved", "n a"} or not key or _DATE.search(text):
        return ""
    return key


# ----------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    block: int
    item: str
    title: str
    remainder: str  # body text that shares the heading's paragraph
    title_blocks: int  # 1, or 2 when the title is the next paragraph
    title_match: bool
    toc_like: bool
    also: list[str] = field(default_factory=list)  # further items of a combined heading ("Items 1 and 2")

    @property
    def order(self) -> int:
        return _ITEM_ORDER[self.item]


def _item_id(num: str, let: str | None) -> str:
    return f"{int(num)}{(let or '').upper()}"


def _match_title(item: str, rest: str) -> int:
    """Length of ``rest``'s prefix that is a known title of ``item`` (0 if none)."""
    target = _norm(rest)
    for title in sorted(_SPECS[item].titles, key=len, reverse=True):
        nt = _norm(title)
        if nt and target.startswith(nt):
            count, cut = 0, 0
            for cut, ch in enumerate(rest, 1):
                if ch.isalnum():
                    count += 1
                    if count == len(nt):
                        break
            while cut < len(rest) and rest[cut] in ".:;-–—)]’'\" ":
                cut += 1
            return cut
    return 0


def find_candidates(blocks: list[DocBlock]) -> list[Candidate]:
    """Paragraphs that start like a 10-K item heading."""
    out: list[Candidate] = []
    for i, block in enumerate(blocks):
        if block.kind != "text" or len(block.text) > 5000:
            continue
        m = HEADING.match(block.text)
        if not m:
            continue
        item = _item_id(m["num"], m["let"])
        if m["t"] and item == "9A":
            item = "9A"
        if item not in _ITEM_ORDER:
            continue
        rest = m["rest"]
        if rest[:1] in {",", ";", ")"} or rest[:1].islower():
            continue  # "Item 1A, Risk Factors, describes ..." / "Item 7 of this report"
        if re.match(r"^(of|in|to|and|or|for|above|below|herein|hereof)\b", rest, re.I):
            continue
        also = [
            other
            for num, let in re.findall(r"(\d{1,2})([a-c]?)", m["more"] or "", re.I)
            if (other := _item_id(num, let)) in _ITEM_ORDER and _ITEM_ORDER[other] > _ITEM_ORDER[item]
        ]
        title_blocks = 1
        cut = _match_title(item, rest)
        for other in also:
            cut = cut or _match_title(other, rest)
        if not cut and rest and i + 1 < len(blocks) and blocks[i + 1].kind == "text" and len(rest) < 200:
            joined = rest + " " + blocks[i + 1].text  # a title wrapped onto the next line (PDFs)
            cut2 = _match_title(item, joined)
            if cut2 > len(rest) + 1 and not HEADING.match(blocks[i + 1].text):
                rest, cut, title_blocks = joined, cut2, 2
        title_match = cut > 0
        if title_match:
            title, remainder = rest[:cut], rest[cut:]
            if _PAGE_NUMBER.match(remainder.strip()):
                remainder = ""  # "Item 1. Business 4": a table-of-contents line
        elif len(rest) <= 200 and not re.search(r"[.!?]\s+\S", rest):
            title, remainder = rest, ""
        elif len(block.text) <= 400:
            stop = re.search(r"[.!?]\s+", rest)
            title, remainder = (rest[: stop.start() + 1], rest[stop.end() :]) if stop else (rest, "")
        else:
            continue  # a long paragraph that merely starts with "Item N"
        if not title.strip() and i + 1 < len(blocks) and blocks[i + 1].kind == "text":
            nxt = blocks[i + 1].text
            if len(nxt) <= 200 and (_match_title(item, nxt) or not re.search(r"[.!?]\s+\S", nxt)):
                if not HEADING.match(nxt):
                    title, title_blocks = nxt, 2
                    title_match = bool(_match_title(item, nxt))
        toc_like = bool(_TOC_TAIL.search(" " + rest)) and len(block.text) < 250
        out.append(
            Candidate(
                block=i,
                item=item,
                title=title.strip(" .:-–—"),
                remainder=remainder.strip(),
                title_blocks=title_blocks,
                title_match=title_match,
                toc_like=toc_like,
                also=also,
            )
        )
    return out


# ----------------------------------------------------------------------------- selection


def choose_headings(cands: list[Candidate], sizes: list[int]) -> list[Candidate]:
    """Pick at most one candidate per item, increasing in item order and position.

    ``sizes[i]`` is the character length of block ``i``.  A candidate's value is
    1 + log of the text that follows it before the next candidate of a later
    item: table-of-contents entries and running headers score low.

    Candidates come one per block in block order, so "before" is "earlier in
    the list"; both passes keep one running value per item order, which makes
    the choice O(candidates x items) -- a document with thousands of
    heading-like lines is not quadratic.
    """
    if not cands:
        return []
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    n = len(cands)
    orders = len(_ITEM_ORDER)
    # value: the text after each candidate up to the next candidate of a later item
    value = [0.0] * n
    next_block = [len(sizes)] * orders  # nearest later candidate's block, per item order
    for j in range(n - 1, -1, -1):
        c = cands[j]
        nxt = min(next_block[c.order + 1 :], default=len(sizes))
        span = prefix[nxt] - prefix[c.block + c.title_blocks] + len(c.remainder)
        value[j] = 1.0 + 0.25 * math.log1p(max(span, 0)) + (0.5 if c.title_match else 0.0) - (1.5 if c.toc_like else 0.0)
        next_block[c.order] = min(next_block[c.order], c.block)
    # best chain ending at each candidate; per item order the best chain so far (earliest on ties)
    best = [0.0] * n
    back = [-1] * n
    top: list[tuple[float, int] | None] = [None] * orders
    for j in range(n):
        best[j] = value[j]
        prev = None
        for entry in top[: cands[j].order]:
            if entry is not None and (prev is None or entry[0] > prev[0] or (entry[0] == prev[0] and entry[1] < prev[1])):
                prev = entry
        if prev is not None and prev[0] + value[j] > best[j]:
            best[j] = prev[0] + value[j]
            back[j] = prev[1]
        mine = top[cands[j].order]
        if mine is None or best[j] > mine[0]:
            top[cands[j].order] = (best[j], j)
    j = max(range(n), key=lambda k: best[k])
    chain = []
    while j >= 0:
        chain.append(cands[j])
        j = back[j]
    return chain[::-1]


# ----------------------------------------------------------------------------- items

_STUB_SENTENCE = re.compile(
    r"^\W*(?:none|not applicable|n/?a|not required|omitted|intentionally omitted|"
    r"\(?removed and reserved\)?|\[?reserved\]?|not used)\W*$"
    r"|incorporat\w*\b.{0,60}?\bby\s+reference|incorporated herein|will be filed|shall not be deemed|"
    r"\b(?:can|may|will)\s+be\s+found\b|\bis\s+(?:set forth|included|contained|presented|provided|located|found|described)\b|"
    r"\bare\s+(?:set forth|included|contained|presented|provided|located|found|described)\b|"
    r"^(?:please\s+)?see\b|\brefer(?:ence is made)? to\b|information (?:required|called for) by (?:this|these|items?)\b|"
    r"no matters were submitted|pursuant to general instruction|not applicable|^.{0,40}\bomitted\b.{0,40}$|"
    r"\b(?:elected|chose|chosen|opted) not to\b|\b(?:on|at|beginning on) pages?\s+[A-Z]?-?\d|^page$",
    re.I,
)
_REFERENCE = re.compile(
    r"(exhibit\s+\d+(?:\.\d+)?|(?:definitive\s+)?proxy\s+statement|annual\s+report\s+to\s+(?:share|stock)holders|"
    r"note\s+\d+\b[^.;]{0,80}|(?:the\s+)?[\"“][^\"”]{3,80}[\"”])",
    re.I,
)
_ABBREVIATIONS = re.compile(r"\b(?:Inc|Corp|Co|No|Ltd|Nos|U\.S|S\.A|N\.A|L\.P)\.", re.I)
_INDEX_ROW = re.compile(r"\|\s*(?:[A-Z]-)?\d{1,3}(?:\s*[-–]\s*(?:[A-Z]-)?\d{1,3})?$")  # "Balance Sheets | 69"
_NEGATIVE = re.compile(r"\b(?:no|not|none|neither|nor)\b", re.I)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"“])|\n")


def classify(text: str) -> tuple[str, str | None]:
    """``("stub", reference)`` for None / N/A / reserved / pointer-only items, else ``("body", None)``."""
    if not text.strip():
        return "stub", None
    if len(text) > 2000:
        return "body", None
    text = "\n".join(line for line in text.split("\n") if not _INDEX_ROW.search(line))
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(_ABBREVIATIONS.sub(lambda m: "Nr" if m.group(0).lower() == "no." else m.group(0)[:-1], text)) if s.strip()]
    substantive, headings = [], 0
    for s in sentences:
        if _STUB_SENTENCE.search(s):
            continue
        if len(s) < 90 and not re.search(r"[.!?]$", s):
            headings += 1  # a sub-heading or list line
            continue
        substantive.append(s)
    if headings > 3:
        return "body", None  # a list of its own (e.g. the financial statements filed)
    if not substantive:
        ref = _REFERENCE.search(text)
        return "stub", (ref.group(1).strip() if ref else None)
    if len(text) < 800 and all(_NEGATIVE.search(s) and len(s) < 400 for s in substantive):
        return "stub", None  # "None of our directors adopted ... a Rule 10b5-1 arrangement."
    return "body", None


def build_items(blocks: list[DocBlock]) -> tuple[dict[str, Item], str, list[int]]:
    """Segment blocks into items.

    Returns the items in canonical order, the document text their offsets
    refer to, and (for paged sources) the offset where each page starts.
    """
    blocks = strip_furniture(blocks)
    texts = [b.text for b in blocks]
    doc_offsets, pos = [], 0
    for t in texts:
        doc_offsets.append(pos)
        pos += len(t) + 1
    doc_text = "\n".join(texts)
    page_starts: list[int] = []
    for b, off in zip(blocks, doc_offsets):
        if b.page is not None:
            while len(page_starts) <= b.page:
                page_starts.append(off)

    candidates = find_candidates(blocks)
    chain = choose_headings(candidates, [len(t) + 1 for t in texts])
    parts = {
        i: _PART_NUM[m["part"].upper()]
        for i, b in enumerate(blocks)
        if b.kind == "text" and len(b.text) <= 150 and (m := PART_HEADING.match(b.text))
    }
    signatures = next(
        (i for i, b in enumerate(blocks) if i > (chain[-1].block if chain else 0) and b.kind == "text" and SIGNATURES.match(b.text.replace(" ", ""))),
        len(blocks),
    )
    heading_keys = Counter(_norm(blocks[c.block].text) for c in chain)

    items: dict[str, Item] = {}
    for n, cand in enumerate(chain):
        spec = _SPECS[cand.item]
        start = cand.block + cand.title_blocks
        end = chain[n + 1].block if n + 1 < len(chain) else signatures
        end = min(end, signatures) if cand.block < signatures else end
        my_part = _PART_NUM[spec.part]
        for i in range(start, end):
            if i in parts and parts[i] > my_part:
                end = i
                break
            if blocks[i].kind == "text" and len(blocks[i].text) < 200:
                terminator = _TERMINATORS.get(cand.item)
                if terminator and terminator.match(blocks[i].text):
                    end = i
                    break
        body: list[tuple[DocBlock, int]] = []
        if cand.remainder:
            src = cand.block + cand.title_blocks - 1
            found = blocks[src].text.rfind(cand.remainder)
            body.append((DocBlock("text", cand.remainder, page=blocks[src].page), doc_offsets[src] + max(found, 0)))
        own = _norm(blocks[cand.block].text)
        for i in range(start, end):
            b = blocks[i]
            if b.kind == "text" and _norm(b.text) == own and heading_keys[own]:
                continue  # running header repeating this item's heading
            body.append((b, doc_offsets[i]))
        item = _make_item(cand.item, cand.title or spec.title, spec.part, body)
        items[cand.item] = item
        for other in cand.also:
            if other not in items:
                spec2 = _SPECS[other]
                items[other] = Item(
                    item=other, title=spec2.title, part=spec2.part, status="stub",
                    reference=f"Item {cand.item} (combined heading)",
                )
    # Items printed only in the table of contents with "N/A" / "None" are stubs.
    for cand in candidates:
        if cand.item not in items and cand.remainder and classify(cand.remainder)[0] == "stub":
            spec = _SPECS[cand.item]
            items[cand.item] = _make_item(cand.item, cand.title or spec.title, spec.part, [])
            items[cand.item].text = cand.remainder
    ordered: dict[str, Item] = {}
    for spec in item_specs():
        ordered[spec.item] = items.get(spec.item) or Item(item=spec.item, title=spec.title, part=spec.part, status="absent")
    return ordered, doc_text, page_starts


def _make_item(item_id: str, title: str, part: str, body: list[tuple[DocBlock, int]]) -> Item:
    pieces, blocks, pos = [], [], 0
    for b, source_start in body:
        pieces.append(b.text)
        blocks.append(
            Block(
                kind="table" if b.kind == "table" else "text",
                start=pos,
                end=pos + len(b.text),
                rows=b.rows,
                page=b.page,
                source_start=source_start,
            )
        )
        pos += len(b.text) + 1
    text = "\n".join(pieces)
    status, reference = classify(text)
    item = Item(item=item_id, title=title, part=part, status=status, text=text, blocks=blocks, reference=reference)
    if blocks:
        item.start = blocks[0].source_start
        item.end = blocks[-1].source_start + (blocks[-1].end - blocks[-1].start)
    return item
