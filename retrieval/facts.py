"""A filing's own numbers: key financial facts read from inline XBRL, or from its statement tables.

Modern EDGAR 10-Ks are inline XBRL (iXBRL): every number of the financial
statements is an ``ix:nonFraction`` element naming a us-gaap concept and a
context (the entity, a period and, for breakdowns, dimension members).
:func:`read_ixbrl` parses them with lxml into :class:`Fact` records (value
scaled and signed as the ``scale`` and ``sign`` attributes say);
:func:`key_financials` picks, for the current and the prior fiscal year,

* revenue — the largest of the revenue concepts (``Revenues``,
  ``RevenueFromContractWithCustomerExcludingAssessedTax``, ...) reported for
  the whole entity (no dimensions) in both years;
* net income (loss) — ``NetIncomeLoss`` (else ``ProfitLoss`` ...);
* operating cash flow — ``NetCashProvidedByUsedInOperatingActivities``;
* R&D expense — ``ResearchAndDevelopmentExpense`` (when reported);

with the fiscal year taken from the latest ~one-year duration context without
dimensions and the prior year from the one-year duration ending about a year
earlier. Older filings (no iXBRL) fall back to the statement tables of the
parsed filing: the first table row labelled like "Total revenue(s)", "Net
income (loss)", "Net cash provided by operating activities" with two numbers
(current year first, as 10-K statements print them; parentheses are negative).

Every figure keeps where it came from (concept or row label, period, value),
so a rating can cite it as evidence. :func:`risk_signals` finds going-concern
doubt, impairment charges and credit-rating downgrades in the filing text.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable, Sequence

REVENUE_CONCEPTS = (
    "Revenues",
    "RevenueFromContractWithCustomerExcludingAssessedTax",
    "RevenueFromContractWithCustomerIncludingAssessedTax",
    "SalesRevenueNet",
    "SalesRevenueGoodsNet",
    "RevenuesNetOfInterestExpense",
    "OperatingLeasesIncomeStatementLeaseRevenue",
)
NET_INCOME_CONCEPTS = ("NetIncomeLoss", "ProfitLoss", "NetIncomeLossAvailableToCommonStockholdersBasic")
OPERATING_CASH_CONCEPTS = (
    "NetCashProvidedByUsedInOperatingActivities",
    "NetCashProvidedByUsedInOperatingActivitiesContinuingOperations",
)
RND_CONCEPTS = ("ResearchAndDevelopmentExpense", "ResearchAndDevelopmentExpenseExcludingAcquiredInProcessCost")
METRICS = ("revenue", "net_income", "operating_cash_flow", "rnd_expense")
LABELS = {"revenue": "Revenue", "net_income": "Net income (loss)", "operating_cash_flow": "Operating cash flow",
          "rnd_expense": "R&D expense"}

_IX = "http://www.xbrl.org/2013/inlineXBRL"
_XBRLI = "http://www.xbrl.org/2003/instance"


@dataclass(frozen=True)
class Fact:
    """One numeric iXBRL fact (value already scaled and signed)."""

    concept: str  # "us-gaap:NetIncomeLoss"
    value: float
    context: str
    start: str | None  # ISO dates; ``start`` is None for an instant
    end: str | None
    dimensional: bool  # the context has dimension members (a breakdown, not the whole entity)
    unit: str | None = None

    @property
    def days(self) -> int | None:
        if not (self.start and self.end):
            return None
        return (date.fromisoformat(self.end) - date.fromisoformat(self.start)).days


@dataclass
class Figure:
    """One metric for the current and the prior fiscal year, with its source."""

    metric: str
    current: float | None
    prior: float | None
    source: str  # "ixbrl" | "table"
    concept: str  # us-gaap concept, or the table row label
    period: str  # "2023-10-01..2024-09-28" or "FY2015"
    prior_period: str | None = None

    @property
    def change(self) -> float | None:
        """Relative change vs the prior year (``(cur - prior) / |prior|``), None when undefined."""
        if self.current is None or self.prior is None or self.prior == 0:
            return None
        return (self.current - self.prior) / abs(self.prior)

    def describe(self) -> str:
        """``Revenue 391,035 million (FY ending 2024-09-28; prior 383,285 million, +2.0%) [us-gaap:Revenues]``."""
        text = f"{LABELS.get(self.metric, self.metric)} {_money(self.current)} ({self.period}"
        if self.prior is not None:
            text += f"; prior year {_money(self.prior)}"
            if self.change is not None:
                text += f", {self.change:+.1%}"
        return text + f") [{self.concept}]"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["change"] = self.change
        return data


@dataclass
class Financials:
    """Key figures of one filing (any may be missing) and where they came from."""

    figures: dict[str, Figure] = field(default_factory=dict)
    fiscal_period: str | None = None  # "2023-10-01..2024-09-28"
    source: str | None = None  # "ixbrl" | "table" | None (nothing found)
    signals: dict[str, list[str]] = field(default_factory=dict)  # going_concern / impairment / downgrade → sentences

    def get(self, metric: str) -> Figure | None:
        return self.figures.get(metric)

    def to_dict(self) -> dict:
        return {"fiscal_period": self.fiscal_period, "source": self.source,
                "figures": {k: v.to_dict() for k, v in self.figures.items()}, "signals": self.signals}


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.0f} million"
    return f"{value:,.0f}"


# ----------------------------------------------------------------------------- iXBRL


def _local(tag: Any) -> str:
    return tag.split("}", 1)[-1] if isinstance(tag, str) else ""


_NUM = re.compile(r"[-+]?\d[\d,.\s]*")


def parse_ix_number(text: str, fmt: str | None) -> float | None:
    """The number an ``ix:nonFraction`` displays, by its ``format`` (``num-dot-decimal``, ``fixed-zero``, ...)."""
    fmt = (fmt or "").split(":")[-1].lower().replace("-", "")
    text = (text or "").strip()
    if fmt in ("fixedzero", "zerodash") or text in ("-", "—", "–"):
        return 0.0
    if fmt == "numwordsen":
        return 0.0 if text.lower() in ("no", "none", "nil", "zero") else None
    match = _NUM.search(text)
    if not match:
        return None
    digits = match.group(0).strip()
    if fmt in ("numcommadecimal", "numcommadecimalen"):
        digits = digits.replace(".", "").replace(" ", "").replace(",", ".")
    else:
        digits = digits.replace(",", "").replace(" ", "")
    try:
        return float(digits)
    except ValueError:
        return None


def _parse_xml(data: bytes):
    from lxml import etree

    parser = etree.XMLParser(recover=True, huge_tree=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    return root


def read_ixbrl(data: bytes) -> list[Fact]:
    """Numeric facts of an inline XBRL document (empty when it has none)."""
    if b"nonFraction" not in data and b"nonfraction" not in data:
        return []
    root = _parse_xml(data)
    if root is None:
        return []
    contexts: dict[str, tuple[str | None, str | None, bool]] = {}
    for ctx in root.iter(f"{{{_XBRLI}}}context"):
        start = end = instant = None
        dims = False
        for el in ctx.iter():
            name = _local(el.tag)
            if name == "startDate":
                start = (el.text or "").strip()
            elif name == "endDate":
                end = (el.text or "").strip()
            elif name == "instant":
                instant = (el.text or "").strip()
            elif name in ("explicitMember", "typedMember"):
                dims = True
        contexts[ctx.get("id", "")] = (start, end or instant, dims)
    facts: list[Fact] = []
    seen: set[tuple] = set()
    for el in root.iter(f"{{{_IX}}}nonFraction"):
        concept = el.get("name") or ""
        ctx_id = el.get("contextRef") or ""
        if ctx_id not in contexts:
            continue
        if el.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true":
            continue
        value = parse_ix_number("".join(el.itertext()), el.get("format"))
        if value is None:
            continue
        try:
            value *= 10 ** int(el.get("scale") or 0)
        except ValueError:
            continue
        if el.get("sign") == "-":
            value = -value
        start, end, dims = contexts[ctx_id]
        key = (concept, ctx_id, value)
        if key in seen:
            continue
        seen.add(key)
        facts.append(Fact(concept, value, ctx_id, start, end, dims, el.get("unitRef")))
    return facts


def _year_periods(facts: Sequence[Fact]) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(current, prior) fiscal-year periods: ~one-year durations of the whole entity."""
    periods: dict[tuple[str, str], int] = {}
    for f in facts:
        if f.dimensional or f.days is None or not 340 <= f.days <= 380:
            continue
        periods[(f.start, f.end)] = periods.get((f.start, f.end), 0) + 1
    if not periods:
        return None, None
    # the current year: the latest end date among periods with a fair number of facts
    busiest = max(periods.values())
    candidates = [p for p, n in periods.items() if n >= max(3, busiest // 10)] or list(periods)
    current = max(candidates, key=lambda p: p[1])
    end = date.fromisoformat(current[1])
    prior = None
    for p in sorted(periods, key=lambda p: -periods[p]):
        gap = (end - date.fromisoformat(p[1])).days
        if 340 <= gap <= 390:
            prior = p
            break
    return current, prior


def _fmt_period(p: tuple[str, str] | None) -> str | None:
    return f"{p[0]}..{p[1]}" if p else None


def _pick(facts: Sequence[Fact], concepts: Sequence[str], current, prior, largest: bool = False) -> Figure | None:
    """The first (or, with ``largest``, the largest) concept reported for the whole entity in the current year."""
    options = []
    for rank, concept in enumerate(concepts):
        values: dict[tuple, float] = {}
        for f in facts:
            if f.dimensional or f.concept.split(":")[-1] != concept:
                continue
            values.setdefault((f.start, f.end), f.value)
        if current in values:
            options.append((rank, concept, values[current], values.get(prior) if prior else None,
                            next(f.concept for f in facts if f.concept.split(":")[-1] == concept)))
    if not options:
        return None
    if largest:
        # total revenue is the largest revenue line; prefer one that also has the prior year
        options.sort(key=lambda o: (o[3] is None, -abs(o[2]), o[0]))
    else:
        options.sort(key=lambda o: (o[3] is None, o[0]))
    _, _, cur, pri, qname = options[0]
    return Figure("", cur, pri, "ixbrl", qname, _fmt_period(current) or "", _fmt_period(prior))


def financials_from_facts(facts: Sequence[Fact]) -> Financials:
    """Key figures (:data:`METRICS`) for the current and prior fiscal year from iXBRL facts."""
    current, prior = _year_periods(facts)
    out = Financials(fiscal_period=_fmt_period(current))
    if current is None:
        return out
    for metric, concepts, largest in (("revenue", REVENUE_CONCEPTS, True), ("net_income", NET_INCOME_CONCEPTS, False),
                                      ("operating_cash_flow", OPERATING_CASH_CONCEPTS, False),
                                      ("rnd_expense", RND_CONCEPTS, False)):
        fig = _pick(facts, concepts, current, prior, largest)
        if fig is not None:
            fig.metric = metric
            out.figures[metric] = fig
    if out.figures:
        out.source = "ixbrl"
    return out


# ----------------------------------------------------------------------------- statement tables

_ROWS = {
    "revenue": re.compile(r"^(total\s+(net\s+)?revenues?\b|(net\s+)?revenues?,?\s*(net)?$|total\s+net\s+sales|net\s+sales$"
                          r"|total\s+revenues?\s+and\s+gain|total\s+(operating\s+)?revenues?)", re.I),
    "net_income": re.compile(r"^net\s+(income|earnings|loss|\(loss\)|income\s*\(loss\)|\(loss\)\s*income|loss\s+income)"
                             r"(\s*\(loss\))?\s*$", re.I),
    "operating_cash_flow": re.compile(r"^net\s+cash\s+(provided\s+by|from|(provided\s+by\s*\(?used\s+in\)?)|"
                                      r"\(?used\s+in\)?\s*provided\s+by|used\s+in)\s+(\(used\s+in\)\s+)?operating\s+activities",
                                      re.I),
}
_CELL_NUM = re.compile(r"^\(?-?\$?\s*\(?\d[\d,]*(\.\d+)?\)?%?$")


def _cell_value(cell: str) -> float | None:
    text = cell.replace("$", "").replace("\u2014", "").replace("\u2013", "").strip()
    if not text or not _CELL_NUM.match(text) or text.endswith("%"):
        return None
    negative = text.startswith("(") or text.endswith(")") or text.startswith("-")
    digits = re.sub(r"[^\d.]", "", text)
    try:
        value = float(digits)
    except ValueError:
        return None
    return -value if negative else value


def financials_from_tables(tables: Iterable[list[list[str]]], fiscal_year: int | None = None) -> Financials:
    """Key figures from statement tables: first row per metric with two numbers (current year first)."""
    out = Financials(fiscal_period=f"FY{fiscal_year}" if fiscal_year else None)
    for rows in tables:
        for row in rows:
            if not row:
                continue
            label = re.sub(r"\s+", " ", row[0]).strip().rstrip(":")
            numbers = [v for v in (_cell_value(c) for c in row[1:]) if v is not None]
            if len(numbers) < 2:
                continue
            for metric, pattern in _ROWS.items():
                if metric in out.figures or not pattern.search(label):
                    continue
                period = f"FY{fiscal_year}" if fiscal_year else "current year"
                out.figures[metric] = Figure(metric, numbers[0], numbers[1], "table", label, period,
                                             f"FY{fiscal_year - 1}" if fiscal_year else "prior year")
    if out.figures:
        out.source = "table"
    return out


def text_table_rows(text: str) -> list[list[str]]:
    """Table rows as the parser renders them in the filing text (``cell | cell`` lines), statements after
    the signatures included."""
    return [line.split(" | ") for line in text.splitlines() if " | " in line]


# ----------------------------------------------------------------------------- text signals

SIGNALS = {
    "going_concern": re.compile(
        r"substantial doubt (?:about|regarding|as to) (?:the (?:company|partnership|registrant)['’]s|our|its) ability to "
        r"continue as a going concern", re.I),
    "impairment": re.compile(r"\b(?:recorded|recognized|incurred|took)\b[^.]{0,80}\bimpairment (?:charges?|losses?)\b", re.I),
    "downgrade": re.compile(r"\b(?:downgraded|downgrade[sd]? (?:of )?our (?:credit|debt) ratings?|lowered our (?:credit )?rating)",
                            re.I),
}
_HYPOTHETICAL = re.compile(r"\b(?:if|could|may|might|would|whether|any|future|requires? management|in the past|"
                           r"unless|should|risk|exists?)\b", re.I)
_HYPOTHETICAL_AFTER = re.compile(r"\b(?:could|may|might|would)\b", re.I)


def risk_signals(text: str, limit: int = 3) -> dict[str, list[str]]:
    """Sentences stating going-concern doubt, impairment charges taken, or credit downgrades.

    Hypotheticals ("if our credit ratings are downgraded", "any downgrade could", the accounting standard's
    "if substantial doubt exists") are not signals: a sentence counts only when no conditional word
    precedes the match in it.
    """
    out: dict[str, list[str]] = {}
    sentences = re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text))
    for name, pattern in SIGNALS.items():
        found = []
        for sentence in sentences:
            if len(sentence) > 600:
                continue
            match = pattern.search(sentence)
            if not match or _HYPOTHETICAL.search(sentence[: match.start()]) or _HYPOTHETICAL_AFTER.search(
                    sentence[match.start(): match.end() + 40]):
                continue
            found.append(sentence.strip())
            if len(found) >= limit:
                break
        if found:
            out[name] = found
    return out


# ----------------------------------------------------------------------------- entry points


def financials_from_filing(filing: Any, data: bytes | None = None) -> Financials:
    """Key figures of a parsed ``Filing``: iXBRL when the source has it, else its statement tables; plus signals."""
    fin = Financials()
    if data is None and filing.source_type == "html":
        try:
            data = Path(filing.source).read_bytes()
        except OSError:
            data = None
    if data is not None and filing.source_type == "html":
        fin = financials_from_facts(read_ixbrl(data))
    if not fin.figures:
        fin = financials_from_tables([text_table_rows(filing.text)], filing.fiscal_year)
    fin.signals = risk_signals(filing.text)
    return fin


#: Bump when the extraction changes: cached figures of older versions are read again.
FACTS_VERSION = 1


def financials_from_dict(data: dict) -> Financials:
    """The inverse of :meth:`Financials.to_dict`."""
    figures = {}
    for metric, fig in (data.get("figures") or {}).items():
        fig = {k: v for k, v in fig.items() if k != "change"}
        figures[metric] = Figure(**fig)
    return Financials(figures, data.get("fiscal_period"), data.get("source"), dict(data.get("signals") or {}))


def cached_financials(path: str | Path, content_hash: str) -> Financials:
    """:func:`key_financials` of ``path`` (whose sha256 is ``content_hash``), cached in the data home
    (``facts/<hash>.json``, written atomically)."""
    import json

    from filinglens.settings import atomic_write, subdir

    if not re.fullmatch(r"[0-9a-f]{64}", content_hash):
        raise ValueError(f"not a sha256: {content_hash!r}")
    cache = subdir("facts") / f"{content_hash}.json"
    try:
        data = json.loads(cache.read_text())
        if data.get("version") == FACTS_VERSION:
            return financials_from_dict(data)
    except (OSError, ValueError, TypeError):
        pass
    fin = key_financials(path)
    with atomic_write(cache, "w") as handle:
        json.dump({"version": FACTS_VERSION, **fin.to_dict()}, handle)
    return fin


def key_financials(path: str | Path) -> Financials:
    """Parse the 10-K at ``path`` and return its key figures (see the module docstring)."""
    from filinglens.retrieval.parse import parse_filing

    path = Path(path)
    filing = parse_filing(path)
    return financials_from_filing(filing, path.read_bytes() if filing.source_type == "html" else None)
