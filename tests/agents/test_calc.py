"""The safe arithmetic evaluator: what it computes, and every hostile input it refuses with one line."""

from __future__ import annotations

import time

import pytest

from filinglens.agents.calc import MAX_CHARS, CalcError, evaluate, names_in, render
from filinglens.errors import InputError

# Lockheed Martin FY2021 balance sheet (../shared FinanceBench PDF, page 67), USD millions
FIGURES = {"current_assets_2021": 19815.0, "current_liabilities_2021": 13997.0, "ppe_2018": 282.0, "ppe_2019": 253.0}


@pytest.mark.parametrize("expression, value", [
    ("current_assets_2021 - current_liabilities_2021", 5818.0),
    ("current_assets_2021 / current_liabilities_2021", 19815 / 13997),
    ("(current_assets_2021 - current_liabilities_2021) / current_liabilities_2021 * 100", 5818 / 13997 * 100),
    ("6489 / ((ppe_2018 + ppe_2019) / 2)", 6489 / 267.5),
    ("-current_liabilities_2021", -13997.0),
    ("+2 - -3", 5.0),
    ("round(current_assets_2021 / current_liabilities_2021, 2)", 1.42),
    ("abs(ppe_2019 - ppe_2018)", 29.0),
    ("(1.5 / 1.2) ** (1 / 3) - 1", (1.5 / 1.2) ** (1 / 3) - 1),  # compound annual growth
    ("2 ^ 3", 8.0),  # what models write for a power
    ("(ppe_2019 \u2212 ppe_2018) \u00d7 2 \u00f7 4", -14.5),  # typographic operators
    ("1_000 * 1e3", 1e6),
])
def test_arithmetic_over_named_figures(expression, value):
    assert evaluate(expression, FIGURES) == pytest.approx(value)


@pytest.mark.parametrize("expression, reason", [
    ("__import__('os').system('echo hacked')", "not allowed"),
    ("__import__", "not a figure name"),
    ("().__class__.__bases__[0].__subclasses__()", "not allowed"),
    ("ppe_2018.real", "attribute access"),
    ("open('/etc/passwd')", "calling 'open' is not allowed"),
    ("eval('1+1')", "calling 'eval' is not allowed"),
    ("(lambda: 1)()", "not allowed"),
    ("[x for x in (1, 2)]", "not allowed"),
    ("'a' * 10", "only numbers"),
    ("True + 1", "only numbers"),
    ("1 if ppe_2018 else 2", "not allowed"),
    ("ppe_2018 > 1", "not allowed"),
    ("ppe_2018 % 7", "operator Mod"),
    ("ppe_2018 // 7", "operator FloorDiv"),
    ("ppe_2018 << 7", "operator LShift"),
    ("~1", "operator Invert"),
    ("round(1, ndigits=2)", "plain arguments"),
    ("round(1.23456, 99)", "0 to 10 digits"),
    ("abs(1, 2)", "argument"),
    ("revenue_2020 / 2", "'revenue_2020', which is not one of the named figures"),
    ("ppe_2018 +", "not valid arithmetic"),
    ("x = 1", "not valid arithmetic"),
    ("", "empty"),
    ("   ", "empty"),
])
def test_hostile_or_malformed_expressions_are_refused_with_a_reason(expression, reason):
    with pytest.raises(CalcError) as err:
        evaluate(expression, FIGURES)
    message = str(err.value)
    assert reason in message and "\n" not in message
    assert isinstance(err.value, InputError)  # the CLI prints it as one line


@pytest.mark.parametrize("expression", ["9 ** 9 ** 9", "2 ** 1000000", "10 ** 100 ** 100", "(2 ** 64) ** 64 ** 2"])
def test_huge_exponents_are_refused_quickly(expression):
    start = time.perf_counter()
    with pytest.raises(CalcError, match="exponent .* too large"):
        evaluate(expression)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("expression", ["1e308 * 10", "1e999", "9" * 350 + " * 1.0", "(1e300 ** 2)",
                                        "2.0 ** 64 ** 1 * 1e300"])
def test_overflowing_results_are_refused(expression):
    with pytest.raises(CalcError, match="too large|no finite"):
        evaluate(expression)


def test_deep_nesting_and_long_expressions_are_refused():
    with pytest.raises(CalcError, match="too long"):
        evaluate("1 + " * (MAX_CHARS // 4) + "1")
    with pytest.raises(CalcError, match="too large|nested too deeply"):
        evaluate("-" * 200 + "1")
    with pytest.raises(CalcError, match="nested too deeply"):
        evaluate("abs(" * 30 + "1" + ")" * 30)
    with pytest.raises(CalcError, match="too long"):  # beyond the parser's own nesting limit (200)
        evaluate("(" * 250 + "1" + ")" * 250)
    assert evaluate("(" * 50 + "1" + ")" * 50) == 1.0  # parentheses alone add no depth


@pytest.mark.parametrize("expression, reason", [
    ("current_assets_2021 / 0", "division by zero"),
    ("ppe_2018 / (ppe_2019 - 253)", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("(-8) ** 0.5", "no real value"),
])
def test_undefined_arithmetic_is_refused(expression, reason):
    with pytest.raises(CalcError, match=reason):
        evaluate(expression, FIGURES)


def test_figures_must_be_finite_numbers_with_plain_names():
    with pytest.raises(CalcError, match="not a finite number"):
        evaluate("a", {"a": float("nan")})
    with pytest.raises(CalcError, match="not a finite number"):
        evaluate("a", {"a": "12"})
    with pytest.raises(CalcError, match="not a figure name"):
        evaluate("1", {"__class__": 1.0})
    with pytest.raises(CalcError, match="not a figure name"):
        evaluate("abs", {"abs": 1.0})
    with pytest.raises(CalcError, match="must be text"):
        evaluate(12)  # type: ignore[arg-type]


def test_names_and_rendering_for_the_shown_calculation():
    expression = "round((current_assets_2021 - current_liabilities_2021) / current_liabilities_2021 * 100, 1)"
    assert names_in(expression) == ["current_assets_2021", "current_liabilities_2021"]
    shown = render(expression, {"current_assets_2021": "19,815", "current_liabilities_2021": "13,997"}.get)
    assert shown == "round((19,815 \u2212 13,997) \u00f7 13,997 \u00d7 100, 1)"
    assert render("-a / b") == "\u2212a \u00f7 b"
