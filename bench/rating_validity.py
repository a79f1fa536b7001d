"""Rating validity on labelled 10-Ks: rate, refit cut-offs offline with cross-validation, time the methods.

Three steps (run from the repository root; set FILINGLENS_HOME to a data home that keeps its index and
call cache between runs: every model call is cached, so a re-run costs nothing):

  python bench/rating_validity.py rate -p v5 [-p v2] [--fallback]
      rates every labelled cell (../shared/data/labels/ratings_dev.json by default) through the rating
      chain and writes one JSON line per cell to bench/results/validity-<version>.jsonl: the score, the
      expected score, and for the indicators method every indicator's value and source. ``--fallback``
      also rates confidence without the filing's facts (the questions asked when a filing has no iXBRL
      or statement tables), on the same evidence, so the no-facts path is measured too.

  python bench/rating_validity.py fit -p v5 [-p v2] [--write]
      offline, in seconds: leave-one-filing-out cross-validation of the cut-offs (fitted on the other
      filings only; :mod:`filinglens.evals.calibrate`), held-out exact agreement and quadratic kappa per
      category and overall, the same for alternatives (fixed cut-offs, a logistic model on the indicator
      values, facts withheld). ``--write`` stores the cut-offs fitted on all labels, with the
      cross-validated figures, in the prompt files (so the prompt hash pins them).

  python bench/rating_validity.py speed -p v2 -p v5 [--cells 4]
      seconds per rating of each version in one run, on a fresh results store (no cache), the versions
      interleaved cell by cell so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _labels(path: str | None):
    from filinglens.evals.reference import load_reference
    from filinglens.settings import shared_dir

    return load_reference(Path(path) if path else shared_dir() / "data" / "labels" / "ratings_dev.json")


def _targets(reference):
    from filinglens.app import resolve_targets
    from filinglens.evals.reference import match_labels

    targets = resolve_targets(reference.files())
    matched, unmatched = match_labels(reference, targets)
    if unmatched:
        print(f"warning: {len(unmatched)} labels without an indexed filing", file=sys.stderr)
    return matched


def _record(label, rating, seconds: float, variant: str = "") -> dict:
    return {
        "filing": Path(label.filing).name, "category": label.category, "reference": label.score,
        "borderline_label": label.borderline, "version": rating.prompt_version, "variant": variant,
        "prompt_hash": rating.prompt_hash, "status": rating.status, "error": rating.error, "score": rating.score,
        "expected": rating.expected_score, "interval": rating.interval, "borderline": rating.borderline,
        "indicators": rating.indicators, "facts": [f.get("text") for f in rating.facts],
        "evidence": [e["chunk_id"] for e in rating.evidence], "quotes": [q["text"] for q in rating.quotes],
        "model_calls": rating.model_calls, "cached_calls": rating.cached_calls, "tokens_in": rating.tokens_in,
        "latency_ms": rating.latency_ms, "seconds": round(seconds, 2),
    }


def cmd_rate(args) -> None:
    """Rate every labelled cell with each version; one JSON line per cell."""
    from filinglens.app import index_facts, index_gatherer
    from filinglens.agents.rating import RatingChain
    from filinglens.store import Store

    reference = _labels(args.labels)
    matched = _targets(reference)
    store = Store()
    gather, facts = index_gatherer(), index_facts()
    chain = RatingChain(store, model_id=args.model, gather=gather, facts=facts)
    bare = RatingChain(store, model_id=args.model, gather=gather, facts=None)
    RESULTS.mkdir(exist_ok=True)
    for version in args.prompt_version:
        out = RESULTS / f"validity-{version}.jsonl"
        lines = []
        order = sorted(matched.items(), key=lambda kv: (reference.labels[kv[0]].category != "confidence", kv[0]))
        for n, (i, target) in enumerate(order, start=1):
            label = reference.labels[i]
            if args.categories and label.category not in args.categories:
                continue
            started = time.perf_counter()
            rating = chain.rate(target, label.category, version)
            lines.append(_record(label, rating, time.perf_counter() - started))
            print(f"[{n}/{len(order)}] {version} {target.label} {label.category}: {rating.score} "
                  f"(E={rating.expected_score}) ref {label.score} · {rating.model_calls - rating.cached_calls} calls "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
            if args.fallback and rating.method == "indicators" and any(ind.get("source") == "fact" and
                                                                         ind.get("id") for ind in rating.indicators):
                started = time.perf_counter()
                rating = bare.rate(target, label.category, version)
                lines.append(_record(label, rating, time.perf_counter() - started, variant="no-facts"))
            out.write_text("".join(json.dumps(line) + "\n" for line in lines))
        print(f"wrote {out} ({len(lines)} lines)")


def _load(version: str) -> list[dict]:
    path = RESULTS / f"validity-{version}.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path}: run `rate -p {version}` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cmd_fit(args) -> None:
    """Cross-validated cut-offs and alternatives, from the dumped values (no model calls)."""
    from filinglens.evals import calibrate

    reports = {}
    for version in args.prompt_version:
        rows = _load(version)
        report = calibrate.validity_report(rows, version)
        reports[version] = report
        print(calibrate.format_report(report))
        if args.write:
            written = calibrate.write_cutoffs(report, version)
            for path in written:
                print(f"updated {path}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validity-fit.json").write_text(json.dumps(reports, indent=2))


def cmd_speed(args) -> None:
    """Seconds per rating of each version in one run, interleaved, on a fresh results store."""
    import os

    from filinglens.app import index_facts, index_gatherer
    from filinglens.agents.rating import RatingChain
    from filinglens.store import Store

    reference = _labels(args.labels)
    matched = _targets(reference)
    cells = [(reference.labels[i], t) for i, t in matched.items()]
    by_category: dict[str, list] = {}
    for cell in cells:
        by_category.setdefault(cell[0].category, []).append(cell)
    per_category = -(-args.cells // len(by_category))  # ceil
    spread = [group[i * len(group) // per_category] for i in range(per_category) for group in by_category.values()]
    cells = spread[: args.cells]  # the categories in turn, filings spread over the labels
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "speed.db")
        gather, facts = index_gatherer(), index_facts()
        chain = RatingChain(store, model_id=args.model, gather=gather, facts=facts)
        # load the model and warm the caches on a cell outside the timed ones, in a store of its own
        # (warming on a timed cell would leave its first version's rating cached: a free 0 s rating)
        spare = next((t, lab) for lab, t in [(reference.labels[i], t) for i, t in matched.items()]
                     if (lab, t) not in cells)
        RatingChain(Store(Path(tmp) / "warm.db"), model_id=args.model, gather=gather, facts=facts).rate(
            spare[0], spare[1].category, args.prompt_version[0])
        times = {v: [] for v in args.prompt_version}
        calls = {v: 0 for v in args.prompt_version}
        for label, target in cells:
            for version in args.prompt_version:
                started = time.perf_counter()
                rating = chain.rate(target, label.category, version, sample_index=0)
                times[version].append(time.perf_counter() - started)
                calls[version] += rating.model_calls - rating.cached_calls
                print(f"{version} {target.label} {label.category}: {times[version][-1]:.1f}s "
                      f"({rating.model_calls - rating.cached_calls} calls)", flush=True)
    base = args.prompt_version[0]
    result = {"cells": [f"{t.label} {lab.category}" for lab, t in cells], "threads": os.environ.get("FILINGLENS_THREADS"),
              "load_avg": os.getloadavg(), "versions": {}}
    for version, values in times.items():
        per = sum(values) / len(values)
        result["versions"][version] = {"seconds_per_rating": round(per, 2), "model_calls": calls[version],
                                       "ratio_to_" + base: round(per / (sum(times[base]) / len(times[base])), 2)}
        print(f"{version}: {per:.1f} s per rating, {calls[version]} model calls, "
              f"{per / (sum(times[base]) / len(times[base])):.2f}x {base}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "validity-speed.json").write_text(json.dumps(result, indent=2))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("rate", "fit", "speed"):
        p = sub.add_parser(name)
        p.add_argument("-p", "--prompt-version", action="append", required=True)
        p.add_argument("--labels", help="reference labels (default: the shared dev labels)")
        p.add_argument("-m", "--model", default="local")
        if name == "rate":
            p.add_argument("-c", "--categories", action="append")
            p.add_argument("--fallback", action="store_true", help="also rate confidence without facts")
        if name == "fit":
            p.add_argument("--write", action="store_true", help="store the fitted cut-offs in the prompt files")
        if name == "speed":
            p.add_argument("--cells", type=int, default=4)
    args = parser.parse_args(argv)
    {"rate": cmd_rate, "fit": cmd_fit, "speed": cmd_speed}[args.command](args)


if __name__ == "__main__":
    main()
