"""Reference figures from a 10-K's own inline XBRL tags, to check what the table reader reads.

An EDGAR 10-K in inline XBRL tags every number of its financial statements
(``<ix:nonFraction name="us-gaap:AssetsCurrent" contextRef="c-4" ...>29,727</ix:nonFraction>``)
with the period it is for.  :func:`read_facts` collects the company-wide facts
(contexts without a dimension), and :func:`gold_values` gives a metric-library
line item's figure for the filing's fiscal year or the year before: the
reference the table reader (``agents/metrics.read_from_tables``) is measured
against in ``bench/table_reader_xbrl.py`` and its tests.  Nothing here is used
to answer questions.
"""
from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

#: metric-library line item -> the us-gaap concepts that carry it (any of them)
CONCEPTS: dict[str, tuple[str, ...]] = {
    "revenue": ("Revenues", "RevenueFromContractWithCustomerExcludingAssessedTax", "SalesRevenueNet",
                "RevenueFromContractWithCustomerIncludingAssessedTax"),
    "cost_of_revenue": ("CostOfRevenue", "CostOfGoodsAndServicesSold", "CostOfGoodsSold"),
    "operating_income": ("OperatingIncomeLoss",),
    "net_income": ("NetIncomeLoss",),
    "income_before_taxes": (
        "IncomeLossFromContinuingOperationsBeforeIncomeTaxesExtraordinaryItemsNoncontrollingInterest",
        "IncomeLossFromContinuingOperationsBeforeIncomeTaxesMinorityInterestAndIncomeLossFromEquityMethodInvestments",
    ),
    "income_tax_expense": ("IncomeTaxExpenseBenefit",),
    "interest_expense": ("InterestExpense", "InterestExpenseNonoperating", "InterestExpenseDebt"),
    "depreciation_amortization": ("DepreciationDepletionAndAmortization", "DepreciationAndAmortization",
                                  "DepreciationAmortizationAndAccretionNet"),
    "cash_from_operations": ("NetCashProvidedByUsedInOperatingActivities",),
    "cash_from_investing": ("NetCashProvidedByUsedInInvestingActivities",),
    "cash_from_financing": ("NetCashProvidedByUsedInFinancingActivities",),
    "capital_expenditures": ("PaymentsToAcquirePropertyPlantAndEquipment", "PaymentsToAcquireProductiveAssets"),
    "dividends_paid": ("PaymentsOfDividends", "PaymentsOfDividendsCommonStock"),
    "total_current_assets": ("AssetsCurrent",),
    "total_current_liabilities": ("LiabilitiesCurrent",),
    "total_assets": ("Assets",),
    "total_equity": ("StockholdersEquity",),
    "inventory": ("InventoryNet",),
    "accounts_payable": ("AccountsPayableCurrent", "AccountsPayableTradeCurrent"),
    "accounts_receivable": ("AccountsReceivableNetCurrent", "ReceivablesNetCurrent"),
    "cash_and_equivalents": ("CashAndCashEquivalentsAtCarryingValue",),
    "short_term_investments": ("ShortTermInvestments", "MarketableSecuritiesCurrent",
                               "AvailableForSaleSecuritiesDebtSecuritiesCurrent"),
    "short_term_borrowings": ("ShortTermBorrowings", "CommercialPaper"),
    "current_portion_long_term_debt": ("LongTermDebtCurrent", "LongTermDebtAndCapitalLeaseObligationsCurrent"),
    "long_term_debt": ("LongTermDebtNoncurrent", "LongTermDebtAndCapitalLeaseObligations"),
    "ppe_net": ("PropertyPlantAndEquipmentNet",
                "PropertyPlantAndEquipmentAndFinanceLeaseRightOfUseAssetAfterAccumulatedDepreciationAndAmortization"),
}

_TAG = re.compile(r"<ix:nonFraction\b([^>]*)>(.*?)</ix:nonFraction>", re.S | re.I)
_ATTR = re.compile(r'([\w:-]+)="([^"]*)"')
_CONTEXT = re.compile(r'<xbrli:context\b[^>]*\bid="([^"]+)"[^>]*>(.*?)</xbrli:context>', re.S | re.I)
_FY = re.compile(r'<ix:nonNumeric\b[^>]*name="dei:DocumentFiscalYearFocus"[^>]*>(?:<[^>]+>)*\s*(\d{4})', re.I)
_FY_CONTEXT = re.compile(r'<ix:nonNumeric\b[^>]*name="dei:DocumentFiscalYearFocus"[^>]*>', re.I)


@dataclass
class Facts:
    """A filing's company-wide numeric facts: concept -> [(start, end, value)], and its fiscal year."""

    fiscal_year: int
    period_end: dt.date
    values: dict[str, list[tuple[dt.date | None, dt.date, float]]] = field(default_factory=dict)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text.strip()[:10])


def read_facts(path: Path) -> Facts | None:
    """The inline-XBRL facts of the 10-K at ``path``; None for a filing without inline XBRL."""
    text = Path(path).read_text(errors="replace")
    fy = _FY.search(text)
    fy_tag = _FY_CONTEXT.search(text)
    if not fy or not fy_tag:
        return None
    contexts: dict[str, tuple[dt.date | None, dt.date]] = {}
    for cid, body in _CONTEXT.findall(text):
        if "<xbrli:segment" in body or "<xbrldi:" in body:
            continue  # a dimension (a segment, a class of stock): not the company-wide figure
        instant = re.search(r"<xbrli:instant>([^<]+)<", body)
        start, end = re.search(r"<xbrli:startDate>([^<]+)<", body), re.search(r"<xbrli:endDate>([^<]+)<", body)
        if instant:
            contexts[cid] = (None, _date(instant.group(1)))
        elif start and end:
            contexts[cid] = (_date(start.group(1)), _date(end.group(1)))
    doc_context = dict(_ATTR.findall(fy_tag.group(0))).get("contextRef", "")
    if doc_context not in contexts:
        return None
    facts = Facts(int(fy.group(1)), contexts[doc_context][1])
    for attrs, inner in _TAG.findall(text):
        a = dict(_ATTR.findall(attrs))
        name, ctx = a.get("name", ""), a.get("contextRef", "")
        if not name.startswith("us-gaap:") or ctx not in contexts:
            continue
        shown = html.unescape(re.sub(r"<[^>]+>", "", inner)).strip().replace(",", "")
        if a.get("format", "").endswith(("fixed-zero", "zerodash")) or shown in ("", "-", "—"):
            number = 0.0
        else:
            try:
                number = float(shown)
            except ValueError:
                continue
        value = number * 10 ** int(a.get("scale", "0") or 0) * (-1 if a.get("sign") == "-" else 1)
        start, end = contexts[ctx]
        facts.values.setdefault(name.split(":", 1)[1], []).append((start, end, value))
    return facts


def gold_values(facts: Facts, item: str, years_back: int = 0, *, balance: bool) -> list[float]:
    """``item``'s company-wide values for the fiscal year ``years_back`` before the filing's: the balance
    at that year's end (``balance``) or the flow over that year, one per concept the filing tags it with
    (a filing may tag its cash-flow D&A and its depreciation note with different concepts); [] when none."""
    end = facts.period_end.replace(year=facts.period_end.year - years_back) if years_back else facts.period_end
    out = []
    for concept in CONCEPTS[item]:
        for start, fact_end, value in facts.values.get(concept, []):
            if abs((fact_end - end).days) > 7:
                continue
            if (balance and start is None) or (not balance and start is not None
                                                  and 350 <= (fact_end - start).days <= 380):
                if value not in out:
                    out.append(value)
    return out


def same_figure(read: float, gold: float) -> bool:
    """Whether ``read`` (as printed in a statement: in units, thousands, millions or billions) is ``gold``,
    sign aside (statements print costs either way; :func:`check_filing` checks the sign where it matters)."""
    for scale in (1, 1e3, 1e6, 1e9):
        if abs(abs(read) * scale - abs(gold)) <= 0.5 * scale + 1e-9:
            return True
    return False


@dataclass
class TableRead:
    """One line item for one year, read from a filing's statements and checked against its XBRL."""

    item: str
    years_back: int
    gold: list[float]
    read: float | None
    verdict: str  # correct | wrong | missed (tagged, not read) | untagged (read, not tagged) | none
    quote: str = ""


#: the statements the table reader is checked on
STATEMENTS = ("balance_sheet", "income", "cash_flow")


def check_filing(path: Path, library=None) -> list[TableRead]:
    """Every metric-library line item of the HTML 10-K at ``path``, for its fiscal year and the year before,
    read the way ``ask`` reads it (indexed with the model-free ``hash`` embedder, statement pages from
    ``RetrievalAgent.statement_evidence``, ``agents/metrics.read_from_tables``) and checked against the
    filing's inline XBRL; [] for a filing without inline XBRL."""
    import tempfile
    from filinglens.agents.metrics import NeededFigure, cell_value, read_rows
    from filinglens.prompts.loader import load_metric_library
    from filinglens.retrieval.agent import RetrievalAgent
    from filinglens.retrieval.index import ChunkStore
    from filinglens.retrieval.ingest import ingest_file

    library = library or load_metric_library()
    facts = read_facts(path)
    if facts is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        store = ChunkStore(Path(tmp) / "index", embedder="hash")
        filing = ingest_file(path, store=store)
        evidence = RetrievalAgent(store=store).statement_evidence(
            "financial statements", list(STATEMENTS), k=48, filing_id=filing.filing_id)
    out = []
    for item, definition in library.items.items():
        if item not in CONCEPTS:
            continue
        needs = [NeededFigure(f"{item}_{facts.fiscal_year - back}", item, facts.fiscal_year - back, definition)
                 for back in (0, 1)]
        found = read_rows(needs, evidence)
        for back, need in enumerate(needs):
            gold = gold_values(facts, item, back, balance=bool(definition.balance))
            got = found.get(need.name)
            value = cell_value(got["value"]) if got else None  # a dash (an optional line printed as nothing): 0
            if not gold:
                verdict = "none" if value is None else "untagged"
            elif value is None:
                verdict = "missed"
            else:
                signed = definition.sign != "abs"  # costs are read as positive amounts; the rest keep the sign
                verdict = "correct" if any(same_figure(value, g) and (not signed or value * g >= 0)
                                           for g in gold) else "wrong"
            out.append(TableRead(item, back, gold, value, verdict, got["quote"] if got else ""))
    return out
