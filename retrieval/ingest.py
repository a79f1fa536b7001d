"""Ingest 10-K files into the chunk store: paths/folders or ticker+years -> parse -> chunk -> index.

Per filing the result says how many items and chunks it has, how many chunks
were embedded (new), skipped (already stored unchanged), updated
(metadata only) and deleted (orphans of an older version), and the seconds.

A file whose bytes, chunking and embedding model match a complete manifest
is recognised *before* parsing and reported as ``unchanged`` (nothing is
computed or written).  Metadata that a document does not carry comes from a
sidecar: ``filing.json`` beside a document fetched from EDGAR, or the
FinanceBench ``documents.jsonl`` (company and fiscal year of its PDFs).

Every ingest first checks the index against its manifests
(:func:`repair_index`): a damaged index is moved aside and every filing the
manifests list but the index lacks is rebuilt from its recorded source and
reported as ``rebuilt``; a lost filing whose source is gone is reported as
``failed`` and its manifest set aside, never silently trusted.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from filinglens import settings
from filinglens.errors import (FetchError, FilingLensError, IndexDamagedError, IndexStoreError, InputError,
                               TruncatedFilingError)
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
    status: str  # "indexed" (new), "updated" (replaced an older version), "unchanged", "rebuilt", "failed"
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

    def notice(self, message: str) -> None:
        """Something the user should know (e.g. a damaged index was moved aside and is being rebuilt)."""


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


def _chunk_chars_of(chunker: str | None) -> int:
    try:
        return int(str(chunker).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return DEFAULT_CHUNK_CHARS


_IDENTITY = ("ticker", "cik", "company", "fiscal_year", "accession")


def repair_index(
    store: ChunkStore | None = None,
    *,
    deep: bool = False,
    progress: IngestProgress | None = None,
    skip: Iterable[str | Path] = (),
) -> list[IngestResult]:
    """Check the index against its manifests and rebuild what was lost; returns one result per rebuilt filing.

    - a damaged index (unreadable, failing probe queries, or with ``deep``
      failing SQLite's integrity check) is moved aside, never deleted, and
      every listed filing is rebuilt;
    - filings whose manifest lists chunks the index lacks (or whose stored
      chunks differ from the manifest) are re-ingested from the source the
      manifest records (status ``rebuilt``);
    - a filing in the index without a manifest (an ingest killed half-way, or
      a damaged or deleted manifest) is completed by re-ingesting the source
      recorded in its chunks, unless a live process is writing it;
    - when the source is gone, the manifest is set aside (``stale/``) and the
      filing reported ``failed``: the user must re-ingest it.

    Sources in ``skip`` (files the caller is about to ingest anyway) are left
    to the caller.
    """
    store = store or open_store()
    notice = progress.notice if progress else (lambda message: None)
    if store.repair_note:
        notice(f"{store.repair_note}; rebuilding it from the indexed filings")
        store.repair_note = None
    with store.writing():  # a consistent view: no other writer is half-way through a filing
        report = store.verify(deep=deep)
        if report["damaged"]:
            moved = store.quarantine(report["damaged"])
            notice(f"the index at {store.location} is damaged ({report['damaged']}); "
                   f"moved it aside to {moved}; rebuilding it from the indexed filings")
            report = store.verify()
    manifests, unreadable = store.read_manifests()
    todo: list[tuple[str, str, dict, str | None]] = []  # (filing id, source, identity, chunker)
    for fid in report["missing"] + report["mismatched"]:
        man = manifests.get(fid) or {}
        ident = {k: v for k, v in (man.get("filing") or {}).items() if k in _IDENTITY and v is not None}
        todo.append((fid, str(man.get("source") or ""), ident, man.get("chunker")))
    for fid in report["unlisted"]:  # half-written by a killed ingest, or its manifest was lost
        if fid in report.get("in_progress", []):
            continue  # another process is writing it right now
        first = store.get(where={"filing_id": fid}, documents=False)[:1]
        meta = first[0].metadata if first else {}
        ident = {k: meta.get(k) for k in _IDENTITY if meta.get(k) not in (None, "")}
        todo.append((fid, str(meta.get("source") or ""), ident, meta.get("chunker")))
    skipped = {_resolved(p) for p in skip}
    todo = [t for t in todo if not t[1] or _resolved(t[1]) not in skipped]
    results: list[IngestResult] = []
    if todo:
        notice(f"{len(todo)} indexed filing(s) are missing from the index, half-written or differ from their "
               "manifests; rebuilding them from their sources")
    for fid, source, ident, chunker in todo:
        path = Path(source) if source else None
        t0 = time.perf_counter()
        if (path is None or not path.is_file()) and fid in report["unlisted"]:
            interrupted = store.pending_path(fid).exists()
            if interrupted:  # known to be half-written: its chunks must not be searched
                removed = store.delete_filing(fid)
                store.pending_path(fid).unlink(missing_ok=True)
                error = (f"an interrupted ingest left {removed} chunks of this filing and its source "
                         f"{source or '(unknown)'} is gone: removed them; ingest the filing again")
            else:
                error = (f"indexed without a manifest and its source {source or '(unknown)'} is gone: its chunks "
                         "were kept; ingest the filing again to confirm them")
            result = IngestResult(source=source or fid, status="failed", filing_id=fid, ticker=ident.get("ticker"),
                                  company=ident.get("company"), fiscal_year=ident.get("fiscal_year"), error=error)
        elif path is None or not path.is_file():
            store.mark_stale(fid, f"lost from the index; source {source or '?'} is gone")
            result = IngestResult(
                source=source or fid, status="failed", filing_id=fid, ticker=ident.get("ticker"),
                company=ident.get("company"), fiscal_year=ident.get("fiscal_year"),
                error=f"lost from the index and its source {source or '(unknown)'} is gone: ingest the filing "
                      f"again (its manifest was set aside in {store.stale_dir})",
            )
        else:
            try:
                result = ingest_file(path, store=store, metadata=ident, chunk_chars=_chunk_chars_of(chunker),
                                     progress=progress)
                if result.status != "failed":
                    result.status = "rebuilt"
                if result.filing_id != fid and store.manifest(fid) is not None:
                    store.mark_stale(fid, f"its source {source} now holds another filing ({result.filing_id})")
            except IndexStoreError:
                raise
            except FilingLensError as exc:
                store.mark_stale(fid, f"lost from the index; source {source} cannot be read: {exc}")
                result = IngestResult(source=source, status="failed", filing_id=fid, error=f"cannot rebuild: {exc}")
        result.seconds = round(time.perf_counter() - t0, 3)
        results.append(result)
        notice(f"{result.status} {Path(result.source).name}: {result.chunks} chunks"
               + (f" ({result.error})" if result.error else ""))
    for path in unreadable:
        if path.exists() and path.stem not in report["unlisted"]:
            store.mark_stale(path.stem, "manifest unreadable and its filing is not in the index")
            notice(f"the manifest {path} was unreadable and its filing is not in the index; set it aside in "
                   f"{store.stale_dir}: ingest that filing again")
    return results


def _resolved(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


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
    repair: bool = False,
) -> list[IngestResult]:
    """Ingest files/folders, or a ticker's filings for ``years`` when no paths are given.

    ``ticker`` with paths labels the given files.  Every file gets a result:
    one that cannot be parsed (or looks truncated, unless ``allow_truncated``)
    is reported as ``failed`` with a one-line reason and the others continue;
    only an index that cannot be written stops the run (``IndexStoreError``).
    The index is checked and repaired first (:func:`repair_index`, results
    first in the list); ``repair=True`` checks deeper (SQLite integrity) and
    needs no paths.
    """
    check_chunk_chars(chunk_chars)
    paths = list(paths)
    if paths:
        jobs = [(p, {}) for p in expand_paths(paths)]
    elif ticker:
        jobs = ticker_documents(ticker, years)
    elif repair:
        jobs = []
    else:
        raise InputError("give one or more files/folders, or --ticker (with --years)")
    store = store or open_store()
    own = [p for p, _ in jobs]
    try:
        results = repair_index(store, deep=repair, progress=progress, skip=own)
    except IndexDamagedError as exc:  # damage met while checking: move aside and rebuild
        store.quarantine(str(exc))
        if progress:
            progress.notice(f"{exc}".split(": run `filinglens ingest --repair`")[0] + "; moved it aside")
        results = repair_index(store, deep=repair, progress=progress, skip=own)
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
