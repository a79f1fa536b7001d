"""Parse all shared HTML 10-Ks with FilingLens and with edgartools' offline parser; compare.

Reports CPU seconds per filing, the speed ratio, and item-boundary gold accuracy
(loose and strict rules of ``shared/README.md``) for both parsers.

    make bench            # or: .venv/bin/python bench/parse_speed.py
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from filinglens.evals.parser_gold import GoldScore, load_gold, score_filing
from filinglens.retrieval.filing import Filing, Item
from filinglens.retrieval.parse import parse_filing
from filinglens.retrieval.structure import item_specs
from filinglens.settings import shared_dir

HTML = shared_dir() / "data" / "filings" / "html"
GOLD = shared_dir() / "data" / "gold" / "items_gold.json"
OUT = Path(__file__).parent / "results" / "parse_speed.json"


def edgartools_filing(path: Path) -> Filing:
    """Parse with edgartools and wrap its sections as a Filing so the same scorer applies."""
    from edgar.documents import HTMLParser, ParserConfig

    doc = HTMLParser(ParserConfig(form="10-K")).parse(path.read_text(errors="replace"))
    items = {}
    found = {}
    for key, section in doc.sections.items():
        m = re.search(r"item_(\d+[a-c]?)$", key)
        if m:
            text = section.text() if callable(getattr(section, "text", None)) else str(section.text)
            body = text.split("\n", 1)[1] if "\n" in text else ""  # drop the heading line
            found[m.group(1).upper()] = body.strip()
    for spec in item_specs():
        text = found.get(spec.item)
        items[spec.item] = Item(spec.item, spec.title, spec.part, "body" if text is not None else "absent", text or "")
    return Filing(None, None, "10-K", None, None, str(path), "html", "", "", items)


def run(name: str, parse, paths: list[Path], gold: dict) -> dict:
    cpu = wall = 0.0
    loose, strict = GoldScore(), GoldScore()
    failures = 0
    for path in paths:
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            filing = parse(path)
        except Exception:  # a peer parser may crash on a filing: count it, keep going
            failures += 1
            continue
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        if path.name in gold:
            loose.add(score_filing(filing, gold[path.name], path.name, loose=True))
            strict.add(score_filing(filing, gold[path.name], path.name, loose=False))
    return {
        "parser": name,
        "filings": len(paths),
        "failures": failures,
        "cpu_s": round(cpu, 2),
        "cpu_s_per_filing": round(cpu / max(1, len(paths) - failures), 3),
        "wall_s": round(wall, 2),
        "gold_body_items": loose.body_total,
        "gold_loose_right": loose.body_right,
        "gold_strict_right": strict.body_right,
        "absent_reported": loose.absent_reported,
        "misses": loose.misses,
    }


def main() -> None:
    paths = sorted(HTML.glob("*.html"))
    gold = load_gold(GOLD)
    ours = run("filinglens", parse_filing, paths, gold)
    peer = run("edgartools 5.62", edgartools_filing, paths, gold)
    ratio = peer["cpu_s"] / ours["cpu_s"] if ours["cpu_s"] else float("inf")
    table = Table(title=f"Parsing {len(paths)} shared HTML 10-Ks (gold: 19 filings, {ours['gold_body_items']} body items)")
    for col in ("parser", "CPU s total", "CPU s/filing", "gold loose", "gold strict", "absent reported", "crashes"):
        table.add_column(col)
    for r in (ours, peer):
        n = r["gold_body_items"]
        table.add_row(
            r["parser"], f"{r['cpu_s']:.1f}", f"{r['cpu_s_per_filing']:.3f}",
            f"{r['gold_loose_right']}/{n} ({r['gold_loose_right'] / n:.1%})",
            f"{r['gold_strict_right']}/{n} ({r['gold_strict_right'] / n:.1%})",
            str(r["absent_reported"]), str(r["failures"]),
        )
    console = Console()
    console.print(table)
    console.print(f"FilingLens is [bold]{ratio:.1f}x[/] faster than edgartools (CPU time).")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"speed_ratio": round(ratio, 2), "results": [ours, peer]}, indent=2))


if __name__ == "__main__":
    main()
