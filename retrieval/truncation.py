"""Is a 10-K complete?  Signs that a document was cut off before its end.

A truncated 10-K (an interrupted download, the first 30% of a file) parses
into a filing that looks plausible: its first Items are there, the rest are
merely "absent".  Two kinds of evidence tell it apart from a complete filing:

* **closing structure** (strong, enough on its own): an HTML document ends
  with ``</body>``/``</html>``, a PDF with its ``%%EOF`` marker, the 10-K
  document of an EDGAR full submission with ``</TEXT>``/``</DOCUMENT>``.
  Every complete shared 10-K has them (27 HTML, 76 PDF).
* **the end of the 10-K** (weak, counted only together): the SIGNATURES
  section (or its "duly caused this report to be signed" sentence) after the
  last Item found; the Items that should follow the last one found; whether
  the text stops mid-sentence.  No SIGNATURES *and* either many expected
  Items missing after the last one found or a mid-sentence end is a cut-off
  filing.  Financial statements printed after the signatures, Items
  incorporated by reference and old Item numbering (Item 14 as the last Item
  before 2003) do not trip it: they all keep their signatures.
"""

from __future__ import annotations

import re
from typing import Iterable

from filinglens.retrieval.filing import Filing, Item
from filinglens.retrieval.structure import item_ids

_HTML_CLOSE = re.compile(r"</\s*(?:html|body)\s*>", re.I)
_SIGNATURES_LINE = re.compile(r"^\W{0,3}s\s?i\s?g\s?n\s?a\s?t\s?u\s?r\s?e\s?s?\W{0,3}$", re.I | re.M)
_SIGNED = re.compile(r"duly\s+caused\s+this\s+(?:annual\s+)?report|pursuant\s+to\s+the\s+requirements\s+of\s+"
                     r"section\s+13\s+or\s+15\s*\(\s*d\s*\)\s+of\s+the\s+securities\s+exchange\s+act", re.I)
_SIGNATURE_CONTENT = re.compile(r"/\s*s\s*/|\bduly\b|caused\s+this\s+report|on\s+behalf\s+of\s+the\s+registrant|"
                                r"\bsignature\s*\|?\s*title\b|\btitle\s*\|?\s*date\b", re.I)
#: Items every 10-K of the last three decades has (as a section, a stub or a pointer).
CORE_ITEMS = frozenset("1 2 3 5 7 8 9 10 11 12 13 14 15".split())
#: This many core Items absent after the last Item found is a sign of a cut-off filing.
MISSING_AFTER_LAST = 3
#: The last Item found holding more of the text than this means the Items found are table-of-contents
#: entries (the real headings are cut off); in complete 10-Ks the largest share is 33% (Item 15 with the
#: financial statements, NETFLIX_2015).
MAX_LAST_ITEM_SHARE = 0.5
_MID_SENTENCE = re.compile(r"[a-z,;\-–(]$")  # a paragraph that stops before its sentence ends
_MIN_PROSE_LINE = 20


def closing_problems(source_type: str, *, data: bytes = b"", markup: str = "",
                     document_closed: bool | None = None) -> list[str]:
    """Reasons the raw document lacks its closing structure (empty when it is complete).

    ``data`` are the bytes of a PDF, ``markup`` the HTML of the 10-K document;
    ``document_closed`` is, for an EDGAR full submission, whether its 10-K
    document ends with ``</TEXT>`` or ``</DOCUMENT>`` (None: not a submission).
    """
    problems = []
    if document_closed is False:
        problems.append("the 10-K document of the submission has no closing </TEXT>/</DOCUMENT> (the file is cut off)")
    if source_type == "pdf":
        from filinglens.retrieval.pdf_text import pdf_end_marker

        if not pdf_end_marker(data):
            problems.append("the PDF ends without its %%EOF marker (the file is cut off)")
    elif source_type == "html" and not _HTML_CLOSE.search(markup):
        problems.append("the HTML ends without </body> or </html> (the file is cut off)")
    return problems


def structure_problems(filing: Filing) -> tuple[list[str], bool]:
    """Reasons the filing's own structure looks cut off, and whether they add up to truncation."""
    found = [i for i in filing.present_items() if i.start is not None]
    if not filing.text.strip() or not filing.present_items():
        return [], False
    if not found:  # every Item "found" is a table-of-contents line with no text of its own
        if _signed(filing.text):
            return [], False
        return ["no SIGNATURES section", "no Item heading with text of its own (only table-of-contents entries)"], True
    order = item_ids()
    last = max(found, key=lambda i: i.start)  # the Item whose heading comes last in the text
    after = order[order.index(last.item) + 1 :]
    missing = [k for k in after if _missing(filing.items.get(k))]
    missing_core = [k for k in missing if k in CORE_ITEMS]
    tail = filing.text[last.start :]
    signed = _signed(tail)
    last_line = _last_line(filing.text)
    mid_sentence = len(last_line) >= _MIN_PROSE_LINE and bool(_MID_SENTENCE.search(last_line))
    share = len(last.text) / max(1, len(filing.text))

    reasons = []
    if not signed:
        reasons.append(f"no SIGNATURES section after the last Item found (Item {last.item})")
    if len(missing_core) >= MISSING_AFTER_LAST:
        reasons.append(f"{_span(missing)} absent after the last Item found (Item {last.item})")
    if share > MAX_LAST_ITEM_SHARE and len(missing_core) < MISSING_AFTER_LAST:
        toc = all(len(i.text) < 300 for i in found if i is not last)
        reasons.append(f"the last Item found (Item {last.item}) holds {share:.0%} of the text"
                       + ("; the Items before it are table-of-contents lines" if toc else ""))
    if mid_sentence:
        where = _ending_item(filing, found)
        who = f"Item {where.item}" if where is not None else "the text"
        reasons.append(f"{who} stops mid-sentence at the end of the document: “…{last_line[-60:]}”")
    truncated = not signed and (len(missing_core) >= MISSING_AFTER_LAST or share > MAX_LAST_ITEM_SHARE or mid_sentence)
    return reasons, truncated


def _signed(text: str) -> bool:
    """The signature section is in ``text``: its sentence, or a SIGNATURES heading followed by signatures
    (or by nothing: the end of the document).

    A bare "Signatures" line followed by other text is not enough: tables of contents list it too.
    """
    if _SIGNED.search(text):
        return True
    return any(
        _SIGNATURE_CONTENT.search(text, m.end(), m.end() + 3000) or len(text[m.end() :].strip()) < 200
        for m in _SIGNATURES_LINE.finditer(text)
    )


def _missing(item: Item | None) -> bool:
    """Absent, or known only from a table-of-contents line (no text of its own)."""
    if item is None or item.status == "absent":
        return True
    return item.start is None and not (item.reference or "").endswith("(combined heading)")


def assess(filing: Filing, closing: Iterable[str]) -> None:
    """Set ``filing.truncated`` and add the reasons to ``filing.warnings``."""
    closing = list(closing)
    reasons, structural = structure_problems(filing)
    if closing or structural:
        filing.truncated = True
        filing.warnings.extend(closing + [r for r in reasons if r not in closing])


def _last_line(text: str) -> str:
    for line in reversed(text.rstrip().split("\n")[-20:]):
        if line.strip():
            return line.strip()
    return ""


def _ending_item(filing: Filing, present: list[Item]) -> Item | None:
    """The item whose text runs to the end of the document, if any."""
    end = len(filing.text.rstrip())
    for item in reversed(present):
        if item.end is not None:
            return item if item.end >= end - 2 else None
    return None


def _span(items: list[str]) -> str:
    if len(items) == 1:
        return f"Item {items[0]} is"
    if len(items) == 2:
        return f"Items {items[0]} and {items[1]} are"
    return f"Items {items[0]}–{items[-1]} are"
