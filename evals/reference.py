"""Criterion validity: agreement of ratings with reference labels made by careful readers.

A suite names its reference labels with ``reference: PATH``. Two formats:

* JSON like ``../shared/data/labels/ratings_dev.json``: ``{"labels": [...]}`` (or a bare list), each label
  with ``file`` (or ``filing``), ``category``, ``score`` (0–2) and optionally ``borderline``, ``company``,
  ``ticker``, ``fiscal_year``, ``rationale`` and ``evidence`` (verbatim quotes);
* CSV with a header ``filing,category,score[,borderline]`` (``borderline``: true/false/1/0/yes/no).

A label's ``filing`` is a 10-K file (a path or a file name, looked up beside the reference file, in the
shared filings folders and beside the suite) — matched to a rated filing by the sha256 of its bytes — or
``TICKER FY`` (``AAPL 2024``, ``AAPL|2024``), matched by ticker and fiscal year. Labels whose filing was not
rated are counted and listed, never silently dropped.

Per rater (model × prompt version), against the labels (:func:`reference_agreement`): exact and within-one
agreement, quadratic-weighted κ and Krippendorff's α (ordinal), each with a percentile bootstrap 95% CI over
cells (:func:`filinglens.evals.stats.pairwise_agreement`); the same per category and on clear vs borderline
labels; the confusion matrix (reference × rating); and **evidence recall**.

Evidence recall (:func:`quote_covered`): the share of the reference quotes covered by the evidence a rating
was shown. A quote is covered when, after normalisation (lower case, curly quotes and dashes straightened,
every run of non-alphanumerics one space), it is a substring of one evidence chunk's text, or at least 80%
of its words lie in a word 5-gram that occurs in the shown chunks (a quote cut across two chunks, or with a
few words the parser rendered differently); a quote of fewer than five words must be a substring. Reported for the chunks *shown* to the model and for
the chunks its verified quotes *cited*.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from filinglens.errors import InputError
from filinglens.evals import stats

REFERENCE_RATER = "reference"
NGRAM = 5
NGRAM_SHARE = 0.8
TRUE_WORDS = {"true", "1", "yes", "y", "t"}
FALSE_WORDS = {"false", "0", "no", "n", "f", ""}


class ReferenceError(InputError):
    """The reference labels cannot be used; the message names the file and the label."""


@dataclass
class Label:
    """One reference label: a filing × category with a 0–2 score."""

    filing: str  # as written: a file name/path or "TICKER FY"
    category: str
    score: int
    borderline: bool = False
    company: str | None = None
    ticker: str | None = None
    fiscal_year: int | None = None
    quotes: list[str] = field(default_factory=list)
    rationale: str = ""
    line: int = 0  # 1-based position in the file (CSV line or JSON label index + 1)
    path: Path | None = None  # the 10-K file, when ``filing`` names one that exists

    @property
    def where(self) -> str:
        return f"label {self.line} ({self.filing}, {self.category})"


@dataclass
class ReferenceSet:
    """Labels read from one file."""

    path: Path
    labels: list[Label]

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(label.category for label in self.labels))

    def files(self) -> list[Path]:
        """The 10-K files the labels name (those that exist), in first-seen order."""
        return list(dict.fromkeys(label.path for label in self.labels if label.path is not None))


# ----------------------------------------------------------------------------- reading


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ReferenceError(f"{where}: borderline must be true or false, not {value!r}")


def _score(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ReferenceError(f"{where}: score must be 0, 1 or 2, not {value!r}")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ReferenceError(f"{where}: score must be 0, 1 or 2, not {value!r}") from None
    if not number.is_integer() or int(number) not in (0, 1, 2):
        raise ReferenceError(f"{where}: score must be 0, 1 or 2, not {value!r}")
    return int(number)


def _year(value: Any, where: str) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not re.fullmatch(r"\d{4}", text):
        raise ReferenceError(f"{where}: fiscal_year must be a year, not {value!r}")
    return int(text)


_TICKER_YEAR = re.compile(r"^\s*([A-Za-z][A-Za-z0-9.\-]{0,9})\s*(?:[|:\s]\s*|\s+FY)\s*(?:FY)?(\d{4})\s*$")


def _find_file(name: str, bases: Sequence[Path]) -> Path | None:
    """A label's 10-K file: as given (absolute or relative to a base), or by name in the shared filings."""
    if not name or "\n" in name or "\x00" in name:
        return None
    path = Path(name).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    for base in bases:
        candidate = base / path
        if candidate.is_file():
            return candidate.resolve()
    return None


def _search_bases(ref_path: Path, suite_dir: Path | None) -> list[Path]:
    from filinglens.settings import shared_dir

    shared = shared_dir()
    bases = [ref_path.parent]
    if suite_dir is not None:
        bases.append(suite_dir)
    bases += [shared, shared / "data" / "filings" / "html", shared / "data" / "filings" / "pdf"]
    return bases


def _label(raw: dict, line: int, bases: Sequence[Path]) -> Label:
    where = f"label {line}"
    filing = str(raw.get("file") or raw.get("filing") or "").strip()
    if not filing:
        raise ReferenceError(f"{where}: needs `file` (or `filing`)")
    category = str(raw.get("category") or "").strip()
    if not category:
        raise ReferenceError(f"{where} ({filing}): needs `category`")
    where = f"{where} ({filing}, {category})"
    if "score" not in raw or raw["score"] in (None, ""):
        raise ReferenceError(f"{where}: needs `score`")
    quotes = raw.get("evidence") or raw.get("quotes") or []
    if isinstance(quotes, str):
        quotes = [quotes]
    if not isinstance(quotes, list) or not all(isinstance(q, str) for q in quotes):
        raise ReferenceError(f"{where}: evidence must be a list of quotes")
    ticker = raw.get("ticker")
    year = _year(raw.get("fiscal_year"), where)
    path = _find_file(filing, bases)
    if path is None:
        m = _TICKER_YEAR.match(filing)
        if m and not ticker:
            ticker, year = m.group(1), year or int(m.group(2))
    return Label(
        filing=filing, category=category, score=_score(raw["score"], where),
        borderline=_bool(raw.get("borderline"), where), company=raw.get("company") or None,
        ticker=str(ticker).strip().upper() if ticker else None, fiscal_year=year,
        quotes=[q for q in quotes if q.strip()], rationale=str(raw.get("rationale") or ""), line=line, path=path,
    )


def load_reference(path: str | Path, suite_dir: Path | None = None) -> ReferenceSet:
    """Read and validate reference labels (JSON or CSV, see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"{path}: no such reference file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReferenceError(f"{path}: cannot be read ({exc})") from None
    bases = _search_bases(path, suite_dir)
    labels: list[Label] = []
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ReferenceError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
            rows = data.get("labels") if isinstance(data, dict) else data
            if not isinstance(rows, list):
                raise ReferenceError("expected a list of labels (or {\"labels\": [...]})")
            for i, raw in enumerate(rows, start=1):
                if not isinstance(raw, dict):
                    raise ReferenceError(f"label {i}: must be a mapping")
                labels.append(_label(raw, i, bases))
        else:
            reader = csv.DictReader(io.StringIO(text))
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in ("filing", "category", "score") if c not in header]
            if missing:
                raise ReferenceError(f"CSV needs the columns filing, category, score[, borderline]; missing {missing}")
            for i, raw in enumerate(reader, start=2):
                row = {str(k).strip().lower(): (v.strip() if isinstance(v, str) else v) for k, v in raw.items() if k}
                if not any(row.values()):
                    continue
                labels.append(_label(row, i, bases))
    except ReferenceError as exc:
        raise ReferenceError(f"{path}: {exc}") from None
    if not labels:
        raise ReferenceError(f"{path}: no labels")
    seen: dict[tuple, int] = {}
    for label in labels:
        key = (str(label.path or label.filing).lower(), label.category)
        if key in seen:
            raise ReferenceError(f"{path}: {label.where} repeats label {seen[key]}")
        seen[key] = label.line
    return ReferenceSet(path.resolve(), labels)


# ----------------------------------------------------------------------------- matching labels to rated cells


def _file_hash(path: Path, cache: dict[Path, str]) -> str:
    from filinglens.settings import sha256_file

    if path not in cache:
        cache[path] = sha256_file(path)
    return cache[path]


def match_labels(reference: ReferenceSet, targets: Sequence[Any]) -> tuple[dict[int, Any], list[Label]]:
    """``({label index: target}, unmatched labels)``: by file hash, else ticker + fiscal year."""
    by_hash = {t.content_hash: t for t in targets}
    by_ticker = {((t.ticker or "").upper(), t.fiscal_year): t for t in targets if t.ticker}
    hashes: dict[Path, str] = {}
    matched: dict[int, Any] = {}
    unmatched: list[Label] = []
    for i, label in enumerate(reference.labels):
        target = None
        if label.path is not None:
            target = by_hash.get(_file_hash(label.path, hashes))
        if target is None and label.ticker and label.fiscal_year:
            target = by_ticker.get((label.ticker, label.fiscal_year))
        if target is None:
            unmatched.append(label)
        else:
            matched[i] = target
    return matched, unmatched


# ----------------------------------------------------------------------------- evidence recall


def normalize(text: str) -> str:
    """Lower case, straight quotes and dashes, every run of non-alphanumerics one space."""
    text = text.lower().translate(str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                                                 "\u2014": "-", "\u2013": "-", "\u00a0": " "}))
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


def _ngrams(words: Sequence[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def quote_covered(quote: str, chunks: Sequence[str], share: float = NGRAM_SHARE) -> bool:
    """Whether ``quote`` is covered by the evidence ``chunks`` (rule in the module docstring)."""
    q = normalize(quote)
    if not q:
        return False
    normed = [normalize(c) for c in chunks]
    padded = f" {q} "
    if any(padded in f" {c} " for c in normed):
        return True
    words = q.split()
    if len(words) < NGRAM:
        return False
    have: set[tuple[str, ...]] = set()
    for c in normed:
        have |= _ngrams(c.split())
    covered = [False] * len(words)
    for i in range(len(words) - NGRAM + 1):
        if tuple(words[i : i + NGRAM]) in have:
            covered[i : i + NGRAM] = [True] * NGRAM
    return sum(covered) / len(words) >= share


# ----------------------------------------------------------------------------- agreement


def _unit_of(target: Any, category: str) -> str:
    from filinglens.evals.units import target_unit

    return target_unit(target, category)


def reference_frame(reference: ReferenceSet, matched: dict[int, Any]) -> pd.DataFrame:
    """The matched labels as a long ratings frame (rater ``reference``)."""
    records = [(_unit_of(t, reference.labels[i].category), REFERENCE_RATER, 0, reference.labels[i].score)
               for i, t in matched.items()]
    if not records:
        return pd.DataFrame(columns=list(stats.COLUMNS))
    return stats.ratings_frame(records)


def confusion(frame: pd.DataFrame, rater: str) -> list[list[int]]:
    """3 × 3 counts: rows the reference score 0–2, columns the rater's score (mean over samples, rounded)."""
    table = stats.expected_scores(frame)
    matrix = [[0, 0, 0] for _ in range(3)]
    if rater not in table.columns or REFERENCE_RATER not in table.columns:
        return matrix
    both = table[[REFERENCE_RATER, rater]].dropna()
    for ref, got in both.to_numpy(dtype=float):
        matrix[int(ref)][int(np.clip(np.floor(got + 0.5), 0, 2))] += 1
    return matrix


SUMMARY_STATS = ("exact_agreement", "within_one", "kappa_quadratic", "alpha_ordinal")


def _slim(pair: dict) -> dict:
    out = {k: pair[k] for k in SUMMARY_STATS}
    out.update(n_units=pair["n_units"], mean_abs_diff=pair["mean_abs_diff"], mean_rater=pair["mean_a"],
               mean_reference=pair["mean_b"])
    return out


def _recall(values: list[bool]) -> dict:
    return {"estimate": (sum(values) / len(values)) if values else None, "covered": sum(values), "quotes": len(values),
            "reason": None if values else "no reference quotes for the rated cells"}


def reference_agreement(
    reference: ReferenceSet,
    targets: Sequence[Any],
    ratings: Sequence[Any],
    frame: pd.DataFrame,
    *,
    chunk_text: Callable[[list[str]], dict[str, str]] | None = None,
    n_boot: int = stats.DEFAULT_N_BOOT,
    n_boot_slow: int = stats.DEFAULT_N_BOOT_SLOW,
    seed: int | None = 0,
) -> dict:
    """Agreement of every rater in ``frame`` with the reference labels (see the module docstring).

    ``ratings`` are the suite's :class:`~filinglens.agents.rating.Rating` objects (for evidence recall);
    ``chunk_text(ids)`` returns the text of evidence chunks by id (default: the index).
    """
    matched, unmatched = match_labels(reference, targets)
    ref = reference_frame(reference, matched)
    units = {_unit_of(t, reference.labels[i].category): reference.labels[i] for i, t in matched.items()}
    out: dict[str, Any] = {
        "path": str(reference.path), "labels": len(reference.labels), "matched": len(matched),
        "unmatched": [f"{label.filing} · {label.category}" for label in unmatched],
        "borderline": sum(1 for i in matched if reference.labels[i].borderline),
        "distribution": {str(s): sum(1 for i in matched if reference.labels[i].score == s) for s in (0, 1, 2)},
        "raters": {},
    }
    if not matched:
        out["reason"] = "no label matches a rated filing"
        return out
    rated = frame[frame["unit"].isin(set(units))]
    both = pd.concat([rated, ref], ignore_index=True)
    kwargs = dict(n_boot=n_boot, n_boot_slow=n_boot_slow, seed=seed)
    texts = _evidence_texts(ratings, units, chunk_text)
    for rater in stats.rater_names(rated) if not rated.empty else []:
        pair = stats.pairwise_agreement(both, rater, REFERENCE_RATER, **kwargs)
        by_category = stats.pairwise_agreement_by(both, rater, REFERENCE_RATER, **kwargs)
        kind = {u: ("borderline" if label.borderline else "clear") for u, label in units.items()}
        by_kind = stats.pairwise_agreement_by(both, rater, REFERENCE_RATER, key=lambda u: kind.get(u, "clear"),
                                              **kwargs)
        recall = _rater_recall(rater, ratings, units, texts)
        out["raters"][rater] = {
            "overall": _slim(pair),
            "by_category": {c: _slim(p) for c, p in by_category.items()},
            "by_label": {k: _slim(by_kind[k]) for k in ("clear", "borderline") if k in by_kind},
            "confusion": confusion(both, rater),
            "evidence_recall": recall,
            "cells": _cells(rater, both, units),
        }
    return out


def _cells(rater: str, frame: pd.DataFrame, units: dict[str, Label]) -> list[dict]:
    table = stats.expected_scores(frame)
    out = []
    for unit, label in units.items():
        got = table.at[unit, rater] if unit in table.index and rater in table.columns else np.nan
        out.append({"unit": unit, "reference": label.score, "borderline": label.borderline,
                    "rating": None if pd.isna(got) else float(got)})
    return out


def _evidence_texts(ratings: Sequence[Any], units: dict[str, Label],
                    chunk_text: Callable[[list[str]], dict[str, str]] | None) -> dict[str, str] | str:
    """Text of every chunk shown in a labelled cell (``str``: why it is not available)."""
    ids: list[str] = []
    inline: dict[str, str] = {}
    for r in ratings:
        if r.status != "ok" or _unit_of(r.target, r.category) not in units:
            continue
        for ev in r.evidence:
            if ev.get("text"):
                inline[ev["chunk_id"]] = ev["text"]
            elif ev.get("chunk_id"):
                ids.append(ev["chunk_id"])
    ids = [i for i in dict.fromkeys(ids) if i not in inline]
    if not ids:
        return inline
    try:
        got = (chunk_text or index_chunk_text)(ids)
    except Exception as exc:  # noqa: BLE001 - recall is a report figure; its absence must not fail the suite
        return f"evidence text not available ({type(exc).__name__}: {exc})"
    return {**got, **inline}


def index_chunk_text(ids: list[str]) -> dict[str, str]:
    """Chunk texts by id from the index."""
    from filinglens.retrieval.index import open_store

    return {c.id: c.text for c in open_store(create=False).get(ids=ids)}


def _rater_recall(rater: str, ratings: Sequence[Any], units: dict[str, Label], texts) -> dict:
    from filinglens.evals.units import rater_id

    if isinstance(texts, str):
        return {"shown": {"estimate": None, "reason": texts}, "cited": {"estimate": None, "reason": texts},
                "by_category": {}}
    shown: list[bool] = []
    cited: list[bool] = []
    per_cat: dict[str, list[bool]] = {}
    for r in ratings:
        if r.status != "ok" or rater_id(r.model_id, r.prompt_version) != rater or r.sample_index != 0:
            continue
        label = units.get(_unit_of(r.target, r.category))
        if label is None or not label.quotes:
            continue
        chunks = [texts[e["chunk_id"]] for e in r.evidence if e.get("chunk_id") in texts]
        cited_ids = {q.get("chunk_id") for q in r.quotes if q.get("verified") and q.get("chunk_id")}
        cited_chunks = [texts[i] for i in cited_ids if i in texts]
        for quote in label.quotes:
            hit = quote_covered(quote, chunks)
            shown.append(hit)
            per_cat.setdefault(r.category, []).append(hit)
            cited.append(quote_covered(quote, cited_chunks))
    return {"shown": _recall(shown), "cited": _recall(cited),
            "by_category": {c: _recall(v) for c, v in per_cat.items()}}

