"""A safe arithmetic evaluator for answers that compute.

A model names the figures it uses and writes an expression over them
(``(revenue_2023 - revenue_2022) / revenue_2022 * 100``); this module checks
and evaluates that expression without ``eval``: it is parsed with ``ast`` and
only a whitelist is walked -- numbers, the names of the given figures,
``+ - * / **``, unary minus/plus, parentheses and the calls ``round(x[, n])``
and ``abs(x)``.  Everything else (attribute access, other calls, subscripts,
comparisons, strings, lambdas, ``__import__``) is refused, as are expressions
longer than :data:`MAX_CHARS`, with more than :data:`MAX_NODES` nodes or
nested deeper than :data:`MAX_DEPTH`, exponents beyond :data:`MAX_EXPONENT`,
division by zero and results that are not finite.  Every refusal is an
:class:`~filinglens.errors.InputError` with a one-line message.

All arithmetic is done in floats, so no integer can grow without bound.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Callable, Mapping

from filinglens.errors import InputError

MAX_CHARS = 400  # characters in an expression
MAX_NODES = 120  # syntax-tree nodes
MAX_DEPTH = 24  # nesting of the syntax tree
MAX_EXPONENT = 64  # |exponent| of ** (compound growth needs 1/n, not 10**9)
MAX_ROUND_DIGITS = 10
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a ** b,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_FUNCTIONS = ("round", "abs")
# what models write for arithmetic that Python spells differently
_SPELLINGS = (("\u2212", "-"), ("\u2013", "-"), ("\u00d7", "*"), ("\u22c5", "*"), ("\u00b7", "*"), ("\u00f7", "/"),
              ("^", "**"))


class CalcError(InputError):
    """An expression that cannot be evaluated safely (a one-line reason)."""


def normalise(expression: str) -> str:
    """``expression`` with typographic operators (− × ÷ ^) spelled the Python way and whitespace collapsed."""
    text = str(expression)
    for old, new in _SPELLINGS:
        text = text.replace(old, new)
    return " ".join(text.split())


def parse(expression: str, names: Mapping[str, float] | None = None) -> ast.Expression:
    """The checked syntax tree of ``expression``; :class:`CalcError` when anything is not allowed.

    ``names``: the figures the expression may use (``None``: any well-formed name).
    """
    if not isinstance(expression, str):
        raise CalcError(f"the expression must be text, not {type(expression).__name__}")
    text = normalise(expression)
    if not text:
        raise CalcError("the expression is empty")
    if len(text) > MAX_CHARS:
        raise CalcError(f"the expression is too long ({len(text)} characters, at most {MAX_CHARS})")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalcError(f"the expression is not valid arithmetic: {exc.msg}: {_short(text)}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError):
        raise CalcError(f"the expression cannot be read: {_short(text)}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise CalcError(f"the expression is too large ({count} parts, at most {MAX_NODES})")
    _check(tree.body, names, 1)
    return tree


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _check(node: ast.AST, names: Mapping[str, float] | None, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CalcError(f"the expression is nested too deeply (more than {MAX_DEPTH} levels)")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalcError(f"only numbers are allowed as constants, not {node.value!r:.40}")
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise CalcError("the expression has a number too large to use")
        return
    if isinstance(node, ast.Name):
        if not NAME.match(node.id) or node.id in _FUNCTIONS:
            raise CalcError(f"{node.id!r} is not a figure name")
        if names is not None and node.id not in names:
            known = ", ".join(sorted(names)) or "none"
            raise CalcError(f"the expression uses {node.id!r}, which is not one of the named figures ({known})")
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise CalcError(f"the operator {type(node.op).__name__} is not allowed (only + - * / **)")
        _check(node.left, names, depth + 1)
        _check(node.right, names, depth + 1)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise CalcError(f"the operator {type(node.op).__name__} is not allowed")
        _check(node.operand, names, depth + 1)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise CalcError(f"calling {what!r} is not allowed (only round and abs)")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise CalcError(f"{node.func.id}() takes plain arguments only")
        wanted = (1, 2) if node.func.id == "round" else (1,)
        if len(node.args) not in wanted:
            raise CalcError(f"{node.func.id}() takes {' or '.join(map(str, wanted))} argument(s)")
        for arg in node.args:
            _check(arg, names, depth + 1)
        return
    if isinstance(node, ast.Attribute):
        raise CalcError("attribute access is not allowed in an expression")
    raise CalcError(f"{type(node).__name__} is not allowed in an expression (only numbers, figures, + - * / **)")


def evaluate(expression: str, figures: Mapping[str, float] | None = None) -> float:
    """The value of ``expression`` over the named ``figures``; :class:`CalcError` when unsafe or undefined."""
    figures = dict(figures or {})
    for name, value in figures.items():
        if not isinstance(name, str) or not NAME.match(name) or name in _FUNCTIONS:
            raise CalcError(f"{name!r} is not a figure name")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CalcError(f"figure {name!r} is not a finite number")
    tree = parse(expression, figures)
    try:
        value = _eval(tree.body, figures)
    except ZeroDivisionError:
        raise CalcError(f"division by zero in {_short(normalise(expression))}") from None
    except OverflowError:
        raise CalcError(f"the result of {_short(normalise(expression))} is too large") from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise CalcError(f"{_short(normalise(expression))} has no finite real value")
    return float(value)


def _eval(node: ast.AST, figures: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(figures[node.id])
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, figures)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, figures), _eval(node.right, figures)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise CalcError(f"the exponent {right:g} is too large (at most {MAX_EXPONENT})")
            if left < 0 and not float(right).is_integer():
                raise CalcError("a negative number to a fractional power has no real value")
            if left == 0 and right < 0:
                raise ZeroDivisionError
        value = _BINOPS[type(node.op)](left, right)
        if isinstance(value, complex) or not math.isfinite(value):
            raise OverflowError
        return value
    if isinstance(node, ast.Call):
        args = [_eval(a, figures) for a in node.args]
        if node.func.id == "abs":
            return abs(args[0])
        if len(args) == 2:
            if not float(args[1]).is_integer() or not 0 <= args[1] <= MAX_ROUND_DIGITS:
                raise CalcError(f"round() takes 0 to {MAX_ROUND_DIGITS} digits")
            return float(round(args[0], int(args[1])))
        return float(round(args[0]))
    raise CalcError(f"{type(node).__name__} is not allowed in an expression")  # unreachable after parse()


def names_in(expression: str) -> list[str]:
    """The figure names ``expression`` uses, in order of first use (it must be well-formed)."""
    out: list[str] = []
    tree = parse(expression)
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    nodes = sorted((n for n in ast.walk(tree.body) if isinstance(n, ast.Name)), key=lambda n: n.col_offset)
    for node in nodes:
        if id(node) not in calls and node.id not in out:
            out.append(node.id)
    return out


def render(expression: str, label: Callable[[str], str] | None = None) -> str:
    """``expression`` written for a reader: minimal parentheses, − × ÷, each name replaced by ``label(name)``."""
    tree = parse(expression)

    class _Relabel(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            node.args = [self.visit(a) for a in node.args]  # the function's own name stays
            return node

        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.copy_location(ast.Name(id=label(node.id), ctx=node.ctx), node)

    body = _Relabel().visit(tree.body) if label else tree.body
    text = ast.unparse(body)
    if text.startswith("-"):
        text = "\u2212" + text[1:]
    return text.replace(" - ", " \u2212 ").replace(" * ", " \u00d7 ").replace(" / ", " \u00f7 ").replace(
        "(-", "(\u2212")
