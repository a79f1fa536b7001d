"""Ingest 10-K files into the chunk store: paths/folders or ticker+years -> parse -> chunk -> index.

Per filing the result says how many items and chunks it has, how many chunks
were embedded (new), skipped (already stored unchanged), updated
(metadata only) and deleted (orphans of an older version), and the seconds.

A file whose bytes, chunking and embedding model match a complete manifest
is recognised *before* parsing and reported as ``unchanged`` (nothing is
computed or written).  Metadata that a document does not carry comes from a
sidecar: ``filing.json`` beside a document fetched from EDGAR, or the
FinanceBench ``documents.jsonl`` (company and fiscal year of its PDFs).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from filinglens import settings
from filinglens.errors import FetchError, FilingLensError, IndexStoreError, InputError, TruncatedFilingError
from filinglens.retrieval.chunking import (
    CHUNKER_VERSION,
    DEFAULT_CHUNK_CHARS,
    INDEXED_TEXT_VERSION,
    MAX_CHUNK_CHARS,
    MIN_CHUNK_CHARS,
    chunk_filing,
)
from filinglens.retrieval.filing import Filing
from filinglens.retrieval.index import ChunkStore, filing_id, open_store

SUFFIXES = (".htm", ".html", ".xhtml", ".txt", ".pdf")


@dataclass
class IngestResult:
    """The outcome for one filing."""

    source: str
    status: str  # "indexed" (new), "updated" (replaced an older version), "unchanged", "failed"
    filing_id: str | None = None
    ticker: str | None = None
    company: str | None = None
    fiscal_year: int | None = None
    items: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: int = 0
    updated: int = 0
    deleted: int = 0
    seconds: float = 0.0
    error: str | None = None  # why it failed: one line
    warnings: list[str] = field(default_factory=list)  # e.g. why an indexed filing looks truncated

    def to_dict(self) -> dict:
        return asdict(self)


class IngestProgress:
    """Callbacks for a progress display (all optional)."""

    def file_started(self, path: Path, index: int, total: int) -> None: ...

    def embedding(self, done: int, total: int) -> None: ...

    def file_done(self, result: IngestResult) -> None: ...


def check_chunk_chars(chunk_chars: int) -> int:
    """``chunk_chars`` if it is a usable chunk size, else an ``InputError`` that states the range."""
    if isinstance(chunk_chars, bool) or not isinstance(chunk_chars, int) \
            or not MIN_CHUNK_CHARS <= chunk_chars <= MAX_CHUNK_CHARS:
        raise InputError(
            f"--chunk-chars must be between {MIN_CHUNK_CHARS:,} and {MAX_CHUNK_CHARS:,} characters, not {chunk_chars!r} "
            f"(default {DEFAULT_CHUNK_CHARS:,}; smaller chunks are sentence fragments, larger ones do not fit "
            "the evidence budget)"
        )
    return chunk_chars


def truncation_refusal(filing: Filing) -> TruncatedFilingError:
    """The one-line error for a filing that looks cut off."""
    return TruncatedFilingError(
        f"{filing.source}: looks truncated, not indexed: {'; '.join(filing.warnings) or 'incomplete document'}; "
        "pass --allow-truncated to index it anyway"
    )


def chunker_tag(chunk_chars: int) -> str:
    """Identifies how chunks are cut and what is embedded (part of the manifest)."""
    return f"{CHUNKER_VERSION}+{INDEXED_TEXT_VERSION}:{chunk_chars}"


# --------------------------------------------------------------------------- inputs


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for 10-K documents (sorted, de-duplicated)."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                raise InputError(f"{path}: no 10-K documents ({', '.join(SUFFIXES)}) in this folder")
        else:
            found = [path]
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


@lru_cache(maxsize=4)
def _financebench_documents(path: str) -> dict[str, dict]:
    docs: dict[str, dict] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    rec = json.loads(line)
                    docs[str(rec.get("doc_name"))] = rec
    except (OSError, ValueError):
        return {}
    return docs


def sidecar_metadata(path: Path) -> dict:
    """Metadata for a document that it may not carry itself (company, fiscal year, ticker, CIK)."""
    meta_path = path.parent / "filing.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if meta.get("primary_document") in (None, path.name):
            return {
                k: v for k, v in {
                    "ticker": meta.get("ticker"),
                    "cik": meta.get("cik"),
                    "company": meta.get("company"),
                    "fiscal_year": meta.get("fiscal_year"),
                    "accession": meta.get("accession"),
                }.items() if v
            }
    docs = _financebench_documents(str(settings.shared_dir() / "data" / "financebench" / "documents.jsonl"))
    rec = docs.get(path.stem)
    if rec:
        out = {"company": rec.get("company")}
        if rec.get("doc_period"):
            out["fiscal_year"] = int(rec["doc_period"])
        return {k: v for k, v in out.items() if v}
    return {}


def _apply(filing: Filing, overrides: dict) -> Filing:
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "ticker":
            value = str(value).upper()
        if key == "fiscal_year":
            value = int(value)
        setattr(filing, key, value)
    return filing


# --------------------------------------------------------------------------- ingest


def ingest_filing(
    filing: Filing,
    *,
    store: ChunkStore | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    progress: IngestProgress | None = None,
    allow_truncated: bool = False,
) -> IngestResult:
    """Chunk and index one parsed filing (replace semantics, see ``ChunkStore.sync_filing``).

    A filing that looks truncated (``Filing.truncated``) is refused with a
    ``TruncatedFilingError`` unless ``allow_truncated``; then its warnings are
    recorded in the chunk metadata and the manifest.
    """
    t0 = time.perf_counter()
    check_chunk_chars(chunk_chars)
    if filing.truncated and not allow_truncated:
        raise truncation_refusal(filing)
    store = store or open_store()
    chunks = chunk_filing(filing, chunk_chars)
    had_before = store.manifest(filing_id(filing)) is not None
    stats = store.sync_filing(
        filing, chunks, chunker=chunker_tag(chunk_chars),
        progress=(progress.embedding if progress else None),
    )
    if stats.embedded == 0 and stats.deleted == 0 and stats.updated == 0:
        status = "unchanged"
    elif had_before or stats.skipped or stats.deleted or stats.updated:
        status = "updated"
    else:
        status = "indexed"
    return IngestResult(
        source=str(filing.source),
        status=status,
        filing_id=stats.filing_id,
        ticker=filing.ticker,
        company=filing.company,
        fiscal_year=filing.fiscal_year,
        items=len(filing.present_items()),
        chunks=stats.chunks,
        embedded=stats.embedded,
        skipped=stats.skipped,
        updated=stats.updated,
        deleted=stats.deleted,
        seconds=round(time.perf_counter() - t0, 3),
        warnings=list(filing.warnings),
    )


def ingest_file(
    path: str | Path,
    *,
    store: ChunkStore | None = None,
    ticker: str | None = None,
    metadata: dict | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    progress: IngestProgress | None = None,
    allow_truncated: bool = False,
) -> IngestResult:
    """Parse and index one file; unchanged files (same bytes, same chunking) are skipped before parsing.

    A file that looks truncated is refused (``TruncatedFilingError``) unless ``allow_truncated``.
    """
    from filinglens.retrieval.parse import parse_filing

    t0 = time.perf_counter()
    check_chunk_chars(chunk_chars)
    path = Path(path)
    store = store or open_store()
    overrides = {**sidecar_metadata(path), **(metadata or {})}
    if ticker:
        overrides["ticker"] = ticker.upper()
    if path.is_file():
        manifest = store.find_unchanged(settings.sha256_file(path), chunker_tag(chunk_chars), overrides)
        if manifest is not None:
            meta = manifest.get("filing") or {}
            items = manifest.get("present_items")
            if items is None:
                items = len([i for i in manifest.get("items", []) if i not in ("cover", "other")])
            return IngestResult(
                source=str(path), status="unchanged", filing_id=manifest["filing_id"],
                ticker=meta.get("ticker"), company=meta.get("company"), fiscal_year=meta.get("fiscal_year"),
                items=int(items), chunks=int(manifest.get("chunks") or 0), skipped=int(manifest.get("chunks") or 0),
                seconds=round(time.perf_counter() - t0, 3), warnings=list(meta.get("warnings") or []),
            )
    filing = _apply(parse_filing(path, ticker=overrides.get("ticker")), overrides)
    result = ingest_filing(filing, store=store, chunk_chars=chunk_chars, progress=progress,
                           allow_truncated=allow_truncated)
    result.source = str(path)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def ticker_documents(ticker: str, years: str | Sequence[int] | None = None) -> list[tuple[Path, dict]]:
    """Local documents for ``ticker``/``years`` via the fetch layer (fetched from EDGAR if missing)."""
    from filinglens.retrieval import edgar

    wanted = edgar.parse_years(years)
    stored = edgar.stored_filings(ticker=ticker, years=years)
    have = {s.fiscal_year for s in stored}
    if not (wanted and set(wanted) <= have):
        try:
            report = edgar.fetch_filings(ticker=ticker, years=years)
            return [(r.path, {"ticker": ticker.upper(), "cik": r.filing.cik, "company": r.filing.company,
                              "fiscal_year": r.filing.fiscal_year, "accession": r.filing.accession})
                    for r in report.results]
        except FilingLensError as exc:
            if not stored:
                raise
            if not isinstance(exc, (FetchError,)) and "SEC_USER_AGENT" not in str(exc):
                raise
    if not stored:
        raise InputError(f"no stored 10-K filings for {ticker.upper()} {years or ''}".strip())
    return [(s.path, {"ticker": ticker.upper()}) for s in stored]


def ingest(
    paths: Iterable[str | Path] = (),
    *,
    ticker: str | None = None,
    years: str | Sequence[int] | None = None,
    store: ChunkStore | None = None,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    metadata: dict | None = None,
    progress: IngestProgress | None = None,
    allow_truncated: bool = False,
) -> list[IngestResult]:
    """Ingest files/folders, or a ticker's filings for ``years`` when no paths are given.

    ``ticker`` with paths labels the given files.  Every file gets a result:
    one that cannot be parsed (or looks truncated, unless ``allow_truncated``)
    is reported as ``failed`` with a one-line reason and the others continue;
    only an index that cannot be written stops the run (``IndexStoreError``).
    """
    check_chunk_chars(chunk_chars)
    paths = list(paths)
    if paths:
        jobs = [(p, {}) for p in expand_paths(paths)]
    elif ticker:
        jobs = ticker_documents(ticker, years)
    else:
        raise InputError("give one or more files/folders, or --ticker (with --years)")
    store = store or open_store()
    results: list[IngestResult] = []
    for n, (path, extra) in enumerate(jobs):
        if progress:
            progress.file_started(Path(path), n, len(jobs))
        t0 = time.perf_counter()
        try:
            result = ingest_file(
                path, store=store, ticker=ticker, metadata={**extra, **(metadata or {})},
                chunk_chars=chunk_chars, progress=progress, allow_truncated=allow_truncated,
            )
        except IndexStoreError:
            raise
        except FilingLensError as exc:
            result = IngestResult(source=str(path), status="failed", error=_one_line(str(exc)),
                                  seconds=round(time.perf_counter() - t0, 3))
        except Exception as exc:  # noqa: BLE001 - a reader bug on one bad file never stops a batch
            result = IngestResult(source=str(path), status="failed",
                                  error=_one_line(f"{path}: cannot be read ({type(exc).__name__}: {exc})"),
                                  seconds=round(time.perf_counter() - t0, 3))
        results.append(result)
        if progress:
            progress.file_done(result)
    return results


def _one_line(text: str, limit: int = 1000) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_line(results: Sequence[IngestResult]) -> str:
    """``"3 files: 1 indexed, 1 unchanged, 1 failed"`` (statuses in a fixed order, zero counts left out)."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    order = ("indexed", "updated", "unchanged", "failed")
    parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
    parts += [f"{n} {s}" for s, n in counts.items() if s not in order]
    warned = sum(1 for r in results if r.warnings and r.status != "failed")
    if warned:
        parts.append(f"{warned} with warnings")
    n = len(results)
    return f"{n} file{'s' if n != 1 else ''}: " + (", ".join(parts) if parts else "nothing to do")
