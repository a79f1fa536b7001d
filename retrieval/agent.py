"""The retrieval agent: question (or rating category) -> de-duplicated evidence with provenance.

Planning is deterministic (testable, no model needed):

1. **Filings.** Ticker / company / year come from the arguments, else they
   are detected in the question against what the index holds (tickers written
   in capitals, company names, "FY2022", "fiscal 2021", "2019").  A year with
   no indexed filing falls back to the next year's 10-K (which reports the
   prior year as comparatives), else to no year filter.
2. **Items.** Keyword rules map the question to likely items (risk -> 1A,
   liquidity / results -> 7, financial figures -> 7 and 8, legal -> 3,
   employees -> 1, registered securities -> the cover page...).  Items are a
   preference, never a constraint: one query always runs without an item filter.
3. **Queries.** The question itself (dense) with a keyword rewrite for BM25
   (instruction words such as "in USD millions" or "round your answer" and
   the company / year already used as filters are dropped; standard metric
   names are expanded with the line items they are computed from), plus the
   rewrite restricted to the likely items.
4. **Fusion.** Reciprocal-rank fusion across the queries, de-duplication by
   chunk and by identical text within a filing, top ``k``.  The per-query
   searches run without the searcher's page-level ranking and per-page cap
   (``pages=False``): on the tuning half of the FinanceBench dev questions
   they lowered the agent's recall@10 (0.65 -> 0.55; bench/README.md).

Every :class:`Evidence` keeps the chunk id, exact text, score, filing
metadata, item, offsets into the item text and the filing text, and the page
for PDFs, so it can be traced back to the exact characters of the filing
(:meth:`Evidence.locate`).

LangChain: :class:`FilingRetriever` is a ``BaseRetriever`` over the agent,
returning ``Document`` objects whose metadata carry the provenance.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from filinglens.errors import InputError, NoMatchError
from filinglens.retrieval.filing import Filing
from filinglens.retrieval.rewrite import FY_SHORT_RE, METRIC_TERMS, YEAR_RE, keyword_rewrite  # noqa: F401  (re-exported)
from filinglens.retrieval.search import (
    DEFAULT_MMR_LAMBDA,
    HybridSearcher,
    SearchFilters,
    SearchHit,
    normalize_item,
    rrf,
)

# --------------------------------------------------------------------------- evidence


@dataclass
class Evidence:
    """One evidence chunk with its provenance."""

    chunk_id: str
    text: str
    score: float
    filing_id: str
    ticker: str | None
    cik: str | None
    company: str | None
    fiscal_year: int | None
    form: str | None
    source: str | None
    source_hash: str | None
    item: str
    item_title: str
    kind: str
    start: int  # offset in the item text
    end: int
    filing_start: int | None = None  # offset in the filing text
    filing_end: int | None = None
    page: int | None = None  # 0-based PDF page
    queries: list[str] = field(default_factory=list)  # the planned queries that found it
    context: str = ""  # what the chunk sits under: a financial statement's title, units and column headers

    @classmethod
    def from_hit(cls, hit: SearchHit, score: float, queries: Iterable[str] = ()) -> "Evidence":
        m = hit.metadata
        return cls(
            chunk_id=hit.chunk_id,
            text=hit.text,
            score=score,
            filing_id=m.get("filing_id", ""),
            ticker=m.get("ticker") or None,
            cik=m.get("cik") or None,
            company=m.get("company") or None,
            fiscal_year=m.get("fiscal_year"),
            form=m.get("form") or None,
            source=m.get("source") or None,
            source_hash=m.get("source_hash") or None,
            item=m.get("item", ""),
            item_title=m.get("item_title", ""),
            kind=m.get("kind", "text"),
            start=int(m.get("start", 0)),
            end=int(m.get("end", 0)),
            filing_start=m.get("filing_start"),
            filing_end=m.get("filing_end"),
            page=m.get("page"),
            queries=list(queries),
            context=hit.context,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def metadata_dict(self) -> dict:
        """Everything but the text (the shape of a search hit's metadata)."""
        data = self.to_dict()
        data.pop("text")
        return data

    def citation(self) -> str:
        who = self.ticker or self.company or "?"
        where = f"Item {self.item}" if self.item not in ("cover", "other") else self.item_title
        page = f", p. {self.page + 1}" if self.page is not None else ""
        return f"{who} 10-K FY{self.fiscal_year}, {where}{page}, chars {self.start}-{self.end}"

    def to_document(self):
        """A LangChain ``Document`` (text + provenance metadata)."""
        from langchain_core.documents import Document

        meta = {k: v for k, v in self.metadata_dict().items() if v is not None}
        return Document(page_content=self.text, metadata=meta, id=self.chunk_id)

    def locate(self, filing: Filing) -> bool:
        """True if ``text`` is exactly at ``start:end`` of the item (and of the filing text)."""
        if self.item in filing.items:
            ok = filing.items[self.item].text[self.start : self.end] == self.text
        else:  # pseudo-items (cover page, text outside the items) are spans of Filing.text
            ok = filing.text[self.start : self.end] == self.text
        if ok and self.filing_start is not None and self.filing_end is not None:
            ok = filing.text[self.filing_start : self.filing_end] == self.text
        return ok


# --------------------------------------------------------------------------- planning

_FIN_WORDS = (
    r"revenue|sales|income|profit|margin|ebitda|ebit|eps|earnings per share|cash flow|balance sheet|"
    r"assets|liabilit|equity|debt|borrowing|capex|capital expenditure|expenditures|dividend|ratio|turnover|"
    r"working capital|inventor|receivable|payable|expense|cost of|p&l|income statement|statement of|"
    r"operating activities|free cash|depreciation|amortization|interest|tax|share repurchase|buyback|"
    r"\$|usd|million|billion|percent|%|how much|calculate|compute|growth rate|change in"
)
ITEM_RULES: list[tuple[str, list[str]]] = [
    (r"\brisk(s|y)?\b|uncertaint|threat|could adversely|headwind", ["1A"]),
    (r"cyber|information security|data breach", ["1C", "1A"]),
    (r"legal proceeding|litigation|lawsuit|legal matter|settlement|investigation|antitrust", ["3", "8"]),
    (r"\bpropert(y|ies)\b|facilit(y|ies)|real estate|headquarter|manufacturing plant|square feet", ["2"]),
    (r"employee|human capital|workforce|headcount|talent|diversity|union", ["1"]),
    (r"competit|customer|product|segment|business model|strategy|brand|market share|supplier|seasonal|cyclical",
     ["1", "7"]),
    (r"market risk|interest rate risk|currency risk|foreign exchange|hedg|derivative|sensitivity", ["7A", "8"]),
    (r"liquidity|capital resources|outlook|guidance|results of operations|md&a|management'?s discussion|"
     r"driver|increase|decrease|decline|improv", ["7"]),
    # financial statements are in Item 8, or after Item 15 ("Financial Statement Schedules") in many 10-Ks
    (_FIN_WORDS, ["7", "8", "15"]),
    (r"dividend|repurchase|buyback|stock performance|holders of record", ["5", "7"]),
    (r"executive compensation|\bceo pay\b", ["11"]),
    (r"director|board of directors|officers", ["10"]),
    (r"auditor|accounting firm|audit fees", ["14", "8"]),
    (r"internal control|disclosure controls", ["9A"]),
    (r"registered|securities exchange|stock exchange|trading symbol|ticker symbol|listed on", ["cover", "5"]),
    (r"acquisition|merger|divest|restructuring|impairment|goodwill", ["7", "8"]),
]

def _norm_company(name: str) -> str:
    name = name.lower().replace("&", " and ")
    name = re.sub(r"[^a-z0-9 ]+", " ", name)
    name = re.sub(r"\b(the|inc|incorporated|corp|corporation|company|co|ltd|limited|plc|llc|holdings?|group|sa|nv|ag)\b",
                  " ", name)
    return re.sub(r"\s+", " ", name).strip()


@dataclass
class PlannedQuery:
    text: str  # for the dense retriever
    lexical: str  # for BM25
    filters: SearchFilters
    label: str
    weight: float = 1.0


@dataclass
class RetrievalPlan:
    question: str
    tickers: list[str]
    companies: list[str]
    years: list[int]
    items: list[str]
    queries: list[PlannedQuery]

    def describe(self) -> dict:
        return {
            "question": self.question, "tickers": self.tickers, "companies": self.companies, "years": self.years,
            "items": self.items,
            "queries": [{"label": q.label, "text": q.text, "lexical": q.lexical, "filters": q.filters.describe()}
                        for q in self.queries],
        }


class QueryPlanner:
    """Deterministic planner over the index's catalogue of filings."""

    def __init__(self, catalog: Sequence[dict]) -> None:
        self.catalog = list(catalog)

    def detect_filings(self, question: str) -> tuple[list[str], list[str]]:
        """(tickers, companies) of indexed filings named in the question."""
        tickers, companies = [], []
        words = set(re.findall(r"\b[A-Z][A-Z.]{1,5}\b", question))
        norm_q = f" {_norm_company(question)} "
        squashed_q = norm_q.replace(" ", "")
        for f in self.catalog:
            t = (f.get("ticker") or "").upper()
            if len(t) >= 2 and t in words and t not in tickers:
                tickers.append(t)
            c = f.get("company") or ""
            nc = _norm_company(c)
            if not nc or c in companies:
                continue
            if f" {nc} " in norm_q or (len(nc.replace(' ', '')) >= 5 and nc.replace(" ", "") in squashed_q):
                companies.append(c)
        # prefer the longest company names when one contains another ("American Express" vs "Express")
        companies = [c for c in companies
                     if not any(c != o and _norm_company(c) in _norm_company(o) for o in companies)]
        return tickers, companies

    @staticmethod
    def detect_years(question: str) -> list[int]:
        years = {int(m.group(1)) for m in YEAR_RE.finditer(question)}
        years |= {2000 + int(m.group(1)) for m in FY_SHORT_RE.finditer(question)}
        return sorted(y for y in years if 1990 <= y <= 2100)

    def _available_years(self, tickers, companies) -> set[int]:
        out = set()
        for f in self.catalog:
            if tickers and (f.get("ticker") or "").upper() not in tickers:
                continue
            if companies and f.get("company") not in companies:
                continue
            if f.get("fiscal_year"):
                out.add(int(f["fiscal_year"]))
        return out

    @staticmethod
    def detect_items(text: str) -> list[str]:
        items: list[str] = []
        low = text.lower()
        for pattern, wanted in ITEM_RULES:
            if re.search(pattern, low):
                for item in wanted:
                    if item not in items:
                        items.append(item)
        return items

    def plan(
        self,
        question: str,
        *,
        ticker: str | Sequence[str] | None = None,
        company: str | Sequence[str] | None = None,
        year: int | None = None,
        years: Sequence[int] | None = None,
        items: Sequence[str] | None = None,
        queries: Sequence[str] | None = None,
        filing_id: str | None = None,
    ) -> RetrievalPlan:
        topic_queries = [q for q in (queries or []) if q.strip()]
        if (not question or not question.strip()) and topic_queries:
            question = topic_queries[0]
        if not question or not question.strip():
            raise InputError("the question is empty")
        as_list = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
        tickers = [t.upper() for t in as_list(ticker)]
        companies = as_list(company)
        if not tickers and not companies:
            tickers, companies = self.detect_filings(question)
        wanted_years = [int(year)] if year is not None else [int(y) for y in (years or [])]
        if not wanted_years:
            detected = self.detect_years(question)
            available = self._available_years(tickers, companies)
            chosen = [y for y in detected if y in available]
            if detected and not chosen:
                chosen = sorted({y + 1 for y in detected if y + 1 in available})
            wanted_years = chosen
        base = dict(
            filing_id=filing_id,
            ticker=tickers or None,
            company=companies or None,
            year_from=min(wanted_years) if wanted_years else None,
            year_to=max(wanted_years) if wanted_years else None,
        )
        drop = companies + tickers + [str(y) for y in wanted_years]
        planned: list[PlannedQuery] = []
        if topic_queries:
            # a rating category: its own queries (from the prompt file) within its likely
            # items, and each query over the whole filing at half weight
            item_list = [normalize_item(i) for i in (items or [])]
            for n, q in enumerate(topic_queries):
                if item_list:
                    planned.append(PlannedQuery(q, q, SearchFilters(**base, items=item_list), f"topic:{n}"))
                planned.append(PlannedQuery(q, q, SearchFilters(**base), f"topic:{n}:any-item",
                                            weight=0.5 if item_list else 1.0))
            return RetrievalPlan(question, tickers, companies, wanted_years, item_list, planned)
        item_list = [normalize_item(i) for i in items] if items else self.detect_items(question)
        rewrite = keyword_rewrite(question, drop)
        # the question as asked (dense) with keywords for BM25; the keywords alone (no instruction
        # noise for the dense side either); the keywords within the likely items -- a hint with half
        # the weight, since item guesses are heuristics and statements are not always in Item 8
        planned.append(PlannedQuery(question.strip(), rewrite, SearchFilters(**base), "question"))
        if rewrite.strip().lower() != question.strip().lower():
            planned.append(PlannedQuery(rewrite, rewrite, SearchFilters(**base), "keywords"))
        if item_list:
            weight = 1.0 if items else 0.5
            planned.append(PlannedQuery(rewrite, rewrite, SearchFilters(**base, items=item_list), "items", weight))
        return RetrievalPlan(question, tickers, companies, wanted_years, item_list, planned)


# --------------------------------------------------------------------------- the agent


#: weight of the asked statements' pages in the agent's fusion: higher than one search's (2), since the agent sums
#: several queries' rankings; 3 put them in the top 6 (the QA evidence) on the tuning half (bench/README.md)
AGENT_STATEMENT_WEIGHT = 3.0


class RetrievalAgent:
    """Plans, searches, fuses and de-duplicates: returns evidence for a question or a rating category."""

    def __init__(
        self,
        searcher: HybridSearcher | None = None,
        *,
        store=None,
        per_query_k: int = 20,
        mmr_lambda: float = DEFAULT_MMR_LAMBDA,
        statement_weight: float = AGENT_STATEMENT_WEIGHT,
    ) -> None:
        self.searcher = searcher or HybridSearcher(store)
        self.per_query_k = per_query_k
        self.mmr_lambda = mmr_lambda
        self.statement_weight = statement_weight
        self._catalog: list[dict] | None = None
        self._catalog_rev: str | None = None

    def catalog(self) -> list[dict]:
        rev = self.searcher.store.revision()
        if self._catalog is None or rev != self._catalog_rev:
            self._catalog = self.searcher.store.filings()
            self._catalog_rev = rev
        return self._catalog

    def plan(self, question: str, **kwargs) -> RetrievalPlan:
        return QueryPlanner(self.catalog()).plan(question, **kwargs)

    def retrieve(
        self,
        question: str,
        *,
        ticker: str | Sequence[str] | None = None,
        company: str | Sequence[str] | None = None,
        year: int | None = None,
        years: Sequence[int] | None = None,
        items: Sequence[str] | None = None,
        queries: Sequence[str] | None = None,
        filing_id: str | None = None,
        k: int = 8,
    ) -> list[Evidence]:
        """Evidence for ``question``, or for a rating category given as its ``queries`` and ``items``.

        ``filing_id`` restricts the search to one indexed filing. Explicit
        ``ticker`` / ``company`` / ``year`` / ``filing_id`` filters must match
        indexed filings (else :class:`~filinglens.errors.NoMatchError`);
        detected ones are dropped when they match nothing.
        """
        plan = self.plan(question, ticker=ticker, company=company, year=year, years=years, items=items,
                         queries=queries, filing_id=filing_id)
        explicit = any(v for v in (ticker, company, year, years, filing_id))
        return self.run(plan, k=k, strict=explicit)

    def run(self, plan: RetrievalPlan, *, k: int = 8, strict: bool = False) -> list[Evidence]:
        rankings: list[list[str]] = []
        weights: list[float] = []
        hits: dict[str, SearchHit] = {}
        found_by: dict[str, list[str]] = {}
        errors: list[NoMatchError] = []
        for pq in plan.queries:
            try:
                result = self.searcher.search(
                    pq.text, k=self.per_query_k, filters=pq.filters, lexical_query=pq.lexical, mmr_lambda=1.0,
                    pages=False,
                )
            except NoMatchError as exc:
                if pq.filters.items:  # the likely items may simply be absent from these filings
                    continue
                errors.append(exc)
                continue
            rankings.append([h.chunk_id for h in result])
            weights.append(pq.weight)
            for h in result:
                hits.setdefault(h.chunk_id, h)
                found_by.setdefault(h.chunk_id, []).append(pq.label)
        if not rankings:
            if errors and (strict or not (plan.tickers or plan.companies or plan.years)):
                raise errors[0]
            # detected filters matched nothing: search everything
            loose = QueryPlanner([]).plan(plan.question, items=plan.items or None) if plan.question else plan
            return self.run(loose, k=k, strict=True) if loose.queries != plan.queries else []
        fused = rrf(rankings, weights)
        self._add_statements(plan, hits, fused, found_by)
        ordered = sorted(hits.values(), key=lambda h: (-fused[h.chunk_id], h.chunk_id))
        # de-duplicate identical text within a filing (repeated boilerplate, running headers)
        unique: list[SearchHit] = []
        seen_text: set[tuple[str, str]] = set()
        for h in ordered:
            key = (h.metadata.get("filing_id", ""), re.sub(r"\s+", " ", h.text).strip().lower())
            if key in seen_text:
                continue
            seen_text.add(key)
            unique.append(h)
        if self.mmr_lambda < 1 and len(unique) > k:
            unique = self._diversify(unique, fused, k)
        return [Evidence.from_hit(h, fused[h.chunk_id], found_by.get(h.chunk_id, [])) for h in unique[:k]]

    def statement_evidence(self, question: str, statements: Sequence[str], *, k: int = 24,
                           **filters: Any) -> list[Evidence]:
        """Every chunk of the pages of ``statements`` (``retrieval/statements.py`` keys: ``balance_sheet``,
        ``income``, ``cash_flow``) in the filings ``question`` and ``filters`` (as for :meth:`retrieve`)
        select, each with its statement's heading as ``context``; at most ``k`` chunks, [] without a filter.

        For a metric whose line items the program reads from the statement tables (``agents/metrics.py``):
        the rows it needs may sit in a chunk of the page that search did not rank.
        """
        plan = self.plan(question, **filters)
        if not plan.queries or not statements:
            return []
        pages = self.searcher.statement_pages(question, plan.queries[0].filters, statements)
        # a chunk holding one statement's last rows and the next one's heading is on both pages: once per heading
        pairs = list(dict.fromkeys((cid, page.heading) for page in pages for cid in page.chunk_ids))[:k]
        ids = list(dict.fromkeys(cid for cid, _ in pairs))
        records = {rec.id: rec for rec in self.searcher.store.get(ids=ids)} if ids else {}
        out = []
        for cid, heading in pairs:
            if cid in records:
                hit = SearchHit(cid, records[cid].text, 0.0, records[cid].metadata)
                hit.context = heading
                out.append(Evidence.from_hit(hit, 0.0, ["statements"]))
        return out

    def _add_statements(self, plan: RetrievalPlan, hits: dict[str, SearchHit], fused: dict[str, float],
                        found_by: dict[str, list[str]]) -> None:
        """A question's asked financial statements (``retrieval/statements.py``): the chunks of their pages
        gain ``statement_weight / (rrf_k + rank of the page)``, fetched when no query found them."""
        if self.statement_weight <= 0 or not plan.queries or plan.queries[0].label != "question":
            return  # rating categories bring their own queries
        pages = self.searcher.statement_pages(plan.question, plan.queries[0].filters)
        missing = [cid for page in pages for cid in page.chunk_ids if cid not in hits]
        if missing:
            for rec in self.searcher.store.get(ids=missing):
                hits[rec.id] = SearchHit(rec.id, rec.text, 0.0, rec.metadata)
        for rank, page in enumerate(pages, 1):
            for cid in page.chunk_ids:
                if cid in hits and "statements" not in found_by.setdefault(cid, []):
                    found_by[cid].append("statements")
                    fused[cid] = fused.get(cid, 0.0) + self.statement_weight / (self.searcher.rrf_k + rank)
                    hits[cid].context = page.heading

    def _diversify(self, hits: list[SearchHit], fused: dict[str, float], k: int) -> list[SearchHit]:
        import numpy as np

        from filinglens.retrieval.search import mmr

        missing = [h.chunk_id for h in hits if h.embedding is None]
        if missing:
            emb = {c.id: c.embedding for c in self.searcher.store.get(ids=missing, embeddings=True, documents=False)}
            for h in hits:
                if h.embedding is None:
                    h.embedding = emb.get(h.chunk_id)
        if any(h.embedding is None for h in hits):
            return hits
        order = mmr([fused[h.chunk_id] for h in hits], np.stack([h.embedding for h in hits]), k, self.mmr_lambda)
        return [hits[i] for i in order]

    def as_retriever(self, **defaults) -> "FilingRetriever":
        """This agent as a LangChain retriever (``defaults``: ticker, company, year, items, k)."""
        return FilingRetriever(agent=self, **defaults)


# --------------------------------------------------------------------------- LangChain

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402


class FilingRetriever(BaseRetriever):
    """LangChain ``BaseRetriever`` wrapping the retrieval agent (hybrid search + planning).

    ``invoke("question")`` returns ``Document`` objects whose metadata holds
    the provenance of each chunk (ids, filing, item, offsets, page, score).
    """

    agent: Any
    ticker: str | None = None
    company: str | None = None
    year: int | None = None
    items: list[str] | None = None
    k: int = 8

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        evidence = self.agent.retrieve(
            query, ticker=self.ticker, company=self.company, year=self.year, items=self.items, k=self.k
        )
        return [e.to_document() for e in evidence]
