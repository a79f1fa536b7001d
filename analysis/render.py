"""Report documents without a terminal: blocks rendered to Markdown and self-contained HTML, matplotlib
figures to PNG, plain-JSON conversion, and the number formats the eval report, the analyses and the
workbench share."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

# --------------------------------------------------------------------------- formatting


def fmt_num(value: Any, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; ``"n/a"`` for None or a non-finite number."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def fmt_est(est: dict | None, digits: int = 2, reason: bool = True) -> str:
    """``"0.42 [0.21, 0.60]"`` from an estimate dict; ``"n/a (reason)"`` when it is None."""
    if not est:
        return "n/a"
    if est.get("estimate") is None:
        return f"n/a ({est.get('reason') or 'not computable'})" if reason else "n/a"
    text = fmt_num(est["estimate"], digits)
    if est.get("ci_low") is not None and est.get("ci_high") is not None:
        text += f" [{fmt_num(est['ci_low'], digits)}, {fmt_num(est['ci_high'], digits)}]"
    return text


def fmt_share(value: Any) -> str:
    """A share in 0–1 as a whole percentage (``"42%"``); ``"n/a"`` for None."""
    return "n/a" if value is None else f"{100 * float(value):.0f}%"


def jsonable(value: Any) -> Any:
    """Plain JSON types all the way down (numpy scalars → Python, NaN/NA/NaT → None, Paths → str)."""
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- blocks


@dataclass
class Block:
    """One piece of a report document, rendered by :func:`render_markdown` and :func:`render_html`."""

    kind: str  # h1 h2 h3 p ul table img code
    content: Any
    extra: Any = None  # table: header row; img: alt text


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block], images: dict[str, str]) -> str:
    """Markdown of the blocks; ``images`` maps an image block's name to the file it links."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.content)
        elif b.kind == "p":
            out.append(b.content)
        elif b.kind == "ul":
            out.append("\n".join(f"- {item}" for item in b.content))
        elif b.kind == "code":
            out.append("```\n" + b.content + "\n```")
        elif b.kind == "table":
            header = b.extra
            lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
                     "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.content]
            out.append("\n".join(lines))
        elif b.kind == "img":
            out.append(f"![{b.extra}]({images[b.content]})")
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
code,pre{background:#f6f6f6;padding:.1em .3em} .pass{color:#127a2e;font-weight:bold} .fail{color:#b00020;font-weight:bold}
"""


def _inline(text: str) -> str:
    """Escape, then turn `code` and **bold** into tags (the Markdown we write ourselves)."""
    import re

    text = html.escape(str(text))
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = text.replace("<strong>PASS</strong>", '<span class="pass">PASS</span>')
    return text.replace("<strong>FAIL</strong>", '<span class="fail">FAIL</span>')


def render_html(blocks: Sequence[Block], images: dict[str, bytes], title: str) -> str:
    """One self-contained HTML page of the blocks, images embedded as base64 PNG."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{_inline(b.content)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_inline(b.content)}</p>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.content) + "</ul>")
        elif b.kind == "code":
            out.append(f"<pre>{html.escape(b.content)}</pre>")
        elif b.kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.extra)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.content)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b.kind == "img":
            data = base64.b64encode(images[b.content]).decode()
            out.append(f"<img alt='{html.escape(b.extra)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- plots


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (110 dpi); the figure is closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return buffer.getvalue()
