"""The ratings panel (company × fiscal year × category × rater) and its trends, from the results store.

A *rater* is a model with a prompt version (``local@v2``; a run that left
Items out adds ``-1A,7``). The same cell may have been rated in several runs:
the latest rating of each cell (by its cell key, per rater) counts.

Trends: per company, category, rater and fiscal year the expected score
(the yes/no method's E in [0, 2], otherwise the integer score), averaged over
samples, with an uncertainty band:

* ``samples`` — two or more samples: mean ± one standard deviation across them;
* ``yes/no`` — one yes/no rating: ± one standard deviation of the score when
  each rubric answer is drawn as yes with the model's P(yes)
  (S = L1 · (1 + mean L2), L ~ Bernoulli(P(yes)));
* ``none`` — one direct rating: no band (low = high = the score).
"""

from __future__ import annotations

import json
import math
import re
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

PANEL_COLUMNS = [
    "rating_id", "run_id", "cell_key", "company", "ticker", "fiscal_year", "category", "rater", "model_id",
    "prompt_version", "method", "sample_index", "status", "score", "expected_score", "error", "rationale",
    "quotes", "unverified_quotes", "filing_hash", "created_at",
]
TREND_COLUMNS = ["company", "fiscal_year", "category", "rater", "n", "failed", "expected", "score", "low", "high",
                 "band"]

_PROB = re.compile(r"P\(yes \|.*?\) = ([0-9]*\.?[0-9]+)(?=;|$)")


def rater_label(model_id: str, prompt_version: str, exclude_items: Sequence[str] | None = None) -> str:
    """``local@v2``, or ``local@v2-1A,7`` for a run that left Items 1A and 7 out of the evidence."""
    base = f"{model_id}@{prompt_version}"
    return base + ("-" + ",".join(exclude_items) if exclude_items else "")


def _run_configs(runs: Iterable[dict]) -> dict[str, dict]:
    out = {}
    for run in runs:
        config = run.get("config") or {}
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except ValueError:
                config = {}
        out[run["id"]] = config if isinstance(config, dict) else {}
    return out


def panel_frame(rows: Sequence[dict], runs: Sequence[dict] = ()) -> pd.DataFrame:
    """One row per rated cell and sample (the latest rating of each), from store ``ratings`` rows."""
    configs = _run_configs(runs)
    records = []
    for row in rows:
        exclude = configs.get(row.get("run_id"), {}).get("exclude_items") or []
        company = row.get("ticker") or row.get("company") or str(row.get("filing_hash") or "?")[:12]
        records.append({
            "rating_id": row.get("id"), "run_id": row.get("run_id"), "cell_key": row.get("cell_key"),
            "company": str(company).upper() if row.get("ticker") else str(company),
            "ticker": row.get("ticker"), "fiscal_year": row.get("fiscal_year"), "category": row["category"],
            "rater": rater_label(row["model_id"], row["prompt_version"], exclude),
            "model_id": row["model_id"], "prompt_version": row["prompt_version"], "method": row.get("method"),
            "sample_index": int(row.get("sample_index") or 0), "status": row.get("status"),
            "score": row.get("score") if row.get("status") == "ok" else None,
            "expected_score": row.get("expected_score") if row.get("status") == "ok" else None,
            "error": row.get("error"), "rationale": row.get("rationale") or "",
            "quotes": len(row.get("quotes") or []), "unverified_quotes": row.get("unverified_quotes") or 0,
            "filing_hash": row.get("filing_hash"), "created_at": row.get("created_at"),
        })
    frame = pd.DataFrame(records, columns=PANEL_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.sort_values("rating_id", kind="stable")
    frame = frame.drop_duplicates(["cell_key", "rater"], keep="last")
    # one filing per company and year: a re-filed document (new content hash) replaces the older one
    latest = frame.groupby(["company", "fiscal_year"], dropna=False)["filing_hash"].transform("last")
    frame = frame[frame["filing_hash"] == latest]
    for col in ("score", "expected_score"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["fiscal_year"] = pd.to_numeric(frame["fiscal_year"], errors="coerce").astype("Int64")
    return frame.sort_values(["company", "fiscal_year", "category", "rater", "sample_index"]).reset_index(drop=True)


def filter_panel(
    frame: pd.DataFrame,
    companies: Sequence[str] | None = None,
    years: tuple[int | None, int | None] = (None, None),
    categories: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The panel rows for these companies (tickers), fiscal years (inclusive), categories and raters."""
    out = frame
    if companies:
        wanted = {c.upper() for c in companies}
        out = out[out["company"].str.upper().isin(wanted)]
    lo, hi = years
    if lo is not None:
        out = out[out["fiscal_year"] >= lo]
    if hi is not None:
        out = out[out["fiscal_year"] <= hi]
    if categories:
        out = out[out["category"].isin(list(categories))]
    if raters:
        out = out[out["rater"].isin(list(raters))]
    return out


def yesno_probabilities(rationale: str) -> list[float]:
    """P(yes) of each rubric question, in order, from a yes/no rating's rationale (empty if none)."""
    return [float(p) for p in _PROB.findall(rationale or "")]


def yesno_sd(probs: Sequence[float]) -> float | None:
    """Standard deviation of S = L1 · (1 + mean L2) with independent L ~ Bernoulli(P(yes)); None if < 2 probs."""
    if len(probs) < 2:
        return None
    p1, rest = float(probs[0]), [float(p) for p in probs[1:]]
    k = len(rest)
    mean2 = sum(rest) / k
    var2 = sum(p * (1 - p) for p in rest) / k**2
    e_s = p1 * (1 + mean2)
    e_s2 = p1 * (1 + 2 * mean2 + var2 + mean2**2)
    return math.sqrt(max(e_s2 - e_s**2, 0.0))


def trend_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per company × fiscal year × category × rater: expected score, mean integer score, band, n, failed."""
    if frame.empty:
        return pd.DataFrame(columns=TREND_COLUMNS)
    records = []
    for (company, year, category, rater), part in frame.groupby(
            ["company", "fiscal_year", "category", "rater"], sort=True, dropna=False):
        ok = part[part["status"] == "ok"]
        values = ok["expected_score"].fillna(ok["score"]).astype(float).to_numpy()
        n, failed = len(values), int((part["status"] != "ok").sum())
        if n == 0:
            records.append({"company": company, "fiscal_year": year, "category": category, "rater": rater, "n": 0,
                            "failed": failed, "expected": np.nan, "score": np.nan, "low": np.nan, "high": np.nan,
                            "band": "none"})
            continue
        mean = float(values.mean())
        band, sd = "none", 0.0
        if n >= 2:
            band, sd = "samples", float(values.std(ddof=1))
        elif (ok["method"] == "yesno").all():
            got = yesno_sd(yesno_probabilities(ok["rationale"].iloc[0]))
            if got is not None:
                band, sd = "yes/no", got
        records.append({
            "company": company, "fiscal_year": year, "category": category, "rater": rater, "n": n, "failed": failed,
            "expected": round(mean, 4), "score": round(float(ok["score"].mean()), 4),
            "low": round(max(0.0, mean - sd), 4), "high": round(min(2.0, mean + sd), 4), "band": band,
        })
    out = pd.DataFrame(records, columns=TREND_COLUMNS)
    out["fiscal_year"] = out["fiscal_year"].astype("Int64")
    return out


def averages(trends: pd.DataFrame) -> pd.DataFrame:
    """Mean expected score over fiscal years per company × category × rater (and over categories: ``all``)."""
    if trends.empty:
        return pd.DataFrame(columns=["company", "category", "rater", "years", "mean", "min", "max"])
    rated = trends.dropna(subset=["expected"])
    per_cat = rated.groupby(["company", "category", "rater"], as_index=False).agg(
        years=("fiscal_year", "nunique"), mean=("expected", "mean"), min=("expected", "min"), max=("expected", "max"))
    overall = rated.groupby(["company", "rater"], as_index=False).agg(
        years=("fiscal_year", "nunique"), mean=("expected", "mean"), min=("expected", "min"), max=("expected", "max"))
    overall["category"] = "all"
    out = pd.concat([per_cat, overall[per_cat.columns]], ignore_index=True)
    out["mean"] = out["mean"].round(3)
    return out.sort_values(["company", "rater", "category"]).reset_index(drop=True)


def panel_pivot(trends: pd.DataFrame, rater: str, value: str = "expected") -> pd.DataFrame:
    """Rows company · fiscal year, columns categories, values ``value`` for one rater."""
    part = trends[trends["rater"] == rater]
    if part.empty:
        return pd.DataFrame()
    pivot = part.pivot_table(index=["company", "fiscal_year"], columns="category", values=value, aggfunc="first")
    pivot.columns.name = None
    return pivot
