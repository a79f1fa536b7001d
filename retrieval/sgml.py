"""EDGAR full-submission text files: the SGML header, the 10-K document, plain-text 10-Ks."""

from __future__ import annotations

import re

from filinglens.errors import NotA10KError
from filinglens.retrieval.blocks import DocBlock, clean_row, collapse, table_blocks
from filinglens.retrieval.structure import is_annual_form

_DOCUMENT = re.compile(r"<DOCUMENT>(.*?)(?:</DOCUMENT>|\Z)", re.S | re.I)
_TAG_VALUE = re.compile(r"^<(TYPE|SEQUENCE|FILENAME|DESCRIPTION)>\s*(.*)$", re.M | re.I)
_HEADER_LINE = re.compile(r"^\s*([A-Z][A-Z0-9 \-/]+?):\s*(\S.*?)\s*$", re.M)
_TEXT = re.compile(r"<TEXT>(.*?)(?:</TEXT>|\Z)", re.S | re.I)


def split_submission(text: str, source: str) -> tuple[str, dict[str, str]]:
    """If ``text`` is a full submission (``<SEC-DOCUMENT>``/``<DOCUMENT>``), return the 10-K
    document's text and the header fields; otherwise return ``text`` unchanged."""
    if "<DOCUMENT>" not in text[:200000].upper():
        return text, {}
    head_end = text.upper().find("<DOCUMENT>")
    header: dict[str, str] = {}
    for key, value in _HEADER_LINE.findall(text[:head_end]):
        header.setdefault(key.strip().upper(), value.strip())
    first_type = None
    for doc in _DOCUMENT.finditer(text):
        body = doc.group(1)
        fields = {k.upper(): v.strip() for k, v in _TAG_VALUE.findall(body[:2000])}
        doc_type = fields.get("TYPE", "").upper()
        first_type = first_type or doc_type
        if is_annual_form(doc_type):
            m = _TEXT.search(body)
            header.setdefault("CONFORMED SUBMISSION TYPE", doc_type)
            return (m.group(1) if m else body), header
    raise NotA10KError(f"{source}: the submission holds no 10-K document (its main document is a {first_type or 'unknown form'})")


_PAGE_MARK = re.compile(r"^\s*<PAGE>\s*\d*\s*$", re.I)
_SGML_TABLE = re.compile(r"<TABLE>(.*?)</TABLE>", re.S | re.I)
_COLUMN_GAP = re.compile(r"\s{2,}|\t")


def parse_plain_text(text: str) -> list[DocBlock]:
    """Blocks of a plain-text 10-K: blank-line separated paragraphs, ``<TABLE>`` rows, ``<PAGE>`` breaks."""
    blocks: list[DocBlock] = []
    pos = 0
    for m in _SGML_TABLE.finditer(text):
        blocks.extend(_paragraphs(text[pos : m.start()]))
        rows = [clean_row(_COLUMN_GAP.split(line.strip())) for line in m.group(1).splitlines()]
        rows = [r for r in rows if r and not all(set(c) <= set("-=_ ") for c in r)]
        blocks.extend(table_blocks(rows))
        pos = m.end()
    blocks.extend(_paragraphs(text[pos:]))
    return blocks


def _paragraphs(chunk: str) -> list[DocBlock]:
    out: list[DocBlock] = []
    para: list[str] = []

    def flush():
        if para:
            joined = collapse(" ".join(para))
            para.clear()
            if joined:
                out.append(DocBlock("text", joined))

    for line in chunk.splitlines():
        if _PAGE_MARK.match(line):
            flush()
            out.append(DocBlock("pagebreak", ""))
            continue
        stripped = re.sub(r"</?[A-Z][A-Z0-9\-]*>", "", line).strip()
        if not stripped:
            flush()
            continue
        # a heading-looking line starts a paragraph of its own (a wrapped
        # heading continues on the next lines, up to the blank line)
        if re.match(r"^(item\s+\d|part\s+[iv]+\b|signatures?$)", stripped, re.I) and len(stripped) < 120:
            flush()
        para.append(stripped)
    flush()
    return out
