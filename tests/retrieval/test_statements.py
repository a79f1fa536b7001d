"""Financial statements found by their headings, and questions routed to the statements they need (issue 11).

Real FinanceBench 10-K PDFs and EDGAR HTML 10-Ks; dense vectors come from the library's
deterministic ``hash`` embedder, so what is checked is the statement logic, not a model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from filinglens.agents.evidence import EvidenceItem, render_evidence
from filinglens.evals.financebench import evidence_pages, hit_pages, load_jsonl
from filinglens.retrieval.agent import RetrievalAgent
from filinglens.retrieval.index import ChunkStore, StoredChunk
from filinglens.retrieval.ingest import _apply, ingest_filing, sidecar_metadata
from filinglens.retrieval.parse import parse_filing
from filinglens.retrieval.search import HybridSearcher, SearchFilters, page_key
from filinglens.retrieval.statements import find_statement_pages, statement_ranking, statements_asked


def _index(paths, root):
    store = ChunkStore(root / "index", embedder="hash")
    filings = []
    for path in paths:
        filing = _apply(parse_filing(path), sidecar_metadata(path))
        ingest_filing(filing, store=store)
        filings.append(filing)
    return store, filings


def _chunks(store, filing):
    return store.get(where=SearchFilters(company=filing.company, year=filing.fiscal_year).where())


def _pages(store, filing) -> dict[str, list[int]]:
    found = find_statement_pages(_chunks(store, filing), page_key)
    return {s: [int(p.page.rsplit("|p", 1)[1]) for p in pages] for s, pages in found.items()}


@pytest.fixture(scope="module")
def pdfs(shared, tmp_path_factory):
    """Activision Blizzard FY2019 (statements after the signatures) and Boeing FY2018, in one index."""
    store, (atvi, boeing) = _index([shared / "filings" / "pdf" / "ACTIVISIONBLIZZARD_2019_10K.pdf",
                                    shared / "filings" / "pdf" / "BOEING_2018_10K.pdf"],
                                   tmp_path_factory.mktemp("statements"))
    questions = {q["financebench_id"]: q for q in load_jsonl(shared / "financebench" / "questions_dev.jsonl")}
    docs = {d["doc_name"]: d for d in load_jsonl(shared / "financebench" / "documents.jsonl")}
    return SimpleNamespace(store=store, atvi=atvi, boeing=boeing, questions=questions, docs=docs)


def test_statements_asked_names_first_then_line_items():
    assert statements_asked("Using the cash flow statement and the statement of financial position, "
                            "what is the operating cash flow ratio?") == ["cash_flow", "balance_sheet"]
    assert statements_asked("According to the P&L, what was gross profit?") == ["income"]
    # a question that names its statements is not widened by its line items
    assert statements_asked("From the balance sheet: total current liabilities over revenue?") == ["balance_sheet"]
    # no statement named: the line items say where the figures are
    assert statements_asked("What is the FY2020 capex as a % of revenue?") == ["cash_flow", "income"]
    assert statements_asked("What is the quick ratio for FY2022?") == ["balance_sheet"]
    assert statements_asked("Is Boeing's business subject to cyclicality?") == []


def test_boeing_2018_statements_are_the_item_8_pages_not_the_restatement_in_the_notes(pdfs):
    """Boeing titles its balance sheet "Consolidated Statements of Financial Position" after the company's name
    on the same line; the notes restate it (page 70) under the same title."""
    pages = _pages(pdfs.store, pdfs.boeing)
    assert pages["balance_sheet"] == [51]
    assert pages["income"] == [49]
    assert pages["cash_flow"][0] == 52


def test_activision_2019_statements_after_the_signatures_not_the_mdna_data_table(pdfs):
    """Activision prints its statements outside the Items (F-pages); Item 7 has a "Consolidated Statements of
    Operations Data" table (page 36) that is not the statement."""
    pages = _pages(pdfs.store, pdfs.atvi)
    assert pages["income"] == [69]
    assert pages["balance_sheet"] == [68]
    assert pages["cash_flow"] == [72]


def test_an_index_page_and_an_auditors_report_are_not_statements():
    figures = " | ".join(f"{n},{n:03d}" for n in range(100, 130))

    def chunk(cid, text, page):
        return StoredChunk(cid, text, {"filing_id": "f", "page": page, "seq": page, "item": "8"})

    chunks = [
        chunk("index", "INDEX TO FINANCIAL STATEMENTS\nConsolidated Balance Sheets 57\nConsolidated Statements of "
                       "Operations 58\nConsolidated Statements of Cash Flows 59\n" + figures, 1),
        chunk("audit", "We have audited the accompanying consolidated balance sheets of X as of 2022.\n" + figures, 2),
        chunk("bs", "X Corp and Subsidiaries Consolidated Balance Sheets\n(In millions)\n" + figures, 3),
        chunk("few", "CONSOLIDATED STATEMENTS OF CASH FLOWS\nSee the notes.", 4),
    ]
    found = find_statement_pages(chunks, page_key)
    assert [p.chunk_ids for p in found["balance_sheet"]] == [["bs"]]
    assert "cash_flow" not in found  # a heading without figures is a pointer, not the statement
    ranked = statement_ranking(["cash_flow", "balance_sheet"], found)
    assert [p.statement for p in ranked] == ["balance_sheet"]


def test_html_10k_statements_are_found_by_heading_lines(shared, tmp_path):
    """EDGAR HTML has no pages: a heading line ends one chunk and the statement's rows follow in the next."""
    store, (aapl,) = _index([shared / "filings" / "html" / "aapl-10-k-2024-11-01.html"], tmp_path)
    chunks = _chunks(store, aapl)
    found = find_statement_pages(chunks, page_key)
    assert {"balance_sheet", "income", "cash_flow"} <= set(found)
    by_id = {c.id: c for c in chunks}
    balance = " ".join(by_id[cid].text for cid in found["balance_sheet"][0].chunk_ids)
    assert "Total current liabilities" in balance and "Total assets" in balance
    cash = " ".join(by_id[cid].text for cid in found["cash_flow"][0].chunk_ids)
    assert "Payments for acquisition of property, plant and equipment" in cash
    # a library metric's figures are read from the HTML statements' rows (no pages, no model)
    from filinglens.agents.evidence import EvidenceItem
    from filinglens.agents.metrics import plan_metric, read_from_tables

    plan = plan_metric("What is Apple's FY2024 free cash flow? Answer in USD millions.")
    agent = RetrievalAgent(HybridSearcher(store, dense_weight=0))
    pages = agent.statement_evidence("free cash flow", plan.statements(), company=aapl.company,
                                     year=aapl.fiscal_year)
    read = read_from_tables(plan, [EvidenceItem.from_evidence(e) for e in pages])
    assert {k: v["value"] for k, v in read.items()} == {"cash_from_operations_2024": "118,254",
                                                        "capital_expenditures_2024": "( 9,447 )"}


def test_search_routes_a_metric_question_to_the_statements_it_names(pdfs):
    """financebench_id_02987 (tuning half): revenue from the statement of income, PP&E from the statement of
    financial position -- Activision's pages 69 and 68."""
    q = pdfs.questions["financebench_id_02987"]
    pages = evidence_pages(q, pdfs.docs)
    filters = SearchFilters(company=pdfs.atvi.company, year=pdfs.atvi.fiscal_year)
    off = HybridSearcher(pdfs.store, dense_weight=0, statement_weight=0).search(q["question"], k=5, filters=filters)
    on = HybridSearcher(pdfs.store, dense_weight=0).search(q["question"], k=5, filters=filters)
    assert hit_pages(off, pages) != pages
    assert hit_pages(on, pages) == pages
    assert {h.metadata["page"]: h.statement_rank for h in on if h.statement_rank} == {69: 1, 68: 2}
    # Boeing's statements never leak into a search filtered to Activision
    assert {h.metadata["company"] for h in on} == {pdfs.atvi.company}


def test_statement_pages_survive_the_disk_cache(pdfs):
    filters = SearchFilters(company=pdfs.boeing.company, year=pdfs.boeing.fiscal_year)
    question = "What was Boeing's FY2018 capital expenditure?"
    first = HybridSearcher(pdfs.store).statement_pages(question, filters)
    again = HybridSearcher(pdfs.store).statement_pages(question, filters)  # a new searcher reads the disk cache
    assert [p.page for p in first] == [p.page for p in again] and first
    assert [p.statement for p in first][0] == "cash_flow"
    # no filter: every filing's statements would tie, so none are ranked
    assert HybridSearcher(pdfs.store).statement_pages(question, SearchFilters()) == []


def test_the_agent_adds_the_statements_a_question_needs(pdfs):
    q = pdfs.questions["financebench_id_02987"]
    agent = RetrievalAgent(HybridSearcher(pdfs.store, dense_weight=0))
    evidence = agent.retrieve(q["question"], company=pdfs.atvi.company, year=pdfs.atvi.fiscal_year, k=6)
    assert hit_pages([e.metadata_dict() for e in evidence], evidence_pages(q, pdfs.docs)) == evidence_pages(q, pdfs.docs)
    assert any("statements" in e.queries for e in evidence)
    # a statement chunk's rows do not say which column is which year: its heading travels with it
    income = next(e for e in evidence if e.page == 69 and "statements" in e.queries)
    assert income.context.startswith("ACTIVISION BLIZZARD, INC. AND SUBSIDIARIES CONSOLIDATED STATEMENTS OF OPERATIONS")
    assert "(Amounts in millions" in income.context and "2019 | 2018 | 2017" in income.context
    text, _ = render_evidence([EvidenceItem.from_evidence(e) for e in evidence], 6000)
    assert f"(Item {income.item}; {income.context})" in text
    # a rating category's retrieval is left alone
    topics = agent.retrieve("", queries=["revenue growth and net income"], company=pdfs.atvi.company,
                            year=pdfs.atvi.fiscal_year, k=6)
    assert not any("statements" in e.queries for e in topics)


def test_a_library_metric_is_read_from_the_statement_pages_without_a_model_call(pdfs, tmp_path):
    """Activision FY2017-FY2019 capex as a % of revenue (FinanceBench: 1.9%): the evidence given holds no
    statement row, so the figures come from the statement pages the plan needs, each cited."""
    from filinglens.agents.models import get_chat_model
    from filinglens.agents.qa import answer_question
    from filinglens.store import Store

    question = ("What is the FY2017 - FY2019 3 year average of capex as a % of revenue for Activision Blizzard? "
                "Answer in units of percents and round to one decimal place.")
    agent = RetrievalAgent(HybridSearcher(pdfs.store, dense_weight=0))
    where = {"company": pdfs.atvi.company, "year": pdfs.atvi.fiscal_year}
    pages = agent.statement_evidence(question, ["cash_flow", "income"], **where)
    assert pages and all(e.context and "statements" in e.queries for e in pages)
    assert {e.page for e in pages} >= {69, 72}  # the income statement and the cash flow statement
    unrelated = agent.retrieve("risk factors competition", **where, k=1)
    model = get_chat_model("fake", responses=["not JSON"])
    answer = answer_question(question, unrelated, store=Store(tmp_path / "r.db"), model_id="fake", model=model,
                             statements=lambda keys: agent.statement_evidence(question, keys, **where))
    assert answer.sufficient and answer.answer.startswith("1.9%.") and answer.tokens_in == 0
    assert answer.calculation["read_from_tables"] == sorted(answer.calculation["plan"]["figures"])
    assert len(answer.evidence) > 1 and all(c.verified for c in answer.citations)
    assert answer.numbers()["all_traced"] is True
