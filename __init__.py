"""FilingLens: evidence-backed ratings and answers from SEC 10-K filings.

The public API (imported lazily, so ``import filinglens`` is cheap)::

    from filinglens import parse, ingest, search, rate, ask, fetch
    filing = parse("aapl-10-k-2024.html")            # Items, tables, metadata
    ingest(["aapl-10-k-2024.html"])                    # chunk + index in Chroma
    hits = search("greenhouse gas targets", k=5)       # hybrid search
    ratings = rate(["aapl-10-k-2024.html"], categories=["environment"])
    answer = ask("How many employees does Apple have?", ticker="AAPL", year=2024)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "parse": ("filinglens.retrieval.parse", "parse_filing"),
    "ingest": ("filinglens.retrieval.ingest", "ingest"),
    "fetch": ("filinglens.retrieval.edgar", "fetch_filings"),
    "rate": ("filinglens.app", "rate"),
    "ask": ("filinglens.app", "ask"),
    "Settings": ("filinglens.settings", "Settings"),
}

__all__ = [*_EXPORTS, "search"]


def search(query: str, *, k: int = 5, ticker: str | None = None, year: int | None = None,
           items: list[str] | None = None, mode: str = "hybrid"):
    """Hybrid (dense + BM25) search of the indexed filings: a list of ``SearchHit``."""
    from filinglens.retrieval.search import HybridSearcher, SearchFilters

    filters = SearchFilters(ticker=ticker, year_from=year, year_to=year, items=items)
    return HybridSearcher().search(query, k=k, filters=filters, mode=mode)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'filinglens' has no attribute {name!r}")
