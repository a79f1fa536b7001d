"""Hybrid search over the chunk store: dense (Chroma) + BM25 (bm25s), RRF, MMR.

- **Dense**: the query embedded with the collection's model, nearest chunks
  from Chroma under the metadata filter.
- **Lexical**: BM25 (bm25s) built in-process over the stored chunks of the
  *filtered subset*, cached in memory and on disk under the index root, keyed
  by the collection's revision (which changes on every write) and the filter.
  Each disk entry carries the sha256 of its files; an entry that fails the
  check (truncated, overwritten) is rebuilt and the repair reported
  (``HybridSearcher.notices`` / ``on_notice``), never used.
- **Lost chunks**: before searching a new revision, the stored chunks are
  checked against the manifests; filings the manifests list but the index
  lost are a clear error naming ``filinglens ingest --repair``.
- **Keyword rewrite**: by default BM25 gets the question's keyword form
  (``retrieval/rewrite.py``: instruction words dropped, metric names expanded
  into their line items); ``rewrite=False`` or ``lexical_query`` overrides it.
- **Pages** (hybrid mode): BM25 also ranks whole pages -- a PDF page, or for
  documents without pages a window of 3 consecutive chunks of an item -- and
  a chunk gains ``page_weight / (rrf_k + rank of its page)``, so a page whose
  words are spread over several chunks (a table's row labels in one chunk,
  its header in another) still surfaces; and a result keeps at most
  ``per_page`` chunks of one page while other pages have candidates.  Chosen
  on the tuning half of the FinanceBench dev questions (bench/README.md).
- **Fusion**: reciprocal-rank fusion, ``sum_i w_i / (rrf_k + rank_i)``.
- **Diversification**: maximal marginal relevance over the fused candidates
  (relevance = fused score scaled to [0, 1], similarity = cosine of the
  chunk embeddings); ``mmr_lambda=1`` turns it off.
- **Filters**: ticker(s), company, fiscal year or year range, items, chunk
  kind, filing id.

Every hit carries the exact stored text and its metadata (item, offsets into
the item and the filing text, page, source hash...).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from filinglens.errors import IndexDamagedError, IndexStoreError, InputError, NoMatchError
from filinglens.retrieval.chunking import indexed_text
from filinglens.retrieval.rewrite import keyword_rewrite
from filinglens.retrieval.statements import StatementPage, find_statement_pages, statement_ranking, statements_asked
from filinglens.retrieval.index import REPAIR_HINT, ChunkStore, StoredChunk, store_errors, open_store

MODES = ("hybrid", "dense", "bm25")
DEFAULT_FETCH_K = 50
DEFAULT_RRF_K = 60
DEFAULT_MMR_LAMBDA = 0.75
#: weight of the page-level BM25 ranking in a hybrid search (0 turns it off)
DEFAULT_PAGE_WEIGHT = 1.0
#: at most this many chunks of one page in a hybrid result while other pages have candidates (0: no cap)
DEFAULT_PER_PAGE = 1
#: without PDF pages, a "page" is this many consecutive chunks of one item
PAGE_WINDOW = 3
#: weight of the asked financial statements' pages (``retrieval/statements.py``) in a hybrid search (0: off)
DEFAULT_STATEMENT_WEIGHT = 2.0
#: at most this many statement pages are ranked for one query (a filter over many filings has many)
MAX_STATEMENT_PAGES = 6
#: the page-level cache format (bumped when what a page index keeps changes)
_PAGE_INDEX_VERSION = "statements-v2"
_BM25_DISK_ENTRIES = 24
_BM25_CHECKSUMS = "checksums.json"
_STALE_TMP_SECONDS = 3600


# --------------------------------------------------------------------------- filters


def normalize_item(item: str) -> str:
    """``"item 1a"`` / ``"1a."`` -> ``"1A"``; pseudo-items (``cover``, ``other``) stay lower case."""
    s = re.sub(r"(?i)^\s*item\s*", "", str(item)).strip().rstrip(".").strip()
    return s.lower() if s.lower() in ("cover", "other") else s.upper()


@dataclass
class SearchFilters:
    """Metadata filters; all given conditions must hold."""

    ticker: str | Sequence[str] | None = None
    company: str | Sequence[str] | None = None
    year: int | None = None
    year_from: int | None = None
    year_to: int | None = None
    items: Sequence[str] | None = None
    kind: str | None = None  # "text" | "table"
    filing_id: str | Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in ("text", "table"):
            raise InputError(f"chunk kind must be `text` or `table`, not `{self.kind}`")
        if self.year is not None:
            self.year = int(self.year)
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise InputError(f"empty year range {self.year_from}-{self.year_to}")
        if self.items:
            self.items = [normalize_item(i) for i in self.items]

    def clauses(self) -> list[dict]:
        out: list[dict] = []

        def one_or_many(key: str, value, norm=lambda v: v) -> None:
            if value is None or value == [] or value == ():
                return
            values = [norm(v) for v in ([value] if isinstance(value, str) else list(value))]
            out.append({key: values[0]} if len(values) == 1 else {key: {"$in": values}})

        one_or_many("ticker", self.ticker, lambda v: str(v).upper())
        one_or_many("company", self.company)
        one_or_many("filing_id", self.filing_id)
        if self.year is not None:
            out.append({"fiscal_year": self.year})
        if self.year_from is not None:
            out.append({"fiscal_year": {"$gte": int(self.year_from)}})
        if self.year_to is not None:
            out.append({"fiscal_year": {"$lte": int(self.year_to)}})
        one_or_many("item", self.items)
        if self.kind:
            out.append({"kind": self.kind})
        return out

    def where(self) -> dict | None:
        """The Chroma ``where`` document (None = no filter)."""
        clauses = self.clauses()
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def describe(self) -> str:
        parts = []
        for key, value in asdict(self).items():
            if value not in (None, [], ()):
                parts.append(f"{key}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
        return " ".join(parts) or "no filter"


@dataclass
class SearchHit:
    """One retrieved chunk: id, exact text, score, metadata and how each retriever ranked it."""

    chunk_id: str
    text: str
    score: float
    metadata: dict
    dense_rank: int | None = None  # 1-based
    bm25_rank: int | None = None
    dense_similarity: float | None = None  # cosine
    bm25_score: float | None = None
    page_rank: int | None = None  # 1-based rank of the chunk's page by page-level BM25 (hybrid)
    statement_rank: int | None = None  # 1-based rank of its page among the statement pages the query asks for
    context: str = ""  # on such a page: the statement's title, units and column headers (its rows do not say)
    embedding: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("embedding", None)
        return data


# --------------------------------------------------------------------------- BM25


_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*", re.I)
_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves""".split()
)


def _stem(token: str) -> str:
    """A light plural/inflection folding (revenues -> revenue, liabilities -> liability)."""
    if len(token) <= 3 or token[0].isdigit():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("sses"):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    """Lower-cased words and numbers (``1,234.5`` -> ``1234.5``) without stop words, lightly stemmed."""
    out = []
    for m in _WORD.finditer(text.lower()):
        tok = m.group(0)
        if tok[0].isdigit():
            tok = tok.replace(",", "")
        if tok in _STOP or (len(tok) < 2 and not tok.isdigit()):
            continue
        out.append(_stem(tok))
    return out


class _Bm25Index:
    """bm25s over a fixed list of chunk ids."""

    def __init__(self, ids: list[str], retriever, statements: dict | None = None) -> None:
        self.ids = ids
        self.retriever = retriever
        #: a page index also keeps the statement pages it found: statement -> [StatementPage]
        self.statements: dict[str, list[StatementPage]] = statements or {}

    @classmethod
    def build(cls, chunks: Sequence[StoredChunk], pages: bool = False) -> "_Bm25Index":
        """Over chunks, or with ``pages`` over pages (ids are :func:`page_key`; a page's tokens are its chunks')."""
        import bm25s

        ids = [c.id for c in chunks]
        if not ids:
            return cls([], None)
        corpus_tokens = [tokenize(indexed_text(c.metadata, c.text)) or ["_empty_"] for c in chunks]
        statements = None
        if pages:
            grouped: dict[str, list[str]] = {}
            for c, tokens in zip(chunks, corpus_tokens):
                grouped.setdefault(page_key(c.metadata), []).extend(tokens)
            ids, corpus_tokens = list(grouped), list(grouped.values())
            statements = find_statement_pages(chunks, page_key)
        retriever = bm25s.BM25()
        retriever.index(corpus_tokens, show_progress=False)
        return cls(ids, retriever, statements)

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        if not self.ids:
            return []
        tokens = [t for t in tokenize(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return []
        n = min(n, len(self.ids))
        docs, scores = self.retriever.retrieve([tokens], k=n, show_progress=False, n_threads=1)
        out = []
        for d, s in zip(docs[0], scores[0]):
            if s <= 0:
                break
            out.append((self.ids[int(d)], float(s)))
        return out

    def save(self, directory: Path) -> None:
        """Write the index into ``directory`` (via a temporary folder, with the files' checksums)."""
        tmp = directory.with_name(directory.name + ".tmp-" + str(os.getpid()))
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.retriever.save(str(tmp))
        (tmp / "chunk_ids.json").write_text(json.dumps(self.ids))
        if self.statements:
            (tmp / "statements.json").write_text(json.dumps(
                {s: [p.to_dict() for p in pages] for s, pages in self.statements.items()}))
        sums = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / _BM25_CHECKSUMS).write_text(json.dumps(sums))
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)

    @classmethod
    def load(cls, directory: Path) -> "tuple[_Bm25Index | None, str | None]":
        """(the cached index, None), or (None, why the entry is damaged); (None, None) if there is none."""
        import bm25s

        if not directory.is_dir():
            return None, None
        try:
            sums = json.loads((directory / _BM25_CHECKSUMS).read_text())
            if not isinstance(sums, dict) or "chunk_ids.json" not in sums:
                return None, "no valid checksum list"
            for name, digest in sums.items():
                if _sha256(directory / name) != digest:
                    return None, f"{name} fails its checksum"
            ids = json.loads((directory / "chunk_ids.json").read_text())
            retriever = bm25s.BM25.load(str(directory))
            statements = {}
            if "statements.json" in sums:
                statements = {s: [StatementPage(**p) for p in pages]
                              for s, pages in json.loads((directory / "statements.json").read_text()).items()}
        except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt
            return None, f"{type(exc).__name__}: {str(exc)[:120]}"
        if not isinstance(ids, list) or len(ids) != int(retriever.scores.get("num_docs", len(ids))):
            return None, "its chunk list does not match its index"
        return cls(ids, retriever, statements), None


# --------------------------------------------------------------------------- pages, fusion and MMR


def page_key(meta: dict) -> str:
    """The page a chunk is on: ``filing|p12`` for a PDF page, else ``filing|item|wN`` (a window of chunks)."""
    fid = meta.get("filing_id", "")
    if meta.get("page") is not None:
        return f"{fid}|p{int(meta['page'])}"
    return f"{fid}|{meta.get('item', '')}|w{int(meta.get('seq') or 0) // PAGE_WINDOW}"


def cap_per_page(hits: Sequence, k: int, per_page: int = DEFAULT_PER_PAGE) -> list:
    """``hits`` in order with at most ``per_page`` per page; the overflow follows only as far as needed for ``k``.

    Works on anything with ``metadata`` (search hits, evidence).  ``per_page`` 0 keeps everything.
    """
    if per_page <= 0:
        return list(hits)
    kept, overflow, used = [], [], {}
    for h in hits:
        key = page_key(h.metadata)
        if used.get(key, 0) < per_page:
            used[key] = used.get(key, 0) + 1
            kept.append(h)
        else:
            overflow.append(h)
    return kept + overflow[: max(0, k - len(kept))]



def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None, k: int = DEFAULT_RRF_K) -> dict[str, float]:
    """Reciprocal-rank fusion of ranked id lists: ``sum_i w_i / (k + rank_i)`` (rank from 1)."""
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, cid in enumerate(ranking, start=1):
            fused[cid] = fused.get(cid, 0.0) + w / (k + rank)
    return fused


def mmr(relevance: Sequence[float], embeddings: np.ndarray, k: int, lambda_: float = DEFAULT_MMR_LAMBDA) -> list[int]:
    """Maximal marginal relevance: indices of ``k`` items balancing relevance and novelty.

    ``relevance`` is scaled to [0, 1]; ``embeddings`` are L2-normalised rows.
    """
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    top = rel.max()
    rel = rel / top if top > 0 else rel
    if lambda_ >= 1.0 or embeddings is None or len(embeddings) != n:
        return list(np.argsort(-rel, kind="stable")[:k])
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb / np.clip(norms, 1e-12, None)
    sims = emb @ emb.T
    chosen: list[int] = []
    max_sim = np.full(n, -np.inf)
    remaining = np.ones(n, dtype=bool)
    while len(chosen) < min(k, n):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = lambda_ * rel - (1 - lambda_) * penalty
        value[~remaining] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        remaining[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return chosen


# --------------------------------------------------------------------------- the searcher


class HybridSearcher:
    """Dense + BM25 search over a :class:`ChunkStore`, fused with RRF and diversified with MMR."""

    def __init__(
        self,
        store: ChunkStore | None = None,
        *,
        rrf_k: int = DEFAULT_RRF_K,
        dense_weight: float = 1.0,
        bm25_weight: float = 1.0,
        page_weight: float = DEFAULT_PAGE_WEIGHT,
        per_page: int = DEFAULT_PER_PAGE,
        statement_weight: float = DEFAULT_STATEMENT_WEIGHT,
        disk_cache: bool = True,
    ) -> None:
        self.store = store or open_store(create=False)
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight
        self.bm25_weight = bm25_weight
        self.page_weight = page_weight
        self.per_page = per_page
        self.statement_weight = statement_weight
        self.disk_cache = disk_cache
        self._bm25: OrderedDict[str, _Bm25Index] = OrderedDict()
        self._lock = threading.Lock()
        self._revision: str | None = None
        self._revision_checked = 0.0
        self._verified: tuple | None = None  # (revision, manifests) last checked against each other
        self.notices: list[str] = []  # repairs made (e.g. a damaged BM25 cache entry rebuilt)
        self.on_notice = None  # optional callback(message)

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self.on_notice:
            self.on_notice(message)

    # -- building blocks -----------------------------------------------------

    def check_index(self) -> None:
        """Raise ``IndexDamagedError`` when filings the manifests list have lost their chunks.

        Checked once per revision of the collection and of the manifests;
        cheap when the chunk count covers the manifests.
        """
        signature = _manifest_signature(self.store.manifest_dir)
        if not self.store.exists:
            if signature:
                raise IndexDamagedError(
                    f"the index at {self.store.location} has no collection but {len(signature)} indexed "
                    f"filing(s) are listed in its manifests: {REPAIR_HINT}"
                )
            return
        revision = (self.store.revision(), signature)
        if revision == self._verified:
            return
        manifests = self.store.manifests()
        expected = sum(int(m.get("chunks") or 0) for m in manifests)
        if manifests and self.store.count() < expected:
            stored = set(self.store._all_ids())
            lost = [m for m in manifests if m.get("ids") and not stored.intersection(m["ids"])]
            if lost:
                names = sorted({_filing_label(m) for m in lost})
                raise IndexDamagedError(
                    f"the index at {self.store.location} has lost the chunks of {len(lost)} indexed filing(s) "
                    f"({', '.join(names[:5])}{' …' if len(names) > 5 else ''}): {REPAIR_HINT}"
                )
        self._verified = revision

    def check_filters(self, filters: SearchFilters) -> None:
        """Raise a clear error when the index is empty or lost, or the filter matches nothing."""
        self.check_index()
        if not self.store.exists:
            raise IndexStoreError(
                f"there is no index at {self.store.location} yet: run `filinglens ingest PATH` first"
            )
        where = filters.where()
        with store_errors("cannot read the index"):
            probe = self.store.collection.get(where=where, limit=1, include=[])
        if probe["ids"]:
            return
        if self.store.count() == 0:
            raise IndexStoreError(f"the index at {self.store.location} is empty: run `filinglens ingest PATH` first")
        filings = self.store.filings()
        shown = sorted({f"{f.get('ticker') or f.get('company') or '?'} {f.get('fiscal_year') or '?'}" for f in filings})
        more = f" (+{len(shown) - 12} more)" if len(shown) > 12 else ""
        raise NoMatchError(
            f"no indexed chunk matches {filters.describe()}; indexed filings: {', '.join(shown[:12])}{more}"
        )

    def _bm25_for(self, filters: SearchFilters, pages: bool = False) -> _Bm25Index:
        where = filters.where()
        revision = self.store.revision()
        parts = [revision, self.store.collection_name, where] + (
            ["pages", PAGE_WINDOW, _PAGE_INDEX_VERSION] if pages else [])
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
        with self._lock:
            if key in self._bm25:
                self._bm25.move_to_end(key)
                return self._bm25[key]
        index = None
        cache_dir = self.store.root / "bm25" / self.store.collection_name
        if self.disk_cache:
            index, problem = _Bm25Index.load(cache_dir / key)
            if problem:
                self._notice(f"the BM25 cache entry {cache_dir / key} was damaged ({problem}); rebuilt it")
        if index is None:
            chunks = self.store.get(where=where)
            index = _Bm25Index.build(chunks, pages=pages)
            if self.disk_cache and index.ids:
                try:
                    cache_dir.mkdir(parents=True, exist_ok=True)
                    index.save(cache_dir / key)
                    _prune(cache_dir, _BM25_DISK_ENTRIES)
                except OSError:
                    pass  # a read-only index still answers; it just cannot cache
        with self._lock:
            self._bm25[key] = index
            while len(self._bm25) > 64:
                self._bm25.popitem(last=False)
        return index

    def dense(self, query: str, filters: SearchFilters, n: int) -> list[tuple[StoredChunk, float]]:
        """Top ``n`` (chunk, cosine similarity) by embedding."""
        vector = self.store.embedder.embed_query(query)
        return [(c, 1.0 - d) for c, d in self.store.query(vector, n, filters.where())]

    def bm25(self, query: str, filters: SearchFilters, n: int) -> list[tuple[str, float]]:
        """Top ``n`` (chunk id, BM25 score) over the filtered subset."""
        return self._bm25_for(filters).search(query, n)

    def bm25_pages(self, query: str, filters: SearchFilters, n: int) -> list[tuple[str, float]]:
        """Top ``n`` (:func:`page_key`, BM25 score) of whole pages over the filtered subset."""
        return self._bm25_for(filters, pages=True).search(query, n)

    def statement_pages(self, query: str, filters: SearchFilters,
                        statements: Sequence[str] | None = None) -> list[StatementPage]:
        """The pages of the financial statements ``query`` asks for (named, or implied by its line items; or
        the ``statements`` given, ``retrieval/statements.py`` keys), in the filtered filings, best first; none
        without a filter (every filing's statements would tie)."""
        if filters.where() is None:
            return []
        asked = list(statements) if statements is not None else statements_asked(query)
        if not asked:
            return []
        return statement_ranking(asked, self._bm25_for(filters, pages=True).statements)[:MAX_STATEMENT_PAGES]

    # -- the search ----------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        filters: SearchFilters | None = None,
        mode: str = "hybrid",
        lexical_query: str | None = None,
        fetch_k: int = DEFAULT_FETCH_K,
        mmr_lambda: float = DEFAULT_MMR_LAMBDA,
        rewrite: bool = True,
        pages: bool | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query`` under ``filters``.

        ``mode``: ``hybrid`` (RRF of dense and BM25, plus page-level BM25 and
        the per-page cap), ``dense`` or ``bm25``.  ``lexical_query`` replaces
        the query text for BM25 only; without it BM25 gets the keyword rewrite
        of ``query`` (``rewrite=False``: the query as is).  ``pages=False``
        turns the page-level ranking and the per-page cap off for this call
        (``None``: the searcher's ``page_weight`` / ``per_page``).
        ``mmr_lambda`` < 1 diversifies the result.
        """
        if query is None or not str(query).strip():
            raise InputError("the search query is empty")
        if mode not in MODES:
            raise InputError(f"search mode must be one of {', '.join(MODES)}, not `{mode}`")
        if k < 1:
            raise InputError("k must be at least 1")
        filters = filters or SearchFilters()
        if not self.store.exists:
            self.check_filters(filters)  # raises: no index yet
        self.check_index()
        fetch = max(fetch_k, k)
        if lexical_query is None and rewrite and mode != "dense":
            lexical_query = keyword_rewrite(query)
        hits: dict[str, SearchHit] = {}
        rankings: list[list[str]] = []
        weights: list[float] = []
        if mode in ("hybrid", "dense"):
            dense = self.dense(query, filters, fetch)
            for rank, (chunk, sim) in enumerate(dense, start=1):
                hits[chunk.id] = SearchHit(chunk.id, chunk.text, 0.0, chunk.metadata, dense_rank=rank,
                                           dense_similarity=sim, embedding=chunk.embedding)
            rankings.append([c.id for c, _ in dense])
            weights.append(self.dense_weight)
        if mode in ("hybrid", "bm25"):
            lexical = self.bm25(lexical_query or query, filters, fetch)
            for rank, (cid, score) in enumerate(lexical, start=1):
                hit = hits.get(cid) or SearchHit(cid, "", 0.0, {})
                hit.bm25_rank, hit.bm25_score = rank, score
                hits[cid] = hit
            rankings.append([cid for cid, _ in lexical])
            weights.append(self.bm25_weight)
        if not hits:
            self.check_filters(filters)  # an empty index or a filter matching nothing: say so
            return []
        fused = rrf(rankings, weights, self.rrf_k)
        use_pages = mode == "hybrid" and pages is not False
        statement_rank: dict[str, int] = {}
        if use_pages and self.statement_weight > 0:
            for rank, page in enumerate(self.statement_pages(query, filters), 1):
                for cid in page.chunk_ids:
                    statement_rank.setdefault(cid, rank)
                    hits.setdefault(cid, SearchHit(cid, "", 0.0, {})).context = page.heading
        page_rank = ({pid: r for r, (pid, _) in enumerate(self.bm25_pages(lexical_query or query, filters, fetch), 1)}
                     if use_pages and self.page_weight > 0 else {})
        for cid, hit in hits.items():
            if mode == "dense":
                hit.score = float(hit.dense_similarity or 0.0)
            elif mode == "bm25":
                hit.score = float(hit.bm25_score or 0.0)
            else:
                hit.score = fused.get(cid, 0.0)
        # fill text/metadata/embeddings of lexical-only hits
        missing = [cid for cid, h in hits.items() if not h.metadata or (mmr_lambda < 1 and h.embedding is None)]
        if missing:
            for rec in self.store.get(ids=missing, embeddings=mmr_lambda < 1):
                hit = hits[rec.id]
                hit.text, hit.metadata = rec.text, rec.metadata
                if rec.embedding is not None:
                    hit.embedding = rec.embedding
        if page_rank:
            for hit in hits.values():
                hit.page_rank = page_rank.get(page_key(hit.metadata))
                if hit.page_rank:
                    hit.score += self.page_weight / (self.rrf_k + hit.page_rank)
        for cid, rank in statement_rank.items():
            hit = hits[cid]
            hit.statement_rank = rank
            hit.score += self.statement_weight / (self.rrf_k + rank)
        ordered = sorted(hits.values(), key=lambda h: (-h.score, h.chunk_id))
        if use_pages and self.per_page > 0:
            ordered = cap_per_page(ordered, k, self.per_page)
        if mmr_lambda < 1 and len(ordered) > 1 and all(h.embedding is not None for h in ordered):
            emb = np.stack([h.embedding for h in ordered])
            picks = mmr([h.score for h in ordered], emb, k, mmr_lambda)
            result = [ordered[i] for i in picks]
        else:
            result = ordered[:k]
        return result


_SEARCHERS: dict[int, HybridSearcher] = {}


def search(
    query: str,
    *,
    k: int = 5,
    ticker: str | None = None,
    year: int | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
    items: Sequence[str] | None = None,
    kind: str | None = None,
    mode: str = "hybrid",
    store: ChunkStore | None = None,
) -> list[SearchHit]:
    """Convenience wrapper: hybrid search of the configured index with the usual filters."""
    store = store or open_store(create=False)
    searcher = _SEARCHERS.get(id(store))
    if searcher is None or searcher.store is not store:
        searcher = _SEARCHERS[id(store)] = HybridSearcher(store)
    filters = SearchFilters(ticker=ticker, year=year, year_from=year_from, year_to=year_to, items=items, kind=kind)
    return searcher.search(query, k=k, filters=filters, mode=mode)


def _filing_label(manifest: dict) -> str:
    meta = manifest.get("filing") or {}
    who = meta.get("ticker") or meta.get("company") or manifest.get("filing_id", "?")
    return f"{who} {meta.get('fiscal_year') or ''}".strip()


def _manifest_signature(directory: Path) -> tuple:
    """(name, size, mtime) of every manifest: changes whenever one is written or removed."""
    try:
        with os.scandir(directory) as entries:
            return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries
                                if e.name.endswith(".json") and e.is_file()))
    except OSError:
        return ()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _prune(directory: Path, keep: int) -> None:
    entries = [p for p in directory.iterdir() if p.is_dir() and ".tmp-" not in p.name]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    now = time.time()
    for tmp in directory.glob("*.tmp-*"):  # left by a process killed while saving
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass
