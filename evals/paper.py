"""The paper's published Command-R+ ratings (``../shared/data/paper``) as harness data.

Two CSV files, one row per ticker and fiscal year (``year`` is ``"2019.csv"``),
with a normal and a "strict" rating (one extra prompt sentence asking the
grader to be strict) for four categories:

* ``ratings_command_r_plus.csv`` — RGLD 2010–2023 (no 2016), AAPL 2014–2023,
  IBM 2019–2023: 28 filings × 4 categories = the **112 cells** behind the
  published stability figures (47 changed, 39 by a full point, α ≈ 0.42);
* ``ratings_command_r_plus_msft.csv`` — MSFT 2020–2023 (16 more cells).

Units are ``"TICKER|YEAR|category"`` with our product's category names
(conf → confidence, env → environment, inno → innovation, people → people);
raters are ``command-r-plus@normal`` and ``command-r-plus@strict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from filinglens.evals import stats
from filinglens.settings import shared_dir

MAIN_FILE = "ratings_command_r_plus.csv"
MSFT_FILE = "ratings_command_r_plus_msft.csv"
CATEGORIES = {"conf": "confidence", "env": "environment", "inno": "innovation", "people": "people"}
PROMPTS = ("normal", "strict")
MODEL = "command-r-plus"
RATER_NORMAL = f"{MODEL}@normal"
RATER_STRICT = f"{MODEL}@strict"


def paper_dir() -> Path:
    """``../shared/data/paper`` (follows ``FILINGLENS_SHARED``)."""
    return shared_dir() / "data" / "paper"


def _files(include_msft: bool) -> list[Path]:
    names = [MAIN_FILE, MSFT_FILE] if include_msft else [MAIN_FILE]
    paths = [paper_dir() / name for name in names]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"paper ratings not found: {path}")
    return paths


def load_wide(include_msft: bool = True) -> pd.DataFrame:
    """One row per cell: ``ticker``, ``fiscal_year``, ``category``, ``normal``, ``strict``, ``source``."""
    rows = []
    for path in _files(include_msft):
        table = pd.read_csv(path, index_col=0)
        for record in table.to_dict(orient="records"):
            year = int(str(record["year"]).removesuffix(".csv"))
            for short, category in CATEGORIES.items():
                rows.append(
                    {
                        "ticker": str(record["ticker"]).upper(),
                        "fiscal_year": year,
                        "category": category,
                        "normal": float(record[f"{short}_rating"]),
                        "strict": float(record[f"{short}_rating_strict"]),
                        "source": path.name,
                    }
                )
    wide = pd.DataFrame(rows)
    if wide.duplicated(["ticker", "fiscal_year", "category"]).any():
        raise ValueError("paper ratings: a ticker/year appears twice")
    return wide


def paper_frame(include_msft: bool = True) -> pd.DataFrame:
    """The paper's ratings in the harness long format (raters ``command-r-plus@normal|strict``, sample 0)."""
    wide = load_wide(include_msft)
    records = []
    for row in wide.itertuples(index=False):
        unit = stats.unit_key(row.ticker, row.fiscal_year, row.category)
        records.append((unit, RATER_NORMAL, 0, row.normal))
        records.append((unit, RATER_STRICT, 0, row.strict))
    return stats.ratings_frame(records)


def paper_ratings(prompt: str = "normal", include_msft: bool = True) -> dict[tuple[str, int, str], float]:
    """``(ticker, fiscal_year, category) → score`` of the paper (normal prompt by default)."""
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
    wide = load_wide(include_msft)
    return {
        (row.ticker, int(row.fiscal_year), row.category): float(getattr(row, prompt))
        for row in wide.itertuples(index=False)
    }


def normal_vs_strict(
    include_msft: bool = False,
    *,
    n_boot: int = stats.DEFAULT_N_BOOT,
    n_boot_slow: int = stats.DEFAULT_N_BOOT_SLOW,
    seed: int | None = 0,
    by_category: bool = True,
) -> dict[str, Any]:
    """Harness statistics for the paper's normal vs strict prompt.

    By default on the main CSV only — the 112 cells the published numbers
    describe (47 changed, 39 by ≥ 1 point, α interval ≈ 0.42);
    ``include_msft=True`` adds MSFT's 16 cells.  Returns
    :func:`stats.pairwise_agreement` output plus ``files`` and, when
    ``by_category``, ``by_category`` (the same statistics per category).
    """
    frame = paper_frame(include_msft)
    kwargs = dict(n_boot=n_boot, n_boot_slow=n_boot_slow, seed=seed)
    result = stats.pairwise_agreement(frame, RATER_NORMAL, RATER_STRICT, **kwargs)
    result["files"] = [path.name for path in _files(include_msft)]
    if by_category:
        result["by_category"] = stats.pairwise_agreement_by(frame, RATER_NORMAL, RATER_STRICT, **kwargs)
    return result


def agreement_with_paper(
    ours: pd.DataFrame,
    rater: str | None = None,
    *,
    prompt: str = "normal",
    include_msft: bool = True,
    n_boot: int = stats.DEFAULT_N_BOOT,
    n_boot_slow: int = stats.DEFAULT_N_BOOT_SLOW,
    seed: int | None = 0,
) -> dict[str, Any]:
    """Agreement of our ratings with the paper's Command-R+ ratings, overall and per category.

    ``ours`` is a long ratings frame whose units use :func:`stats.unit_key`
    (``"AAPL|2019|environment"``); ``rater`` picks one of its raters (needed
    when it has several).  Only cells the paper rated count.  Returns
    ``{"rater", "paper_rater", "n_units", "overall": pairwise_agreement(...),
    "by_category": {category: pairwise_agreement(...)}}``.
    """
    ours = stats.ratings_frame(ours)
    names = stats.rater_names(ours)
    if rater is None:
        if len(names) != 1:
            raise ValueError(f"ours has several raters {names}; pass rater=...")
        rater = names[0]
    elif rater not in names:
        raise ValueError(f"rater {rater!r} not in ours (raters: {names})")
    paper_rater = RATER_NORMAL if prompt == "normal" else RATER_STRICT
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {PROMPTS}, got {prompt!r}")
    paper = paper_frame(include_msft)
    paper = paper[paper["rater"] == paper_rater]
    mine = ours[ours["rater"] == rater]
    mine = mine[mine["unit"].isin(set(paper["unit"]))]
    if rater == paper_rater:
        mine = mine.assign(rater=f"{rater} (ours)")
        rater = f"{rater} (ours)"
    paper = paper[paper["unit"].isin(set(mine["unit"]))]
    both = pd.concat([mine, paper], ignore_index=True)
    kwargs = dict(n_boot=n_boot, n_boot_slow=n_boot_slow, seed=seed)
    n_units = int(both.groupby("unit")["rater"].nunique().eq(2).sum()) if len(both) else 0
    if mine.empty:
        return {"rater": rater, "paper_rater": paper_rater, "n_units": 0, "overall": None, "by_category": {},
                "reason": "no cells in common with the paper"}
    return {
        "rater": rater,
        "paper_rater": paper_rater,
        "n_units": n_units,
        "overall": stats.pairwise_agreement(both, rater, paper_rater, **kwargs),
        "by_category": stats.pairwise_agreement_by(both, rater, paper_rater, **kwargs),
    }
