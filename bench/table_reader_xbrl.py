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
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

from filinglens.evals.xbrl_gold import check_filing

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "filings" / "html"


def split_of(name: str) -> str:
    """The fixed half a filing belongs to."""
    return "tune" if int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2 == 0 else "held-out"


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
        results[path.name] = {"split": half, "reads": [dataclasses.asdict(r) for r in res]}
        for r in res:
            totals.setdefault(half, {}).setdefault(r.verdict, 0)
            totals[half][r.verdict] += 1
            if r.verdict in show:
                print(f"  {r.verdict:8} {half[:4]} {path.name[:24]:24} {r.item:26} -{r.years_back} gold={r.gold} "
                      f"read={r.read} | {r.quote[:120]}")
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
