"""Metric questions planned by the program: which metric, which years, which figures, which formula.

A small model asked "what is Walmart's FY2018 days payable outstanding?"
tends to invent the formula (or copy the prompt's example).  Standard
metrics have standard formulas, so they are data (``prompts/metrics/v1.yaml``):
:func:`plan_metric` reads from the question which metric is asked (the first
of the library's metrics, then line items, whose alias occurs in it), the
fiscal year(s), and whether a single value, a change between two years or an
N-year average is wanted; it expands the formula into the figures needed
(``accounts_payable_2018``, ``accounts_payable_2017``, ...) and one
expression over them.  The model is then only asked to find those figures in
the excerpts (``prompts/qa/figures-v1.yaml``); :func:`apply_plan` turns its
reply into the input of :func:`filinglens.agents.compute.compute`, which
checks every figure against its excerpt and evaluates the expression.

Before the model is asked, :func:`read_from_tables` reads each figure it
can from the statement tables (row by its whole label, column by the
heading's year); only the rest goes to the model, and when none is left no
model call is made.  :func:`plan_judgement` plans the yes/no questions a
metric decides ("positive working capital", "an improving gross margin") and
:func:`plan_choice` the "which of these line items is largest" ones.

A question the library does not cover (no alias, no fiscal year, an adjusted
or non-GAAP figure, a segment or per-share figure) gets no plan and goes to
the model-written formula of ``compute-v1``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from filinglens.agents.calc import render
from filinglens.agents.compute import amounts, figure_list
from filinglens.prompts.loader import LineItem, MetricLibrary, load_metric_library
from filinglens.retrieval.statements import statement_of_heading, statement_segment

_YEAR = re.compile(r"(?<![\d$.,])(?:FY\s*'?|fiscal\s+(?:year\s+)?)?((?:19|20)\d\d)(?![\d,])", re.I)
_AVERAGE = re.compile(r"\b(\d|two|three|four|five)[-\s]years?\s+average\b|\baverage\s+of\b.*\bbetween\b", re.I)
_CHANGE = re.compile(r"(?:year[-\s]over[-\s]year|\byoy\b|\bchanged?\b|\bgrowth\b|\bgrew\b)", re.I)
# "<line item> % margin", "<line item> as a % of revenue": the item over revenue
_OF_REVENUE = re.compile(r"^(?:\s*\([^)]{0,60}\))?\s*(?:%\s*|percent(?:age)?\s+)?margin\b|"
                         r"^\s*as\s+an?\s+(?:%|percent(?:age)?)\s+of\s+(?:total\s+)?(?:revenues?|sales)", re.I)
_DECIMALS = re.compile(r"\bround(?:ed)?\s+(?:\w+\s+){0,3}?to\s+(?:the\s+)?(one|two|three|zero|no|\d)\s+decimal", re.I)
_NUMBER_WORDS = {"zero": 0, "no": 0, "one": 1, "two": 2, "three": 3}
_PERCENT = re.compile(r"%|\bpercent(?:s|age)?\b", re.I)
_SCALE = re.compile(r"\b(?:usd|\$|dollars?)?\s*(thousands|millions|billions)\b", re.I)
# a line item asked about something narrower than the statement line: not a plain look-up
# (adjusted, non-GAAP, segment and per-share figures are refused before, by _NOT_STATEMENT)
_NARROWER = re.compile(r"\b(?:geograph\w*|regions?|countr(?:y|ies)|product\s+lines?|excluding|"
                       r"by\s+(?:product|business)|quarter(?:ly)?|\bq[1-4]\b|guidance|expect(?:s|ed)?|forecast)\b",
                       re.I)
# a figure the statements do not print as such: the library's formulas would compute something else
_NOT_STATEMENT = re.compile(r"\b(?:adjusted|non-gaap|pro\s+forma|segments?|per\s+share|organic)\b", re.I)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:@prev)?")


@dataclass
class NeededFigure:
    """One figure a plan needs: its expression name, line item and fiscal year."""

    name: str  # accounts_payable_2018
    item: str
    year: int
    item_def: LineItem

    def describe(self) -> str:
        when = f"at the end of fiscal {self.year}" if self.item_def.balance else f"for fiscal {self.year}"
        return f"{self.name}: {self.item_def.label}, {when} ({self.item_def.statement})"


@dataclass
class MetricPlan:
    """What the program computes for a metric question, and which figures the model must find."""

    metric: str  # the library's name ("days payable outstanding") or a line item's
    mode: str  # "value", "change", "percent change" or "average"
    years: list[int]
    expression: str
    unit: str
    figures: list[NeededFigure] = field(default_factory=list)
    per_year: dict[int, str] = field(default_factory=dict)  # the metric's expression for each year (change, average)
    base_unit: str = ""  # the unit of each year's value (a percent change of USD amounts: USD)
    decimals: int | None = None  # "round to one decimal place": the result is shown so
    test: str = ""  # a yes/no question's test of the result: "> 0", "< 0", ">= 1" or "direction"
    options: dict[str, str] = field(default_factory=dict)  # a choice: label -> its figure's name
    pick: str = "max"  # a choice: the largest ("max") or the smallest ("min") option
    library: str = ""  # metrics@v1

    @property
    def about(self) -> str:
        """The plan in words: "Days payable outstanding, fiscal 2018 (metrics@v1 formula)"."""
        name = f"{self.metric[0].upper()}{self.metric[1:]}"
        if self.options:
            size = "largest" if self.pick == "max" else "smallest"
            labels = list(self.options)
            among = ", ".join(labels[:-1]) + f" and {labels[-1]}"
            return f"{name}, fiscal {self.years[-1]}: the {size} of {among} ({self.library})"
        years = {"change": " − ".join(f"fiscal {y}" for y in reversed(self.years)),
                 "percent change": f"change from fiscal {self.years[0]} to {self.years[-1]} in %",
                 "average": f"average of fiscal {self.years[0]} to {self.years[-1]}"}.get(self.mode,
                                                                                        f"fiscal {self.years[-1]}")
        return f"{name}, {years} ({self.library} formula)"

    def figures_prompt(self, skip: Sequence[str] = ()) -> str:
        """The figures the model is asked to find, one per line (``skip``: those already read from tables)."""
        return "\n".join(f"- {f.describe()}" for f in self.figures if f.name not in skip)

    def statements(self) -> list[str]:
        """The statements (``retrieval/statements.py`` keys) that print the plan's line items, in first use."""
        return list(dict.fromkeys(_STATEMENT_KEYS[f.item_def.statement] for f in self.figures
                                  if f.item_def.statement in _STATEMENT_KEYS))

    def formula_prompt(self) -> str:
        return render(self.expression)

    def parts(self, zeros: Sequence[str] = ()) -> dict[str, str]:
        """Each year's expression by label ("fiscal 2021"), with the ``zeros`` figures written as 0; a
        choice's options by label."""
        if self.options:
            return dict(self.options)
        return {f"fiscal {y}": _zero(expr, zeros) for y, expr in self.per_year.items()}

    def choose(self, values: dict[str, float]) -> str | None:
        """A choice's answer: the label of the largest (or smallest) option among ``values`` (name -> value);
        None unless every option has a value."""
        if not self.options or any(name not in values for name in self.options.values()):
            return None
        order = sorted(self.options, key=lambda label: values[self.options[label]], reverse=self.pick == "max")
        return order[0]

    def verdict(self, value: float) -> str:
        """A yes/no question's answer from the computed ``value`` ("Yes", "No", "Improved", "Declined"), or ''."""
        if self.test == "direction":
            return "Improved" if value > 0 else "Declined" if value < 0 else "Unchanged"
        passed = {"> 0": value > 0, "< 0": value < 0, ">= 1": value >= 1}.get(self.test)
        return "" if passed is None else "Yes" if passed else "No"

    def to_dict(self) -> dict:
        return {"metric": self.metric, "mode": self.mode, "years": self.years, "expression": self.expression,
                "unit": self.unit, "figures": [f.name for f in self.figures], "library": self.library,
                "test": self.test}


def _find(aliases: list[str], question: str) -> re.Match | None:
    for alias in aliases:
        m = re.search(alias, question, re.I)
        if m:
            return m
    return None


def _usd_unit(question: str) -> str:
    """The dollar unit a question asks amounts in: "USD millions" for "... in USD millions", else "USD"."""
    scale = _SCALE.search(question)
    return f"USD {scale.group(1).lower()}" if scale else "USD"


def _years(question: str) -> list[int]:
    return sorted({int(m.group(1)) for m in _YEAR.finditer(question)})


def _expand(formula: str, year: int, library: MetricLibrary) -> tuple[str, list[tuple[str, int]]]:
    """``formula`` for fiscal ``year``: item names suffixed by their year, ``avg(x)`` as the two-year mean."""
    needed: list[tuple[str, int]] = []

    def name(item: str, y: int) -> str:
        if (item, y) not in needed:
            needed.append((item, y))
        return f"{item}_{y}"

    text = re.sub(r"\bavg\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)",
                  lambda m: f"(({m.group(1)} + {m.group(1)}@prev) / 2)", formula)

    def swap(m: re.Match) -> str:
        token = m.group(0)
        item, prev = token.removesuffix("@prev"), token.endswith("@prev")
        if item not in library.items:
            return token
        return name(item, year - 1 if prev else year)

    return _NAME.sub(swap, text), needed


def plan_metric(question: str, library: MetricLibrary | None = None) -> MetricPlan | None:
    """The plan for a metric ``question``, or None when the library does not cover it."""
    library = library or load_metric_library()
    q = " ".join(str(question).split())
    if _NOT_STATEMENT.search(q):
        return None
    formula = unit = metric = None
    match = None
    for definition in library.metrics:
        match = _find(definition.aliases, q)
        if match:
            formula, unit, metric = definition.formula, definition.unit, definition.name
            break
    if match is None:
        if _NARROWER.search(q):
            return None
        for item_name, item in library.items.items():
            match = _find(item.aliases, q)
            if match:
                formula, unit, metric = item_name, "USD", item.label.split(" (")[0]
                if item_name != "revenue" and _OF_REVENUE.search(q[match.end():]):
                    formula, unit, metric = f"{item_name} / revenue * 100", "%", f"{metric} as a % of revenue"
                break
    if match is None:
        return None
    years = _years(q)
    if not years:
        return None
    mode = "value"
    if len(years) >= 2 and _AVERAGE.search(q):
        mode, years = "average", list(range(years[0], years[-1] + 1))
    elif len(years) >= 2 and _CHANGE.search(q[:match.start()] + " " + q[match.end():match.end() + 40]):
        pct = bool(_PERCENT.search(q)) and unit != "%"
        mode, years = ("percent change" if pct else "change"), [years[0], years[-1]]
    else:
        years = [years[-1]]
    per_year: dict[int, str] = {}
    needed: list[tuple[str, int]] = []
    for y in years:
        expr, names = _expand(formula, y, library)
        per_year[y] = expr
        needed += [n for n in names if n not in needed]
    base_unit = unit
    if mode == "average":
        expression = "(" + " + ".join(f"({per_year[y]})" for y in years) + f") / {len(years)}"
    elif mode == "change":
        expression = f"({per_year[years[1]]}) - ({per_year[years[0]]})"
    elif mode == "percent change":
        expression = f"(({per_year[years[1]]}) - ({per_year[years[0]]})) / ({per_year[years[0]]}) * 100"
        unit = "%"
    else:
        expression = per_year[years[0]]
    usd = _usd_unit(q)
    unit, base_unit = (usd if u == "USD" else u for u in (unit, base_unit))
    figures = [NeededFigure(f"{item}_{y}", item, y, library.items[item]) for item, y in needed]
    rounding = _DECIMALS.search(q)
    decimals = None if not rounding else _NUMBER_WORDS.get(rounding.group(1).lower(), None)
    if rounding and decimals is None:
        decimals = int(rounding.group(1))
    return MetricPlan(metric=metric, mode=mode, years=years, expression=expression, unit=unit, figures=figures,
                      per_year=per_year if mode != "value" else {}, base_unit=base_unit, decimals=decimals,
                      library=library.ref)


_YES_NO = re.compile(r"^\W*(?:does|do|did|is|are|was|were|has|have|had)\b", re.I)
_RISE = re.compile(r"\b(?:improv\w*|increas\w*|grow\w*|grew|ris(?:e|en|ing)|rais(?:e|ed|ing)|expand\w*|higher)\b",
                   re.I)
_FALL = re.compile(r"\b(?:declin\w*|decreas\w*|deteriorat\w*|fall(?:en|ing)?|fell|shr[iu]nk\w*|lower|reduc\w*)\b",
                   re.I)
_HEALTHY = re.compile(r"\b(?:health(?:y)?|strong|adequate|sufficient|solid|good)\b", re.I)
_SIGN = re.compile(r"\b(positive|negative)\b", re.I)
#: metrics whose health is read against 1 (current assets cover current liabilities)
_COVERAGE = ("quick ratio", "working capital ratio", "operating cash flow ratio", "interest coverage ratio")


def plan_judgement(question: str, library: MetricLibrary | None = None) -> MetricPlan | None:
    """The plan for a yes/no question that a library metric decides ("Does X have positive working
    capital in FY2022?", "... an improving gross margin profile as of FY2022?", "Has X's quick ratio
    improved or declined between FY2023 and FY2022?"), with the test of its result; None otherwise."""
    q = " ".join(str(question).split())
    direction = re.search(r"\b(?:improv\w*|increas\w*)\s+or\s+(?:declin\w*|decreas\w*)\b", q, re.I)
    if not (_YES_NO.match(q) or direction) or _NOT_STATEMENT.search(q):
        return None
    library = library or load_metric_library()
    definition = next((d for d in library.metrics if _find(d.aliases, q)), None)
    years = _years(q)
    if definition is None or not years:
        return None
    head = q.split("?")[0]  # the question itself, not the "if it is not a useful metric ..." that follows
    if direction or _RISE.search(head) or _FALL.search(head):
        pair = [years[0], years[-1]] if len(years) >= 2 else [years[-1] - 1, years[-1]]
        plan = plan_metric(f"the change in {definition.name} between FY{pair[0]} and FY{pair[1]}",
                           _only(library, definition))
        if plan:
            plan.test = "direction" if direction else "< 0" if _FALL.search(head) and not _RISE.search(head) else "> 0"
        return plan
    plan = plan_metric(f"{definition.name} for FY{years[-1]}", _only(library, definition))
    if plan is None:
        return None
    sign = _SIGN.search(head)
    if sign:
        plan.test = "> 0" if sign.group(1).lower() == "positive" else "< 0"
    elif _HEALTHY.search(head) and definition.name in _COVERAGE:
        plan.test = ">= 1"
    return plan if plan.test else None


_MOST = re.compile(r"\b(?:most|largest|highest|biggest|greatest|maximum)\b", re.I)
_LEAST = re.compile(r"\b(?:least|lowest|smallest|minimum)\b", re.I)


def plan_choice(question: str, library: MetricLibrary | None = None) -> MetricPlan | None:
    """The plan for "which of these line items is largest (or smallest)?" ("Among operations, investing, and
    financing activities, which brought in the most cash flow for Nike in FY2023?"); None otherwise."""
    q = " ".join(str(question).split())
    if not re.search(r"\bwhich\b", q, re.I) or not (_MOST.search(q) or _LEAST.search(q)):
        return None
    library = library or load_metric_library()
    choice = next((c for c in library.choices if _find(c.aliases, q)), None)
    years = _years(q)
    if choice is None or not years:
        return None
    year = years[-1]
    figures = [NeededFigure(f"{item}_{year}", item, year, library.items[item]) for item in choice.options.values()]
    options = {label: f"{item}_{year}" for label, item in choice.options.items()}
    return MetricPlan(metric=choice.name, mode="choice", years=[year], expression=figures[0].name,
                      unit=_usd_unit(q), figures=figures, options=options, pick="max" if _MOST.search(q) else "min",
                      library=library.ref)


def _only(library: MetricLibrary, definition: Any) -> MetricLibrary:
    """``library`` with ``definition`` as its only metric (so its plan is that metric's)."""
    return library.model_copy(update={"metrics": [definition]})


def _key(name: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name or "").lower()).strip("_")


def apply_plan(plan: MetricPlan, data: dict) -> tuple[dict, list[str]]:
    """The model's reply to the figures prompt as input to ``compute``: its figures for the plan's names,
    the plan's expression and unit; a figure it did not find makes the reply a refusal naming it.

    Also returns the optional figures it did not find, written as 0 in the expression.
    """
    given: dict[str, dict] = {}
    for item in figure_list(data.get("figures")):
        if isinstance(item, dict) and _key(item.get("name")) not in given:
            given[_key(item.get("name"))] = item
    figures, missing, zeros = [], [], []
    for need in plan.figures:
        item = given.get(_key(need.name))
        if item is None or not _has_value(item) or (need.item_def.optional and _is_nil(item.get("value"))):
            if need.item_def.optional:  # absent, or given as 0 / "—": a line the statements do not have
                zeros.append(need.name)
                continue
            missing.append(need.name)
            continue
        item = {**item, "name": need.name}
        if need.item_def.sign == "abs":
            item["value"] = _unsigned(item.get("value"))
        figures.append(item)
    if missing:
        return {"sufficient": False, "figures": [], "missing": ", ".join(missing)}, zeros
    return {"figures": figures, "expression": _zero(plan.expression, zeros), "unit": plan.unit,
            "sufficient": True}, zeros


def _zero(expression: str, names: Sequence[str]) -> str:
    for name in names:
        expression = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", "0", expression)
    return expression


def _is_nil(value: Any) -> bool:
    """0, "0", "—", "-", "n/a" or "none": what a model writes for a line that is not printed."""
    text = str(value if value is not None else "").strip().lower()
    return text in ("", "0", "0.0", "-", "\u2014", "\u2013", "n/a", "na", "none", "null", "nil") or value == 0


def _has_value(item: dict) -> bool:
    value = item.get("value")
    if value is None:
        return len(amounts(str(item.get("quote") or ""))) == 1
    return not (isinstance(value, str) and not value.strip())


def _unsigned(value: Any) -> Any:
    """A cost as a positive amount: ``(4,625)`` and ``-4,625`` as ``4,625`` (the printed digits are kept)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(value)
    text = str(value or "").strip()
    return re.sub(r"^[\s(\-\u2212\u2013]+|[\s)]+$", "", text) or text


# --------------------------------------------------------------------------- figures read from statement tables

_COLUMN_YEAR = re.compile(r"(?<![\d,.$])((?:19|20)\d\d)(?!\d|,\d|%)")
_YEAR_RUN = re.compile(r"(?<![\d,.$])(?:19|20)\d\d(?:[ \t]*\|?[ \t]*(?:19|20)\d\d(?!\d|,\d|%))+")
_FIRST_ROW = re.compile(r"^[^|\n]{2,240}\|\s*\(?\$?\s*\(?\d", re.M)
#: a line item's ``statement`` -> the statement key of retrieval/statements.py that prints it
_STATEMENT_KEYS = {"balance sheet": "balance_sheet", "income statement": "income", "cash flow statement": "cash_flow"}


def column_years(excerpt: Any) -> list[int]:
    """The fiscal years of a statement excerpt's columns, in order, from its heading (``context``) or, without
    one, from its own text before its first row of figures; [] when it states none."""
    head = str(getattr(excerpt, "context", "") or "")
    if not head:
        text = str(getattr(excerpt, "text", "") or "")
        first = _FIRST_ROW.search(text)
        head = text[:first.start()] if first else ""
    runs = [m.group(0) for m in _YEAR_RUN.finditer(head)]
    years: list[int] = []
    for m in _COLUMN_YEAR.finditer(runs[-1] if runs else head):  # a header row "2022 | 2021 | 2020" when there is one
        if int(m.group(1)) not in years:
            years.append(int(m.group(1)))
    return years


def _label(raw: str) -> str:
    label = _NOTE_REF.sub(" ", re.sub(r"\(\d\)|\[\d\]|\*+", " ", raw))  # footnote marks, "(Note 7)"
    label = label.replace("\u2019", "'").replace("\u2014", "-").replace("\u2013", "-")
    label = re.sub(r"\s*/\s*\(", " (", label)  # "Income/(loss)" as "Income (loss)"
    return " ".join(label.split()).strip(" $:.")


_NOTE_OPEN = re.compile(r"\((?:see\s+)?notes?(?:\s+\d{1,2}\s+and)?$", re.I)
_NOTE_REF = re.compile(r"\((?:see\s+)?notes?\s+[\d,\sand]+\)", re.I)
_SECTION = re.compile(r"^[A-Za-z][A-Za-z ,&'()-]{2,60}:?$")
#: an amount as printed per share ("$5.06", "(1.19)"): two decimals, under 1,000
_PER_SHARE_CELL = re.compile(r"\(?\$?\s*\(?\d{1,3}\.\d\d\s*\)?")
#: a cell printed as a dash: nothing, that is 0 ("Short-term borrowings | 316 | —")
_DASH = re.compile(r"\$?\s*[-\u2013\u2014]+")
_PER_SHARE = re.compile(r"\bper\s+(?:common\s+|ordinary\s+)?share\b", re.I)


def table_rows(text: str, columns: int) -> list[tuple[str, list[str], str]]:
    """(label, cells, line) for each row of ``text`` with ``columns`` numeric cells.

    A row with no label that follows a section heading ("Revenues", then its
    lines, then "5,162,082 | 12,899,672 | 11,763,096") is that section's
    total: it is labelled "Total revenues".  Rows under a per-share heading
    ("Basic Earnings Per Common Share") are left out: their labels repeat the
    amounts' ("Net income attributable to Verizon | $5.06").
    """
    rows, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if "|" not in line:
            if _SECTION.match(line):
                section = line.rstrip(":").strip()
            continue
        parts = [c.strip() for c in line.split("|")]
        if len(parts) > 2 and _NOTE_OPEN.search(parts[0]) and re.fullmatch(r"\d{1,2}\)", parts[1]):
            parts = [f"{parts[0]} {parts[1]}", *parts[2:]]  # "Provision for income taxes (Note | 7) | (411)"
        if len(amounts(parts[0])) == 1 and not re.search(r"[A-Za-z]{3}", parts[0]):
            label, cells = (f"Total {section.lower()}" if section else ""), parts  # an unlabelled total
            section = ""
        else:
            label, cells = _label(parts[0]), parts[1:]
        cells = [c for c in cells if c not in ("", "$")]
        if all(re.fullmatch(r"(?:19|20)\d\d", c) for c in cells):  # the column headers
            continue
        if _PER_SHARE.search(section):  # "Basic earnings per common share: Net income attributable to X | $5.06"
            continue
        if (label and len(cells) == columns and all(len(amounts(c)) == 1 or _DASH.fullmatch(c) for c in cells)
                and not all(_DASH.fullmatch(c) for c in cells)):
            rows.append((label, cells, line))
    return rows


def read_parts(plan: MetricPlan, used: Sequence[Any], found: dict[str, dict],
               library: MetricLibrary | None = None) -> tuple[MetricPlan, dict[str, dict]]:
    """``plan`` with each figure not read (not in ``found``) whose line item has ``parts`` replaced by those
    parts, when every part is read from the statement tables in ``used`` for its year: Boeing prints "Cost
    of products" and "Cost of services" and no total, so ``cost_of_revenue_2022`` becomes
    ``(cost_of_products_2022 + cost_of_services_2022)`` in the expression, each part a quoted row.
    Returns the plan (the same object when nothing was split) and ``found`` with the parts added."""
    split: dict[str, list[NeededFigure]] = {}
    for need in plan.figures:
        if need.name in found or not need.item_def.parts:
            continue
        library = library or load_metric_library()
        parts = [NeededFigure(f"{part}_{need.year}", part, need.year, library.items[part])
                 for part in need.item_def.parts]
        read = read_rows(parts, used)
        if len(read) == len(parts):
            split[need.name] = parts
            found = {**found, **read}
    if not split:
        return plan, found

    def swap(expression: str) -> str:
        return re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda m: "(" + " + ".join(p.name for p in split[m.group(0)])
                      + ")" if m.group(0) in split else m.group(0), expression)

    figures = [p for f in plan.figures for p in split.get(f.name, [f])]
    plan = dataclasses.replace(plan, figures=figures, expression=swap(plan.expression),
                               per_year={y: swap(e) for y, e in plan.per_year.items()},
                               options={k: swap(v) for k, v in plan.options.items()})
    return plan, found


_FLOWS = ("income", "cash_flow")


def _fiscal_balance_years(tables: list, filing_ids: Sequence[str]) -> list:
    """``tables`` with each balance sheet's column years put in the filing's fiscal-year names.

    A company whose fiscal 2024 ends on February 2, 2025 heads its income and cash flow statements
    "Fiscal 2024 | 2023 | 2022" but dates its balance sheet "February 2, 2025 | January 28, 2024": when a
    filing's latest balance-sheet year is one after its latest income or cash-flow year, the balance sheet's
    years are named like the flows' (2025 -> 2024).  Excerpts are grouped by filing (``filing_ids``).
    """
    latest_flow: dict[str, set[int]] = {}
    latest_balance: dict[str, set[int]] = {}
    for n, statement, years, _ in tables:
        key = filing_ids[n - 1]
        if statement in _FLOWS:
            latest_flow.setdefault(key, set()).add(max(years))
        elif statement == "balance_sheet":
            latest_balance.setdefault(key, set()).add(max(years))
    shifted = {key for key, flows in latest_flow.items()
               if len(flows) == 1 and latest_balance.get(key) == {max(flows) + 1}}
    if not shifted:
        return tables
    return [(n, statement, [y - 1 for y in years] if statement == "balance_sheet" and filing_ids[n - 1] in shifted
             else years, rows) for n, statement, years, rows in tables]


def cell_value(cell: str) -> float:
    """The number a statement cell prints; 0 for a dash ("—", "$—": nothing printed)."""
    found = amounts(cell)
    return found[0].value if found else 0.0


def read_from_tables(plan: MetricPlan, used: Sequence[Any]) -> dict[str, dict]:
    """The plan's figures read from statement tables in the excerpts ``used``, by name.

    A figure is read from an excerpt of the statement its line item is printed
    in (named by the excerpt's heading, ``context``) when a row whose whole
    label matches one of the item's ``rows`` patterns (the earliest pattern that matches any row wins)
    has one cell per column year of the excerpt's heading, and every such row
    gives the same number for the figure's year.  Each is a reply-shaped
    figure (``name``, ``evidence``, ``quote`` = the row, ``value`` = the cell);
    a figure not read this way is left to the model.
    """
    return read_rows(plan.figures, used)


def read_rows(figures: Sequence[NeededFigure], used: Sequence[Any]) -> dict[str, dict]:
    """:func:`read_from_tables` for any list of needed ``figures`` (a plan's, or the parts of one of its items)."""
    tables = []
    for n, excerpt in enumerate(used, start=1):
        statement = statement_of_heading(getattr(excerpt, "context", ""))
        years = column_years(excerpt) if statement else []
        if years:
            tables.append((n, statement, years, table_rows(statement_segment(str(excerpt.text), statement),
                                                           len(years))))
    tables = _fiscal_balance_years(tables, [getattr(e, "filing_id", "") or "" for e in used])
    found: dict[str, dict] = {}
    for need in figures:
        best: list[tuple[int, str, str]] = []
        for pattern in need.item_def.rows:
            best = [(n, cells[years.index(need.year)], line) for n, statement, years, rows in tables
                    if need.year in years and statement == _STATEMENT_KEYS.get(need.item_def.statement)
                    for label, cells, line in rows if re.fullmatch(pattern, label, re.I)]
            if best:
                break
        if len({cell_value(cell) for _, cell, _ in best}) > 1:  # a per-share line named like the amount
            best = [b for b in best if not _PER_SHARE_CELL.fullmatch(b[1].strip())] or best
        if best and len({cell_value(cell) for _, cell, _ in best}) == 1:
            n, cell, line = best[0]
            if _DASH.fullmatch(cell) and not need.item_def.optional:
                continue  # printed as nothing: a line the optional items may lack, else left to the model
            found[need.name] = {"name": need.name, "evidence": n, "quote": line[:400], "value": cell}
    return found


# --------------------------------------------------------------------------- metrics a company does not report

#: a question that allows "not a useful metric" as its answer ("If gross margin is not a useful metric for a
#: company like this, then state that and explain why")
_NOT_USEFUL_ALLOWED = re.compile(r"\bif\b[^.?]{0,80}?\b(?:(?:is|are)\s+not|isn't|aren't)\s+(?:a\s+|an\s+)?"
                                 r"(?:useful|relevant|meaningful|something)\b", re.I)
#: income-statement rows of a lender (a bank, a card issuer): interest margin and credit losses
_LENDER_ROW = re.compile(r"(?:total\s+)?net\s+interest\s+income(?:\s+after\s+.*)?|"
                         r"(?:total\s+)?provisions?\s+for\s+(?:credit|loan)\s+losses", re.I)
#: line items of a company that sells goods or services, which a lender's statements do not print
_SELLER_ITEMS = ("cost_of_revenue", "operating_income", "inventory", "total_current_assets",
                 "total_current_liabilities")


def allows_not_useful(question: str) -> bool:
    """Whether ``question`` accepts "this metric is not useful for a company like this" as its answer."""
    return bool(_NOT_USEFUL_ALLOWED.search(question))


def not_useful_reason(question: str, plan: MetricPlan | None, excerpts: Sequence[Any]) -> tuple[str, int, str] | None:
    """(why, excerpt number, row) when ``question`` allows "not a useful metric" and the company is a lender.

    That is: the question asks about a metric built on a seller's line items (cost of sales, operating
    income, inventory, current assets or liabilities), none of those items is printed in the statement
    ``excerpts``, and the income statement has a lender's rows (net interest income, provisions for credit
    losses).  The reason names the row found; the excerpt number cites it.
    """
    if plan is None or not allows_not_useful(question):
        return None
    seller = [f for f in plan.figures if f.item in _SELLER_ITEMS]
    if not seller or read_rows(seller, excerpts):
        return None
    for n, excerpt in enumerate(excerpts, start=1):
        statement = statement_of_heading(getattr(excerpt, "context", ""))
        years = column_years(excerpt) if statement == "income" else []
        for label, _, line in table_rows(statement_segment(str(excerpt.text), "income"), len(years)) if years else []:
            if _LENDER_ROW.fullmatch(label):
                missing = ", ".join(dict.fromkeys(f.item_def.label.split(" (")[0] for f in seller))
                why = (f"{plan.metric[0].upper()}{plan.metric[1:]} is not a useful metric for this company: it is a "
                       f"lender, whose income statement reports {label.lower()} rather than {missing}. A lender's "
                       f"performance is measured through its net interest income, credit losses and expenses "
                       f"instead.")
                return why, n, line[:400]
    return None


def same_row_clash(plan: MetricPlan, figures: Sequence[dict]) -> str | None:
    """Two different line items quoted from one statement row (a model giving "Net income" for both revenue
    and operating income): the reason to refuse, else None."""
    item = {f.name: f.item for f in plan.figures}
    seen: dict[str, str] = {}
    for figure in figures:
        name = str(figure.get("name"))
        quote = " ".join(str(figure.get("quote") or "").split()).lower()
        if name not in item or "|" not in quote:
            continue
        other = seen.setdefault(quote, name)
        if item[other] != item[name]:
            return f"figures '{other}' and '{name}' are two line items quoted from the same row ({quote[:80]!r})"
    return None
