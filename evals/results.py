"""What the eval harness computes, as types: units and raters, threshold checks, the metamorphic
section and :class:`SuiteResult` (``to_dict()`` is ``results.json``).

:mod:`filinglens.evals.run` fills a :class:`SuiteResult`; the report
(:mod:`filinglens.evals.report`) and the display layer read it as it is (no
flatten-to-dict and read back). Only ``results.json`` is plain JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from filinglens.agents.rating import Rating, Target
from filinglens.analysis.render import jsonable
from filinglens.evals.suite import Suite
from filinglens.evals.units import rater_id, target_unit

# --------------------------------------------------------------------------- the result


@dataclass
class Check:
    """One threshold applied to one statistic."""

    name: str  # the threshold, e.g. min_test_retest_alpha
    scope: str  # rater, pair or "all"
    threshold: float
    value: float | None
    passed: bool
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "scope": self.scope, "threshold": self.threshold, "value": self.value,
                "passed": self.passed, "reason": self.reason}

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.3f}"
        op = "≥" if self.name.startswith("min_") else "≤"
        tail = f" ({self.reason})" if self.reason else ""
        return f"{self.name} [{self.scope}]: {shown} (needs {op} {self.threshold}){tail}"


@dataclass
class RaterMetamorphic:
    """One rater's metamorphic checks: the report (:class:`filinglens.evals.metamorphic.MetamorphicReport`,
    or anything with ``pass_rates``, ``results`` and ``to_dict()``) or the error that stopped them."""

    report: Any = None
    error: str | None = None

    @property
    def pass_rates(self) -> dict[str, float | None]:
        """Pass rate per check (empty when the checks failed)."""
        return dict(getattr(self.report, "pass_rates", None) or {}) if self.report is not None else {}

    @property
    def results(self) -> list:
        """The check results (``CheckResult``), one per filing × category × sample × check."""
        return list(getattr(self.report, "results", None) or []) if self.report is not None else []

    def to_dict(self) -> dict:
        if self.report is None:
            return {"error": self.error}
        return jsonable(self.report.to_dict())


@dataclass
class MetamorphicSection:
    """The suite's ``metamorphic:`` section: per rater, its checks (or why none ran)."""

    available: bool
    checks: list[str] = field(default_factory=list)
    raters: dict[str, RaterMetamorphic] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"available": self.available}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.available:
            out["checks"] = list(self.checks)
        out["raters"] = {rater: got.to_dict() for rater, got in self.raters.items()}
        return out


@dataclass
class SuiteResult:
    """Everything ``eval run`` computed; ``to_dict()`` is ``results.json``."""

    suite: Suite
    suite_hash: str
    targets: list[Target]
    runs: dict[str, str]  # rater -> results-store run id
    ratings: list[Rating]
    frame: pd.DataFrame
    test_retest: dict[str, Any] = field(default_factory=dict)
    cross_prompt: list[dict] = field(default_factory=list)
    cross_model: list[dict] = field(default_factory=list)
    matrix: dict[str, pd.DataFrame] = field(default_factory=dict)
    paper: dict[str, Any] | None = None
    metamorphic: MetamorphicSection | None = None
    reference: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def raters(self) -> list[str]:
        return list(self.runs)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def calls_made(self) -> int:
        return sum(r.model_calls - r.cached_calls for r in self.ratings)

    @property
    def calls_cached(self) -> int:
        return sum(r.cached_calls for r in self.ratings)

    @property
    def failed_ratings(self) -> int:
        return sum(1 for r in self.ratings if r.status != "ok")

    def rating_rows(self) -> list[dict]:
        """One flat row per rating (the Parquet file): unit, rater, run id and the store's columns."""
        rows = []
        for r in self.ratings:
            row = r.to_row()
            rater = rater_id(r.model_id, r.prompt_version)
            row.update(unit=target_unit(r.target, r.category), rater=rater, run_id=self.runs.get(rater),
                       filing_id=r.target.filing_id, filing=r.target.label)
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        slim = [
            {k: row[k] for k in ("unit", "rater", "run_id", "filing", "ticker", "fiscal_year", "category",
                                 "prompt_version", "model_id", "sample_index", "status", "score",
                                 "expected_score", "error", "unverified_quotes", "model_calls", "cached_calls")}
            for row in self.rating_rows()
        ]
        return jsonable({
            "suite": {"name": self.suite.name, "path": self.suite.path, "hash": self.suite_hash,
                      "description": self.suite.description,
                      "config": self.suite.model_dump(mode="json", exclude={"path"})},
            "ok": self.ok,
            "failures": [c.describe() for c in self.failures],
            "checks": [c.to_dict() for c in self.checks],
            "runs": self.runs,
            "filings": [{"filing_id": t.filing_id, "label": t.label, "ticker": t.ticker, "company": t.company,
                         "fiscal_year": t.fiscal_year} for t in self.targets],
            "counts": {"ratings": len(self.ratings), "failed": self.failed_ratings,
                       "calls_made": self.calls_made, "calls_cached": self.calls_cached},
            "test_retest": self.test_retest,
            "cross_prompt": self.cross_prompt,
            "cross_model": self.cross_model,
            "agreement_matrix": {stat: _matrix_dict(m) for stat, m in self.matrix.items()},
            "paper": self.paper,
            "metamorphic": self.metamorphic.to_dict() if self.metamorphic is not None else None,
            "reference": self.reference,
            "notes": self.notes,
            "timings": self.timings,
            "files": self.files,
            "ratings": slim,
        })


def _matrix_dict(matrix: pd.DataFrame) -> dict:
    return {str(a): {str(b): _clean(v) for b, v in row.items()} for a, row in matrix.iterrows()}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metamorphic_pass_rates(result: Any) -> dict[str, float | None]:
    """Pass rate per check of one rater's metamorphic result as read back from ``results.json`` (``by_check`` / ``pass_rates``, else any ``pass_rate``)."""
    if not isinstance(result, dict):
        return {}
    if isinstance(result.get("by_check"), dict):
        return {str(k): (v.get("pass_rate") if isinstance(v, dict) else v) for k, v in result["by_check"].items()}
    if isinstance(result.get("pass_rates"), dict):
        return {str(k): v for k, v in result["pass_rates"].items()}
    rates: dict[str, float | None] = {}

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key == "pass_rate":
                rates[path or "overall"] = value
            elif isinstance(value, dict):
                walk(value, path if key in ("checks", "results") else (f"{path}/{key}" if path else str(key)))

    walk(result, "")
    return rates


