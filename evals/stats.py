"""Agreement statistics for ratings: how far a 0–2 rating can be trusted.

Ratings travel in one long-format :class:`pandas.DataFrame`:

========  =====================================================================
column    meaning
========  =====================================================================
unit      the rated cell, a filing × category: ``"AAPL|2019|environment"``
rater     who rated it: a model id, a prompt version, ``"local@environment/v1"``
sample    repeat index (int) of the same rater on the same unit
score     float 0–2; NaN when the rating is missing or failed
========  =====================================================================

Build it with :func:`ratings_frame` (records) or :func:`from_matrix` (a
units × raters table).  The statistics come from maintained libraries:
Krippendorff's α from ``krippendorff``, ICC(2,1) from ``pingouin``, weighted
Cohen's κ from ``scikit-learn``; numpy does the bootstrap resampling.

Conventions
-----------
* Between raters, a rater's score for a unit is the **mean over its non-missing
  samples** (the expected score); units that either rater lacks are left out.
  κ needs categories, so it uses those means rounded half-up to 0/1/2.
* A statistic that cannot be computed (too few units, no variation) is
  ``None`` together with a ``reason`` — never a made-up 1.0.
* Confidence intervals are percentile bootstrap intervals over units (seeded).
  α, mean absolute difference and the agreement shares use ``n_boot``
  resamples (default 1000); κ and ICC are slower (sklearn ≈2 ms, pingouin
  ≈25 ms a call), so they use the first ``n_boot_slow`` of the same resamples
  (default 200).
* Every result is a plain dict of str/int/float/None/list/dict: JSON-ready.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import krippendorff
import numpy as np
import pandas as pd

COLUMNS = ("unit", "rater", "sample", "score")
SCORE_RANGE = (0.0, 2.0)
LEVELS = ("interval", "ordinal")
TOL = 1e-9  # two scores closer than this are equal
DEFAULT_N_BOOT = 1000
DEFAULT_N_BOOT_SLOW = 200
CI = 0.95
MATRIX_STATS = ("alpha_interval", "alpha_ordinal", "kappa_linear", "kappa_quadratic", "icc2", "mad")


# --------------------------------------------------------------------------- building the frame


def unit_key(ticker: str, fiscal_year: int | str, category: str) -> str:
    """The unit id of a filing × category cell: ``"AAPL|2019|environment"``."""
    return f"{str(ticker).upper()}|{int(fiscal_year)}|{category}"


def split_unit(unit: str) -> tuple[str, int | str, str]:
    """``"AAPL|2019|environment"`` → ``("AAPL", 2019, "environment")`` (year stays a str if not numeric)."""
    ticker, year, category = unit.rsplit("|", 2)
    return ticker, int(year) if year.isdigit() else year, category


def unit_category(unit: str) -> str:
    """The category part of a unit id (the text after the last ``|``)."""
    return unit.rsplit("|", 1)[-1]


def ratings_frame(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]] | pd.DataFrame,
    *,
    rater: str | None = None,
    score_range: tuple[float, float] | None = SCORE_RANGE,
) -> pd.DataFrame:
    """Build (and check) the long ratings frame from records.

    A record is a mapping with ``score`` and either ``unit`` or
    ``ticker``/``fiscal_year``/``category``; ``rater`` (else the keyword
    default) and ``sample`` or ``sample_index`` (default 0) are optional — so
    rows of the results store's ``ratings`` table work as they are.  A tuple is
    ``(unit, rater, sample, score)``.  ``None`` scores become NaN.  Raises
    ``ValueError`` on duplicates (unit, rater, sample) or scores outside
    ``score_range`` (``None`` disables the range check).
    """
    if isinstance(rows, pd.DataFrame):
        frame = rows.copy()
        if "rater" not in frame.columns and rater is not None:
            frame["rater"] = rater
        if "sample" not in frame.columns:
            frame["sample"] = frame["sample_index"] if "sample_index" in frame.columns else 0
        records = None
    else:
        records = []
        for row in rows:
            if isinstance(row, Mapping):
                unit = row.get("unit")
                if unit is None:
                    unit = unit_key(row["ticker"], row["fiscal_year"], row["category"])
                who = row.get("rater", rater)
                sample = row.get("sample", row.get("sample_index", 0))
                score = row.get("score")
            else:
                unit, who, sample, score = row
            records.append((unit, who, sample, score))
        frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"ratings need columns {list(COLUMNS)}; missing {missing}")
    frame = frame[list(COLUMNS)].copy()
    if frame["rater"].isna().any():
        raise ValueError("every rating needs a rater (pass rater=... for records without one)")
    frame["unit"] = frame["unit"].astype(str)
    frame["rater"] = frame["rater"].astype(str)
    frame["sample"] = frame["sample"].fillna(0).astype(int)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce").astype(float)
    if frame.duplicated(["unit", "rater", "sample"]).any():
        dup = frame[frame.duplicated(["unit", "rater", "sample"], keep=False)].iloc[0]
        raise ValueError(f"duplicate rating for unit={dup.unit!r} rater={dup.rater!r} sample={dup['sample']}")
    if score_range is not None:
        low, high = score_range
        bad = frame["score"].notna() & ~frame["score"].between(low - TOL, high + TOL)
        if bad.any():
            row = frame[bad].iloc[0]
            raise ValueError(f"score {row.score} outside {low}–{high} (unit {row.unit!r}, rater {row.rater!r})")
    return frame.reset_index(drop=True)


def from_matrix(
    matrix: Any,
    units: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    *,
    sample: int = 0,
    score_range: tuple[float, float] | None = SCORE_RANGE,
) -> pd.DataFrame:
    """Long frame from a units × raters table (array, nested lists or DataFrame; NaN = missing)."""
    if isinstance(matrix, pd.DataFrame):
        table = matrix.copy()
        if units is not None:
            table.index = list(units)
        if raters is not None:
            table.columns = list(raters)
    else:
        values = np.asarray(matrix, dtype=float)
        if values.ndim != 2:
            raise ValueError("matrix must be 2-D (units × raters)")
        table = pd.DataFrame(
            values,
            index=list(units) if units is not None else [f"u{i}" for i in range(values.shape[0])],
            columns=list(raters) if raters is not None else [f"r{j}" for j in range(values.shape[1])],
        )
    table.index = table.index.map(str)
    table.columns = table.columns.map(str)
    long = table.rename_axis(index="unit", columns="rater").stack(future_stack=True).rename("score").reset_index()
    long["sample"] = sample
    return ratings_frame(long, score_range=score_range)


def _check(df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"ratings need columns {list(COLUMNS)}; missing {missing}")
    return df


def rater_names(df: pd.DataFrame) -> list[str]:
    """Raters in order of first appearance."""
    return list(dict.fromkeys(_check(df)["rater"].astype(str)))


def expected_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Units × raters table of the mean score over non-missing samples (NaN where none)."""
    df = _check(df)
    table = df.pivot_table(index="unit", columns="rater", values="score", aggfunc="mean", dropna=False, sort=False)
    table = table.reindex(columns=rater_names(df))
    table.columns.name = None
    return table


# --------------------------------------------------------------------------- small helpers


def _num(value: Any) -> float | None:
    """A finite Python float, or None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _estimate(point: float | None, boot: np.ndarray | None, reason: str | None = None, ci: float = CI) -> dict:
    """``{"estimate", "ci_low", "ci_high", "n_boot", "reason"}`` with a percentile CI from ``boot``."""
    out = {"estimate": _num(point), "ci_low": None, "ci_high": None, "n_boot": 0, "reason": reason}
    if out["estimate"] is None:
        if reason is None:
            out["reason"] = "not computable"
        return out
    if boot is not None:
        valid = np.asarray(boot, dtype=float)
        valid = valid[np.isfinite(valid)]
        out["n_boot"] = int(valid.size)
        if valid.size >= 2:
            tail = (1 - ci) / 2 * 100
            low, high = np.percentile(valid, [tail, 100 - tail])
            out["ci_low"], out["ci_high"] = float(low), float(high)
    return out


def _round_half_up(values: np.ndarray) -> np.ndarray:
    """0.5 → 1, 1.5 → 2 (numpy's round would go to even); clipped to 0–2."""
    return np.clip(np.floor(np.asarray(values, dtype=float) + 0.5), 0, 2).astype(int)


def _boot(statistic: Callable[[np.ndarray], float | None], indices: np.ndarray) -> np.ndarray:
    """``statistic`` on each row of resampled indices; None becomes NaN (dropped from the CI)."""
    values = [statistic(row) for row in indices]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _bootstrap_indices(n: int, n_boot: int, seed: int | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(max(int(n_boot), 0), n))


# --------------------------------------------------------------------------- Krippendorff's alpha


def _domain(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    return np.unique(finite)


def _value_counts(matrix: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Units × domain-values counts from a units × raters matrix (NaN = missing)."""
    return (matrix[:, :, np.newaxis] == domain[np.newaxis, np.newaxis, :]).sum(axis=1)


def _alpha_from_counts(counts: np.ndarray, domain: np.ndarray, level: str) -> tuple[float | None, str | None]:
    """α from value counts via ``krippendorff.alpha``; (None, reason) when undefined."""
    pairable = counts.sum(axis=1) >= 2
    if pairable.sum() < 2:
        return None, "fewer than 2 units rated by at least 2 raters"
    used = counts[pairable]
    if (used.sum(axis=0) > 0).sum() < 2:
        return None, "no variation: every pairable rating has the same value, so α is undefined"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = krippendorff.alpha(value_counts=used, value_domain=domain, level_of_measurement=level)
    value = _num(value)
    return (value, None) if value is not None else (None, "α is not finite for these data")


def _alpha_matrix(
    matrix: np.ndarray, level: str, n_boot: int = 0, seed: int | None = 0, ci: float = CI
) -> dict:
    """α of a units × raters matrix, with unit-bootstrap CI, plus counts."""
    if level not in LEVELS and level not in ("nominal", "ratio"):
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("matrix must be units × raters")
    # means over samples: 1/3 computed two ways must be one value, not two
    matrix = np.round(matrix, 9)
    domain = _domain(matrix)
    counts = _value_counts(matrix, domain)  # units × values; zero columns when there are no ratings
    pairable = counts.sum(axis=1) >= 2
    point, reason = _alpha_from_counts(counts, domain, level)
    boot = None
    if point is not None and n_boot > 0:
        # resample only pairable units: unpairable ones contribute nothing to α
        used = counts[pairable]
        idx = _bootstrap_indices(used.shape[0], n_boot, seed)
        boot = _boot(lambda row: _alpha_from_counts(used[row], domain, level)[0], idx)
    out = _estimate(point, boot, reason, ci)
    out.update(
        level=level,
        n_units=int(pairable.sum()),
        n_raters=int(matrix.shape[1]),
        n_values=int(counts[pairable].sum()),
    )
    return out


def krippendorff_alpha(
    df: pd.DataFrame,
    level: str = "interval",
    *,
    raters: Sequence[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int | None = 0,
    ci: float = CI,
) -> dict:
    """Krippendorff's α across raters (each rater's expected score per unit).

    ``level`` is ``"interval"`` or ``"ordinal"``.  Missing ratings are
    allowed; units rated by fewer than two raters do not count.  Returns
    ``{"estimate", "ci_low", "ci_high", "n_boot", "reason", "level",
    "n_units", "n_raters", "n_values"}``; ``estimate`` is None (with
    ``reason``) when fewer than 2 units are pairable or all pairable values
    are equal.  ``n_boot=0`` skips the bootstrap.
    """
    table = expected_scores(df)
    if raters is not None:
        table = table.reindex(columns=list(raters))
    return _alpha_matrix(table.to_numpy(dtype=float), level, n_boot=n_boot, seed=seed, ci=ci)


# --------------------------------------------------------------------------- test-retest


def _samples_matrix(df: pd.DataFrame) -> pd.DataFrame:
    table = df.pivot_table(index="unit", columns="sample", values="score", aggfunc="first", dropna=False, sort=False)
    return table


def test_retest(
    df: pd.DataFrame, *, n_boot: int = 0, seed: int | None = 0, ci: float = CI
) -> dict[str, dict]:
    """Stability of each rater under repeated sampling (same model + prompt).

    Per rater, with the samples of a unit treated as its "raters":
    ``alpha_interval`` / ``alpha_ordinal`` (estimate dicts as in
    :func:`krippendorff_alpha`; CI only when ``n_boot`` > 0),
    ``exact_agreement`` (share of units with ≥2 samples whose samples are all
    equal), ``within_one`` (share whose max − min ≤ 1), ``mean_spread`` /
    ``max_spread`` (max − min), ``mean_std`` (population std over samples),
    ``per_unit`` (unit → n, mean, min, max, spread, std), and counts
    ``n_units`` (units with ≥2 non-missing samples), ``n_samples`` (distinct
    sample indices), ``n_ratings``, ``n_missing``.
    """
    df = _check(df)
    out: dict[str, dict] = {}
    for who in rater_names(df):
        part = df[df["rater"] == who]
        table = _samples_matrix(part)
        values = table.to_numpy(dtype=float)
        present = np.isfinite(values)
        n_per_unit = present.sum(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nanmin(np.where(present, values, np.nan), axis=1) if values.size else np.array([])
            high = np.nanmax(np.where(present, values, np.nan), axis=1) if values.size else np.array([])
            mean = np.nanmean(values, axis=1) if values.size else np.array([])
            std = np.nanstd(values, axis=1) if values.size else np.array([])
        spread = high - low
        repeated = n_per_unit >= 2
        result: dict[str, Any] = {
            "alpha_interval": _alpha_matrix(values, "interval", n_boot=n_boot, seed=seed, ci=ci),
            "alpha_ordinal": _alpha_matrix(values, "ordinal", n_boot=n_boot, seed=seed, ci=ci),
            "exact_agreement": _num(np.mean(spread[repeated] <= TOL)) if repeated.any() else None,
            "within_one": _num(np.mean(spread[repeated] <= 1 + TOL)) if repeated.any() else None,
            "mean_spread": _num(np.mean(spread[repeated])) if repeated.any() else None,
            "max_spread": _num(np.max(spread[repeated])) if repeated.any() else None,
            "mean_std": _num(np.mean(std[repeated])) if repeated.any() else None,
            "n_units": int(repeated.sum()),
            "n_samples": int(table.shape[1]),
            "n_ratings": int(present.sum()),
            "n_missing": int(part["score"].isna().sum()),
            "per_unit": {
                str(unit): {
                    "n": int(n_per_unit[i]),
                    "mean": _num(mean[i]),
                    "min": _num(low[i]),
                    "max": _num(high[i]),
                    "spread": _num(spread[i]),
                    "std": _num(std[i]),
                }
                for i, unit in enumerate(table.index)
            },
        }
        out[who] = result
    return out


test_retest.__test__ = False  # a statistic, not a pytest test, if imported into a test module


# --------------------------------------------------------------------------- agreement metric registry


@dataclass(frozen=True)
class AgreementMetric:
    """A registered agreement statistic of two raters: ``func(x, y)`` on their paired expected scores."""

    name: str
    func: Callable[[np.ndarray, np.ndarray], float | None]
    label: str
    min_units: int = 2
    slow: bool = True  # bootstrap on the first ``n_boot_slow`` resamples (else all ``n_boot``)
    undefined: str = "not computable"  # the reason when ``func`` returns None

    def point(self, x: np.ndarray, y: np.ndarray) -> float | None:
        """The statistic on these units (None below ``min_units``)."""
        return _num(self.func(x, y)) if len(x) >= self.min_units else None

    def estimate(self, x: np.ndarray, y: np.ndarray, fast_idx: np.ndarray, slow_idx: np.ndarray,
                 ci: float = CI) -> dict:
        """An estimate dict (see :func:`_estimate`) with a bootstrap CI over units."""
        point = self.point(x, y)
        idx = slow_idx if self.slow else fast_idx
        boot = _boot(lambda r: self.point(x[r], y[r]), idx) if point is not None else None
        if point is not None:
            reason = None
        elif len(x) < self.min_units:
            reason = f"fewer than {self.min_units} units rated by both"
        else:
            reason = self.undefined
        return _estimate(point, boot, reason, ci)


#: Every agreement metric, by name, in registration order: each appears in :func:`pairwise_agreement`
#: (so in ``eval run``'s cross-prompt and cross-model pairs, results.json and the report) and can be an
#: :func:`agreement_matrix` statistic.
AGREEMENT_METRICS: dict[str, AgreementMetric] = {}


def agreement_metric(name: str, *, label: str | None = None, min_units: int = 2, slow: bool = True,
                     undefined: str = "not computable") -> Callable:
    """Register ``func(x, y) -> float | None`` (two raters' paired expected scores, 0–2) as an agreement metric.

    >>> @agreement_metric("spearman", label="Spearman ρ")
    ... def spearman(x, y): ...

    A new metric is this one function: the harness computes it for every rater pair with a bootstrap CI
    and the report shows it as a column.
    """
    def register(func: Callable[[np.ndarray, np.ndarray], float | None]) -> Callable:
        AGREEMENT_METRICS[name] = AgreementMetric(name, func, label or name, min_units, slow, undefined)
        return func

    return register


# --------------------------------------------------------------------------- two raters


def _kappa(a: np.ndarray, b: np.ndarray, weights: str) -> float | None:
    import sklearn
    from sklearn.metrics import cohen_kappa_score

    # the inputs are ours and already checked: skipping sklearn's validation makes a call ~2x faster
    with warnings.catch_warnings(), sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        warnings.simplefilter("ignore")
        try:
            value = cohen_kappa_score(_round_half_up(a), _round_half_up(b), labels=[0, 1, 2], weights=weights)
        except (ValueError, ZeroDivisionError):
            return None
    return _num(value)


@agreement_metric("kappa_linear", label="κ linear", undefined="κ undefined (no variation)")
def kappa_linear(x: np.ndarray, y: np.ndarray) -> float | None:
    """Cohen's κ, linear weights, on scores rounded half-up to 0/1/2."""
    return _kappa(x, y, "linear")


@agreement_metric("kappa_quadratic", label="κ quadratic", undefined="κ undefined (no variation)")
def kappa_quadratic(x: np.ndarray, y: np.ndarray) -> float | None:
    """Cohen's κ, quadratic weights, on scores rounded half-up to 0/1/2."""
    return _kappa(x, y, "quadratic")


def _icc2(matrix: np.ndarray, with_ci: bool = False) -> Any:
    """ICC(2,1) (two-way random, absolute agreement, single rater) of a complete units × raters matrix, via pingouin."""
    import pingouin

    matrix = np.asarray(matrix, dtype=float)
    n, k = matrix.shape
    nothing = (None, None) if with_ci else None
    if n < 2 or k < 2 or np.ptp(matrix) <= TOL:
        return nothing
    long = pd.DataFrame(
        {"unit": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n), "score": matrix.reshape(-1)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = pingouin.intraclass_corr(data=long, targets="unit", raters="rater", ratings="score")
        except (ValueError, ZeroDivisionError, AssertionError):
            return nothing
    # pingouin < 0.7 calls it "ICC2", 0.7+ "ICC(A,1)" (McGraw & Wong's name for Shrout & Fleiss ICC(2,1))
    row = table[table["Type"].isin(["ICC2", "ICC(A,1)"])]
    if row.empty:
        raise RuntimeError(f"pingouin.intraclass_corr returned no ICC(2,1) row: {list(table['Type'])}")
    value = _num(row["ICC"].iloc[0])
    if not with_ci:
        return value
    ci95 = row["CI95" if "CI95" in row.columns else "CI95%"].iloc[0]
    ci_f = [_num(ci95[0]), _num(ci95[1])] if ci95 is not None and len(ci95) == 2 else None
    return value, ci_f


def icc2(
    df: pd.DataFrame,
    *,
    raters: Sequence[str] | None = None,
    n_boot: int = DEFAULT_N_BOOT_SLOW,
    seed: int | None = 0,
    ci: float = CI,
) -> dict:
    """ICC(2,1) across raters (expected scores; units missing any rater are dropped).

    Estimate dict with a unit-bootstrap CI (``n_boot`` resamples; pingouin
    takes ≈25 ms a call) and pingouin's F-based 95% CI in ``ci_f``; plus
    ``n_units`` and ``n_raters``.  None with a reason for fewer than 2
    complete units or raters, or no variation.
    """
    table = expected_scores(df)
    if raters is not None:
        table = table.reindex(columns=list(raters))
    matrix = table.dropna().to_numpy(dtype=float)
    n, k = matrix.shape
    point, ci_f = _icc2(matrix, with_ci=True)
    reason = None
    if point is None:
        reason = "fewer than 2 units rated by every rater" if n < 2 else (
            "fewer than 2 raters" if k < 2 else "ICC undefined (no variation)"
        )
    boot = None
    if point is not None and n_boot > 0:
        boot = _boot(lambda r: _icc2(matrix[r]), _bootstrap_indices(n, n_boot, seed))
    out = _estimate(point, boot, reason, ci)
    out.update(ci_f=ci_f, n_units=int(n), n_raters=int(k))
    return out


def _pair_values(df: pd.DataFrame, a: str, b: str) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    table = expected_scores(df)
    for who in (a, b):
        if who not in table.columns:
            raise ValueError(f"rater {who!r} not in the ratings (raters: {list(table.columns)})")
    pair = table[[a, b]] if a != b else pd.DataFrame({"a": table[a], "b": table[a]})
    both = pair.notna().all(axis=1)
    units_any = int(pair.notna().any(axis=1).sum())
    values = pair[both].to_numpy(dtype=float)
    return [str(u) for u in pair.index[both]], values[:, 0], values[:, 1], units_any - int(both.sum())


def _fast_stats(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Difference statistics, vectorised over a leading bootstrap axis."""
    diff = np.abs(a - b)
    return {
        "mean_abs_diff": diff.mean(axis=-1),
        "exact_agreement": (diff <= TOL).mean(axis=-1),
        "within_one": (diff <= 1 + TOL).mean(axis=-1),
        "changed_share": (diff > TOL).mean(axis=-1),
        "changed_full_point_share": (diff >= 1 - TOL).mean(axis=-1),
    }


def pairwise_agreement(
    df: pd.DataFrame,
    a: str,
    b: str,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    n_boot_slow: int = DEFAULT_N_BOOT_SLOW,
    seed: int | None = 0,
    ci: float = CI,
) -> dict:
    """Agreement between raters ``a`` and ``b`` on the units both rated.

    Scores are each rater's mean over its samples (expected score).  Each
    statistic is an estimate dict (``estimate``, ``ci_low``, ``ci_high``,
    ``n_boot``, ``reason``) with a percentile bootstrap CI over units:
    ``alpha_interval``, ``alpha_ordinal``, ``mean_abs_diff``,
    ``exact_agreement``, ``within_one`` (|a − b| ≤ 1), ``changed_share``
    (1 − exact), ``changed_full_point_share`` (|a − b| ≥ 1) on ``n_boot``
    resamples; ``kappa_linear``, ``kappa_quadratic`` (weighted Cohen's κ on
    scores rounded half-up to 0/1/2) and ``icc2`` (ICC(2,1), pingouin; its
    F-based CI is in ``icc2["ci_f"]``) on the first ``n_boot_slow``.  Also
    ``n_units``, ``n_changed``, ``n_changed_full_point``, ``n_unpaired``
    (units only one of them rated), ``mean_a``, ``mean_b``.
    """
    units, x, y, unpaired = _pair_values(df, a, b)
    n = len(units)
    out: dict[str, Any] = {"rater_a": a, "rater_b": b, "n_units": n, "n_unpaired": unpaired}
    n_boot, n_boot_slow = max(int(n_boot), 0), max(int(n_boot_slow), 0)
    # one set of resamples: the fast statistics use the first n_boot, κ and ICC the first n_boot_slow
    all_idx = _bootstrap_indices(n, max(n_boot, n_boot_slow) if n >= 2 else 0, seed)
    idx, slow_idx = all_idx[:n_boot], all_idx[:n_boot_slow]
    matrix = np.column_stack([x, y]) if n else np.zeros((0, 2))

    out["alpha_interval"] = _alpha_matrix(matrix, "interval", n_boot=n_boot if n >= 2 else 0, seed=seed, ci=ci)
    out["alpha_ordinal"] = _alpha_matrix(matrix, "ordinal", n_boot=n_boot if n >= 2 else 0, seed=seed, ci=ci)

    if n:
        points = _fast_stats(x, y)
        boots = _fast_stats(x[idx], y[idx]) if len(idx) else {k: None for k in points}
        for name, value in points.items():
            out[name] = _estimate(float(value), boots[name], None, ci)
    else:
        for name in ("mean_abs_diff", "exact_agreement", "within_one", "changed_share", "changed_full_point_share"):
            out[name] = _estimate(None, None, "no units rated by both", ci)

    for metric in AGREEMENT_METRICS.values():  # κ linear and quadratic, then any registered metric
        out[metric.name] = metric.estimate(x, y, idx, slow_idx, ci)

    point, ci_f = _icc2(matrix, with_ci=True) if n >= 2 else (None, None)
    boot = None
    if point is not None:
        boot = _boot(lambda r: _icc2(matrix[r]), slow_idx)
    reason = None if point is not None else ("fewer than 2 units rated by both" if n < 2 else "ICC undefined (no variation)")
    out["icc2"] = _estimate(point, boot, reason, ci)
    out["icc2"]["ci_f"] = ci_f

    diff = np.abs(x - y)
    out["n_changed"] = int((diff > TOL).sum())
    out["n_changed_full_point"] = int((diff >= 1 - TOL).sum())
    out["mean_a"] = _num(x.mean()) if n else None
    out["mean_b"] = _num(y.mean()) if n else None
    return out


def pairwise_agreement_by(
    df: pd.DataFrame,
    a: str,
    b: str,
    key: Callable[[str], str] = unit_category,
    **kwargs: Any,
) -> dict[str, dict]:
    """:func:`pairwise_agreement` per group of units (default: per category)."""
    df = _check(df)
    groups = df["unit"].map(key)
    return {str(g): pairwise_agreement(df[groups == g], a, b, **kwargs) for g in dict.fromkeys(groups)}


def _point(stat: str, x: np.ndarray, y: np.ndarray) -> float | None:
    if stat.startswith("alpha_"):
        return _alpha_matrix(np.column_stack([x, y]), stat.split("_", 1)[1])["estimate"]
    if len(x) < 1:
        return None
    if stat in AGREEMENT_METRICS:
        return AGREEMENT_METRICS[stat].point(x, y)
    if stat == "icc2":
        return _icc2(np.column_stack([x, y]))
    if stat == "mad":
        return _num(np.mean(np.abs(x - y)))
    raise ValueError(f"stat must be one of {matrix_stats()}, got {stat!r}")


def matrix_stats() -> tuple[str, ...]:
    """The statistics :func:`agreement_matrix` knows: the built-in ones and every registered metric."""
    return tuple(dict.fromkeys([*MATRIX_STATS, *AGREEMENT_METRICS]))


def agreement_matrix(df: pd.DataFrame, stat: str = "alpha_interval") -> pd.DataFrame:
    """Raters × raters table of one statistic (no CI), for heatmaps.

    ``stat`` is one of ``alpha_interval``, ``alpha_ordinal``,
    ``kappa_linear``, ``kappa_quadratic``, ``icc2``, ``mad`` or a registered
    :func:`agreement_metric`.  NaN where
    not computable.  The diagonal is computed like any cell (a rater against
    itself: 1, or 0 for ``mad``, when defined).
    """
    if stat not in matrix_stats():
        raise ValueError(f"stat must be one of {matrix_stats()}, got {stat!r}")
    names = rater_names(df)
    table = expected_scores(df)
    result = pd.DataFrame(np.nan, index=names, columns=names, dtype=float)
    for i, first in enumerate(names):
        for second in names[i:]:
            values = table[[first, second]].dropna().to_numpy(dtype=float)  # first == second: two equal columns
            value = _point(stat, values[:, 0], values[:, 1]) if len(values) else None
            result.loc[first, second] = result.loc[second, first] = np.nan if value is None else value
    return result


# --------------------------------------------------------------------------- run diff


def cell_changes(df_a: pd.DataFrame, df_b: pd.DataFrame) -> pd.DataFrame:
    """Per unit: ``score_a``, ``score_b`` (mean over samples and raters), ``diff`` (b − a), ``abs_diff``, ``status``.

    ``status`` is ``same``, ``changed``, ``only_a``, ``only_b`` or
    ``missing`` (no score on either side).  Sorted by ``abs_diff`` (largest
    first), then unit.
    """
    means = []
    for frame in (_check(df_a), _check(df_b)):
        means.append(frame.groupby("unit", sort=False)["score"].mean())
    table = pd.concat({"score_a": means[0], "score_b": means[1]}, axis=1)
    table.index.name = "unit"
    table = table.reset_index()
    table["diff"] = table["score_b"] - table["score_a"]
    table["abs_diff"] = table["diff"].abs()
    has_a, has_b = table["score_a"].notna(), table["score_b"].notna()
    status = np.select(
        [has_a & has_b & (table["abs_diff"] <= TOL), has_a & has_b, has_a, has_b],
        ["same", "changed", "only_a", "only_b"],
        default="missing",
    )
    table["status"] = status
    table = table.sort_values(["abs_diff", "unit"], ascending=[False, True], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def diff_runs(
    df_a: pd.DataFrame,
    df_b: pd.DataFrame,
    *,
    label_a: str = "A",
    label_b: str = "B",
    n_boot: int = DEFAULT_N_BOOT,
    n_boot_slow: int = DEFAULT_N_BOOT_SLOW,
    seed: int | None = 0,
) -> dict:
    """What ``filinglens eval diff RUN_A RUN_B`` reports: changed cells and agreement.

    Each run's ratings (any raters) are treated as one rater.  Returns
    ``{"cells": [...records of cell_changes...], "counts": {status: n},
    "agreement": pairwise_agreement(...)}``.
    """
    cells = cell_changes(df_a, df_b)
    both = pd.concat(
        [_check(df_a).assign(rater=label_a), _check(df_b).assign(rater=label_b)], ignore_index=True
    )
    # one rater per run: collapse (unit, sample) duplicates from several raters into their mean
    both = both.groupby(["unit", "rater", "sample"], as_index=False, sort=False)["score"].mean()
    records = [
        {key: (_num(value) if isinstance(value, (float, np.floating)) else value) for key, value in row.items()}
        for row in cells.to_dict(orient="records")
    ]
    if label_a in set(both["rater"]) and label_b in set(both["rater"]):
        agreement = pairwise_agreement(both, label_a, label_b, n_boot=n_boot, n_boot_slow=n_boot_slow, seed=seed)
    else:
        agreement = None
    return {
        "cells": records,
        "counts": {str(k): int(v) for k, v in cells["status"].value_counts().items()},
        "agreement": agreement,
    }
