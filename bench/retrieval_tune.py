"""Offline tuning of first-stage retrieval on cached candidates (FinanceBench dev, fixed split).

Every chunk of every question's PDF is cut once (the ingest chunker) and cached
under ``--home`` with its id and metadata; dense vectors come from the bench
index (``retrieval_financebench.py`` ingests it) where the PDF is indexed.
Variants (BM25 over chunks or pages, page-dense, fusion weights) are then
scored exactly, in-process, without touching Chroma -- cheap enough to sweep
on the tuning half only.  The fixed split is ``split_of`` in
``retrieval_financebench.py``.

    nice -n 10 python bench/retrieval_tune.py --home /work/bench-home-retr
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_financebench import split_of  # noqa: E402

from filinglens import settings  # noqa: E402
from filinglens.evals.financebench import evidence_pages, hit_pages, load_jsonl  # noqa: E402
from filinglens.retrieval.chunking import chunk_filing, chunk_id, indexed_text  # noqa: E402
from filinglens.retrieval.index import chunk_metadata, filing_id, filing_key  # noqa: E402
from filinglens.retrieval.ingest import _apply, chunker_tag, sidecar_metadata  # noqa: E402
from filinglens.retrieval.search import tokenize  # noqa: E402


def doc_chunks(pdf: Path, cache: Path, size: int = 1000) -> list[dict]:
    path = cache / f"{pdf.stem}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    from filinglens.retrieval.parse import parse_filing

    filing = _apply(parse_filing(pdf), sidecar_metadata(pdf))
    fid, key, tag = filing_id(filing), filing_key(filing), chunker_tag(size)
    out = []
    for c in chunk_filing(filing, size):
        meta = chunk_metadata(filing, fid, c, tag)
        out.append({"id": chunk_id(key, c), "text": c.text, "meta": meta})
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def page_key(meta: dict) -> tuple:
    """A chunk's page, or for documents without pages a window of 3 consecutive chunks of its item."""
    if meta.get("page") is not None:
        return ("p", int(meta["page"]))
    return ("w", meta.get("item"), int(meta.get("seq", 0)) // 3)


class DocIndex:
    """One filing's chunks with exact BM25 (chunk- and page-level) and, when indexed, dense vectors."""

    def __init__(self, chunks: list[dict], embeddings: dict | None) -> None:
        import bm25s

        self.chunks = chunks
        self.ids = [c["id"] for c in chunks]
        toks = [tokenize(indexed_text(c["meta"], c["text"])) or ["_empty_"] for c in chunks]
        self.bm = bm25s.BM25()
        self.bm.index(toks, show_progress=False)
        self.pages: list[tuple] = []
        self.page_of: list[int] = []
        where: dict[tuple, int] = {}
        for c in chunks:
            key = page_key(c["meta"])
            if key not in where:
                where[key] = len(self.pages)
                self.pages.append(key)
            self.page_of.append(where[key])
        ptoks = [[] for _ in self.pages]
        for n, t in enumerate(toks):
            ptoks[self.page_of[n]].extend(t)
        self.pbm = bm25s.BM25()
        self.pbm.index(ptoks, show_progress=False)
        self.emb = None
        if embeddings and all(i in embeddings for i in self.ids):
            self.emb = np.stack([embeddings[i] for i in self.ids]).astype(np.float32)
            self.emb /= np.clip(np.linalg.norm(self.emb, axis=1, keepdims=True), 1e-12, None)

    def bm25_scores(self, query: str, pages: bool = False) -> np.ndarray:
        bm = self.pbm if pages else self.bm
        n = len(self.pages) if pages else len(self.ids)
        toks = [t for t in tokenize(query) if t in bm.vocab_dict]
        if not toks:
            return np.zeros(n)
        return np.asarray(bm.get_scores(toks), dtype=np.float64)

    def dense_scores(self, qvec: np.ndarray) -> np.ndarray | None:
        if self.emb is None:
            return None
        return self.emb @ qvec


def ranks(scores: np.ndarray, n: int = 50, positive: bool = False) -> list[int]:
    order = np.argsort(-scores, kind="stable")[:n]
    return [int(i) for i in order if not positive or scores[i] > 0]


def rrf_scores(size: int, rankings: list[tuple[list[int], float]], k: int = 60) -> np.ndarray:
    out = np.zeros(size)
    for ranking, w in rankings:
        for r, i in enumerate(ranking, start=1):
            out[i] += w / (k + r)
    return out


def top_chunks(doc: DocIndex, score: np.ndarray, k: int, per_page: int | None) -> list[int]:
    out, used = [], {}
    for i in np.argsort(-score, kind="stable"):
        if score[i] <= 0:
            break
        p = doc.page_of[i]
        if per_page and used.get(p, 0) >= per_page:
            continue
        used[p] = used.get(p, 0) + 1
        out.append(int(i))
        if len(out) == k:
            break
    return out


def variant(doc: DocIndex, q: dict, cfg: dict) -> list[int]:
    """Top 10 chunk indices of ``doc`` for one configuration."""
    rewrite = q["_rewrite"]
    fetch = cfg.get("fetch", 50)
    rankings = []
    bm = doc.bm25_scores(rewrite if cfg.get("rewrite", True) else q["question"])
    rankings.append((ranks(bm, fetch, positive=True), cfg.get("w_bm25", 1.0)))
    dense = doc.dense_scores(q["_qvec"])
    if dense is not None and cfg.get("w_dense", 1.0) > 0:
        rankings.append((ranks(dense, fetch), cfg.get("w_dense", 1.0)))
    score = rrf_scores(len(doc.ids), rankings, cfg.get("rrf_k", 60))
    wp = cfg.get("w_page_bm25", 0.0)
    wd = cfg.get("w_page_dense", 0.0)
    if wp or wd:
        page_rank = []
        pb = doc.bm25_scores(rewrite, pages=True)
        page_rank.append((ranks(pb, fetch, positive=True), wp))
        if dense is not None and wd:
            # page dense score: the best chunk on the page plus the page's mean
            pmax = np.full(len(doc.pages), -1.0)
            np.maximum.at(pmax, np.asarray(doc.page_of), dense)
            page_rank.append((ranks(pmax, fetch), wd))
        pscore = rrf_scores(len(doc.pages), page_rank, cfg.get("rrf_k", 60))
        score = score + pscore[np.asarray(doc.page_of)] * (score > 0 if cfg.get("page_boost_only") else 1)
    return top_chunks(doc, score, 10, cfg.get("per_page"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--dense-only-indexed", action="store_true", help="score only questions whose PDF is indexed")
    args = ap.parse_args(argv)
    os.environ["FILINGLENS_HOME"] = str(args.home)
    shared = settings.shared_dir() / "data"
    questions = load_jsonl(shared / "financebench" / "questions_dev.jsonl")
    docs = {d["doc_name"]: d for d in load_jsonl(shared / "financebench" / "documents.jsonl")}
    split = split_of(questions)
    from filinglens.retrieval.agent import keyword_rewrite
    from filinglens.retrieval.index import ChunkStore

    store = ChunkStore(args.home / f"size{args.size}", collection=f"financebench_{args.size}")
    indexed = {m.get("filing_id") for m in store.manifests()}
    cache = args.home / "chunks"
    qcache_path = args.home / "qvecs.pkl"
    qvecs = pickle.loads(qcache_path.read_bytes()) if qcache_path.exists() else {}
    index: dict[str, DocIndex] = {}
    for q in questions:
        q["_rewrite"] = keyword_rewrite(q["question"])
        if q["financebench_id"] not in qvecs:
            qvecs[q["financebench_id"]] = store.embedder.embed_query(q["question"])
        q["_qvec"] = np.asarray(qvecs[q["financebench_id"]], dtype=np.float32)
        name = q["doc_name"]
        if name not in index:
            chunks = doc_chunks(shared / "filings" / "pdf" / f"{name}.pdf", cache, args.size)
            fid = chunks[0]["meta"]["filing_id"]
            emb = None
            if fid in indexed:
                emb = {c.id: c.embedding for c in store.get(where={"filing_id": fid}, embeddings=True, documents=False)}
            index[name] = DocIndex(chunks, emb)
    qcache_path.write_bytes(pickle.dumps(qvecs))
    configs = json.loads(os.environ.get("TUNE_CONFIGS", "null")) or DEFAULT_CONFIGS
    per_question: dict[str, dict[str, float]] = {}
    for name, cfg in configs.items():
        rows = {}
        for q in questions:
            doc = index[q["doc_name"]]
            if args.dense_only_indexed and doc.emb is None:
                continue
            picked = [doc.chunks[i]["meta"] for i in variant(doc, q, cfg)]
            pages = evidence_pages(q, docs)
            r = len(hit_pages(picked, pages)) / len(pages)
            per_question.setdefault(name, {})[q["financebench_id"]] = r
            for key in (split[q["financebench_id"]], f"{split[q['financebench_id']]}/{q['question_type'][:6]}"):
                rows.setdefault(key, []).append(r)
        line = " ".join(f"{k} {np.mean(v):.3f}({len(v)})" for k, v in sorted(rows.items()))
        print(f"{name:28s} {line}", flush=True)
    names = list(configs)
    for a, b in zip(names, names[1:]):  # questions that change between consecutive configurations
        for q in questions:
            qid = q["financebench_id"]
            ra, rb = per_question[a].get(qid), per_question[b].get(qid)
            if ra is not None and ra != rb:
                print(f"  {a} -> {b}: {qid} {split[qid]} {q['question_type']} {q['doc_name']} {ra:.2f} -> {rb:.2f}")
    return 0


DEFAULT_CONFIGS = {
    "bm25": {"w_dense": 0},
    "hybrid": {},
    "hybrid/page1": {"per_page": 1},
    "hybrid/page2": {"per_page": 2},
    "hybrid+pbm.5": {"w_page_bm25": 0.5},
    "hybrid+pbm1": {"w_page_bm25": 1.0},
    "hybrid+pbm1+pd1": {"w_page_bm25": 1.0, "w_page_dense": 1.0},
    "hybrid+pbm1/page1": {"w_page_bm25": 1.0, "per_page": 1},
    "bm25+pbm1": {"w_dense": 0, "w_page_bm25": 1.0},
    "bm25+pbm1/page1": {"w_dense": 0, "w_page_bm25": 1.0, "per_page": 1},
}

if __name__ == "__main__":
    raise SystemExit(main())
