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

One writer at a time per local index (an advisory lock file); a second
writer gets a clear error instead of interleaving writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

import numpy as np

from filinglens import settings
from filinglens.errors import ConfigError, FilingLensError, IndexStoreError
from filinglens.retrieval.chunking import CHUNKER_VERSION, Chunk, chunk_id
from filinglens.retrieval.embeddings import ChromaEmbeddingFunction, Embedder, get_embedder
from filinglens.retrieval.filing import Filing

DEFAULT_COLLECTION = "filinglens"
URL_ENV = "FILINGLENS_CHROMA_URL"
COLLECTION_ENV = "FILINGLENS_COLLECTION"
WRITE_BATCH = 128

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


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


@contextmanager
def _store_errors(what: str) -> Iterator[None]:
    """Turn Chroma/OS failures (including Rust panics) into ``IndexStoreError``."""
    try:
        yield
    except FilingLensError:
        raise
    except BaseException as exc:  # noqa: BLE001 - pyo3 panics derive from BaseException
        if _is_fatal(exc):
            raise
        raise IndexStoreError(f"{what}: {_describe(exc)}") from exc


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
    ) -> None:
        self.embedder = get_embedder(embedder)
        self.collection_name = collection or os.environ.get(COLLECTION_ENV) or DEFAULT_COLLECTION
        url = url if url is not None else (os.environ.get(URL_ENV) or None)
        if url and path is not None:
            raise ConfigError("give either an index path or a Chroma server URL, not both")
        self.url = url
        if url:
            self.client = _http_client(url)
            parsed = urlparse(url if "://" in url else f"http://{url}")
            server = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parsed.hostname}_{parsed.port or 8000}")
            self.root = settings.subdir("index") / "servers" / server
            self.location = url
        else:
            self.root = Path(path).expanduser() if path is not None else settings.subdir("index")
            chroma_dir = self.root / "chroma"
            _check_writable_dir(self.root)
            self.client = _persistent_client(chroma_dir)
            self.location = str(chroma_dir)
        self.manifest_dir = self.root / "manifests" / self.collection_name
        self._collection = None
        self._create = create
        self._open_collection(create)

    # -- collection ----------------------------------------------------------

    def _open_collection(self, create: bool) -> None:
        ef = ChromaEmbeddingFunction(self.embedder)
        with _store_errors(f"cannot open the index collection `{self.collection_name}` at {self.location}"):
            existing = {c if isinstance(c, str) else c.name for c in self.client.list_collections()}
            if self.collection_name in existing:
                collection = self.client.get_collection(self.collection_name, embedding_function=ef)
            elif create:
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
            else:
                collection = None
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
        with _store_errors("cannot read the index"):
            return self.collection.count()

    def revision(self) -> str:
        """A token that changes whenever chunks are written (for caches of the collection)."""
        with _store_errors("cannot read the index"):
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
        with _store_errors("cannot read the index"):
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
        with _store_errors("cannot query the index"):
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
        return self.manifest_dir / f"{fid}.json"

    def manifest(self, fid: str) -> dict | None:
        try:
            return json.loads(self.manifest_path(fid).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def manifests(self) -> list[dict]:
        out = []
        if self.manifest_dir.is_dir():
            for path in sorted(self.manifest_dir.glob("*.json")):
                try:
                    out.append(json.loads(path.read_text(encoding="utf-8")))
                except (OSError, ValueError):
                    continue  # a damaged manifest only costs a re-diff
        return out

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
            with _store_errors("cannot read the index"):
                stored = self.collection.get(where={"filing_id": man["filing_id"]}, include=[])
            if len(stored["ids"]) == man.get("chunks") and set(stored["ids"]) == set(man.get("ids", [])):
                return man
        return None

    def verify(self) -> dict:
        """Check the index and the manifests against each other.

        Returns ``{"ok", "detail", "chunks", "filings", "missing", "mismatched", "unlisted"}``:
        ``missing`` are filings whose manifest says they are indexed but whose
        chunks are gone, ``mismatched`` those whose stored chunk ids differ
        from their manifest, ``unlisted`` filings in the index with no manifest.
        """
        manifests = {m["filing_id"]: m for m in self.manifests() if m.get("filing_id")}
        if not self.exists:
            self._open_collection(False)
        if not self.exists:
            ok = not manifests
            detail = f"{self.location}: no collection yet"
            if manifests:
                detail = (f"{self.location}: the index is missing but {len(manifests)} manifest(s) say filings "
                          "are indexed; re-run `filinglens ingest` on them to rebuild it")
            return {"ok": ok, "detail": detail, "chunks": 0, "filings": 0,
                    "missing": sorted(manifests), "mismatched": [], "unlisted": []}
        with _store_errors("cannot read the index"):
            got = self.collection.get(include=["metadatas"])
        stored: dict[str, set] = {}
        for cid, meta in zip(got["ids"], got["metadatas"] or []):
            stored.setdefault((meta or {}).get("filing_id", ""), set()).add(cid)
        missing = sorted(fid for fid in manifests if fid not in stored)
        mismatched = sorted(fid for fid, m in manifests.items()
                            if fid in stored and stored[fid] != set(m.get("ids", [])))
        unlisted = sorted(fid for fid in stored if fid not in manifests)
        ok = not (missing or mismatched)
        detail = f"{self.location}: {len(got['ids'])} chunks, {len(stored)} filings, {len(manifests)} manifests"
        if missing:
            detail += f"; {len(missing)} filing(s) in the manifests have no chunks"
        if mismatched:
            detail += f"; {len(mismatched)} filing(s) differ from their manifest"
        if unlisted:
            detail += f"; {len(unlisted)} filing(s) without a manifest (an interrupted ingest)"
        return {"ok": ok, "detail": detail, "chunks": len(got["ids"]), "filings": len(stored),
                "missing": missing, "mismatched": mismatched, "unlisted": unlisted}

    def _write_manifest(self, data: dict) -> None:
        with settings.atomic_write(self.manifest_path(data["filing_id"]), "w") as handle:
            json.dump(data, handle, indent=1)

    # -- writes --------------------------------------------------------------

    lock_wait = 10.0  # seconds a writer waits for another writer before giving up

    @contextmanager
    def writing(self, wait: float | None = None) -> Iterator[None]:
        """Exclusive write access (advisory lock under the index root)."""
        wait = self.lock_wait if wait is None else wait
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / f".write-{self.collection_name}.lock"
        try:
            handle = open(lock_path, "a+")
        except OSError as exc:
            raise IndexStoreError(f"cannot lock the index at {self.root}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + wait
        try:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = handle.read().strip()
                        raise IndexStoreError(
                            f"the index at {self.root} is locked by another writer"
                            f"{f' (pid {holder})' if holder else ''}; wait for it to finish or stop it"
                        )
                    time.sleep(0.2)
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            try:
                fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()

    def sync_filing(
        self,
        filing: Filing,
        chunks: Sequence[Chunk],
        *,
        chunker: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncStats:
        """Make the stored chunks of ``filing`` exactly ``chunks`` (see the module doc)."""
        t0 = time.perf_counter()
        fid = filing_id(filing)
        key = filing_key(filing)
        stats = SyncStats(fid, chunks=len(chunks))
        wanted: dict[str, tuple[Chunk, dict]] = {}
        for chunk in chunks:
            meta = chunk_metadata(filing, fid, chunk, chunker)
            cid = chunk_id(key, chunk)
            wanted[cid] = (chunk, meta)
        with _store_errors(f"cannot write to the index at {self.location}"):
            with self.writing():
                collection = self.collection
                stored = collection.get(where={"filing_id": fid}, include=["metadatas"])
                stored_meta = dict(zip(stored["ids"], stored["metadatas"] or []))
                # the same bytes indexed under another identity (e.g. metadata given differently)
                twins = collection.get(
                    where={"$and": [{"source_hash": filing.content_hash}, {"filing_id": {"$ne": fid}}]},
                    include=[],
                )["ids"]
                missing = [cid for cid in wanted if cid not in stored_meta]
                changed = [cid for cid in wanted if cid in stored_meta and dict(stored_meta[cid] or {}) != wanted[cid][1]]
                orphans = [cid for cid in stored_meta if cid not in wanted] + list(twins)
                stats.skipped = len(wanted) - len(missing) - len(changed)
                wrote = False
                batch = min(WRITE_BATCH, _max_batch(self.client))
                for b in range(0, len(missing), batch):
                    ids = missing[b : b + batch]
                    texts = [wanted[c][0].text for c in ids]
                    vectors = self.embedder.embed_documents(texts)
                    collection.add(
                        ids=ids, embeddings=vectors, documents=texts, metadatas=[wanted[c][1] for c in ids]
                    )
                    wrote = True
                    stats.embedded += len(ids)
                    if progress:
                        progress(stats.embedded, len(missing))
                for b in range(0, len(changed), batch):
                    ids = changed[b : b + batch]
                    collection.update(ids=ids, metadatas=[wanted[c][1] for c in ids])
                    wrote = True
                    stats.updated += len(ids)
                for b in range(0, len(orphans), batch):
                    collection.delete(ids=orphans[b : b + batch])
                    wrote = True
                stats.deleted = len(orphans)
                if wrote:
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
        stats.seconds = time.perf_counter() - t0
        return stats

    def delete_filing(self, fid: str) -> int:
        """Remove one filing's chunks and manifest; returns the number of chunks removed."""
        with _store_errors(f"cannot write to the index at {self.location}"):
            with self.writing():
                ids = self.collection.get(where={"filing_id": fid}, include=[])["ids"]
                for b in range(0, len(ids), WRITE_BATCH):
                    self.collection.delete(ids=ids[b : b + WRITE_BATCH])
                if ids:
                    self._bump_revision()
                self.manifest_path(fid).unlink(missing_ok=True)
        return len(ids)


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

    return Settings(anonymized_telemetry=False, allow_reset=False)


def _persistent_client(path: Path):
    import chromadb

    sqlite = path / "chroma.sqlite3"
    if sqlite.exists():
        with open(sqlite, "rb") as handle:
            head = handle.read(16)
        if head and head != b"SQLite format 3\x00":
            raise IndexStoreError(
                f"the index at {path} is corrupted ({sqlite.name} is not a SQLite database); "
                f"move it aside and re-run `filinglens ingest` to rebuild it"
            )
    with _store_errors(f"cannot open the index at {path} (corrupted or locked?)"):
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())


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
        store = ChunkStore(path, url=url, collection=collection, embedder=embedder, create=create)
        _STORES[key] = store
    return store
