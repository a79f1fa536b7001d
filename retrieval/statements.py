"""The primary financial statements of a filing, found by their headings, and the ones a question needs.

A metric question ("operating cash flow ratio ... using the balance sheet and
the cash flow statement") is answered from one or two statement pages, but
those pages share few words with the question: a balance sheet is a column of
figures under a heading.  So search routes such questions to the pages
themselves:

- :func:`statements_asked` reads which statements a question needs: the ones
  it names ("balance sheet", "statement of financial position", "P&L",
  "cash flow statement") and the ones its line items live in ("total current
  liabilities" -> balance sheet, "capex" -> cash flows, "revenue" -> income).
- :func:`find_statement_pages` finds, among a filing's chunks, the pages that
  open with a statement heading on a line of its own ("CONSOLIDATED BALANCE
  SHEETS", "Consolidated Statements of Operations") and carry figures; an
  index page listing all statements and an auditor's report naming them are
  not statements.

Both are rules over words, not fitted weights; ``HybridSearcher.search`` and
the retrieval agent add the asked statements' pages as one more ranked list
(see ``statement_weight``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

#: statement -> heading patterns (a title within the first characters of a page)
HEADINGS: dict[str, str] = {
    "balance_sheet": (
        r"(?:consolidated\s*)?(?:balance\s*sheets?|statements?\s*of\s*(?:consolidated\s*)?financial\s*"
        r"(?:position|condition))"
    ),
    "income": (r"(?:consolidated\s*)?(?:statements?\s*of\s*(?:consolidated\s*)?(?:income|operations|earnings|"
               r"net\s*(?:loss|income))|income\s*statements?)"),
    "comprehensive_income": r"(?:consolidated\s*)?statements?\s*of\s*(?:consolidated\s*)?comprehensive\s*(?:income|loss|earnings)",
    "cash_flow": r"(?:consolidated\s*)?(?:statements?\s*of\s*(?:consolidated\s*)?cash\s*flows?|cash\s*flows?\s*statements?)",
    "equity": (
        r"(?:consolidated\s*)?statements?\s*of\s*(?:changes\s*in\s*)?(?:stockholders|shareholders|shareowners|"
        r"share\s*owners)?['’]?\s*(?:equity|deficit)"
    ),
}
_HEADING_RE = {name: re.compile(rf"(?i)\b{pattern}\b(?!\s*(?:data|information|highlights)\b)")
               for name, pattern in HEADINGS.items()}
#: a heading line: an optional short prefix (the company's name) and nothing after but "(continued)"
_LINE_HEADING_RE = {
    name: re.compile(rf"(?im)^[ \t]*(?:[^\n]{{0,80}}?[ \t])?(?P<h>{pattern})(?:\s*\((?:continued|unaudited)\))?[ \t]*$")
    for name, pattern in HEADINGS.items()
}
#: a heading is a title, not a phrase in a sentence ("the accompanying consolidated balance sheets")
_IN_SENTENCE = re.compile(r"(?i)\b(?:the|accompanying|related|our|its|their|these|in|of|see|to|and|audited|"
                          r"from|within|on|this)\s*$")

#: a statement page opens with its heading within this many characters (company name, "Table of Contents" first)
HEADING_WINDOW = 400
#: ... and carries at least this many figures (an index page or a note's first page carries few)
MIN_FIGURES = 20
#: without pages, a statement runs over at most this many chunks from its heading
BLOCK_CHUNKS = 5
#: pages kept per statement: its first page and a continuation headed again on the very next page
PAGES_PER_STATEMENT = 2

_FIGURE = re.compile(r"(?<![\w.])\(?\$?\s?\d{1,3}(?:,\d{3})+(?:\.\d+)?\)?|(?<![\w.,])\d+\.\d+(?![\w.])|"
                     r"(?<![\w.,])\d{3,}(?![\w.,])")

#: words naming a statement outright -> that statement
NAMED: list[tuple[str, str]] = [
    (r"balance\s+sheets?|statements?\s+of\s+financial\s+(?:position|condition)|financial\s+position", "balance_sheet"),
    (r"income\s+statements?|statements?\s+of\s+(?:income|operations|earnings)|p\s*&\s*l\b|profit\s+(?:and|&)\s+loss",
     "income"),
    (r"cash\s+flows?\s+statements?|statements?\s+of\s+cash\s+flows?", "cash_flow"),
    (r"statements?\s+of\s+(?:changes\s+in\s+)?(?:stockholders|shareholders)['’]?\s+equity", "equity"),
]
#: line items -> the statement they are read from (a question naming none of the statements)
LINE_ITEMS: list[tuple[str, str]] = [
    (r"current\s+assets|current\s+liabilities|working\s+capital|quick\s+ratio|current\s+ratio|cash\s+ratio|"
     r"total\s+assets|total\s+liabilities|inventor(?:y|ies)|accounts\s+payable|(?:accounts\s+)?receivables?|"
     r"property,?\s+plant|pp\s*&\s*e|fixed\s+assets?|goodwill|shareholders['’]?\s+equity|stockholders['’]?\s+equity|"
     r"total\s+equity|debt[\s-]+to[\s-]+equity|return\s+on\s+(?:assets|equity)|\broa\b|\broe\b|"
     r"long[\s-]+term\s+debt|total\s+debt|largest\s+liabilit|asset\s+turnover|days\s+(?:inventory|payable|sales)",
     "balance_sheet"),
    (r"revenues?|net\s+sales|total\s+sales|net\s+income|net\s+earnings|operating\s+(?:income|margin|profit)|"
     r"gross\s+(?:profit|margin)|cost\s+of\s+(?:goods|sales|revenues?)|\bcogs\b|ebitda|\bebit\b|"
     r"interest\s+expense|interest\s+coverage|\bsg\s*&\s*a\b|selling,?\s+general|research\s+and\s+development|"
     r"earnings\s+per\s+share|\beps\b|net\s+margin|profit\s+margin|effective\s+tax\s+rate|operating\s+expenses",
     "income"),
    (r"capex|capital\s+expenditures?|purchases?\s+of\s+property|cash\s+(?:flows?\s+)?from\s+operati|"
     r"operating\s+cash\s+flow|cash\s+provided\s+by\s+operating|free\s+cash\s+flow|dividends?\s+paid|"
     r"depreciation\s+(?:and|&)\s+amortization|d\s*&\s*a\b|share\s+repurchases?|buybacks?|"
     r"repurchases?\s+of\s+(?:common\s+)?stock|cash\s+conversion|payout\s+ratio",
     "cash_flow"),
]
_NAMED_RE = [(re.compile(rf"\b(?:{p})", re.I), s) for p, s in NAMED]
_ITEM_RE = [(re.compile(rf"\b(?:{p})", re.I), s) for p, s in LINE_ITEMS]


def statements_asked(question: str) -> list[str]:
    """The statements ``question`` needs, named ones first (in the order named), then those of its line items."""
    text = question or ""
    named = sorted(((m.start(), s) for rx, s in _NAMED_RE for m in [rx.search(text)] if m), key=lambda t: t[0])
    out: list[str] = []
    for _, s in named:
        if s not in out:
            out.append(s)
    if out:
        return out  # a question that names its statements has said where to look
    implied = sorted(((m.start(), s) for rx, s in _ITEM_RE for m in [rx.search(text)] if m), key=lambda t: t[0])
    for _, s in implied:
        if s not in out:
            out.append(s)
    return out


@dataclass
class StatementPage:
    """One page that opens with a statement heading: its page key and the ids of its chunks in reading order."""

    statement: str
    page: str
    chunk_ids: list[str] = field(default_factory=list)
    figures: int = 0
    #: the statement's title, units and column headers (the lines before its first row of figures), one line:
    #: shown with each of its chunks, whose rows would otherwise not say which column is which year
    heading: str = ""

    def to_dict(self) -> dict:
        return {"statement": self.statement, "page": self.page, "chunk_ids": self.chunk_ids, "figures": self.figures,
                "heading": self.heading}


#: where a filing's statements are looked for first (lower is better; any other item: 2)
_ITEM_PREFERENCE = {"8": 0, "15": 1, "other": 1, "": 1}


def statement_of_heading(head: str) -> str | None:
    """The statement (a :data:`HEADINGS` key) a heading such as an excerpt's ``context`` names, or None."""
    return _heading_statement(str(head or "")[:HEADING_WINDOW])


def _heading_statement(head: str) -> str | None:
    """The one statement whose heading opens ``head`` (None for none, or for a page naming several: an index)."""
    found = []
    for name, rx in _HEADING_RE.items():
        for m in rx.finditer(head):
            if not _IN_SENTENCE.search(head[max(0, m.start() - 20):m.start()]):
                found.append((m.start(), name))
                break
    if not found or len(found) >= 3:
        return None
    return min(found)[1]


def find_statement_pages(chunks: Iterable, page_key) -> dict[str, list[StatementPage]]:
    """Statement -> its pages (at most :data:`PAGES_PER_STATEMENT`, in filing order) among ``chunks``.

    ``chunks``: stored chunks (``id``, ``text``, ``metadata`` with ``seq``,
    ``filing_id``, ``item``, and ``page`` for PDFs); ``page_key(metadata)``
    names a chunk's page.  A PDF page is a statement page when its text opens
    with a statement heading; in a document without pages (HTML, text) a chunk
    that opens with one starts a statement, which runs over the next chunks
    of its item (at most :data:`BLOCK_CHUNKS`) up to the next heading.  A
    filing's statements are taken from Item 8 when it has them there, else
    from Item 15 or the text outside the items (statements printed after the
    signatures), else from anywhere.
    """
    by_filing: dict[str, list] = {}
    for c in chunks:
        by_filing.setdefault(str(c.metadata.get("filing_id") or ""), []).append(c)
    out: dict[str, list[StatementPage]] = {}
    for filing in sorted(by_filing):
        members = sorted(by_filing[filing], key=lambda c: int(c.metadata.get("seq") or 0))
        blocks = _pdf_blocks(members, page_key) if any(c.metadata.get("page") is not None for c in members) \
            else _text_blocks(members)
        found: dict[str, list[tuple[int, int, int, StatementPage]]] = {}
        for statement, block, head_text in blocks:
            counts = [len(_FIGURE.findall(c.text)) for c in block]
            if sum(counts) < MIN_FIGURES:
                continue
            # the chunks that carry figures (not the heading alone): what a reader of the statement needs
            ids = [c.id for c, n in zip(block, counts) if n >= 3] or [c.id for c in block]
            first, last = block[0].metadata, block[-1].metadata
            found.setdefault(statement, []).append(
                (_ITEM_PREFERENCE.get(str(first.get("item") or ""), 2), int(first.get("seq") or 0),
                 int(last.get("seq") or 0),
                 StatementPage(statement, page_key(first), ids, sum(counts), heading_of(head_text.lstrip("\n")))))
        for statement, candidates in sorted(found.items()):
            best = min(c[0] for c in candidates)
            preferred = [c for c in candidates if c[0] == best]  # in filing order
            kept = [preferred[0]]
            for cand in preferred[1:]:  # a continuation right after it, headed again ("... (continued)")
                if len(kept) >= PAGES_PER_STATEMENT or cand[1] != kept[-1][2] + 1:
                    break
                kept.append(cand)
            out.setdefault(statement, []).extend(c[3] for c in kept)
    return out


def _pdf_blocks(members: list, page_key) -> list[tuple[str, list, str]]:
    """(statement, the page's chunks, their text) for each PDF page that opens with a statement heading."""
    pages: dict[str, list] = {}
    for c in members:
        pages.setdefault(page_key(c.metadata), []).append(c)
    out = []
    for page in pages.values():
        text = "\n".join(c.text for c in page)
        statement = _heading_statement(text[:HEADING_WINDOW])
        if statement is not None:
            out.append((statement, page, text))
    return out


def _text_blocks(members: list) -> list[tuple[str, list, str]]:
    """(statement, chunks, text from the heading on) for each statement heading standing as a line of its own
    in a chunk.  A heading followed by another in its chunk (two short statements in one chunk) heads that
    chunk alone; the last heading of a chunk runs over the chunks that follow it in its item (at most
    :data:`BLOCK_CHUNKS` in all, up to the next heading).  The heading chunk belongs to the block only when
    figures follow the heading in it (what comes before the heading, such as the auditor's report, is not the
    statement's)."""
    heads = [line_headings(c.text) for c in members]
    out = []
    for n, found in enumerate(heads):
        text = members[n].text
        for i, (statement, begin, end) in enumerate(found):
            if i + 1 < len(found):  # the next statement starts in this same chunk
                stop = found[i + 1][1]
                if len(_FIGURE.findall(text[end:stop])) >= 3:
                    out.append((statement, [members[n]], text[begin:stop]))
                continue
            own = len(_FIGURE.findall(text[end:])) >= 3
            block = [members[n]] if own else []
            for m in range(n + 1, min(n + BLOCK_CHUNKS, len(members))):
                if members[m].metadata.get("item") != members[n].metadata.get("item"):
                    break
                if heads[m]:
                    # the next statement starts in this chunk: it belongs here too when this statement's last
                    # rows come before that heading (read with :func:`statement_segment`)
                    if len(_FIGURE.findall(members[m].text[:heads[m][0][1]])) >= 3:
                        block.append(members[m])
                    break
                block.append(members[m])
            if block:
                rest = block[1:] if own else block
                out.append((statement, block, "\n".join([text[begin:]] + [c.text for c in rest])))
    return out


def line_headings(text: str) -> list[tuple[str, int, int]]:
    """(statement, start, end offset) of each statement heading that is a line of its own in ``text``, in order."""
    found = []
    for name, rx in _LINE_HEADING_RE.items():
        for m in rx.finditer(text):
            if not _IN_SENTENCE.search(text[max(0, m.start("h") - 20):m.start("h")]):
                found.append((name, m.start(), m.end()))
    kept: list[tuple[str, int, int]] = []
    for h in sorted(found, key=lambda h: (h[1], -h[2])):
        if not kept or h[1] >= kept[-1][2]:  # overlapping matches: the longer, earlier one
            kept.append(h)
    return kept


def statement_segment(text: str, statement: str) -> str:
    """The part of a chunk's ``text`` that belongs to ``statement``: from its heading (or the start, for a
    continuation) up to the next statement's heading.  A chunk may hold one statement's last rows and the
    next one's first: a balance sheet's equity section, then "CONSOLIDATED STATEMENTS OF INCOME"."""
    heads = line_headings(text)
    own = [h for h in heads if h[0] == statement]
    begin = own[0][1] if own else 0
    later = [h[1] for h in heads if h[1] > begin and h[0] != statement]
    return text[begin:min(later)] if later else text[begin:]


_YEAR = re.compile(r"(?:19|20)\d\d")


def _is_row(line: str) -> bool:
    """A row of figures: a line with at least two figures, not all of them years (a column header)."""
    figures = [f.strip() for f in _FIGURE.findall(line)]
    return len(figures) >= 2 and not all(_YEAR.fullmatch(f) for f in figures)

#: the longest heading kept (title, units, column headers)
HEADING_CHARS = 240


def heading_of(text: str) -> str:
    """A statement's heading: ``text`` up to its first row of figures, on one line (title, "(In millions
    ...)", the column headers), at most :data:`HEADING_CHARS` characters."""
    lines = []
    for line in text.splitlines():
        if _is_row(line):
            break
        lines.append(line.strip(" |"))
    heading = re.sub(r"\s+", " ", " ".join(x for x in lines if x)).strip()
    return heading[:HEADING_CHARS].rsplit(" ", 1)[0] if len(heading) > HEADING_CHARS else heading


def statement_ranking(asked: Sequence[str], pages: dict[str, list[StatementPage]]) -> list[StatementPage]:
    """The asked statements' pages, interleaved: each statement's first page, then each one's second page."""
    columns = [pages.get(s, []) for s in asked]
    out: list[StatementPage] = []
    for depth in range(max((len(c) for c in columns), default=0)):
        out.extend(c[depth] for c in columns if depth < len(c))
    return out
