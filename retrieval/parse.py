"""Read a 10-K from disk (HTML/iXBRL, EDGAR full-submission text, PDF) into a ``Filing``.

``parse_filing`` is the one entry point: it checks the input (empty, binary,
oversized, another form), picks the reader for the format, finds the items,
fills in the metadata from the iXBRL cover facts, the SGML header or the
cover page text, and flags a document that was cut off (``Filing.truncated``
with reasons in ``Filing.warnings``, see ``retrieval.truncation``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from pathlib import Path

from filinglens.errors import InputError, NotA10KError
from filinglens.retrieval.blocks import DocBlock
from filinglens.retrieval.filing import Filing
from filinglens.retrieval.items import build_items
from filinglens.retrieval.structure import is_annual_form
from filinglens.retrieval.truncation import assess, closing_problems

MAX_BYTES = 80 * 1024 * 1024  # the largest real 10-K documents are ~40 MB

_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_FY_END = re.compile(
    rf"(?:fiscal\s+)?year\s+ended\s*:?\s*((?:{_MONTHS})\s+\d{{1,2}}\s*,?\s*(?:19|20)\d\d)", re.I
)
_FORM_ON_COVER = re.compile(r"\bFORM\s+(10-K(?:405|SB|T)?|10-Q|8-K|20-F|40-F|S-1|DEF 14A|6-K|11-K)\b(?:\s*/\s*A)?")
_REGISTRANT = re.compile(r"\(\s*exact name of (?:the )?registrant as specified in its charter\s*\)", re.I)


def parse_filing(path: str | Path, *, ticker: str | None = None) -> Filing:
    """Parse a 10-K file into a ``Filing`` with its items; raise ``InputError`` on unusable input."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a 10-K file")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: the file is empty")
    if size > MAX_BYTES:
        raise InputError(f"{path}: {size / 2**20:.0f} MB is larger than any 10-K document ({MAX_BYTES // 2**20} MB limit)")
    data = path.read_bytes()
    return parse_bytes(data, source=str(path), ticker=ticker or _ticker_from_name(path.name))


def parse_bytes(data: bytes, *, source: str, ticker: str | None = None) -> Filing:
    """Parse the bytes of a 10-K document (format detected from the content)."""
    content_hash = hashlib.sha256(data).hexdigest()
    facts: dict[str, str] = {}
    header: dict[str, str] = {}
    warnings: list[str] = []
    if data[:5] == b"%PDF-":
        from filinglens.retrieval.pdf_text import parse_pdf

        blocks = parse_pdf(data, source, warnings)
        source_type = "pdf"
        closing = closing_problems("pdf", data=data)
    else:
        full = _decode(data, source, warnings)
        from filinglens.retrieval.sgml import split_submission

        text, header = split_submission(full, source)
        closed = _document_closed(full, text) if header else None
        if re.search(r"<(?:html|body|div|p|table|font)\b", text[:20000], re.I):
            from filinglens.retrieval.html_text import parse_html

            blocks, facts = parse_html(text)
            source_type = "html"
        else:
            from filinglens.retrieval.sgml import parse_plain_text

            blocks = parse_plain_text(text)
            source_type = "text"
        closing = closing_problems(source_type, markup=text, document_closed=closed)
    cut = f"; {closing[0]}" if closing else ""
    if not any(b.text.strip() for b in blocks):
        raise InputError(f"{source}: no readable text (truncated or not a document){cut}")
    form = _form(facts, header, blocks, source)
    items, doc_text, page_starts = build_items(blocks)
    if not any(i.status != "absent" for i in items.values()):
        raise InputError(f"{source}: no 10-K items (\"Item 1. Business\", ...) were found; is this a complete 10-K?{cut}")
    period_end = _period_end(facts, header, blocks)
    fiscal_year = _fiscal_year(facts, period_end)
    filing = Filing(
        company=facts.get("dei:EntityRegistrantName") or header.get("COMPANY CONFORMED NAME") or _company_from_cover(blocks),
        cik=_cik(facts.get("dei:EntityCentralIndexKey") or header.get("CENTRAL INDEX KEY")),
        form=form,
        fiscal_year=fiscal_year,
        period_end=period_end,
        source=source,
        source_type=source_type,
        content_hash=content_hash,
        text=doc_text,
        items=items,
        ticker=(ticker or facts.get("dei:TradingSymbol") or None),
        accession=header.get("ACCESSION NUMBER"),
        page_starts=page_starts,
        warnings=warnings,
        truncated=source_type == "pdf" and bool(warnings),  # unreadable PDF pages: their text is missing
    )
    assess(filing, closing)
    return filing


# ----------------------------------------------------------------------------- input checks


def _decode(data: bytes, source: str, warnings: list[str]) -> str:
    """The document's text: UTF-8, else Windows-1252; a few damaged bytes are replaced (and reported)."""
    sample = data[:65536]
    if b"\x00" in sample or _binary_ratio(sample) > 0.10:
        raise InputError(f"{source}: binary data, not an HTML, text or PDF 10-K")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    limit = max(20, len(data) // 1000)
    # A UTF-8 document with a few damaged bytes stays UTF-8 (decoding it as Windows-1252 would
    # garble every curly quote and dash); a legacy Windows-1252 document is mostly not UTF-8.
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    non_ascii = len(text) - len(text.encode("ascii", "ignore")) - bad
    if non_ascii <= bad:
        text = data.decode("cp1252", errors="replace")
        bad = text.count("\ufffd")
    if bad > limit:
        raise InputError(f"{source}: undecodable bytes (neither UTF-8 nor Windows-1252 text)")
    if bad:
        warnings.append(f"{bad} undecodable byte{'s' if bad > 1 else ''} replaced by \ufffd (a damaged file?)")
    return text


def _document_closed(full: str, document: str) -> bool:
    """Whether the 10-K document taken from a full submission ends with ``</TEXT>`` or ``</DOCUMENT>``."""
    at = full.find(document) if document else -1
    if at < 0:
        return True  # cannot tell
    return bool(re.match(r"\s*</(?:TEXT|DOCUMENT)>", full[at + len(document) : at + len(document) + 200], re.I))


def _binary_ratio(sample: bytes) -> float:
    if not sample:
        return 0.0
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    return control / len(sample)


def _form(facts: dict, header: dict, blocks: list[DocBlock], source: str) -> str:
    form = (facts.get("dei:DocumentType") or header.get("CONFORMED SUBMISSION TYPE") or "").upper().strip()
    if not form:
        cover = " ".join(b.text for b in blocks[:80])[:8000]
        m = _FORM_ON_COVER.search(cover)
        form = (m.group(0).replace(" ", "").replace("FORM", "") if m else "10-K").upper()
    if not is_annual_form(form):
        raise NotA10KError(f"{source}: this is a Form {form} filing, not a 10-K")
    return form


def _period_end(facts: dict, header: dict, blocks: list[DocBlock]) -> str | None:
    value = facts.get("dei:DocumentPeriodEndDate")
    if value:
        parsed = _parse_date(value)
        if parsed:
            return parsed.isoformat()
    raw = header.get("CONFORMED PERIOD OF REPORT")
    if raw and re.fullmatch(r"\d{8}", raw):
        return datetime.strptime(raw, "%Y%m%d").date().isoformat()
    cover = " ".join(b.text for b in blocks[:150])[:20000]
    m = _FY_END.search(cover)
    if m:
        parsed = _parse_date(m.group(1))
        if parsed:
            return parsed.isoformat()
    return None


def _parse_date(text: str) -> date | None:
    text = re.sub(r"\s+", " ", text.replace(",", ", ")).replace(" ,", ",").strip()
    text = re.sub(r",\s*,", ",", text)
    for fmt in ("%Y-%m-%d", "%B %d, %Y", "%B %d %Y", "%b %d, %Y", "%m/%d/%Y"):
        try:
            return datetime.strptime(text.title() if "%B" in fmt or "%b" in fmt else text, fmt).date()
        except ValueError:
            continue
    return None


def _fiscal_year(facts: dict, period_end: str | None) -> int | None:
    focus = facts.get("dei:DocumentFiscalYearFocus", "")
    if re.fullmatch(r"(19|20)\d\d", focus):
        return int(focus)
    if period_end:
        year, month, day = (int(x) for x in period_end.split("-"))
        # 52/53-week years that end in the first days of January belong to the year before
        return year - 1 if month == 1 and day <= 7 else year
    return None


def _cik(value: str | None) -> str | None:
    if value and value.strip().isdigit():
        return value.strip().zfill(10)
    return None


_FILE_NUMBER = re.compile(r"commission\s+file\s+(?:number|no\.?)\s*:?\s*[\d\-]+\s*", re.I)


def _company_from_cover(blocks: list[DocBlock]) -> str | None:
    name = _company_from_registrant_marker(blocks)
    if name:
        return name
    for i, b in enumerate(blocks[:80]):  # PDFs: the name follows the Commission file number
        m = _FILE_NUMBER.search(b.text)
        if m:
            after = b.text[m.end() :].strip()
            for text in (after, blocks[i + 1].text if i + 1 < len(blocks) else ""):
                name = _clean_name(text)
                if name and len(name) < 100:
                    return name
    return None


def _company_from_registrant_marker(blocks: list[DocBlock]) -> str | None:
    for i, b in enumerate(blocks[:120]):
        if _REGISTRANT.search(b.text):
            before = _clean_name(b.text[: _REGISTRANT.search(b.text).start()])
            if before:
                return before[-120:].strip()
            for prev in reversed(blocks[max(0, i - 3) : i]):
                number = _FILE_NUMBER.search(prev.text)
                name = _clean_name(prev.text[number.end() :] if number else prev.text)
                if name and len(name) < 150:
                    return name
    return None


def _clean_name(text: str) -> str:
    """Strip rules (``____``), file numbers and punctuation around a registrant name."""
    text = _FILE_NUMBER.sub("", text)
    return re.sub(r"^[\W_]+|[\s_]+$", "", text).strip()


def _ticker_from_name(name: str) -> str | None:
    m = re.match(r"^([a-z]{1,5})-10-?k", name, re.I)
    return m.group(1).upper() if m else None
