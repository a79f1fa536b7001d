"""What decided one rating: rationale, indicator answers or rubric level, evidence, and each quote in its Item.

``cell_evidence(row)`` takes a results-store ``ratings`` row and returns a
``CellEvidence``: the yes/no answers (question and P(yes), from the prompt
the rating was made with) or the rubric level of a direct rating; the evidence
chunks with their citations and exact texts (read back from the index); any
cited facts; and each quote located in its Item's text — filing, Item and
character span in the Item — with the text around it. An Item's text is
rebuilt from the index's chunks, which are exact spans of it (gaps between
them, e.g. blank lines between blocks, are kept as whitespace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from filinglens.analysis.panel import yesno_probabilities

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def _normalised(text: str) -> tuple[str, list[int]]:
    """Lower-cased text with curly quotes straightened and whitespace runs collapsed, and the raw index of each char."""
    out, where = [], []
    prev_space = True
    for i, ch in enumerate(text.translate(_QUOTES)):
        if ch.isspace():
            if prev_space:
                continue
            out.append(" ")
            where.append(i)
            prev_space = True
        else:
            out.append(ch.lower())
            where.append(i)
            prev_space = False
    return "".join(out), where


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """``(start, end)`` of ``quote`` in ``text``, ignoring case, quote style and whitespace; None if absent."""
    hay, where = _normalised(text)
    needle, _ = _normalised(quote)
    for candidate in (needle.strip(), needle.strip(" .\"'…")):  # as quoted, then without end punctuation
        pos = hay.find(candidate) if candidate else -1
        if pos >= 0:
            return where[pos], where[pos + len(candidate) - 1] + 1
    return None


@dataclass
class QuoteSpan:
    """A quote of a rating, found (or not) in its Item's text."""

    text: str
    verified: bool
    chunk_id: str | None
    filing: str = ""
    item: str | None = None
    item_title: str = ""
    start: int | None = None  # span in the Item's text
    end: int | None = None
    before: str = ""
    match: str = ""
    after: str = ""
    item_text: str = ""  # the Item's text (rebuilt from the index), for a full view

    @property
    def located(self) -> bool:
        return self.start is not None


@dataclass
class CellEvidence:
    """Everything behind one rating cell."""

    rating: dict
    method: str
    rationale: str
    indicators: list[dict] = field(default_factory=list)  # yes/no: {"question", "p_yes"}
    rubric_level: dict | None = None  # direct: {"score", "text"}
    cutoffs: list[float] | None = None
    prompt_note: str | None = None
    evidence: list[dict] = field(default_factory=list)  # {"chunk_id", "citation", "item", "text", "start", "end"}
    facts: list[dict] = field(default_factory=list)
    quotes: list[QuoteSpan] = field(default_factory=list)


def _prompt_for(row: dict):
    from filinglens.errors import FilingLensError
    from filinglens.prompts.loader import load_prompt

    try:
        prompt = load_prompt(f"{row['category']}@{row['prompt_version']}")
    except FilingLensError as exc:
        return None, f"prompt {row['category']}@{row['prompt_version']} is not available here: {exc}"
    if prompt.hash != row.get("prompt_hash"):
        return prompt, (f"the prompt file {prompt.ref} has changed since this rating (hash {row.get('prompt_hash')} "
                        f"then, {prompt.hash} now): questions and rubric shown are today's")
    return prompt, None


def item_text(index, filing_id: str, item: str) -> str:
    """An Item's text rebuilt from its indexed chunks (exact spans; uncovered gaps become spaces)."""
    chunks = index.get(where={"$and": [{"filing_id": filing_id}, {"item": item}]})
    if not chunks:
        return ""
    end = max(int(c.metadata.get("end", 0)) for c in chunks)
    buffer = [" "] * end
    for c in chunks:
        start = int(c.metadata.get("start", 0))
        buffer[start:start + len(c.text)] = list(c.text)
    return "".join(buffer)


def cell_evidence(row: dict, index: Any = None, context_chars: int = 400) -> CellEvidence:
    """The evidence view of one ratings row; ``index`` is a ``ChunkStore`` (opened when None)."""
    method = row.get("method") or ""
    cell = CellEvidence(rating=row, method=method, rationale=row.get("rationale") or "")
    prompt, cell.prompt_note = _prompt_for(row)
    if prompt is not None:
        cell.cutoffs = list(prompt.cutoffs) if method == "yesno" else None
        if method == "yesno" and prompt.questions:
            questions = [prompt.questions.level1, *prompt.questions.level2]
            probs = yesno_probabilities(cell.rationale)
            for n, question in enumerate(questions):
                cell.indicators.append({
                    "level": "1" if n == 0 else "2", "question": question,
                    "p_yes": probs[n] if n < len(probs) else None,
                })
        elif row.get("score") is not None:
            score = int(row["score"])
            cell.rubric_level = {"score": score, "text": prompt.rubric.get(score, "")}
    for extra in ("indicators", "facts"):  # ratings made by methods that record these themselves
        value = row.get(extra)
        if isinstance(value, list) and value:
            setattr(cell, extra, value)
    evidence = list(row.get("evidence") or [])
    cell.facts = cell.facts or [e for e in evidence if isinstance(e, dict) and ("fact" in e or "concept" in e)]
    chunk_ids = [e["chunk_id"] for e in evidence if isinstance(e, dict) and e.get("chunk_id")]
    chunk_ids += [q["chunk_id"] for q in row.get("quotes") or [] if q.get("chunk_id") and q["chunk_id"] not in chunk_ids]
    chunks: dict[str, Any] = {}
    if chunk_ids:
        if index is None:
            from filinglens.retrieval.index import open_store

            index = open_store()
        chunks = {c.id: c for c in index.get(ids=chunk_ids)}
    for e in evidence:
        if not isinstance(e, dict) or not e.get("chunk_id"):
            continue
        c = chunks.get(e["chunk_id"])
        cell.evidence.append({
            "chunk_id": e["chunk_id"], "citation": e.get("citation", ""), "item": e.get("item"),
            "text": c.text if c else "", "start": c.metadata.get("start") if c else None,
            "end": c.metadata.get("end") if c else None, "in_index": c is not None,
        })
    items_cache: dict[tuple[str, str], str] = {}
    for q in row.get("quotes") or []:
        span = QuoteSpan(text=q.get("text", ""), verified=bool(q.get("verified")), chunk_id=q.get("chunk_id"))
        c = chunks.get(q.get("chunk_id") or "")
        if c is not None:
            m = c.metadata
            span.item, span.item_title = m.get("item"), m.get("item_title", "")
            span.filing = f"{m.get('ticker') or m.get('company') or '?'} 10-K FY{m.get('fiscal_year')}"
            found = locate(c.text, span.text)
            if found:
                key = (m.get("filing_id", ""), span.item or "")
                if key not in items_cache:
                    items_cache[key] = item_text(index, *key)
                text = items_cache[key]
                span.start = int(m.get("start", 0)) + found[0]
                span.end = int(m.get("start", 0)) + found[1]
                span.item_text = text
                span.before = text[max(0, span.start - context_chars):span.start]
                span.match = text[span.start:span.end]
                span.after = text[span.end:span.end + context_chars]
        cell.quotes.append(span)
    return cell


def find_rating(rows: Sequence[dict], rating_id: int) -> dict | None:
    """The ratings row with this id."""
    return next((r for r in rows if int(r.get("id") or -1) == int(rating_id)), None)

