"""Hybrid search: dense + BM25 + RRF + MMR over real Chroma, filters, clear errors, CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from filinglens.errors import InputError, NoMatchError
from filinglens.retrieval.index import ChunkStore
from filinglens.retrieval.ingest import ingest_filing
from filinglens.retrieval.search import HybridSearcher, SearchFilters, mmr, normalize_item, rrf, tokenize

HTML = "html/{}"



@pytest.fixture(scope="module")
def corpus(parsed, small_filing, tmp_path_factory):
    """A small real index: Apple FY2024 (1C, 2, 3, 5, 7A), NVIDIA FY2023 (2, 5, 7A), NVIDIA FY2025 (1C, 2)."""
    home = tmp_path_factory.mktemp("search-home")
    store = ChunkStore(home / "index")
    filings = {
        "AAPL": small_filing(parsed(HTML.format("aapl-10-k-2024-11-01.html")), ["1C", "2", "3", "5", "7A"]),
        "NVDA23": small_filing(parsed(HTML.format("nvda-10-k-fy2023.html")), ["2", "5", "7A"]),
        "NVDA25": small_filing(parsed(HTML.format("nvda-10-k-2025-02-26.html")), ["1C", "2"]),
    }
    for filing in filings.values():
        ingest_filing(filing, store=store)
    return {"home": home, "store": store, "filings": filings, "searcher": HybridSearcher(store)}


def assert_exact(hit, filings):
    m = hit.metadata
    filing = next(f for f in filings.values() if f.content_hash == m["source_hash"])
    assert filing.items[m["item"]].text[m["start"] : m["end"]] == hit.text
    assert filing.text[m["filing_start"] : m["filing_end"]] == hit.text


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_mode_returns_exact_chunks_with_scores(corpus, mode):
    hits = corpus["searcher"].search("legal proceedings and litigation", k=4, mode=mode, mmr_lambda=1.0)
    assert 1 <= len(hits) <= 4
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert_exact(h, corpus["filings"])
    assert hits[0].metadata["item"] == "3"  # only Apple's Item 3 is about legal proceedings
    if mode == "hybrid":
        assert hits[0].dense_rank is not None and hits[0].bm25_rank is not None


def test_filters_ticker_year_range_item_and_kind(corpus):
    s = corpus["searcher"]
    hits = s.search("properties and headquarters", k=10, filters=SearchFilters(ticker="nvda", year=2023))
    assert hits and {(h.metadata["ticker"], h.metadata["fiscal_year"]) for h in hits} == {("NVDA", 2023)}
    hits = s.search("properties and headquarters", k=20, filters=SearchFilters(year_from=2024, year_to=2025))
    assert {h.metadata["fiscal_year"] for h in hits} <= {2024, 2025} and len({h.metadata["ticker"] for h in hits}) == 2
    hits = s.search("stock performance graph", k=5, filters=SearchFilters(items=["item 5"], kind="table"))
    assert hits and all(h.metadata["item"] == "5" and h.metadata["kind"] == "table" for h in hits)
    hits = s.search("market risk", k=5, filters=SearchFilters(ticker=["AAPL", "NVDA"], items=["7A", "1C"]))
    assert {h.metadata["item"] for h in hits} <= {"7A", "1C"}


def test_a_filter_matching_nothing_names_what_is_indexed(corpus):
    with pytest.raises(NoMatchError, match=r"ticker=TSLA.*indexed filings: AAPL 2024, NVDA 2023, NVDA 2025"):
        corpus["searcher"].search("revenue", filters=SearchFilters(ticker="TSLA"))
    with pytest.raises(NoMatchError):
        corpus["searcher"].search("revenue", filters=SearchFilters(ticker="AAPL", items=["1C"], year=2023))


@pytest.mark.parametrize("query", ["", "   ", None])
def test_empty_query_is_an_input_error(corpus, query):
    with pytest.raises(InputError, match="empty"):
        corpus["searcher"].search(query)


def test_bad_arguments_are_input_errors(corpus):
    with pytest.raises(InputError):
        corpus["searcher"].search("x", mode="magic")
    with pytest.raises(InputError):
        SearchFilters(kind="figure")
    with pytest.raises(InputError):
        SearchFilters(year_from=2025, year_to=2020)


def test_bm25_finds_rare_exact_terms_and_hybrid_keeps_them(corpus):
    s = corpus["searcher"]
    # a rare token from one chunk of Apple's Item 3
    target = next(h for h in s.search("legal proceedings", k=10, filters=SearchFilters(items=["3"]), mmr_lambda=1.0))
    words = [w for w in tokenize(target.text) if len(w) > 6]
    counts = {w: sum(w in tokenize(h.text) for h in s.search(w, k=50, mode="bm25")) for w in words[:40]}
    rare = min(counts, key=counts.get)
    lexical = s.search(rare, k=3, mode="bm25")
    assert lexical[0].bm25_score > 0 and rare in tokenize(lexical[0].text)
    hybrid = s.search(rare, k=5, mode="hybrid", mmr_lambda=1.0)
    assert any(rare in tokenize(h.text) for h in hybrid)


def test_bm25_cache_follows_the_collection(corpus, parsed, small_filing):
    s = corpus["searcher"]
    store = corpus["store"]
    before = store.revision()
    s.search("warranty", k=2, mode="bm25")
    cache_dir = store.root / "bm25" / store.collection_name
    assert any(cache_dir.iterdir())
    extra = small_filing(parsed(HTML.format("aapl-10-k-2024-11-01.html")), ["9B"])
    extra = dataclasses.replace(extra, fiscal_year=2099, content_hash="e" * 64)
    ingest_filing(extra, store=store)
    try:
        assert store.revision() != before
        hits = s.search("insider trading arrangements", k=3, mode="bm25", filters=SearchFilters(year=2099))
        assert hits and hits[0].metadata["fiscal_year"] == 2099
    finally:
        from filinglens.retrieval.index import filing_id

        store.delete_filing(filing_id(extra))
    with pytest.raises(NoMatchError):
        s.search("insider trading", filters=SearchFilters(year=2099))


def test_rrf_and_mmr():
    fused = rrf([["a", "b", "c"], ["c", "a"]], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert max(fused, key=fused.get) == "a"
    assert fused["c"] > fused["b"]
    weighted = rrf([["a"], ["b"]], weights=[1.0, 0.5])
    assert weighted["a"] > weighted["b"]

    # two near-duplicates and one different item: MMR keeps one duplicate and the different one
    e = np.array([[1.0, 0.0], [0.999, 0.01], [0.6, 0.8]])
    assert mmr([1.0, 0.99, 0.7], e, 2, lambda_=0.5) == [0, 2]
    assert mmr([1.0, 0.99, 0.7], e, 2, lambda_=1.0) == [0, 1]


def test_mmr_diversifies_search_results(corpus):
    s = corpus["searcher"]
    plain = s.search("properties", k=4, mmr_lambda=1.0)
    diverse = s.search("properties", k=4, mmr_lambda=0.3)
    assert len(diverse) == len(plain) and diverse[0].chunk_id == plain[0].chunk_id

    def mean_sim(hits):
        e = np.stack([h.embedding for h in hits])
        sims = e @ e.T
        return (sims.sum() - len(hits)) / (len(hits) * (len(hits) - 1))

    assert mean_sim(diverse) <= mean_sim(plain) + 1e-6


def test_normalize_item():
    assert [normalize_item(x) for x in ["1a", "Item 7A.", " 7 ", "COVER"]] == ["1A", "7A", "7", "cover"]


def test_cli_search(corpus, monkeypatch):
    monkeypatch.setenv("FILINGLENS_HOME", str(corpus["home"]))
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    from filinglens.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["search", "cybersecurity", "--ticker", "NVDA", "--year", "2024-2025", "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["hits"]) == 2
    for hit in data["hits"]:
        assert hit["metadata"]["ticker"] == "NVDA" and hit["metadata"]["fiscal_year"] == 2025
        assert {"chunk_id", "score", "text", "metadata"} <= set(hit)
    table = runner.invoke(app, ["search", "cybersecurity", "--item", "1C", "-k", "1"])
    assert table.exit_code == 0 and "1C" in table.output
    bad = runner.invoke(app, ["search", "x", "--year", "last year"])
    assert bad.exit_code == 2
    empty = runner.invoke(app, ["search", " "])
    assert empty.exit_code == 2 and "empty" in empty.output
    nothing = runner.invoke(app, ["search", "x", "--ticker", "ZZZZ"])
    assert nothing.exit_code == 2 and "no indexed chunk matches" in " ".join(nothing.output.split())
