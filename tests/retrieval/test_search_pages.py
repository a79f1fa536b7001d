"""Page-aware hybrid search (page-level BM25, one chunk per page) and the default keyword rewrite,
on real FinanceBench 10-K PDFs (issue 11).  Dense vectors come from a hash stand-in so the
tests are fast and deterministic; the page logic is what is checked (``dense_weight=0``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from filinglens.evals.financebench import evidence_pages, hit_pages, load_jsonl
from filinglens.retrieval.embeddings import Embedder, register_embedder
from filinglens.retrieval.index import ChunkStore
from filinglens.retrieval.ingest import _apply, ingest_filing, sidecar_metadata
from filinglens.retrieval.parse import parse_filing
from filinglens.retrieval.rewrite import keyword_rewrite
from filinglens.retrieval.search import HybridSearcher, SearchFilters, cap_per_page, page_key


class _HashEmbedder(Embedder):
    """Deterministic stand-in vectors (no model): dense ranks are noise, so tests switch dense off."""

    name = "test-hash-pages"
    dimension = 64

    def _embed(self, texts):
        rows = []
        for t in texts:
            v = np.random.default_rng(abs(hash(t)) % (2**32)).normal(size=64).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


@pytest.fixture(scope="module")
def boeing(shared, tmp_path_factory):
    """Boeing's FY2018 10-K PDF (FinanceBench) indexed with the hash stand-in embedder."""
    register_embedder(_HashEmbedder.name, _HashEmbedder)
    pdf = shared / "filings" / "pdf" / "BOEING_2018_10K.pdf"
    filing = _apply(parse_filing(pdf), sidecar_metadata(pdf))
    store = ChunkStore(tmp_path_factory.mktemp("pages-home") / "index", embedder=_HashEmbedder.name)
    ingest_filing(filing, store=store)
    questions = {q["financebench_id"]: q for q in load_jsonl(shared / "financebench" / "questions_dev.jsonl")}
    docs = {d["doc_name"]: d for d in load_jsonl(shared / "financebench" / "documents.jsonl")}
    return SimpleNamespace(store=store, filing=filing, questions=questions, docs=docs,
                           filters=SearchFilters(company=filing.company, year=filing.fiscal_year))


def test_page_aware_search_finds_boeing_ppe_on_the_balance_sheet_page(boeing):
    """financebench_id_10285 (tuning half): Boeing's FY2018 net PP&E is on the balance sheet (PDF page 51).

    Chunk-level BM25 with the keyword rewrite ranks other PP&E mentions (notes, MD&A) above every
    balance-sheet chunk; ranking whole pages lifts the page whose chunks together carry the words."""
    q = boeing.questions["financebench_id_10285"]
    pages = evidence_pages(q, boeing.docs)
    before = HybridSearcher(boeing.store, dense_weight=0, page_weight=0, per_page=0, statement_weight=0)
    after = HybridSearcher(boeing.store, dense_weight=0, statement_weight=0)  # pages alone (statements: test_statements.py)
    old = before.search(q["question"], k=10, filters=boeing.filters, mmr_lambda=1.0)
    new = after.search(q["question"], k=10, filters=boeing.filters, mmr_lambda=1.0)
    assert not hit_pages(old, pages)
    assert hit_pages(new, pages) == pages
    hit = next(h for h in new if h.metadata["page"] == 51)
    # lifted by its page: on its own the chunk ranks below the top 10
    assert hit.page_rank is not None and hit.bm25_rank > 10


def test_hybrid_result_has_one_chunk_per_page_while_other_pages_have_candidates(boeing):
    hits = HybridSearcher(boeing.store).search("net property plant and equipment", k=10, filters=boeing.filters)
    keys = [page_key(h.metadata) for h in hits]
    assert len(hits) == 10 and len(set(keys)) == 10
    # the cap can be turned off
    off = HybridSearcher(boeing.store, per_page=0).search("net property plant and equipment", k=10,
                                                           filters=boeing.filters, mmr_lambda=1.0)
    assert len(off) == 10


def test_search_rewrites_the_question_for_bm25_by_default(boeing):
    q = boeing.questions["financebench_id_10285"]["question"]
    searcher = HybridSearcher(boeing.store)
    default = searcher.search(q, k=10, filters=boeing.filters, mode="bm25")
    rewritten = searcher.search(q, k=10, filters=boeing.filters, mode="bm25", lexical_query=keyword_rewrite(q))
    raw = searcher.search(q, k=10, filters=boeing.filters, mode="bm25", rewrite=False)
    assert [h.chunk_id for h in default] == [h.chunk_id for h in rewritten]
    assert [h.chunk_id for h in raw] != [h.chunk_id for h in default]


def test_cap_per_page_keeps_order_and_fills_up_to_k():
    def hit(page, n):
        return SimpleNamespace(metadata={"filing_id": "f", "page": page}, n=n)

    hits = [hit(1, 0), hit(1, 1), hit(2, 2), hit(1, 3), hit(3, 4)]
    assert [h.n for h in cap_per_page(hits, k=3)] == [0, 2, 4]
    assert [h.n for h in cap_per_page(hits, k=5)] == [0, 2, 4, 1, 3]  # too few pages: the overflow fills k
    assert [h.n for h in cap_per_page(hits, k=3, per_page=2)] == [0, 1, 2, 4]
    assert [h.n for h in cap_per_page(hits, k=3, per_page=0)] == [0, 1, 2, 3, 4]


def test_page_key_uses_pdf_pages_else_windows_of_chunks():
    assert page_key({"filing_id": "f", "page": 7, "item": "8", "seq": 40}) == "f|p7"
    assert page_key({"filing_id": "f", "item": "7", "seq": 4}) == page_key({"filing_id": "f", "item": "7", "seq": 5})
    assert page_key({"filing_id": "f", "item": "7", "seq": 5}) != page_key({"filing_id": "f", "item": "7", "seq": 6})


def test_agent_searches_without_the_page_ranking_which_lowered_its_recall_on_the_tuning_half(boeing):
    """The agent's per-query searches pass ``pages=False``: the same evidence as over a searcher without pages."""
    from filinglens.retrieval.agent import RetrievalAgent

    q = boeing.questions["financebench_id_10285"]["question"]
    plain = RetrievalAgent(searcher=HybridSearcher(boeing.store, dense_weight=0, page_weight=0, per_page=0))
    paged = RetrievalAgent(searcher=HybridSearcher(boeing.store, dense_weight=0))
    kw = dict(company=boeing.filing.company, year=boeing.filing.fiscal_year, k=10)
    assert [e.chunk_id for e in paged.retrieve(q, **kw)] == [e.chunk_id for e in plain.retrieve(q, **kw)]
