"""FinanceBench data: questions, documents, PDFs, and the evidence-page hit rule.

Shared by the retrieval bench (``bench/retrieval_financebench.py``) and the QA
evaluation (``evals/qa_eval.py``) so both measure retrieval the same way.

**Hit rule.** A retrieved chunk *hits* an evidence item when it comes from the
evidence document (same company and fiscal year) and its source page equals
the evidence page (``evidence_page_num``, 0-based PDF page; chunks never cross
pages).  A question's evidence recall is the fraction of its distinct evidence
pages hit by at least one retrieved chunk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from filinglens import settings


def financebench_dir() -> Path:
    return settings.shared_dir() / "data" / "financebench"


def default_questions_path() -> Path:
    return financebench_dir() / "questions_dev.jsonl"


def default_documents_path() -> Path:
    return financebench_dir() / "documents.jsonl"


def default_pdf_dir() -> Path:
    return settings.shared_dir() / "data" / "filings" / "pdf"


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def load_documents(path: Path | None = None) -> dict[str, dict]:
    """``doc_name`` -> the ``documents.jsonl`` record (company, doc_period = fiscal year, ...)."""
    return {d["doc_name"]: d for d in load_jsonl(path or default_documents_path())}


def question_documents(question: dict) -> list[str]:
    """The documents a question needs: its own and every evidence document."""
    names = [question["doc_name"]]
    for ev in question.get("evidence") or []:
        if ev.get("doc_name") and ev["doc_name"] not in names:
            names.append(ev["doc_name"])
    return names


def evidence_pages(question: dict, docs: dict) -> set[tuple[str, int, int]]:
    """The question's evidence pages as (company, fiscal year, 0-based page)."""
    out = set()
    for ev in question["evidence"]:
        doc = docs[ev["doc_name"]]
        out.add((doc["company"], int(doc["doc_period"]), int(ev["evidence_page_num"])))
    return out


def hit_pages(hits: Iterable[Any], pages: set) -> set:
    """The evidence ``pages`` hit by ``hits`` (search hits, retrieval ``Evidence`` metadata or dicts)."""
    found = set()
    for h in hits:
        m = h.metadata if hasattr(h, "metadata") else h
        key = (m.get("company"), m.get("fiscal_year"), m.get("page"))
        if key in pages:
            found.add(key)
    return found


#: the two halves of :func:`split_of`
SPLITS = ("tune", "held-out")


def split_of(questions: Iterable[dict]) -> dict[str, str]:
    """The fixed tuning / held-out split: ``financebench_id`` -> ``"tune"`` or ``"held-out"``.

    Within each question type the questions are ordered by the sha256 of their
    ``financebench_id``; the first half (rounded up) is the tuning half.  It
    depends only on the ids, so it never moves when methods change, and
    every type is split evenly.  Anything tuned (weights, rewrite rules, k,
    chunking, prompt wording) is chosen on ``tune``; ``held-out`` is reported.
    """
    out: dict[str, str] = {}
    by_type: dict[str, list[str]] = {}
    for q in questions:
        by_type.setdefault(q.get("question_type") or "other", []).append(q["financebench_id"])
    for ids in by_type.values():
        ids = sorted(ids, key=lambda i: hashlib.sha256(str(i).encode()).hexdigest())
        half = (len(ids) + 1) // 2
        out.update({i: ("tune" if n < half else "held-out") for n, i in enumerate(ids)})
    return out
