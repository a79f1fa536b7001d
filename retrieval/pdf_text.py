"""10-K PDFs to blocks with pypdfium2: lines joined into paragraphs, numeric lines into table rows.

Every block records its 0-based page, so evidence can be cited by page.
"""

from __future__ import annotations

import re

from filinglens.errors import InputError
from filinglens.retrieval.blocks import DocBlock, clean_row

_NUMERIC_TOKEN = re.compile(r"^(?:\$|\(?\$?-?[\d,]*\.?\d+\)?%?|—|–|-|\)|%)$")
_HEADING_LINE = re.compile(r"^(?:part\s+(?:iv|i{1,3})\b|items?\s*\d{1,2}[a-c]?\b|signatures?$)", re.I)
# "... financial position. ITEM 4. MINE SAFETY DISCLOSURES Not applicable." on one text line
_EMBEDDED_HEADING = re.compile(r"(?<=[.!?)”\"])\s+(?=ITEMS?\s+\d{1,2}[A-C]?\.\s+[A-Z]{2})")
_SENTENCE_END = re.compile(r"[.:;!?”\"]$")


def pdf_end_marker(data: bytes) -> bool:
    """Whether the PDF ends with its ``%%EOF`` marker (a PDF cut short has none)."""
    return b"%%EOF" in data[-2048:]


def parse_pdf(data: bytes, source: str, warnings: list[str] | None = None) -> list[DocBlock]:
    """Blocks of a PDF document (one ``pagebreak`` block between pages).

    A document pdfium cannot open is an ``InputError``; a page it cannot read
    is left out and reported in ``warnings`` (the filing is then incomplete).
    """
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        hint = "; it has no %%EOF end marker (the file is cut off or not a PDF)" if not pdf_end_marker(data) else ""
        raise InputError(f"{source}: not a readable PDF ({_one_line(exc)}){hint}") from exc
    blocks: list[DocBlock] = []
    unreadable: list[int] = []
    try:
        try:
            pages = len(pdf)
        except pdfium.PdfiumError as exc:
            raise InputError(f"{source}: not a readable PDF ({_one_line(exc)})") from exc
        for page_no in range(pages):
            try:
                page = pdf[page_no]
                try:
                    textpage = page.get_textpage()
                    text = textpage.get_text_bounded()
                    textpage.close()
                finally:
                    page.close()
            except pdfium.PdfiumError:
                unreadable.append(page_no)
                continue
            if page_no:
                blocks.append(DocBlock("pagebreak", ""))
            blocks.extend(page_blocks(text, page_no))
    finally:
        pdf.close()
    if unreadable and len(unreadable) == pages:
        raise InputError(f"{source}: not a readable PDF (none of its {pages} pages can be read; the file is damaged)")
    if unreadable and warnings is not None:
        warnings.append(
            f"damaged PDF: {len(unreadable)} of {pages} pages could not be read (page{'s' if len(unreadable) > 1 else ''} "
            f"{_ranges([p + 1 for p in unreadable])}); their text is missing"
        )
    return blocks


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _ranges(numbers: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    out: list[str] = []
    for n in numbers:
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out[:12]) + (" ..." if len(out) > 12 else "")


def _numeric_split(line: str) -> list[str] | None:
    """``["Net sales", "$260,174", ...]`` when ``line`` is a row of figures, else None."""
    tokens = line.split()
    n = len(tokens)
    while n and _NUMERIC_TOKEN.match(tokens[n - 1]):
        n -= 1
    figures = tokens[n:]
    if sum(1 for t in figures if re.search(r"\d", t)) < 2:
        return None
    return clean_row([" ".join(tokens[:n])] + figures)


def page_blocks(text: str, page: int) -> list[DocBlock]:
    """Group one page's lines into paragraphs and tables."""
    # pdfium ends lines with CR LF; a bare LF separates words drawn one by one (bold text)
    if "\r" in text:
        text = text.replace("\r\n", "\r").replace("\n", " ").replace("\r", "\n")
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in text.split("\n")]
    lines = [part for ln in lines for part in _EMBEDDED_HEADING.split(ln)]
    lines = [ln for ln in lines if ln]
    if not lines:
        return []
    lengths = sorted(len(ln) for ln in lines)
    width = lengths[int(0.9 * (len(lengths) - 1))]  # typical full line, robust to a few very long ones
    out: list[DocBlock] = []
    para: list[str] = []
    rows: list[list[str]] = []

    def flush_para():
        if para:
            out.append(DocBlock("text", " ".join(para), page=page))
            para.clear()

    def flush_rows():
        if rows:
            out.append(DocBlock("table", "\n".join(" | ".join(r) for r in rows), rows=list(rows), page=page))
            rows.clear()

    for line in lines:
        row = _numeric_split(line)
        if row is not None:
            flush_para()
            rows.append(row)
            continue
        flush_rows()
        if _HEADING_LINE.match(line) and len(line) < 200:
            flush_para()
            out.append(DocBlock("text", line, page=page))
            continue
        para.append(line)
        # a line that stops well short of the page width, or ends a sentence
        # while short, ends its paragraph
        if len(line) < 0.7 * width or (_SENTENCE_END.search(line) and len(line) < 0.85 * width):
            flush_para()
    flush_para()
    flush_rows()
    return out
