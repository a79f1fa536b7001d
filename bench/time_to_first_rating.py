"""Time to first ratings through the workbench's path (a background rating job) on a fresh data home.

Usage (from the repository root)::

    .venv/bin/python bench/time_to_first_rating.py [--model local] [FILE]

Creates a temporary data home (the model weights stay where the install put them), starts the same job the Filings page starts (``app.create_job`` +
``app.execute_job``: index the filing, then rate every category with the default prompt version) and
reports, from the results store's timestamps, when indexing finished and when each rating landed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="a 10-K (default: the demo filing, Apple FY2024)")
    parser.add_argument("--model", default="local")
    args = parser.parse_args(argv)
    from filinglens.settings import models_dir

    os.environ.setdefault("FILINGLENS_MODELS", str(models_dir()))  # the installed weights (as after `make demo`)
    with tempfile.TemporaryDirectory() as home:
        os.environ["FILINGLENS_HOME"] = home
        from filinglens import app
        from filinglens.prompts.loader import DEFAULT_RATING_VERSION, categories
        from filinglens.settings import shared_dir
        from filinglens.store import Store

        path = Path(args.file) if args.file else shared_dir() / "data" / "filings" / "html" / "aapl-10-k-2024-11-01.html"
        cats = categories()
        request = {"tickers": [], "years": None, "paths": [str(path)], "categories": cats, "model": args.model,
                   "prompt_version": None, "samples": 1, "exclude_items": []}
        run_id = app.create_job("rate", request, label="time to first rating")
        t0 = time.time()
        status = app.execute_job(run_id)
        total = time.time() - t0
        store = Store()
        rows = sorted(store.ratings(run_id), key=lambda r: r["created_at"])
        job = json.loads(store.run(run_id)["config"])["job"]
        ingest_s = sum(float(i.get("seconds") or 0) for i in job.get("ingest") or [])
        result = {
            "file": path.name, "model": args.model, "prompt_version": DEFAULT_RATING_VERSION, "status": status,
            "load_avg": os.getloadavg(), "total_s": round(total, 1),
            "ratings": [{"category": r["category"], "status": r["status"], "score": r["score"],
                         "at_s": round(r["created_at"] - t0, 1)} for r in rows],
        }
        if ingest_s:
            result["ingest_s"] = round(ingest_s, 1)
        print(json.dumps(result, indent=2))
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "time_to_first_rating.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
