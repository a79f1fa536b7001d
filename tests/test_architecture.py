"""The layering the README promises, checked on the source: rich only in the display layer,
no import cycles between modules, no private names imported across modules."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The CLI and its display layer may render with rich; nothing below them may.
DISPLAY = {"cli", "display"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "bench", "tools", ".venv", "build") or rel.parts[0].startswith("."):
            continue
        name = ".".join(rel.with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import anywhere in the file (function-level ones too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def _local(module: str, modules: dict) -> str | None:
    if not module.startswith("filinglens"):
        return None
    name = module.removeprefix("filinglens").lstrip(".")
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name if name in modules else None


def test_no_module_below_the_cli_imports_rich():
    offenders = [name for name, path in _modules().items()
                 if name not in DISPLAY and not name.startswith("workbench")
                 and any(m == "rich" or m.startswith("rich.") for m, _ in _imports(path))]
    assert not offenders, f"rich outside the display layer: {sorted(offenders)}"


def test_no_private_name_is_imported_across_modules():
    modules = _modules()
    found = []
    for name, path in modules.items():
        for module, names in _imports(path):
            target = _local(module, modules)
            if target and target != name:
                found += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not found, sorted(set(found))


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {t for m, _ in _imports(path) if (t := _local(m, modules)) and t != name}
             for name, path in modules.items()}
    cycles = {" <-> ".join(sorted(c)) for c in _cycles(graph)}
    assert not cycles, sorted(cycles)
