"""The retrieval agent: planning (filters, items, query rewrite), fusion, de-duplication, provenance, LangChain."""

from __future__ import annotations


import pytest

from filinglens.errors import InputError, NoMatchError
from filinglens.retrieval.agent import (
    Evidence,
    FilingRetriever,
    QueryPlanner,
    RetrievalAgent,
    keyword_rewrite,
)
from filinglens.retrieval.index import ChunkStore
from filinglens.retrieval.ingest import ingest_filing
from filinglens.retrieval.search import HybridSearcher



@pytest.fixture(scope="module")
def corpus(parsed, small_filing, tmp_path_factory):
    store = ChunkStore(tmp_path_factory.mktemp("agent-home") / "index")
    filings = {
        "AAPL": small_filing(parsed("html/aapl-10-k-2024-11-01.html"), ["1C", "2", "3", "7A"]),
        "NVDA": small_filing(parsed("html/nvda-10-k-fy2023.html"), ["2", "5", "7A"]),
    }
    for f in filings.values():
        ingest_filing(f, store=store)
    return {"store": store, "filings": filings, "agent": RetrievalAgent(HybridSearcher(store))}


# --------------------------------------------------------------------------- planning (no index needed)


def test_keyword_rewrite_drops_instructions_and_expands_metrics():
    q = ("What is Lockheed Martin's FY2021 net working capital? Answer in USD millions. "
         "Round your answer to two decimal places. Please base your judgments on the information "
         "provided primarily in the balance sheet.")
    r = keyword_rewrite(q, drop=["Lockheed Martin", "2021"]).lower()
    for gone in ("usd", "millions", "round", "decimal", "please", "judgments", "2021", "lockheed", "what"):
        assert gone not in r.split()
    assert "working capital" in r and "balance sheet" in r
    assert "total current assets" in r  # metric expanded to its line items
    q2 = ("Does AMCOR have an improving gross margin profile as of FY2023? If gross margin is not a useful "
          "metric for a company like this, then state that and explain why.")
    r2 = keyword_rewrite(q2).lower()
    assert "explain" not in r2 and "useful" not in r2 and "gross margin" in r2 and "cost of sales" in r2
    assert keyword_rewrite("What is it?") == "What is it?"  # nothing left: keep the question


def test_years_and_items_are_detected():
    assert QueryPlanner.detect_years("Has revenue grown between FY2022 and fiscal 2021? What about FY20?") == [
        2020, 2021, 2022]
    assert QueryPlanner.detect_years("Revenue was $2,021 million") == []
    assert QueryPlanner.detect_items("What are the main risk factors?")[0] == "1A"
    assert {"7", "8"} <= set(QueryPlanner.detect_items("What is the FY2022 quick ratio?"))
    assert "3" in QueryPlanner.detect_items("Is the company involved in any litigation?")
    assert "cover" in QueryPlanner.detect_items("Which debt securities are registered on an exchange?")
    assert QueryPlanner.detect_items("Hello there") == []


CATALOG = [
    {"ticker": "AXP", "company": "American Express", "fiscal_year": 2022},
    {"ticker": "", "company": "American Water Works", "fiscal_year": 2022},
    {"ticker": "", "company": "3M", "fiscal_year": 2018},
    {"ticker": "", "company": "3M", "fiscal_year": 2022},
    {"ticker": "V", "company": "Visa Inc.", "fiscal_year": 2024},
]


def test_planner_detects_companies_and_years_against_the_catalog():
    planner = QueryPlanner(CATALOG)
    assert planner.detect_filings("Which debt securities does American Express' list?") == ([], ["American Express"])
    assert planner.detect_filings("Does AXP pay dividends?") == (["AXP"], [])
    assert planner.detect_filings("What is 3M's capex?") == ([], ["3M"])
    assert planner.detect_filings("Is V a good stock? What about visa inc") == ([], ["Visa Inc."])
    plan = planner.plan("Does American Water Works have positive working capital based on FY2022 data?")
    assert plan.companies == ["American Water Works"] and plan.years == [2022]
    assert [q.label for q in plan.queries] == ["question", "keywords", "items"]
    assert plan.queries[2].filters.items == ["7", "8", "15"] and plan.queries[2].weight == 0.5
    assert plan.queries[0].filters.items is None and plan.queries[1].filters.items is None
    assert "american" not in plan.queries[0].lexical.lower() and "2022" not in plan.queries[0].lexical
    # a year without its own filing falls back to the next year's 10-K (prior-year comparatives)
    assert planner.plan("What was 3M's revenue in FY2017?").years == [2018]
    # explicit arguments win over detection
    plan = planner.plan("What was 3M's revenue in FY2017?", company="American Express", year=2022)
    assert plan.companies == ["American Express"] and plan.years == [2022]
    with pytest.raises(InputError):
        planner.plan("  ")


# --------------------------------------------------------------------------- retrieval (real index)


def test_question_gets_evidence_from_the_right_filing_with_exact_provenance(corpus):
    agent = corpus["agent"]
    evidence = agent.retrieve("What legal proceedings was Apple involved in during FY2024?", k=5)
    assert evidence and all(isinstance(e, Evidence) for e in evidence)
    assert {(e.ticker, e.fiscal_year) for e in evidence} == {("AAPL", 2024)}
    assert evidence[0].item == "3"
    assert len({e.chunk_id for e in evidence}) == len(evidence)
    filing = corpus["filings"]["AAPL"]
    for e in evidence:
        assert e.locate(filing)  # exact characters of the item and of the filing text
        assert filing.items[e.item].text[e.start : e.end] == e.text
        assert e.queries and e.source_hash == filing.content_hash
    assert "AAPL 10-K FY2024, Item 3" in evidence[0].citation()
    plan = agent.plan("What legal proceedings was Apple involved in during FY2024?")
    assert plan.companies == ["Apple Inc."] and plan.years == [2024]


def test_explicit_filters_are_strict_detected_ones_are_not(corpus):
    agent = corpus["agent"]
    with pytest.raises(NoMatchError):
        agent.retrieve("interest rate risk", ticker="TSLA")
    ev = agent.retrieve("interest rate risk", ticker="NVDA", k=3)
    assert ev and {e.ticker for e in ev} == {"NVDA"} and {e.item for e in ev} <= {"7A", "2", "5"}
    # a year that no indexed filing has (detected, not given): the agent still answers
    ev = agent.retrieve("What were NVIDIA's properties in 1995?", k=3)
    assert ev and ev[0].ticker == "NVDA"


def test_rating_category_retrieval(corpus):
    """A rating prompt's own queries and items (prompts/rating/innovation/v1.yaml) drive the search."""
    from filinglens.prompts.loader import load_prompt

    prompt = load_prompt("innovation@v1")
    agent = corpus["agent"]
    ev = agent.retrieve(prompt.description, queries=prompt.retrieval.queries, items=prompt.retrieval.items,
                        ticker="AAPL", k=4)
    assert ev and {e.ticker for e in ev} == {"AAPL"}
    assert all(any(label.startswith("topic:") for label in e.queries) for e in ev)
    one = agent.retrieve("", queries=prompt.retrieval.queries, filing_id=ev[0].filing_id, k=3)
    assert {e.filing_id for e in one} == {ev[0].filing_id}
    with pytest.raises(InputError):
        agent.retrieve("", queries=["  "])


def test_langchain_retriever_returns_documents_with_provenance(corpus):
    retriever = corpus["agent"].as_retriever(ticker="AAPL", k=3)
    assert isinstance(retriever, FilingRetriever)
    docs = retriever.invoke("cybersecurity risk management")
    assert 1 <= len(docs) <= 3
    for d in docs:
        m = d.metadata
        assert d.id == m["chunk_id"] and m["ticker"] == "AAPL"
        assert {"item", "item_title", "start", "end", "filing_start", "filing_end", "score", "source_hash"} <= set(m)
        item_text = corpus["filings"]["AAPL"].items[m["item"]].text
        assert item_text[m["start"] : m["end"]] == d.page_content
