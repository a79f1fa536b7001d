"""Answers that compute: figures quoted from the evidence, an expression over them, a checked result.

For a metric question ("what is the FY2021 working capital ratio ...?") the
model does no arithmetic.  It names the figures it needs -- each with the
excerpt it comes from, a quote, and the number as printed -- and writes an
arithmetic expression over their names.  This module then

1. reads every figure's number (``$``, thousands commas, ``(1,161)`` and
   ``-1,161`` for negatives, ``%``, ``million``/``billion``/``thousand`` and
   ``M``/``bn`` understood) and checks that it occurs in the cited excerpt's
   chunk text -- the filing itself; a number found only in another excerpt is
   re-attributed to that one; a number found in none makes the answer a
   refusal that names the figure;
2. evaluates the expression with :mod:`filinglens.agents.calc` (no ``eval``);
3. composes the answer from the computed value only ("5,818 (USD millions).
   Calculation: a − b = 19,815 − 13,997 = 5,818. Figures: a = 19,815 (E1) ...")
   -- numbers the model wrote in its own answer text are not shown.

When the model says a figure is missing, or a figure cannot be traced, or the
expression is unsafe or undefined, the answer refuses with that reason instead
of guessing.  :func:`trace_numbers` says, for any answer, which of its numbers
trace to a verified quote or to the shown calculation.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from filinglens.agents.calc import CalcError, evaluate, names_in, parse, render

MAX_FIGURES = 12
REL_EQUAL = 1e-9  # a figure's number must equal the printed one (after units), not approximately

# --------------------------------------------------------------------------- metric questions

_YES_NO = re.compile(r"^\W*(?:does|do|did|is|are|was|were|has|have|had|can|could|will|would|should|may)\b", re.I)
_ASKS_VALUE = re.compile(r"\b(?:what\s+(?:is|was|were|are|would\s+be)|how\s+much|how\s+many|calculate|compute)\b",
                         re.I)
_QUANTITY = re.compile(
    r"\b(?:ratios?|margins?|turnover|rates?|percent(?:age)?|usd|dollars?|amounts?|totals?|averages?|changes?|"
    r"growth|days|ebitda|ebit|capex|capital\s+expenditures?|cash\s+flows?|income|revenues?|sales|liabilit(?:y|ies)|"
    r"assets|inventor(?:y|ies)|payables?|receivables?|working\s+capital|expenses?|costs?|debt|earnings|eps|"
    r"dividends?|yield|return\s+on|per\s+share|profit|equity|spending|outstanding)\b|%",
    re.I)
_NOT_A_VALUE = re.compile(r"\b(?:which|largest|biggest|smallest|drove|drive|driven|caused|why|explain|describe|"
                          r"list|name\s+the|strateg(?:y|ies)|polic(?:y|ies)|plans?|approach|risks?|factors?|"
                          r"outlook|business\s+model)\b", re.I)


def is_metric_question(question: str) -> bool:
    """Whether ``question`` asks for a value to look up or compute (not yes/no, not "which"/"why")."""
    q = " ".join(str(question).split())
    if _YES_NO.match(q) or _NOT_A_VALUE.search(q):
        return False
    if re.search(r"\bhow\s+(?:much|many)\b", q, re.I):
        return True
    return bool(_ASKS_VALUE.search(q) and _QUANTITY.search(q))


# --------------------------------------------------------------------------- numbers as printed


@dataclass(frozen=True)
class Amount:
    """A number as printed: its value (sign applied), scale word and percent sign."""

    text: str
    value: float
    scale: float | None = None  # 1e3, 1e6, 1e9 when a scale word follows
    pct: bool = False
    decimals: int = 0  # digits after the decimal point as printed


_SCALES = {"thousand": 1e3, "thousands": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "mn": 1e6, "mm": 1e6,
           "m": 1e6, "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9}
_AMOUNT = re.compile(
    r"(?P<open>\()?[ \t]?(?P<neg>[-\u2212\u2013])?[ \t]?(?P<cur>\$|USD[ \t]?)?[ \t]?(?P<open2>\()?"
    r"(?<![A-Za-z_\d])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?!\d|[,.]\d|[-\u2013][A-Za-z])"
    r"(?P<close>[ \t]?\))?"
    r"(?P<unit>[ \t]?(?:%|percent\b)|[ \t]?(?:thousands?|millions?|billions?)\b|(?:k|m|mn|mm|b|bn)\b)?",
    re.I,
)


def amounts(text: str) -> list[Amount]:
    """Every number printed in ``text``: ``(1,161)`` and ``-1,161`` negative, scale words as ``scale``."""
    return [_amount(m) for m in _AMOUNT.finditer(str(text or ""))]


def _amount(m: re.Match) -> Amount:
    value = float(m.group("num").replace(",", ""))
    negative = bool(m.group("neg")) or bool((m.group("open") or m.group("open2")) and m.group("close"))
    unit = (m.group("unit") or "").strip().lower()
    decimals = len(m.group("num").split(".")[1]) if "." in m.group("num") else 0
    return Amount(m.group(0).strip(), -value if negative else value, _SCALES.get(unit), unit in ("%", "percent"),
                  decimals)


def read_amount(value: Any) -> Amount:
    """The one number a model gave for a figure (a JSON number or text such as ``"$(1,161) million"``)."""
    if isinstance(value, bool):
        raise ValueError("a figure's value must be a number, not true/false")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("a figure's value must be a finite number")
        text = repr(float(value))
        decimals = len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0
        return Amount(format_number(float(value)), float(value), decimals=decimals)
    found = amounts(str(value or ""))
    if len(found) != 1:
        shown = str(value)[:40]
        raise ValueError(f"a figure's value must be one number, not {shown!r}" if str(value).strip()
                         else "a figure has no value")
    return found[0]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_EQUAL * max(abs(a), abs(b), 1.0)


def same_amount(figure: Amount, printed: Amount) -> bool:
    """Whether ``figure`` is the number ``printed`` (signs may be said in words; a table's unit may be elsewhere)."""
    f, p = abs(figure.value), abs(printed.value)
    if figure.scale and printed.scale:
        return _close(f * figure.scale, p * printed.scale)
    if _close(f, p):
        return True
    if figure.scale and not printed.scale:  # "$1.2 billion" against "1,200" in a table "in millions"
        return any(_close(f * figure.scale, p * unit) for unit in (1e3, 1e6, 1e9))
    if printed.scale and not figure.scale:  # 1200000000 against "$1.2 billion"
        return _close(f, p * printed.scale)
    return False


def occurs(figure: Amount, text: str) -> bool:
    """Whether the number ``figure`` is printed in ``text``."""
    return any(same_amount(figure, printed) for printed in amounts(text))


# --------------------------------------------------------------------------- quotes


def _plain(text: str) -> str:
    text = str(text).replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u2014", "-").replace("|", " ")
    return re.sub(r"\s+", " ", text).strip().lower().strip(" .\"'\u2026")


def quote_in(quote: str, text: str) -> bool:
    """Whether ``quote`` occurs in ``text`` (case, whitespace, quote marks and table bars ``|`` ignored)."""
    q = _plain(quote)
    return bool(q) and q in _plain(text)


def line_with(figure: Amount, text: str, width: int = 160) -> str:
    """The line of ``text`` that prints ``figure`` (cut to about ``width`` characters around it), verbatim."""
    for line in str(text).splitlines():
        line = " ".join(line.split())
        for m in _AMOUNT.finditer(line):
            if same_amount(figure, _amount(m)):
                if len(line) <= width:
                    return line
                at = max(0, m.start() - width // 2)
                return line[at: at + width].strip()
    return ""


# --------------------------------------------------------------------------- the calculation


@dataclass
class Figure:
    """One figure the model used: where it says it comes from, and whether that holds."""

    name: str
    value: float
    printed: str  # the value as the model gave it
    evidence: int  # the excerpt E<n> it traces to (after re-attribution)
    chunk_id: str = ""
    citation: str = ""
    quote: str = ""
    quote_verified: bool = False  # the quote occurs in the excerpt
    traced: bool = False  # the number occurs in the excerpt
    note: str = ""
    scale: float | None = None  # the unit its table prints in ("(In thousands)": 1e3), when the excerpt says


@dataclass
class Calculation:
    """The figures, the expression, and the value computed from them (or why there is none)."""

    expression: str = ""
    figures: list[Figure] = field(default_factory=list)
    value: float | None = None
    unit: str = ""
    result: str = ""  # the value as shown
    shown: str = ""  # "Calculation: ... = ..." as shown in the answer
    model_answer: str = ""  # what the model itself wrote (not shown: its numbers are not checked)
    refusal: str | None = None
    scale_note: str = ""  # "figures in thousands" when the result was converted to the unit asked for
    about: str = ""  # what was computed, in words, when the program chose the formula (agents/metrics.py)
    parts: str = ""  # the metric in each year of a change or an average ("fiscal 2021: 20%; fiscal 2022: 23%")

    def to_dict(self) -> dict:
        return asdict(self)


class Refusal(ValueError):
    """The figures or the expression do not support an answer (a one-line reason)."""


def _name(raw: Any, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", str(raw or "").strip()).strip("_")
    if not base or not base[0].isalpha():
        base = "f_" + base if base else "figure"
    base = base[:60]
    name, k = base, 2
    while name in taken or name in ("round", "abs"):
        name, k = f"{base}_{k}", k + 1
    return name


def _excerpt(raw: Any, count: int) -> int | None:
    try:
        n = int(str(raw if raw is not None else "").strip().lstrip("Ee[").rstrip("]"))
    except ValueError:
        return None
    return n if 1 <= n <= count else None


def figure_list(raw: Any) -> list:
    """A reply's ``figures`` as a list: ``{"revenue_2023": "4,210", ...}`` (names and values only, found in any
    excerpt) as ``[{"name": "revenue_2023", "value": "4,210"}, ...]``; [] when it is neither."""
    if isinstance(raw, dict):
        return [{"name": k, "value": v} for k, v in raw.items()]
    return raw if isinstance(raw, list) else []


def read_figures(raw: Any, used: Sequence[Any]) -> tuple[list[Figure], dict[str, str]]:
    """The model's figures checked against the excerpts ``used``; ``Refusal`` when one cannot be traced.

    Also returns how the model's own names map to safe expression names.
    """
    raw = figure_list(raw)
    if not raw:
        raise Refusal("the model named no figures from the excerpts")
    if len(raw) > MAX_FIGURES:
        raise Refusal(f"too many figures ({len(raw)}, at most {MAX_FIGURES})")
    figures: list[Figure] = []
    renamed: dict[str, str] = {}
    scales: set[float | None] = set()
    for k, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise Refusal(f"figure {k} is not an object with name, evidence, quote and value")
        label = str(item.get("name") or f"figure_{k}").strip()
        name = _name(label, {f.name for f in figures})
        renamed[label] = name
        quote = " ".join(str(item.get("quote") or "").split())[:400]
        n = _excerpt(item.get("evidence"), len(used))
        try:
            if item.get("value") is None and quote and len(amounts(quote)) == 1:
                amount = amounts(quote)[0]  # the quote holds exactly one number: that is the value
            else:
                amount = read_amount(item.get("value"))
        except ValueError as exc:
            raise Refusal(f"figure {label!r}: {exc}") from None
        figure = Figure(name=name, value=amount.value, printed=amount.text, evidence=n or 0, quote=quote)
        scales.add(amount.scale)
        order = ([n] if n else []) + [i for i in range(1, len(used) + 1) if i != n]
        for i in order:
            text = used[i - 1].text
            if occurs(amount, text):
                figure.evidence, figure.traced = i, True
                figure.quote_verified = bool(quote) and quote_in(quote, text) and occurs(amount, quote)
                notes = [f"cited E{n}, found in E{i}"] if n and i != n else []
                if not figure.quote_verified:  # quote the excerpt's own line that prints the number instead
                    notes.append(f"the model's quote {quote[:80]!r} is not in the excerpt" if quote else
                                 "no quote given")
                    figure.quote = line_with(amount, text)
                    figure.quote_verified = bool(figure.quote)
                figure.note = "; ".join(notes)
                break
        if not figure.traced:
            where = f"excerpt E{n}" if n else "any excerpt"
            raise Refusal(f"figure {label!r} ({amount.text}) does not occur in {where}")
        ev = used[figure.evidence - 1]
        figure.chunk_id, figure.citation = ev.chunk_id, ev.citation
        figure.scale = amount.scale or table_scale(ev)
        figures.append(figure)
    explicit = {s for s in scales if s}
    if len(explicit) > 1:  # "$1.2 billion" and "800 million": both in the smaller unit (1,200 and 800)
        base = min(explicit)
        for figure, item in zip(figures, raw):
            amount = read_amount(item.get("value")) if item.get("value") is not None else None
            if amount is not None and amount.scale and amount.scale != base:
                figure.value = amount.value * amount.scale / base
                figure.scale = base
                figure.note = (figure.note + "; " if figure.note else "") + \
                    f"{amount.text} written as {format_number(figure.value)} {_SCALE_WORDS[base]}"
    return figures, renamed


_SCALE_WORDS = {1e3: "thousand", 1e6: "million", 1e9: "billion"}
#: a table's unit as statements print it: "(In thousands, except ...)", "(Dollars in millions)", "(Millions, except ...)",
#: "$ in millions"
_TABLE_SCALE = re.compile(r"(?:\((?:[A-Za-z$ ,]{0,24}\b)?(?:in\s+)?|\$\s*in\s+)(thousands|millions|billions)\b", re.I)
#: a statement heading may also say it bare: "in millions, except per share data", "Millions, Except Share ..."
_HEADING_SCALE = re.compile(r"\bin\s+(thousands|millions|billions)\b|\b(thousands|millions|billions)"
                            r"(?:\s+of\s+(?:u\.s\.\s+)?dollars)?,?\s+except\b", re.I)


def table_scale(excerpt: Any) -> float | None:
    """The unit an excerpt's table prints its figures in, from its context (a statement's heading) or its
    own text; None when it does not say, or says two different things."""
    context = str(getattr(excerpt, "context", "") or "")
    found = {_SCALES[m.group(1).lower()] for text in (context, excerpt.text)
             for m in _TABLE_SCALE.finditer(str(text or ""))}
    found |= {_SCALES[(m.group(1) or m.group(2)).lower()] for m in _HEADING_SCALE.finditer(context)}
    return found.pop() if len(found) == 1 else None


def _unit_scale(unit: str) -> float | None:
    """The scale a result's unit names: "USD millions" -> 1e6; None when it names none."""
    u = str(unit or "").lower()
    return next((s for s, word in _SCALE_WORDS.items() if word in u), None)
#: Constants an expression may use besides the figures: counts, averaging, percent, days, unit changes.
STRUCTURAL = frozenset([*range(0, 13), 100, 360, 365, 1000, 1e6, 1e9, 0.5])


def _rename(expression: str, renamed: dict[str, str]) -> str:
    """The expression with the model's figure labels replaced by their safe names (longest first, any case)."""
    text = str(expression or "").split("=")[0]  # "a - b = 5818": the model's own result is not used
    names = {**{name: name for name in renamed.values()}, **renamed}
    for label in sorted(names, key=len, reverse=True):
        if label:
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(label)}(?![A-Za-z0-9_])", names[label], text, flags=re.I)
    return text


def _figures_for_constants(expression: str, figures: Sequence[Figure]) -> str:
    """The expression with numbers that are figures' values written as the figures' names.

    Any other number must be structural (:data:`STRUCTURAL`: 2 for an
    average, 100 for a percentage, 365 days, 1000 for a unit change, round's
    digits); a number the model typed itself is a :class:`Refusal`, since it
    would not be traced to the evidence.
    """
    tree = parse(expression, {f.name: f.value for f in figures})
    by_value = {}
    for f in figures:
        by_value.setdefault(abs(f.value), f)

    class _Swap(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            node.args = [self.visit(node.args[0]), *node.args[1:]]  # round's digits stay a number
            return node

        def visit_Constant(self, node: ast.Constant) -> ast.AST:
            value = float(node.value)
            figure = by_value.get(abs(value))
            if figure is not None and value not in STRUCTURAL:
                name = ast.Name(id=figure.name, ctx=ast.Load())
                if (value < 0) != (figure.value < 0):
                    return ast.copy_location(ast.UnaryOp(op=ast.USub(), operand=name), node)
                return ast.copy_location(name, node)
            if value not in STRUCTURAL:
                raise Refusal(f"the expression uses {format_number(value)}, which is not one of the quoted figures")
            return node

    return ast.unparse(_Swap().visit(tree.body))


def format_number(value: float) -> str:
    """A value as an analyst writes it: thousands commas, at most two decimals (one from 100 up)."""
    if value == 0:
        return "0"
    digits = 0 if abs(value) >= 1000 and float(value).is_integer() else 1 if abs(value) >= 100 else 2
    text = f"{abs(value):,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return ("\u2212" if value < 0 else "") + text


def format_result(value: float, unit: str) -> str:
    """``value`` with its unit: ``12.3%``, ``$5,818 million``, ``0.68``, ``42.69 days``."""
    u = " ".join(str(unit or "").lower().split())
    number = format_number(value)
    if "%" in u or "percent" in u:
        return f"{number}%"
    scale = next((w for w in ("thousand", "million", "billion") if w in u), "")
    if "usd" in u or "$" in u or "dollar" in u:
        sign = "\u2212" if number.startswith("\u2212") else ""
        return f"{sign}${number.lstrip(chr(0x2212))}" + (f" {scale}" if scale else "")
    if scale:
        return f"{number} {scale}"
    if u in ("", "ratio", "times", "x", "number", "none"):
        return number
    word = re.sub(r"[^a-z ]", "", u).strip()[:20]
    return f"{number} {word}" if word else number


def compute(data: dict, used: Sequence[Any], *, about: str = "", parts: dict[str, str] | None = None,
            parts_unit: str | None = None, decimals: int | None = None, keep_all: bool = False) -> Calculation:
    """Check the model's figures against the excerpts ``used`` and evaluate its expression.

    ``data``: the model's JSON (``figures``, ``expression``, ``unit``,
    ``answer``, ``sufficient``, ``missing``), or a metric plan's
    (``agents/metrics.py``), which also says ``about`` (the formula in words,
    shown instead of the model's) and ``parts``: sub-expressions shown with
    their values (each year of a change or an average), in ``parts_unit``;
    ``decimals``: the result is shown rounded to these (as the question asks);
    ``keep_all``: figures the expression does not use are still listed (a choice's other options).
    Never raises for bad model output: the returned calculation then has
    ``refusal`` set.
    """
    calc = Calculation(expression=" ".join(str(data.get("expression") or "").split())[:400],
                       unit=" ".join(str(data.get("unit") or "").split())[:40],
                       model_answer=" ".join(str(data.get("answer") or "").split())[:400],
                       about=about)
    said_sufficient = data.get("sufficient", True)
    if said_sufficient is False or str(said_sufficient).lower() == "false":
        missing = " ".join(str(data.get("missing") or data.get("reason") or "").split())[:200]
        calc.refusal = f"a needed figure is not in the excerpts ({missing})" if missing else \
            "the model found the needed figures missing from the excerpts"
        return calc
    try:
        calc.figures, renamed = read_figures(data.get("figures"), used)
        if not calc.expression:
            if len(calc.figures) != 1:
                raise Refusal("there is no expression combining the figures")
            calc.expression = calc.figures[0].name
        calc.expression = _figures_for_constants(_rename(calc.expression, renamed), calc.figures)
        scales = {f.scale for f in calc.figures}
        calc.unit = _with_table_scale(calc.unit, scales)
        values, divisor = _values_in(calc.figures, calc.unit)
        calc.value = evaluate(calc.expression, values) / divisor
        if divisor != 1.0:
            calc.scale_note = "figures in " + " and ".join(_SCALE_WORDS[s] + "s" for s in sorted(scales))
        calc.parts = _parts(parts or {}, calc.figures, _with_table_scale(parts_unit or calc.unit, scales))
        unused = [] if keep_all else [f.name for f in calc.figures if f.name not in names_in(calc.expression)]
    except (Refusal, CalcError) as exc:
        calc.refusal = str(exc)
        calc.value = None
        return calc
    calc.figures = [f for f in calc.figures if f.name not in unused]
    calc.result = format_result(calc.value if decimals is None else round(calc.value, decimals), calc.unit)
    shown = {f.name: _operand(f.value) for f in calc.figures}
    if calc.expression in shown:  # a figure looked up, nothing computed
        calc.shown = ""
    else:
        calc.shown = f"Calculation: {render(calc.expression)} = {render(calc.expression, shown.get)} = {calc.result}"
    if calc.scale_note:  # the conversion is shown, also for a figure looked up
        calc.shown = (calc.shown or f"Calculation: {render(calc.expression, shown.get)} = {calc.result}") + \
            f" ({calc.scale_note})"
    return calc


def _with_table_scale(unit: str, scales: set[float | None]) -> str:
    """A dollar unit that names no scale, given the one scale its figures' tables print in ("USD thousands")."""
    if "usd" in unit.lower() and _unit_scale(unit) is None and len(scales) == 1 and None not in scales:
        return f"{unit} {_SCALE_WORDS[next(iter(scales))]}s"
    return unit


def _values_in(figures: Sequence[Figure], unit: str) -> tuple[dict[str, float], float]:
    """The figures' values, and the divisor, that give a result in ``unit``: when their tables print another
    scale (thousands, the answer asked in millions) in dollars, divided by the unit's scale; else as printed."""
    target = _unit_scale(unit)
    scales = {f.scale for f in figures}
    if target and None not in scales and scales != {target}:
        return {f.name: f.value * f.scale for f in figures}, target
    return {f.name: f.value for f in figures}, 1.0


def _parts(parts: dict[str, str], figures: Sequence[Figure], unit: str) -> str:
    """Each part's value in ``unit`` (converted like the result when the figures' tables print another unit)."""
    values, divisor = _values_in(figures, unit)
    shown = []
    for label, expression in parts.items():
        try:
            shown.append(f"{label}: {format_result(evaluate(expression, values) / divisor, unit)}")
        except CalcError:  # a part that divides by zero is left out; the result itself was computed
            continue
    return "; ".join(shown)


def _operand(value: float) -> str:
    text = format_number(value)
    return f"({text})" if value < 0 else text


def compose(calc: Calculation) -> str:
    """The answer text of a successful calculation: the result, the calculation, and where each figure is."""
    lead = calc.result + "."
    words = calc.model_answer
    if calc.about:  # the program's formula, named
        lead += " " + calc.about.rstrip(".") + "."
    elif words and not re.search(r"\d", words):  # the model's words, when they carry no number of their own
        lead += " " + words.rstrip(".") + "."
    if calc.parts:
        lead += " " + calc.parts + "."
    figures = "; ".join(f"{f.name} = {format_number(f.value)} (E{f.evidence})" for f in calc.figures)
    parts = [lead]
    if calc.shown:
        parts.append(calc.shown + ".")
    parts.append(("Figures: " if len(calc.figures) > 1 else "Figure: ") + figures + ".")
    return " ".join(parts)


# --------------------------------------------------------------------------- tracing the numbers of any answer

_YEAR = re.compile(r"^(?:19|20)\d\d$")


def trace_numbers(answer: str, quotes: Sequence[str], calculation: dict | None = None) -> dict:
    """Which numbers of ``answer`` trace to a verified quote or to the shown calculation.

    ``quotes``: the answer's verified quotes (each checked against the
    filing).  Years (1900-2099 written bare) are not counted.  Returns
    ``{"numbers", "traced", "untraced": [...], "all_traced"}``; ``all_traced``
    is None for an answer without numbers.
    """
    sources: list[Amount] = []
    for quote in quotes:
        sources.extend(amounts(quote))
    if calculation and calculation.get("value") is not None:
        sources.append(Amount("result", float(calculation["value"])))
        sources.extend(Amount(f["name"], float(f["value"])) for f in calculation.get("figures") or [])
        shown = calculation.get("shown") or ""
        sources.extend(amounts(shown))  # constants of the shown expression (/ 2, * 100, 365)
        sources.extend(amounts(calculation.get("parts") or ""))  # each year of a change or an average
    numbers = [a for a in amounts(answer)
               if not (_YEAR.match(a.text.replace("$", "").strip()) and a.scale is None and not a.pct
                       and "$" not in a.text)]
    untraced = []
    for a in numbers:
        if not any(_traces(a, s) for s in sources):
            untraced.append(a.text)
    return {"numbers": len(numbers), "traced": len(numbers) - len(untraced), "untraced": untraced,
            "all_traced": (not untraced) if numbers else None}


def _traces(number: Amount, source: Amount) -> bool:
    """``number`` is ``source``, or ``source`` rounded to the decimals ``number`` shows (24.26 for 24.2579)."""
    if same_amount(number, source):
        return True
    if number.scale and source.scale:
        a, b, unit = abs(number.value) * number.scale, abs(source.value) * source.scale, number.scale
    else:
        a, b, unit = abs(number.value), abs(source.value), 1.0
    return abs(a - b) <= 0.5 * 10 ** (-number.decimals) * unit + 1e-9
