"""Unit and rater ids of the eval harness: ``"AAPL|2019|environment"`` and ``"local@v2"``."""

from __future__ import annotations

from filinglens.agents.rating import Target
from filinglens.evals import stats


def rater_id(model_id: str, prompt_version: str) -> str:
    """The rater label of a (model, prompt version) pair: ``"local@v2"``."""
    return f"{model_id}@{prompt_version}"


def unit_id(ticker: str | None, fiscal_year: int | None, category: str, fallback: str = "?") -> str:
    """``"AAPL|2019|environment"`` (the paper's unit ids); company or filing hash when there is no ticker."""
    if ticker and fiscal_year:
        return stats.unit_key(ticker, fiscal_year, category)
    return f"{(ticker or fallback).upper()}|{fiscal_year or '?'}|{category}"


def target_unit(target: Target, category: str) -> str:
    return unit_id(target.ticker, target.fiscal_year, category, target.company or target.content_hash[:12])


def row_unit(row: dict) -> str:
    """Unit id of a results-store ``ratings`` row."""
    return unit_id(row.get("ticker"), row.get("fiscal_year"), row["category"],
                   row.get("company") or str(row.get("filing_hash", "?"))[:12])
