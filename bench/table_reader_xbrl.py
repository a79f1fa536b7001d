"""The statement-table reader against the filings' own inline XBRL, on the shared HTML 10-Ks.

For each shared HTML 10-K with inline XBRL: index it (hash embedder: no model),
fetch its statement pages the way ``ask`` does (``RetrievalAgent.statement_evidence``)
and read every metric-library line item for the filing's fiscal year and the
year before with ``agents/metrics.read_from_tables``.  Each read is compared
with the company-wide XBRL fact (``evals/xbrl_gold.py``):

- correct: the number read is the tagged one;
- wrong: a number was read and it is not (the costly case: a silent wrong figure);
- missed: the filing tags the item but nothing was read (the model is asked instead).

Filings are split in two fixed halves by a hash of the file name (``tune`` /
``held-out``); rules were changed looking at the tune half only.

    python bench/table_reader_xbrl.py [--split tune|held-out] [--show wrong,missed]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from filinglens.agents.metrics import NeededFigure, read_from_tables
from filinglens.agents.compute import read_amount
from filinglens.evals.xbrl_gold import CONCEPTS, gold_values, read_facts, same_figure
from filinglens.prompts.loader import load_metric_library
from filinglens.retrieval.agent import RetrievalAgent
from filinglens.retrieval.index import ChunkStore
from filinglens.retrieval.ingest import ingest_file

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "filings" / "html"
STATEMENTS = ["balance_sheet", "income", "cash_flow"]


def split_of(name: str) -> str:
    """The fixed half a filing belongs to."""
    return "tune" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0 else "held-out"


class _Plan:
    def __init__(self, figures):
        self.figures = figures


def check_filing(path: Path, library=None) -> dict:
    """{item: [(years_back, gold, read, verdict)]} for one filing (``verdict``: correct/wrong/missed/none)."""
    library = library or load_metric_library()
    facts = read_facts(path)
    if facts is None:
        return {}
    store = ChunkStore(Path(tempfile.mkdtemp()) / "index", embedder="hash")
    filing = ingest_file(path, store=store)
    evidence = RetrievalAgent(store=store).statement_evidence(
        "financial statements", STATEMENTS, k=48, filing_id=filing.filing_id)
    out: dict[str, list] = {}
    for item, definition in library.items.items():
        if item not in CONCEPTS:
            continue
        needs = [NeededFigure(f"{item}_{facts.fiscal_year - back}", item, facts.fiscal_year - back, definition)
                 for back in (0, 1)]
        read = read_from_tables(_Plan(needs), evidence)
        for back, need in zip((0, 1), needs):
            gold = gold_values(facts, item, back, balance=bool(definition.balance))
            got = read.get(need.name)
            value = read_amount(got["value"]).value if got else None
            if not gold:
                verdict = "none" if value is None else "untagged"
            elif value is None:
                verdict = "missed"
            else:
                verdict = "correct" if any(same_figure(value, g) for g in gold) else "wrong"
            out.setdefault(item, []).append((back, gold, value, verdict, got["quote"][:120] if got else ""))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["tune", "held-out", "all"], default="all")
    ap.add_argument("--show", default="wrong", help="verdicts to list, comma-separated (wrong,missed,untagged)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/table_reader_xbrl.json"))
    args = ap.parse_args(argv)
    show = set(filter(None, args.show.split(",")))
    totals: dict[str, dict[str, int]] = {}
    results = {}
    t0 = time.perf_counter()
    for path in sorted(SHARED.glob("*.html")):
        half = split_of(path.name)
        if args.split != "all" and half != args.split:
            continue
        res = check_filing(path)
        if not res:
            print(f"{path.name}: no inline XBRL, skipped", file=sys.stderr)
            continue
        results[path.name] = {"split": half, "items": res}
        for item, rows in res.items():
            for back, gold, value, verdict, quote in rows:
                totals.setdefault(half, {}).setdefault(verdict, 0)
                totals[half][verdict] += 1
                if verdict in show:
                    print(f"  {verdict:8} {half[:4]} {path.name[:24]:24} {item:26} -{back} gold={gold} read={value} | {quote}")
    for half, t in sorted(totals.items()):
        tagged = t.get("correct", 0) + t.get("wrong", 0) + t.get("missed", 0)
        read = t.get("correct", 0) + t.get("wrong", 0)
        print(f"{half:9} tagged {tagged}: correct {t.get('correct', 0)} ({t.get('correct', 0) / max(tagged, 1):.1%}), "
              f"wrong {t.get('wrong', 0)} ({t.get('wrong', 0) / max(read, 1):.1%} of reads), missed {t.get('missed', 0)}; "
              f"read but untagged {t.get('untagged', 0)}")
    print(f"{time.perf_counter() - t0:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"totals": totals, "filings": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
