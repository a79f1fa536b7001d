"""The chunk store: Chroma, embedded by default, a Chroma server when configured.

Where the index lives:

- default: ``chromadb.PersistentClient`` at ``$FILINGLENS_HOME/index/chroma``
  (manifests beside it in ``index/manifests``);
- ``FILINGLENS_CHROMA_URL=http://127.0.0.1:8000`` (or ``url=``): the same code
  against a Chroma server (``chroma run --path DIR --host 127.0.0.1 --port 8000``)
  through ``chromadb.HttpClient``; manifests stay in the local data home,
  keyed by server and collection.

Collection: ``FILINGLENS_COLLECTION`` (default ``filinglens``), cosine space.
Its metadata records the embedding model; opening it with another model is
refused (:class:`~filinglens.errors.IndexStoreError`).

Writes per filing (``ChunkStore.sync_filing``):

1. chunk ids are deterministic (hash of filing identity, item, kind, offsets,
   text), so the wanted set is diffed against what Chroma holds for the filing;
2. only missing chunks are embedded and added (in batches), chunks whose
   metadata changed (e.g. a new source hash) are updated without re-embedding,
   then orphans are deleted: old chunks stay searchable until the new ones are
   in, and an unchanged filing computes zero embeddings and writes nothing;
3. the filing's manifest is written atomically only after Chroma accepted all
   writes.  An interrupted ingest therefore resumes: the next run sees what
   is already stored and adds only the rest.

One writer at a time per local index (an advisory lock file, held only
while Chroma is written, not while chunks are embedded); another writer waits
for it (``$FILINGLENS_LOCK_WAIT`` seconds, default 120) and then gets a clear
error instead of interleaving writes.

Reliability (several processes, kill -9, damaged files; measured in
``bench/reliability.py``):

- Chroma's embedded mode keeps each collection's vector index in memory; a
  process that writes from a stale copy overwrites what another process
  wrote (measured: 768 of 4,005 vectors silently unreachable, then
  "Error finding id" on search).  Every writer therefore stamps a generation
  token (``.generation`` under the index root) before and after writing, and
  a process whose loaded copy is older than the token reopens its client
  (readers before each read, writers after taking the lock).
- A new index is created one process at a time (``.init.lock``; Chroma's
  own table creation races: "table collections already exists") and the
  collection under the write lock, tolerating "already exists".
- A filing being written has a pending marker (``<id>.pending`` beside the
  manifests) until its manifest is written; a filing with chunks but no
  manifest and no live writer was interrupted (kill -9): the next ingest
  completes it from the source its chunks record, or removes its chunks if
  that source is gone.
- ``verify()`` checks the index against the manifests (chunk ids per filing
  and a filtered probe query per filing; with ``deep`` also ``PRAGMA
  quick_check`` of ``chroma.sqlite3`` and a canary load).  A damaged or lost
  index (empty or missing ``chroma.sqlite3`` while manifests list filings, a
  file that is not SQLite, failing integrity checks) raises
  :class:`IndexDamagedError`; ``open_store(create=True)`` (ingest) moves it
  aside to ``chroma.damaged-<time>`` (never deleting it) and starts an empty
  one, and ``ingest`` rebuilds the listed filings from their recorded sources
  (``retrieval.ingest.repair_index``).  Readers get a one-line error naming
  ``filinglens ingest --repair``.
- The vector segment files are loaded by native code, which crashes
  (SIGSEGV) on a damaged one.  Their sizes and sha256 are recorded
  (``.segments.json``) after each write; files that differ are loaded first
  by a child process (:func:`check_segments`), whose crash becomes an
  ``IndexDamagedError`` here.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

import numpy as np

from filinglens import settings
from filinglens.errors import ConfigError, FilingLensError, IndexDamagedError, IndexStoreError
from filinglens.processes import pid_alive
from filinglens.retrieval.chunking import CHUNKER_VERSION, Chunk, chunk_id
from filinglens.retrieval.embeddings import ChromaEmbeddingFunction, Embedder, get_embedder
from filinglens.retrieval.filing import Filing

DEFAULT_COLLECTION = "filinglens"
URL_ENV = "FILINGLENS_CHROMA_URL"
COLLECTION_ENV = "FILINGLENS_COLLECTION"
LOCK_WAIT_ENV = "FILINGLENS_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 120.0
WRITE_BATCH = 128
REPAIR_HINT = "run `filinglens ingest --repair` to move it aside and rebuild it from the indexed filings"
SQLITE_NAME = "chroma.sqlite3"

_log = logging.getLogger("filinglens.index")


# --------------------------------------------------------------------------- records


@dataclass
class StoredChunk:
    """A chunk as stored in Chroma: id, exact text, metadata (and embedding if asked)."""

    id: str
    text: str
    metadata: dict
    embedding: np.ndarray | None = None


@dataclass
class SyncStats:
    """What ``sync_filing`` did for one filing."""

    filing_id: str
    chunks: int = 0  # chunks the filing has now
    embedded: int = 0  # new chunks embedded and added
    skipped: int = 0  # chunks already stored unchanged (no embedding, no write)
    updated: int = 0  # stored chunks whose metadata was rewritten (no embedding)
    deleted: int = 0  # orphans removed (chunks of an older version of the filing)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def filing_key(filing: Filing) -> str:
    """The identity of a filing across versions: issuer, form and fiscal year.

    A re-parsed or amended document with the same identity replaces the old
    one's chunks.  Falls back to the source file name when the issuer or year
    is unknown.
    """
    cik = (filing.cik or "").lstrip("0")
    who = f"cik:{cik}" if cik else ""
    if not who and filing.company:
        who = "co:" + re.sub(r"[^a-z0-9]+", "", filing.company.lower())
    if not who and filing.ticker:
        who = f"tk:{filing.ticker.upper()}"
    year = filing.fiscal_year or (filing.period_end or "")[:4]
    if not who or not year:
        return f"src:{Path(filing.source).name}"
    return f"{who}|{(filing.form or '10-K').upper()}|{year}"


def filing_id(filing: Filing) -> str:
    return hashlib.sha256(filing_key(filing).encode()).hexdigest()[:16]


def chunk_metadata(filing: Filing, fid: str, chunk: Chunk, chunker: str) -> dict:
    """The Chroma metadata of one chunk (no None values: Chroma rejects them)."""
    meta: dict[str, Any] = {
        "filing_id": fid,
        "ticker": (filing.ticker or "").upper(),
        "cik": (filing.cik or "").lstrip("0"),
        "company": filing.company or "",
        "form": filing.form or "",
        "item": chunk.item,
        "item_title": chunk.item_title,
        "kind": chunk.kind,
        "start": chunk.start,
        "end": chunk.end,
        "seq": chunk.seq,
        "source": str(filing.source),
        "source_type": filing.source_type,
        "source_hash": filing.content_hash,
        "chunker": chunker,
    }
    optional = {
        "fiscal_year": filing.fiscal_year,
        "period_end": filing.period_end,
        "accession": filing.accession,
        "filing_start": chunk.filing_start,
        "filing_end": chunk.filing_end,
        "page": chunk.page,
    }
    meta.update({k: v for k, v in optional.items() if v is not None})
    if filing.truncated:  # indexed with --allow-truncated: every chunk says so
        meta["truncated"] = True
        meta["warnings"] = "; ".join(filing.warnings)[:2000]
    return meta


# --------------------------------------------------------------------------- errors


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError))


#: Chroma/SQLite messages that mean the index files are damaged (not locked, not misused).
_DAMAGE_SIGNS = ("malformed", "not a database", "disk image", "error finding id", "corrupt",
                 "no such table", "file is encrypted", "failed to load hnsw", "hnsw segment")


def _looks_damaged(text: str) -> bool:
    low = text.lower()
    return any(sign in low for sign in _DAMAGE_SIGNS)


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn Chroma/OS failures (including Rust panics) into ``IndexStoreError`` (``IndexDamagedError`` if damaged)."""
    try:
        yield
    except FilingLensError:
        raise
    except BaseException as exc:  # noqa: BLE001 - pyo3 panics derive from BaseException
        if _is_fatal(exc):
            raise
        text = _describe(exc)
        if _looks_damaged(text):
            raise IndexDamagedError(f"{what}: the index is damaged ({text}); {REPAIR_HINT}") from exc
        raise IndexStoreError(f"{what}: {text}") from exc


# --------------------------------------------------------------------------- the store


class ChunkStore:
    """A Chroma collection of filing chunks plus per-filing manifests."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        collection: str | None = None,
        embedder: str | Embedder | None = None,
        create: bool = True,
        check: bool = True,
    ) -> None:
        """Open (``create``: or create) the collection; ``check=False`` skips the damage check
        (used right after a damaged index was moved aside, to start the empty one)."""
        self.embedder = get_embedder(embedder)
        self.collection_name = collection or os.environ.get(COLLECTION_ENV) or DEFAULT_COLLECTION
        url = url if url is not None else (os.environ.get(URL_ENV) or None)
        if url and path is not None:
            raise ConfigError("give either an index path or a Chroma server URL, not both")
        self.url = url
        self._local: _LocalClient | None = None
        self._http = None
        if url:
            self._http = _http_client(url)
            parsed = urlparse(url if "://" in url else f"http://{url}")
            server = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parsed.hostname}_{parsed.port or 8000}")
            self.root = settings.subdir("index") / "servers" / server
            self.location = url
        else:
            self.root = Path(path).expanduser() if path is not None else settings.subdir("index")
            chroma_dir = self.root / "chroma"
            _check_writable_dir(self.root)
            self.location = str(chroma_dir)
            reason = inspect_local_index(self.root) if check else None
            if reason:
                raise IndexDamagedError(self._damaged_message(reason))
            self._local = _local_client(chroma_dir)
        self.manifest_dir = self.root / "manifests" / self.collection_name
        self._collection = None
        self._generation = self._local.generation if self._local else 0
        self._create = create
        self.repair_note: str | None = None  # set by open_store when it moved a damaged index aside
        try:
            self._open_collection(create)
        except IndexDamagedError:
            raise
        except IndexStoreError as exc:
            verdict = sqlite_verdict(Path(self.location) / SQLITE_NAME) if self._local else None
            if verdict:
                raise IndexDamagedError(self._damaged_message(verdict)) from exc
            raise

    @property
    def client(self):
        """The Chroma client (the process's shared, reloadable one for a local index)."""
        return self._local.client if self._local else self._http

    def _damaged_message(self, reason: str) -> str:
        listed = len(_manifest_files(self.root))
        listed_text = f"; {listed} indexed filing(s) are listed in its manifests" if listed else ""
        return f"the index at {self.location} is damaged or lost ({reason}){listed_text}: {REPAIR_HINT}"

    # -- collection ----------------------------------------------------------

    def _fresh(self) -> None:
        """Reopen the local client if another process wrote since it was loaded (see the module doc)."""
        if self._local is not None:
            with store_errors(f"cannot reopen the index at {self.location}"):
                self._local.refresh()
            if self._generation != self._local.generation:
                self._generation = self._local.generation
                self._collection = None

    def _find_collection(self, ef):
        existing = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
        if self.collection_name in existing:
            return self.client.get_collection(self.collection_name, embedding_function=ef)
        return None

    def _open_collection(self, create: bool) -> None:
        ef = ChromaEmbeddingFunction(self.embedder)
        with store_errors(f"cannot open the index collection `{self.collection_name}` at {self.location}"):
            collection = self._find_collection(ef)
            if collection is None and create:
                # under the write lock, and tolerant of a creator in another process
                with self.writing():
                    collection = self._find_collection(ef)
                    if collection is None:
                        self._before_write()
                        try:
                            collection = self.client.create_collection(
                                self.collection_name,
                                embedding_function=ef,
                                metadata={
                                    "embedding_model": self.embedder.name,
                                    "chunker": CHUNKER_VERSION,
                                    "revision": uuid.uuid4().hex,
                                    "hnsw:space": "cosine",
                                },
                            )
                        except Exception as exc:  # noqa: BLE001 - created meanwhile (a server, another client)
                            if "already exists" not in str(exc).lower():
                                raise
                            collection = self.client.get_collection(self.collection_name, embedding_function=ef)
        if collection is None:
            self._collection = None
            return
        model = (collection.metadata or {}).get("embedding_model")
        if model and model != self.embedder.name:
            raise IndexStoreError(
                f"the index collection `{self.collection_name}` at {self.location} was built with the "
                f"embedding model `{model}`, not `{self.embedder.name}`; models cannot be mixed in one "
                f"collection: set FILINGLENS_EMBEDDINGS={model}, or use another collection "
                f"(FILINGLENS_COLLECTION) for `{self.embedder.name}`"
            )
        self._collection = collection

    @property
    def collection(self):
        if self._local is not None and self._generation != self._local.generation:
            self._generation = self._local.generation
            self._collection = None
        if self._collection is None:
            self._open_collection(self._create)
        if self._collection is None:
            raise IndexStoreError(
                f"the index at {self.location} has no collection `{self.collection_name}` yet: "
                f"run `filinglens ingest PATH` first"
            )
        return self._collection

    @property
    def exists(self) -> bool:
        return self._collection is not None

    def count(self) -> int:
        """The number of stored chunks."""
        self._fresh()
        with store_errors("cannot read the index"):
            return self.collection.count()

    def revision(self) -> str:
        """A token that changes whenever chunks are written (for caches of the collection)."""
        self._fresh()
        with store_errors("cannot read the index"):
            # another process or client may have written: re-read the metadata
            self._collection = self.client.get_collection(
                self.collection_name, embedding_function=ChromaEmbeddingFunction(self.embedder)
            )
            meta = self.collection.metadata or {}
            return f"{meta.get('revision', '')}:{self.collection.count()}"

    def _bump_revision(self) -> None:
        meta = dict(self.collection.metadata or {})
        meta = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
        meta["revision"] = uuid.uuid4().hex
        self.collection.modify(metadata=meta)

    # -- reads ---------------------------------------------------------------

    def get(
        self,
        where: dict | None = None,
        ids: Sequence[str] | None = None,
        *,
        embeddings: bool = False,
        documents: bool = True,
        page_size: int = 5000,
    ) -> list[StoredChunk]:
        """Stored chunks matching ``where`` / ``ids`` (paged reads)."""
        include = ["metadatas"] + (["documents"] if documents else []) + (["embeddings"] if embeddings else [])
        out: list[StoredChunk] = []
        self._fresh()
        with store_errors("cannot read the index"):
            if ids is not None:
                ids = list(ids)
                for b in range(0, len(ids), page_size):
                    out.extend(_records(self.collection.get(ids=ids[b : b + page_size], include=include)))
                return out
            offset = 0
            while True:
                got = self.collection.get(where=where or None, include=include, limit=page_size, offset=offset)
                batch = _records(got)
                out.extend(batch)
                if len(batch) < page_size:
                    return out
                offset += page_size

    def query(self, embedding: np.ndarray, k: int, where: dict | None = None) -> list[tuple[StoredChunk, float]]:
        """Nearest chunks to ``embedding`` (cosine distance), with their embeddings."""
        self._fresh()
        with store_errors("cannot query the index"):
            res = self.collection.query(
                query_embeddings=[np.asarray(embedding, dtype=np.float32)],
                n_results=max(1, k),
                where=where or None,
                include=["documents", "metadatas", "distances", "embeddings"],
            )
        ids = res["ids"][0]
        out = []
        for n, cid in enumerate(ids):
            emb = res.get("embeddings")
            out.append(
                (
                    StoredChunk(
                        cid,
                        res["documents"][0][n],
                        dict(res["metadatas"][0][n] or {}),
                        None if emb is None else np.asarray(emb[0][n], dtype=np.float32),
                    ),
                    float(res["distances"][0][n]),
                )
            )
        return out

    def filings(self, where: dict | None = None) -> list[dict]:
        """One metadata record per indexed filing (from each filing's first chunk)."""
        cond = {"seq": 0} if not where else {"$and": [{"seq": 0}, where]}
        seen: dict[str, dict] = {}
        for rec in self.get(where=cond, documents=False):
            m = rec.metadata
            seen.setdefault(
                m.get("filing_id", ""),
                {k: m.get(k) for k in ("filing_id", "ticker", "cik", "company", "form", "fiscal_year",
                                       "period_end", "source", "source_hash")},
            )
        return sorted(seen.values(), key=lambda f: (f.get("company") or "", f.get("fiscal_year") or 0))

    # -- manifests -----------------------------------------------------------

    def manifest_path(self, fid: str) -> Path:
        """Where the manifest of filing ``fid`` lives."""
        return self.manifest_dir / f"{fid}.json"

    @property
    def stale_dir(self) -> Path:
        """Where manifests of filings lost from the index (and not rebuildable) are set aside."""
        return self.manifest_dir / "stale"

    def manifest(self, fid: str) -> dict | None:
        """The manifest of filing ``fid`` (None if absent or unreadable)."""
        try:
            data = json.loads(self.manifest_path(fid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("filing_id") == fid else None

    def read_manifests(self) -> tuple[dict[str, dict], list[Path]]:
        """(readable manifests by filing id, paths of unreadable ones)."""
        good: dict[str, dict] = {}
        bad: list[Path] = []
        if self.manifest_dir.is_dir():
            for path in sorted(self.manifest_dir.glob("*.json")):
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    bad.append(path)
                    continue
                if not isinstance(data, dict) or data.get("filing_id") != path.stem or not isinstance(
                    data.get("ids"), list
                ):
                    bad.append(path)
                    continue
                good[path.stem] = data
        return good, bad

    def manifests(self) -> list[dict]:
        """The readable manifests (a damaged one is reported by ``verify`` and rebuilt by repair)."""
        return list(self.read_manifests()[0].values())

    def stale_manifests(self) -> list[dict]:
        """Manifests set aside because their filing was lost and could not be rebuilt (still unresolved)."""
        live = {p.stem for p in self.manifest_dir.glob("*.json")} if self.manifest_dir.is_dir() else set()
        out = []
        if self.stale_dir.is_dir():
            for path in sorted(self.stale_dir.glob("*.json")):
                if path.stem in live:
                    continue  # re-ingested since
                try:
                    out.append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    out.append({"filing_id": path.stem})
        return out

    def mark_stale(self, fid: str, reason: str) -> Path | None:
        """Set a manifest aside (``stale/``) so it no longer claims its filing is indexed; returns the new path."""
        path = self.manifest_path(fid)
        if not path.exists():
            return None
        target = self.stale_dir / path.name
        self.stale_dir.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not an object")
            data.update(stale_reason=reason, stale_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            with settings.atomic_write(target, "w") as handle:
                json.dump(data, handle, indent=1)
            path.unlink()
        except (OSError, ValueError):
            os.replace(path, target)  # unreadable: moved as it is
        return target

    def find_unchanged(self, source_hash: str, chunker: str, overrides: dict | None = None) -> dict | None:
        """The manifest of an already fully indexed file with these bytes and chunking, if any.

        Confirmed against Chroma (the filing's chunk count), so a manifest
        whose chunks were lost does not cause a skip.
        """
        for man in self.manifests():
            if man.get("source_hash") != source_hash or man.get("chunker") != chunker:
                continue
            if man.get("embedding_model") != self.embedder.name:
                continue
            meta = man.get("filing") or {}
            if overrides and any(v is not None and meta.get(k) != v for k, v in overrides.items()):
                continue
            self._fresh()
            with store_errors("cannot read the index"):
                stored = self.collection.get(where={"filing_id": man["filing_id"]}, include=[])
            if len(stored["ids"]) == man.get("chunks") and set(stored["ids"]) == set(man.get("ids", [])):
                return man
        return None

    def verify(self, deep: bool = False) -> dict:
        """Check the index and the manifests against each other.

        Returns ``{"ok", "detail", "chunks", "filings", "missing", "mismatched",
        "unlisted", "unreadable", "stale", "damaged"}``: ``missing`` are filings
        whose manifest says they are indexed but whose chunks are gone,
        ``mismatched`` those whose stored chunk ids differ from their manifest,
        ``unlisted`` filings in the index with no manifest (an interrupted or
        running ingest), ``unreadable`` damaged manifest files, ``stale``
        manifests set aside for filings that were lost, ``damaged`` why the
        index itself cannot be trusted (a probe query per filing fails, or with
        ``deep`` SQLite's integrity check), else None.
        """
        manifests, unreadable = self.read_manifests()
        stale = [m.get("filing_id") for m in self.stale_manifests()]
        report = {"ok": False, "detail": "", "chunks": 0, "filings": 0, "missing": [], "mismatched": [],
                  "unlisted": [], "in_progress": [], "unreadable": [str(p) for p in unreadable], "stale": stale,
                  "damaged": None}
        if self._local is not None:
            report["damaged"] = sqlite_verdict(Path(self.location) / SQLITE_NAME) if deep else None
            if not report["damaged"]:
                report["damaged"] = check_segments(self.root, force=deep)
        stored: dict[str, set] = {}
        if not report["damaged"]:
            try:
                self._fresh()
                if not self.exists:
                    self._open_collection(False)
                if self.exists:
                    owner = {cid: fid for fid, m in manifests.items() for cid in m.get("ids", [])}
                    unknown = []
                    for cid in self._all_ids():
                        if cid in owner:
                            stored.setdefault(owner[cid], set()).add(cid)
                        else:
                            unknown.append(cid)
                    for rec in self.get(ids=unknown, documents=False) if unknown else []:
                        stored.setdefault(rec.metadata.get("filing_id", ""), set()).add(rec.id)
                    report["damaged"] = self._probe(sorted(stored))
            except IndexStoreError as exc:
                report["damaged"] = str(exc)
        report["chunks"] = sum(len(v) for v in stored.values())
        report["filings"] = len(stored)
        report["missing"] = sorted(fid for fid in manifests if fid not in stored)
        report["mismatched"] = sorted(fid for fid, m in manifests.items()
                                      if fid in stored and stored[fid] != set(m.get("ids", [])))
        report["unlisted"] = sorted(fid for fid in stored if fid not in manifests)
        report["in_progress"] = [fid for fid in report["unlisted"] if self.in_progress(fid)]
        interrupted = [fid for fid in report["unlisted"] if fid not in report["in_progress"]]
        report["ok"] = not (report["missing"] or report["mismatched"] or report["damaged"] or unreadable or stale
                            or interrupted)
        if report["damaged"]:
            detail = f"{self.location}: damaged ({report['damaged']})"
        elif not self.exists:
            detail = f"{self.location}: no collection yet"
        else:
            detail = (f"{self.location}: {report['chunks']} chunks, {len(stored)} filings, "
                      f"{len(manifests)} manifests")
        if report["missing"]:
            detail += f"; {len(report['missing'])} filing(s) in the manifests have no chunks (lost)"
        if report["mismatched"]:
            detail += f"; {len(report['mismatched'])} filing(s) differ from their manifest"
        if unreadable:
            detail += f"; {len(unreadable)} manifest(s) unreadable"
        if interrupted:
            detail += (f"; {len(interrupted)} filing(s) half-written or without a manifest (an interrupted ingest: "
                       "the next ingest completes it)")
        if report["in_progress"]:
            detail += f"; {len(report['in_progress'])} filing(s) being written by another process"
        if stale:
            detail += (f"; {len(stale)} filing(s) were lost and their sources are gone: re-ingest them "
                       f"(their manifests are in {self.stale_dir})")
        if report["damaged"] or report["missing"] or report["mismatched"] or unreadable or interrupted:
            detail += f"; {REPAIR_HINT}"
        report["detail"] = detail
        return report

    def _all_ids(self, page_size: int = 20000) -> list[str]:
        """Every stored chunk id (no documents, no metadata: cheap)."""
        out: list[str] = []
        with store_errors("cannot read the index"):
            while True:
                page = self.collection.get(include=[], limit=page_size, offset=len(out))["ids"]
                out.extend(page)
                if len(page) < page_size:
                    return out

    def _probe(self, filing_ids: Sequence[str]) -> str | None:
        """Why a filtered nearest-neighbour query fails for some filing (vector index damage), else None."""
        if not filing_ids:
            return None
        with store_errors("cannot read the index"):
            sample = self.collection.get(limit=1, include=["embeddings"])
        embs = sample.get("embeddings")
        if embs is None or len(embs) == 0:
            return None
        dim = len(embs[0])
        vector = np.full(dim, 1.0 / np.sqrt(dim), dtype=np.float32)
        for fid in filing_ids:
            try:
                self.collection.query(query_embeddings=[vector], n_results=1, where={"filing_id": fid}, include=[])
            except BaseException as exc:  # noqa: BLE001 - pyo3 panics too
                if _is_fatal(exc):
                    raise
                return f"search fails for filing {fid}: {_describe(exc)}"
        return None

    def pending_path(self, fid: str) -> Path:
        """The marker of a filing being written (removed when its manifest is written)."""
        return self.manifest_dir / f"{fid}.pending"

    def _mark_pending(self, fid: str, filing: Filing) -> None:
        path = self.pending_path(fid)
        if path.exists():
            try:
                if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    return
            except (OSError, ValueError):
                pass
        with settings.atomic_write(path, "w") as handle:
            json.dump({"pid": os.getpid(), "source": str(filing.source), "started": time.time()}, handle)

    def in_progress(self, fid: str) -> bool:
        """Whether a live process is writing filing ``fid`` right now (its pending marker names a live pid)."""
        try:
            pid = int(json.loads(self.pending_path(fid).read_text(encoding="utf-8")).get("pid"))
        except (OSError, ValueError, TypeError):
            return False
        if pid == os.getpid():
            return (str(self.root), fid) in _SYNCING
        return pid_alive(pid)

    def _write_manifest(self, data: dict) -> None:
        with settings.atomic_write(self.manifest_path(data["filing_id"]), "w") as handle:
            json.dump(data, handle, indent=1)

    # -- writes --------------------------------------------------------------

    lock_wait = float(os.environ.get(LOCK_WAIT_ENV) or DEFAULT_LOCK_WAIT)  # seconds a writer waits for another

    @contextmanager
    def writing(self, wait: float | None = None) -> Iterator[None]:
        """Exclusive write access (advisory lock under the index root; re-entrant in one process).

        Taking the lock reloads the client if another process wrote since it
        was loaded; a session that wrote stamps a new generation token when it ends.
        """
        wait = self.lock_wait if wait is None else wait
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = str(self.root / f".write-{self.collection_name}.lock")
        held = _HELD_LOCKS.get(lock_path)
        if held is not None:
            held["depth"] += 1
            try:
                yield
            finally:
                held["depth"] -= 1
            return
        try:
            handle = open(lock_path, "a+")
        except OSError as exc:
            raise IndexStoreError(f"cannot lock the index at {self.root}: {exc.strerror or exc}") from exc
        try:
            if not _flock_within(handle, wait):
                handle.seek(0)
                holder = handle.read().strip()
                raise IndexStoreError(
                    f"the index at {self.root} is locked by another writer"
                    f"{f' (pid {holder})' if holder else ''} (waited {wait:g} s); wait for it to finish "
                    f"or stop it, or raise {LOCK_WAIT_ENV}"
                )
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            state = {"depth": 1, "dirty": False}
            _HELD_LOCKS[lock_path] = state
            self._lock_state = state
            try:
                self._fresh()
                yield
            finally:
                _HELD_LOCKS.pop(lock_path, None)
                self._lock_state = None
                if state["dirty"] and self._local is not None:
                    record = {"state": "clean", "files": _segment_sums(self.root)}
                    _write_segment_record(self.root, record)
                    self._local.expected_record = record
                    self._local.stamp()  # readers and the next writer reload what was written
        finally:
            try:
                fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()

    _lock_state: dict | None = None

    def _before_write(self) -> None:
        """Called under the lock before the first Chroma write of a session: stamp the generation token."""
        state = self._lock_state
        if state is not None and not state["dirty"]:
            state["dirty"] = True
            if self._local is not None:
                _write_segment_record(self.root, {"state": "writing", "pid": os.getpid()})
                self._local.stamp()

    def sync_filing(
        self,
        filing: Filing,
        chunks: Sequence[Chunk],
        *,
        chunker: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncStats:
        """Make the stored chunks of ``filing`` exactly ``chunks`` (see the module doc).

        Missing chunks are embedded outside the write lock and added batch by
        batch under it; the final step (metadata updates, orphans, manifest)
        runs under the lock only once every wanted chunk is confirmed stored,
        so a manifest never claims a chunk the index lacks (even if another
        process replaced the index meanwhile).
        """
        t0 = time.perf_counter()
        fid = filing_id(filing)
        key = filing_key(filing)
        stats = SyncStats(fid, chunks=len(chunks))
        wanted: dict[str, tuple[Chunk, dict]] = {}
        for chunk in chunks:
            meta = chunk_metadata(filing, fid, chunk, chunker)
            cid = chunk_id(key, chunk)
            wanted[cid] = (chunk, meta)
        _SYNCING.add((str(self.root), fid))
        try:
            self._sync(filing, fid, key, wanted, chunker, stats, progress)
        finally:
            _SYNCING.discard((str(self.root), fid))
        stats.skipped = len(wanted) - stats.embedded - stats.updated
        stats.seconds = time.perf_counter() - t0
        return stats

    def _sync(self, filing: Filing, fid: str, key: str, wanted: dict, chunker: str, stats: SyncStats,
              progress: Callable[[int, int], None] | None) -> None:
        with store_errors(f"cannot write to the index at {self.location}"):
            for _attempt in range(5):
                self._fresh()
                have = set(self.collection.get(where={"filing_id": fid}, include=[])["ids"])
                missing = [cid for cid in wanted if cid not in have]
                batch = min(WRITE_BATCH, _max_batch(self.client))
                done = 0
                for b in range(0, len(missing), batch):
                    ids = missing[b : b + batch]
                    texts = [wanted[c][0].text for c in ids]
                    vectors = self.embedder.embed_documents(texts)
                    with self.writing():
                        present = set(self.collection.get(ids=ids, include=[])["ids"])
                        todo = [n for n, c in enumerate(ids) if c not in present]
                        if todo:
                            self._before_write()
                            self._mark_pending(fid, filing)
                            self.collection.add(
                                ids=[ids[n] for n in todo], embeddings=vectors[todo],
                                documents=[texts[n] for n in todo], metadatas=[wanted[ids[n]][1] for n in todo],
                            )
                    stats.embedded += len(todo)
                    done += len(ids)
                    if progress:
                        progress(done, len(missing))
                with self.writing():
                    if self._finish_filing(filing, fid, key, wanted, chunker, stats):
                        break
            else:
                raise IndexStoreError(
                    f"the index at {self.location} kept changing while `{filing.source}` was written; retry"
                )

    def _finish_filing(self, filing: Filing, fid: str, key: str, wanted: dict, chunker: str,
                       stats: SyncStats) -> bool:
        """Under the lock: relabel changed chunks, delete orphans, write the manifest.

        Returns False (nothing written) when some wanted chunk is not stored.
        """
        collection = self.collection
        stored = collection.get(where={"filing_id": fid}, include=["metadatas"])
        stored_meta = dict(zip(stored["ids"], stored["metadatas"] or []))
        if any(cid not in stored_meta for cid in wanted):
            return False
        # the same bytes indexed under another identity (e.g. metadata given differently)
        twins = collection.get(
            where={"$and": [{"source_hash": filing.content_hash}, {"filing_id": {"$ne": fid}}]},
            include=[],
        )["ids"]
        changed = [cid for cid in wanted if dict(stored_meta[cid] or {}) != wanted[cid][1]]
        orphans = [cid for cid in stored_meta if cid not in wanted] + list(twins)
        batch = min(WRITE_BATCH, _max_batch(self.client))
        wrote = stats.embedded > 0
        for b in range(0, len(changed), batch):
            ids = changed[b : b + batch]
            self._before_write()
            collection.update(ids=ids, metadatas=[wanted[c][1] for c in ids])
            wrote = True
            stats.updated += len(ids)
        for b in range(0, len(orphans), batch):
            self._before_write()
            collection.delete(ids=orphans[b : b + batch])
            wrote = True
        stats.deleted += len(orphans)
        if wrote:
            self._before_write()
            self._bump_revision()
        manifest = {
            "filing_id": fid,
            "filing_key": key,
            "source": str(filing.source),
            "source_hash": filing.content_hash,
            "chunker": chunker,
            "embedding_model": self.embedder.name,
            "collection": self.collection_name,
            "chunks": len(wanted),
            "ids": sorted(wanted),
            "items": sorted({c.item for c, _ in wanted.values()}),
            "present_items": len(filing.present_items()),
            "filing": {k: v for k, v in filing.metadata().items()},
            "indexed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        previous = self.manifest(fid) or {}
        if wrote or any(previous.get(k) != manifest[k] for k in manifest if k != "indexed_at"):
            self._write_manifest(manifest)
        self.pending_path(fid).unlink(missing_ok=True)
        for twin_fid in {fid2 for fid2 in self._twin_manifests(filing.content_hash, fid)}:
            self.manifest_path(twin_fid).unlink(missing_ok=True)  # its chunks were just deleted as orphans
        return True

    def _twin_manifests(self, source_hash: str, fid: str) -> list[str]:
        return [m["filing_id"] for m in self.manifests()
                if m.get("source_hash") == source_hash and m.get("filing_id") != fid]

    def delete_filing(self, fid: str) -> int:
        """Remove one filing's chunks and manifest; returns the number of chunks removed."""
        with store_errors(f"cannot write to the index at {self.location}"):
            with self.writing():
                ids = self.collection.get(where={"filing_id": fid}, include=[])["ids"]
                for b in range(0, len(ids), WRITE_BATCH):
                    self._before_write()
                    self.collection.delete(ids=ids[b : b + WRITE_BATCH])
                if ids:
                    self._before_write()
                    self._bump_revision()
                self.manifest_path(fid).unlink(missing_ok=True)
                self.pending_path(fid).unlink(missing_ok=True)
        return len(ids)

    def quarantine(self, reason: str) -> Path | None:
        """Move a damaged local index aside (``chroma.damaged-<time>``, never deleted) and start an empty one.

        The manifests stay: they list what to rebuild.  Returns where the old
        index went (None if there was nothing to move).
        """
        if self._local is None:
            raise IndexDamagedError(f"the Chroma server at {self.location} reports damage ({reason}); repair it there")
        with self.writing():
            moved = _move_aside(Path(self.location), self._local)
            self._collection = None
            self._generation = self._local.generation
            self._before_write()
            self._open_collection(True)
        return moved


# --------------------------------------------------------------------------- helpers


def _records(got: dict) -> list[StoredChunk]:
    ids = got.get("ids") or []
    docs = got.get("documents")
    metas = got.get("metadatas")
    embs = got.get("embeddings")
    out = []
    for n, cid in enumerate(ids):
        out.append(
            StoredChunk(
                cid,
                docs[n] if docs is not None else "",
                dict(metas[n] or {}) if metas is not None else {},
                None if embs is None else np.asarray(embs[n], dtype=np.float32),
            )
        )
    return out


def _max_batch(client) -> int:
    try:
        return int(client.get_max_batch_size())
    except Exception:  # noqa: BLE001
        return WRITE_BATCH


def _check_writable_dir(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStoreError(f"cannot create the index directory {root}: {exc.strerror or exc}") from exc
    if not root.is_dir():
        raise IndexStoreError(f"the index path {root} is not a directory")
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        raise IndexStoreError(f"the index directory {root} is not readable and writable by this user")


def _chroma_settings():
    from chromadb.config import Settings

    settings.disable_telemetry()
    return Settings(anonymized_telemetry=False, allow_reset=False)


def _persistent_client(path: Path):
    """A new embedded Chroma client for ``path`` (damage is checked by ``inspect_local_index`` before)."""
    import chromadb

    path.mkdir(parents=True, exist_ok=True)
    sqlite = path / SQLITE_NAME
    new = not sqlite.exists() or sqlite.stat().st_size == 0
    for attempt in range(3):
        try:
            with store_errors(f"cannot open the index at {path} (corrupted or locked?)"):
                if not new:
                    with _native_stderr_kept_on_success():
                        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
                # a new index: Chroma creates its tables on open; two processes doing it at
                # once collide ("table collections already exists"), so one at a time
                with open(path.parent / ".init.lock", "a+") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX)
                    try:
                        with _native_stderr_kept_on_success():
                            return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
                    finally:
                        fcntl.flock(handle, fcntl.LOCK_UN)
        except IndexStoreError as exc:
            _forget_system(path)  # Chroma caches a system that failed to start; the next open must start afresh
            if "already exists" not in str(exc) or attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))  # another process created the tables meanwhile: open again
    raise AssertionError("unreachable")


@contextmanager
def _native_stderr_kept_on_success() -> Iterator[None]:
    """Hold back what native code writes to stderr (a Rust panic on a damaged database prints a
    multi-line report) and pass it on only if the block succeeds: on failure the one-line
    ``IndexDamagedError`` says what matters."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                held.seek(0)
                data = held.read()
                if data:
                    try:
                        os.write(2, data)
                    except OSError:
                        pass


def _forget_system(path: Path) -> None:
    """Drop (and stop) Chroma's per-process shared system for ``path``."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        system = SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)
        if system is not None:
            try:
                system.stop()
            except Exception:  # noqa: BLE001 - a system that never started cannot stop cleanly
                pass
    except Exception:  # noqa: BLE001 - best effort: Chroma internals may change
        pass


_HELD_LOCKS: dict[str, dict] = {}  # write locks this process holds: lock path -> {"depth", "dirty"}
_SYNCING: set[tuple[str, str]] = set()  # (index root, filing id) being written by this process


class _LocalClient:
    """This process's one Chroma client for an index folder, reopened when another process wrote.

    The generation token (``<root>/.generation``) is stamped by every writer
    before its first write and after its last; a client loaded under an older
    token holds a stale in-memory vector index that must not be used.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.token_path = path.parent / ".generation"
        self.client = None
        self.generation = 0
        self.seen: str | None = None
        self.expected_record: dict | None = None  # the segment record as this process last saw or wrote it
        atexit.register(self.bless)

    def read_token(self) -> str | None:
        try:
            return self.token_path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def open(self) -> None:
        token = self.read_token()  # read before loading: a later stamp triggers another reload
        damage = check_segments(self.path.parent)
        if damage:  # checked before Chroma loads the files: damaged ones can crash it
            raise IndexDamagedError(f"the index at {self.path} is damaged or lost ({damage}): {REPAIR_HINT}")
        self.expected_record = _read_segment_record(self.path.parent)
        self.client = _persistent_client(self.path)
        self.seen = token
        self.generation += 1

    def bless(self) -> None:
        """Record the vector files as good if only this process's Chroma changed them since it loaded them.

        Chroma flushes its log into the vector files when a reader loads a
        collection another process wrote; recording the result here spares the
        next process a canary check (see :func:`check_segments`).
        """
        if self.client is None or not self.expected_record or self.expected_record.get("state") != "clean":
            return
        if not self.path.is_dir():
            return  # moved aside or removed
        try:
            if _read_segment_record(self.path.parent) != self.expected_record:
                return  # a writer recorded something newer (or is writing): not ours to bless
            sums = _segment_sums(self.path.parent)
            before = self.expected_record.get("files") or {}
            if not set(before) <= set(sums) or any(size == 0 for size, _ in sums.values()):
                return  # files vanished or were emptied: that is no flush, leave it to the check
            if sums != before:
                record = {"state": "clean", "files": sums}
                _write_segment_record(self.path.parent, record)
                self.expected_record = record
        except OSError:
            pass

    def close(self) -> None:
        self.bless()
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing a broken client must not hide the real problem
                pass
            self.client = None
        # Chroma shares one system per folder among all clients of a process; a client
        # made outside this holder would keep the stale one alive: stop it for real
        _forget_system(self.path)

    def refresh(self) -> bool:
        """Reopen if the token moved since the client was loaded; True if it did."""
        if self.client is not None and self.read_token() == self.seen:
            return False
        self.close()
        self.open()
        return True

    def stamp(self) -> None:
        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        try:
            with settings.atomic_write(self.token_path, "w") as handle:
                handle.write(token)
        except OSError as exc:
            raise IndexStoreError(f"cannot write {self.token_path}: {exc.strerror or exc}") from exc
        self.seen = token


_LOCAL_CLIENTS: dict[str, _LocalClient] = {}


def close_local_clients() -> None:
    """Close every embedded Chroma client of this process (and forget cached stores)."""
    for holder in list(_LOCAL_CLIENTS.values()):
        holder.close()
    _LOCAL_CLIENTS.clear()
    _STORES.clear()


def _local_client(path: Path) -> _LocalClient:
    key = str(path.resolve())
    holder = _LOCAL_CLIENTS.get(key)
    if holder is None:
        holder = _LocalClient(path)
        holder.open()
        _LOCAL_CLIENTS[key] = holder
    else:
        holder.refresh()
    return holder


def _manifest_files(root: Path) -> list[Path]:
    """Live manifests of every collection under an index root."""
    base = root / "manifests"
    return sorted(base.glob("*/*.json")) if base.is_dir() else []


def _sqlite_header_problem(sqlite: Path) -> str | None:
    """Why ``sqlite`` is not a readable SQLite file (by its 16-byte header), or None."""
    try:
        with open(sqlite, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        return f"{sqlite.name} cannot be read: {exc.strerror or exc}"
    if head != b"SQLite format 3\x00":
        return f"{sqlite.name} is corrupted: not a SQLite database"
    return None


def sqlite_verdict(sqlite: Path) -> str | None:
    """Why ``chroma.sqlite3`` is damaged according to SQLite (header, ``quick_check``), or None if sound.

    Read-only; a locked database is not called damaged.
    """
    if not sqlite.is_file() or sqlite.stat().st_size == 0:
        return None
    problem = _sqlite_header_problem(sqlite)
    if problem:
        return problem
    try:
        con = sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True, timeout=5)
        try:
            rows = [str(r[0]) for r in con.execute("PRAGMA quick_check(3)")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        text = _describe(exc)
        if "locked" in text.lower() or "busy" in text.lower():
            return None
        return f"{sqlite.name} is corrupted: {text}"
    if rows != ["ok"]:
        return f"{sqlite.name} is corrupted: {' '.join('; '.join(rows).split())[:160]}"
    return None


def inspect_local_index(root: Path) -> str | None:
    """Why the local index under ``root`` cannot be opened without losing what the manifests list, or None.

    Cheap checks done before Chroma touches the files (Chroma would silently
    start a new, empty database in an empty or missing ``chroma.sqlite3``).
    """
    chroma_dir = root / "chroma"
    sqlite = chroma_dir / SQLITE_NAME
    listed = bool(_manifest_files(root))
    segments = chroma_dir.is_dir() and any(p.is_dir() for p in chroma_dir.iterdir())
    if not sqlite.exists():
        return f"{SQLITE_NAME} is missing" if (listed or segments) else None
    if sqlite.stat().st_size == 0:
        return f"{SQLITE_NAME} is empty (0 bytes)" if (listed or segments) else None
    return _sqlite_header_problem(sqlite) or check_segments(root)


SEGMENTS_RECORD = ".segments.json"


def _segment_sums(root: Path) -> dict[str, list]:
    """size and sha256 of every file of the vector segments (``chroma/<segment>/*``)."""
    import hashlib

    out: dict[str, list] = {}
    chroma_dir = root / "chroma"
    if not chroma_dir.is_dir():
        return out
    for seg in sorted(p for p in chroma_dir.iterdir() if p.is_dir()):
        for f in sorted(p for p in seg.iterdir() if p.is_file()):
            digest = hashlib.sha256()
            with open(f, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
            out[f"{seg.name}/{f.name}"] = [f.stat().st_size, digest.hexdigest()]
    return out


def _read_segment_record(root: Path) -> dict | None:
    try:
        data = json.loads((root / SEGMENTS_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_segment_record(root: Path, data: dict) -> None:
    with settings.atomic_write(root / SEGMENTS_RECORD, "w") as handle:
        json.dump(data, handle)


def check_segments(root: Path, *, force: bool = False) -> str | None:
    """Why Chroma cannot safely load the vector segments under ``root``, or None.

    Chroma's vector files are loaded by native code: a damaged one crashes
    the process (SIGSEGV) or gives wrong answers, so they are checked before
    this process loads them.  The size and sha256 of every file are compared
    with the record the last write (or the last successful check) left; if
    they differ, a child process loads the index and queries it (the
    canary: a crash there is reported here, not suffered).  Chroma may also
    rewrite the files itself (it flushes its log into them), so a difference
    is judged by the canary, never by the checksum alone; a passing canary
    records the new files as good.  ``force`` runs the canary regardless.
    """
    record = _read_segment_record(root)
    if not force:
        if not record or record.get("state") != "clean" or not isinstance(record.get("files"), dict):
            return None  # nothing recorded yet, or a write in progress / interrupted (Chroma recovers it)
        if _segment_sums(root) == record["files"]:
            return None
    problem = run_canary(root / "chroma")
    if problem:
        return problem
    if _read_segment_record(root) == record:  # no writer started meanwhile: remember these files as good
        try:
            _write_segment_record(root, {"state": "clean", "files": _segment_sums(root)})
        except OSError:
            pass
    return None


_CANARY = r"""
import sys
import numpy as np
import chromadb
from chromadb.config import Settings
import filinglens.retrieval.embeddings  # registers the collection's embedding function (loads no model)
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False, allow_reset=False))
for c in client.list_collections():
    col = client.get_collection(c if isinstance(c, str) else c.name)
    n = col.count()
    if not n:
        continue
    emb = col.get(limit=1, include=["embeddings"])["embeddings"]
    dim = len(emb[0])
    v = np.full(dim, dim ** -0.5, dtype=np.float32)
    col.query(query_embeddings=[v], n_results=min(n, 100), include=[])
    fids = {(m or {}).get("filing_id") for m in col.get(where={"seq": 0}, include=["metadatas"])["metadatas"]}
    for fid in sorted(f for f in fids if f):
        col.query(query_embeddings=[v], n_results=1, where={"filing_id": fid}, include=[])
print("ok")
"""


def run_canary(chroma_dir: Path, timeout: float = 300) -> str | None:
    """Load and query the index in a child process; why that failed (crash, error), or None."""
    import signal as _signal
    import subprocess
    import sys

    if not (chroma_dir / SQLITE_NAME).is_file():
        return None
    _log.info("checking the vector index at %s in a child process", chroma_dir)
    try:
        proc = subprocess.run([sys.executable, "-c", _CANARY, str(chroma_dir)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **settings.TELEMETRY_OFF})
    except subprocess.TimeoutExpired:
        return f"loading the vector index did not finish in {timeout:g} s"
    if proc.returncode == 0:
        return None
    if proc.returncode < 0:
        try:
            name = _signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return f"loading the vector index crashes Chroma ({name})"
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return f"loading the vector index fails: {(lines[-1] if lines else 'exit ' + str(proc.returncode))[:200]}"


def _move_aside(chroma_dir: Path, holder: _LocalClient | None) -> Path | None:
    """Rename a damaged index folder to ``chroma.damaged-<time>`` and reopen an empty one; returns the new name."""
    if holder is not None:
        holder.close()
    (chroma_dir.parent / SEGMENTS_RECORD).unlink(missing_ok=True)  # it described the old files
    moved = None
    if chroma_dir.exists() and any(chroma_dir.iterdir()):
        moved = chroma_dir.with_name(f"chroma.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.replace(chroma_dir, moved)
        except OSError as exc:
            raise IndexStoreError(f"cannot move the damaged index {chroma_dir} aside: {exc.strerror or exc}") from exc
    if holder is not None:
        holder.open()
        holder.stamp()
    return moved


def _flock_within(handle, wait: float) -> bool:
    """Take an exclusive ``flock`` on ``handle``, polling for up to ``wait`` seconds; False if still held."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def quarantine_index(root: Path, collection: str | None = None, reason: str = "") -> Path | None:
    """Move the damaged local index under ``root`` aside (under the write lock); returns where it went."""
    root = Path(root)
    name = collection or os.environ.get(COLLECTION_ENV) or DEFAULT_COLLECTION
    lock_path = root / f".write-{name}.lock"
    root.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        if not _flock_within(handle, ChunkStore.lock_wait):
            raise IndexStoreError(f"the index at {root} is locked by another writer; cannot repair it now")
        try:
            if not inspect_local_index(root) and not reason:
                return None  # repaired by another process meanwhile
            chroma_dir = root / "chroma"
            holder = _LOCAL_CLIENTS.get(str(chroma_dir.resolve()))
            moved = _move_aside(chroma_dir, holder)
            if holder is None:
                with settings.atomic_write(root / ".generation", "w") as out:
                    out.write(f"{os.getpid()}-{uuid.uuid4().hex}")
            return moved
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _http_client(url: str):
    import chromadb

    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        raise ConfigError(f"bad Chroma server URL `{url}` (expected e.g. http://127.0.0.1:8000)")
    ssl = parsed.scheme == "https"
    port = parsed.port or (443 if ssl else 8000)
    try:
        client = chromadb.HttpClient(host=parsed.hostname, port=port, ssl=ssl, settings=_chroma_settings())
        client.heartbeat()
    except BaseException as exc:  # noqa: BLE001
        if _is_fatal(exc):
            raise
        raise IndexStoreError(
            f"the Chroma server at {url} is not reachable ({_describe(exc)}); start it with "
            f"`chroma run --path DIR --host {parsed.hostname} --port {port}` or unset {URL_ENV} "
            f"to use the embedded index"
        ) from exc
    return client


_STORES: dict[tuple, ChunkStore] = {}


def open_store(
    path: str | Path | None = None,
    *,
    url: str | None = None,
    collection: str | None = None,
    embedder: str | Embedder | None = None,
    create: bool = True,
) -> ChunkStore:
    """A (per-process cached) ``ChunkStore`` for the configured location."""
    key = (
        str(path) if path else None,
        url if url is not None else os.environ.get(URL_ENV),
        collection or os.environ.get(COLLECTION_ENV) or DEFAULT_COLLECTION,
        get_embedder(embedder).name,
        str(settings.data_home()) if path is None else None,
    )
    store = _STORES.get(key)
    if store is None or (create and not store.exists):
        try:
            store = ChunkStore(path, url=url, collection=collection, embedder=embedder, create=create)
        except IndexDamagedError as exc:
            url_used = url if url is not None else os.environ.get(URL_ENV)
            if not create or url_used:
                raise
            # a writer (ingest): move the damaged index aside and start an empty one;
            # ingest then rebuilds the filings the manifests list (repair_index)
            root = Path(path).expanduser() if path is not None else settings.subdir("index")
            moved = quarantine_index(root, collection, str(exc))
            store = ChunkStore(path, url=url, collection=collection, embedder=embedder, create=create, check=False)
            store.repair_note = str(exc).split(": run `filinglens ingest --repair`")[0] + (
                f"; moved it aside to {moved}" if moved else "")
        _STORES[key] = store
    return store
