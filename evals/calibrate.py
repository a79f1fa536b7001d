"""Calibrated cut-offs for expected scores, and their cross-validated validity.

A rating method that gives an expected score ``E`` in [0, 2] needs two cut-offs ``c0 < c1`` (score 0 below
``c0``, 2 from ``c1``). :func:`fit_cutoffs` fits them on labelled cells: over a grid of pairs it keeps
those with the most exact agreements (ties: the highest quadratic κ), and returns the middle of that
optimal set along each axis — the cut-off furthest from the training cells on either side, which is what
generalises when a level has few or no training examples (with no 0 among the labels, ``c0`` lands midway
below the lowest training score).

:func:`cross_validate` fits only on training folds (leave one filing out: all categories of the held-out
filing leave together) and predicts the held-out cells; :func:`validity_report` runs that for every
category of a dumped rating run (``bench/rating_validity.py``), next to alternatives — the prompt's
uncalibrated cut-offs (0.5/1.5), a logistic model on the indicator values, facts withheld — and
:func:`write_cutoffs` stores the cut-offs fitted on all labels, with the held-out figures, in the prompt
files.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_CUTOFFS = (0.5, 1.5)
GRID_STEP = 0.01


def predict(expected: Sequence[float], cutoffs: Sequence[float]) -> np.ndarray:
    """0 below ``c0``, 1 below ``c1``, else 2."""
    e = np.asarray(expected, dtype=float)
    return np.where(e < cutoffs[0], 0, np.where(e < cutoffs[1], 1, 2))


_WEIGHTS = np.array([[(i - j) ** 2 for j in range(3)] for i in range(3)], dtype=float)


def quadratic_kappa(truth: Sequence[int], pred: Sequence[int]) -> float | None:
    """Quadratic-weighted Cohen's κ on 0/1/2 (as scikit-learn's ``cohen_kappa_score``; None when undefined)."""
    t, p = np.asarray(truth, dtype=int), np.asarray(pred, dtype=int)
    if len(t) < 2:
        return None
    observed = np.zeros((3, 3))
    np.add.at(observed, (t, p), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(t)
    denominator = (_WEIGHTS * expected).sum()
    if denominator <= 0:
        return 1.0 if (t == p).all() else 0.0
    return float(1 - (_WEIGHTS * observed).sum() / denominator)


def fit_cutoffs(expected: Sequence[float], labels: Sequence[int], step: float = GRID_STEP) -> tuple[float, float]:
    """Cut-offs with the most exact agreements on (``expected``, ``labels``); see the module docstring."""
    e = np.asarray(expected, dtype=float)
    y = np.asarray(labels, dtype=int)
    if len(e) == 0:
        return DEFAULT_CUTOFFS
    grid = np.round(np.arange(0.0, 2.0 + step / 2, step), 6)
    below = e[None, :] < grid[:, None]  # grid × cells: E < c
    # exact agreements of (c0, c1) = zeros below c0 + ones between + twos from c1; with c0 < c1 it separates:
    zeros, ones, twos = ((below & (y == k)).sum(axis=1) for k in (0, 1, 2))
    total_twos = int((y == 2).sum())
    agree = (zeros - ones)[:, None] + (ones + (total_twos - twos))[None, :]
    agree = np.where(np.triu(np.ones((len(grid), len(grid)), dtype=bool), k=1), agree, -1)
    best = agree.max()
    ii, jj = np.nonzero(agree == best)
    if len(set(y)) > 1 and len(ii) > 1:  # ties: the highest quadratic κ (one κ per distinct prediction)
        ranks = below.sum(axis=1)  # cells below each grid point: pairs with equal ranks predict alike
        keys = ranks[ii] * (len(e) + 1) + ranks[jj]
        unique, first = np.unique(keys, return_index=True)
        kappas = np.array([quadratic_kappa(y, predict(e, (grid[ii[k]], grid[jj[k]]))) or -1.0 for k in first])
        keep = np.isin(keys, unique[kappas >= kappas.max() - 1e-12])
        ii, jj = ii[keep], jj[keep]
    c0 = float(np.median(grid[ii]))
    c1 = float(np.median(grid[jj]))
    if c1 <= c0:
        c1 = min(2.0, c0 + step)
    return round(c0, 3), round(c1, 3)


def cutoff_bands(expected: Sequence[float], labels: Sequence[int], groups: Sequence[str], n_boot: int = 200,
                 level: float = 0.8, seed: int = 0) -> list[list[float]]:
    """How far each cut-off moves when the labelled filings are resampled: the central ``level`` interval
    of the cut-offs fitted on ``n_boot`` bootstrap samples of the groups (filings). A cell whose expected
    score falls inside a band is ``borderline``: its score depends on which filings were labelled."""
    e = np.asarray(expected, dtype=float)
    y = np.asarray(labels, dtype=int)
    g = np.asarray(groups)
    names = list(dict.fromkeys(g.tolist()))
    rng = np.random.default_rng(seed)
    fits = []
    for _ in range(n_boot):
        pick = rng.choice(len(names), size=len(names), replace=True)
        idx = np.concatenate([np.nonzero(g == names[k])[0] for k in pick])
        fits.append(fit_cutoffs(e[idx], y[idx]))
    fits = np.array(fits)
    tail = (1 - level) / 2 * 100
    return [[round(float(np.percentile(fits[:, k], tail)), 3), round(float(np.percentile(fits[:, k], 100 - tail)), 3)]
            for k in (0, 1)]


def in_band(expected: float, bands: Sequence[Sequence[float]]) -> bool:
    """Whether ``expected`` lies inside one of the cut-off bands."""
    return any(low <= expected <= high for low, high in bands)


def cross_validate(expected: Sequence[float], labels: Sequence[int], groups: Sequence[str],
                   fit: Callable = fit_cutoffs, bands: int = 0) -> dict:
    """Leave-one-group-out: cut-offs (and, with ``bands`` bootstrap samples, their bands) fitted on the other
    groups, applied to the held-out cells."""
    e = np.asarray(expected, dtype=float)
    y = np.asarray(labels, dtype=int)
    g = np.asarray(groups)
    pred = np.zeros(len(e), dtype=int)
    flagged = np.zeros(len(e), dtype=bool)
    folds = []
    for group in dict.fromkeys(g.tolist()):
        test = g == group
        cut = fit(e[~test], y[~test])
        pred[test] = predict(e[test], cut)
        fold = {"held_out": group, "cutoffs": list(cut)}
        if bands:
            fold["bands"] = cutoff_bands(e[~test], y[~test], g[~test], n_boot=bands)
            flagged[test] = [in_band(x, fold["bands"]) for x in e[test]]
        folds.append(fold)
    out = {"pred": pred.tolist(), "folds": folds}
    if bands:
        out["flagged"] = flagged.tolist()
    return out


def scores(truth: Sequence[int], pred: Sequence[int]) -> dict:
    """Exact and within-one agreement and quadratic κ."""
    t, p = np.asarray(truth, dtype=int), np.asarray(pred, dtype=int)
    return {"n": int(len(t)), "exact": float(np.mean(t == p)) if len(t) else None,
            "within_one": float(np.mean(np.abs(t - p) <= 1)) if len(t) else None,
            "kappa_quadratic": quadratic_kappa(t, p)}


# ----------------------------------------------------------------------------- from dumped ratings


def recompute(row: dict, prompt) -> float | None:
    """A dumped cell's expected score under ``prompt``'s weights (indicator values as rated)."""
    from filinglens.agents.rating import IndicatorValue, combine_indicators

    by_id = {i["id"]: i for i in row.get("indicators") or []}
    values = []
    for ind in prompt.indicators:
        got = by_id.get(ind.id)
        value = None if got is None else got.get("value")
        values.append(IndicatorValue(ind, value, (got or {}).get("source", "unavailable")))
    return combine_indicators(prompt, values).expected


def _logistic_cv(rows: list[dict], ids: list[str]) -> list[int]:
    """Leave-one-filing-out multinomial logistic regression (L2, C=1) on the indicator values."""
    from sklearn.linear_model import LogisticRegression

    x = np.array([[next((i["value"] for i in r["indicators"] if i["id"] == k), None) or 0.0 for k in ids]
                  for r in rows], dtype=float)
    y = np.array([r["reference"] for r in rows], dtype=int)
    g = np.array([r["filing"] for r in rows])
    pred = np.zeros(len(y), dtype=int)
    for group in dict.fromkeys(g.tolist()):
        test = g == group
        classes = set(y[~test].tolist())
        if len(classes) == 1:
            pred[test] = next(iter(classes))
            continue
        model = LogisticRegression(C=1.0, max_iter=1000)
        model.fit(x[~test], y[~test])
        pred[test] = model.predict(x[test])
    return pred.tolist()


def _with_ci(units: list[str], truth: list[int], pred: list[int], seed: int = 0, n_boot: int = 1000) -> dict:
    """Exact, within-one, quadratic κ and ordinal α with bootstrap CIs (``stats.pairwise_agreement``)."""
    from filinglens.evals import stats

    records = [(u, "method", 0, float(p)) for u, p in zip(units, pred)]
    records += [(u, "reference", 0, float(t)) for u, t in zip(units, truth)]
    pair = stats.pairwise_agreement(stats.ratings_frame(records), "method", "reference", n_boot=n_boot,
                                    n_boot_slow=max(1, n_boot // 5), seed=seed)
    return {k: pair[k] for k in ("exact_agreement", "within_one", "kappa_quadratic", "alpha_ordinal")} | {
        "n": pair["n_units"]}


def validity_report(rows: list[dict], version: str, n_boot: int = 1000, band_boot: int = 200) -> dict:
    """Held-out validity of one dumped prompt version (see the module docstring); ``n_boot`` bootstrap
    resamples for the intervals of the pooled figures, ``band_boot`` for the cut-off bands."""
    from filinglens.prompts.loader import load_prompt

    main = [r for r in rows if not r.get("variant") and r["status"] == "ok"]
    failed = [r for r in rows if not r.get("variant") and r["status"] != "ok"]
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in main:
        by_cat[r["category"]].append(r)
    methods: dict[str, dict[str, list]] = defaultdict(lambda: {"units": [], "truth": [], "pred": []})
    fitted: dict[str, Any] = {}
    per_category: dict[str, dict] = {}

    def add(method: str, cat_rows: list[dict], pred: Sequence[int]) -> None:
        m = methods[method]
        m["units"] += [f"{r['filing']}|{r['category']}" for r in cat_rows]
        m["truth"] += [r["reference"] for r in cat_rows]
        m["pred"] += [int(p) for p in pred]

    for category, cat_rows in sorted(by_cat.items()):
        prompt = load_prompt(f"{category}@{version}")
        e = [r["expected"] for r in cat_rows]
        y = [r["reference"] for r in cat_rows]
        g = [r["filing"] for r in cat_rows]
        if prompt.method == "indicators":  # the prompt file's current weights
            e = [recompute(r, prompt) for r in cat_rows]
        cv = cross_validate(e, y, g, bands=band_boot // 2)
        add("cv", cat_rows, cv["pred"])
        add("fixed 0.5/1.5", cat_rows, predict(e, DEFAULT_CUTOFFS))
        cut = fit_cutoffs(e, y)
        bands = cutoff_bands(e, y, g, n_boot=band_boot)
        add("in-sample", cat_rows, predict(e, cut))
        fitted[category] = {"cutoffs": list(cut), "bands": bands, "folds": cv["folds"]}
        per_category[category] = {
            "cv": scores(y, cv["pred"]), "fixed": scores(y, predict(e, DEFAULT_CUTOFFS)),
            "in_sample": scores(y, predict(e, cut)), "cutoffs": list(cut), "bands": bands,
            "cells": [{"filing": r["filing"], "reference": r["reference"], "borderline_label": r["borderline_label"],
                       "expected": round(x, 3), "cv": int(p), "flagged": bool(f), "sd_flagged": r.get("borderline")}
                      for r, x, p, f in zip(cat_rows, e, cv["pred"], cv["flagged"])],
        }
        if prompt.method == "indicators":
            ids = [i.id for i in prompt.indicators]
            add("logistic (indicators)", cat_rows, _logistic_cv(cat_rows, ids))
            bare = {r["filing"]: r for r in rows if r.get("variant") == "no-facts" and r["category"] == category
                    and r["status"] == "ok"}
            if bare and len(bare) == len(cat_rows):
                nf = [bare[r["filing"]] for r in cat_rows]
                e_nf = [recompute(r, prompt) for r in nf]
                cv_nf = cross_validate(e_nf, y, g)
                add("no facts (questions only)", cat_rows, cv_nf["pred"])
                per_category[category]["no_facts_cv"] = scores(y, cv_nf["pred"])
    overall = {name: _with_ci(m["units"], m["truth"], m["pred"], n_boot=n_boot) for name, m in methods.items()}
    # are the flagged (borderline) cells the ones the held-out prediction gets wrong?
    cells = [c for pc in per_category.values() for c in pc["cells"]]
    flagged = [c for c in cells if c["flagged"]]
    flag = {"flagged": len(flagged), "flagged_wrong": sum(c["cv"] != c["reference"] for c in flagged),
            "unflagged_wrong": sum(c["cv"] != c["reference"] for c in cells if not c["flagged"]),
            "flagged_label_borderline": sum(bool(c["borderline_label"]) for c in flagged),
            "label_borderline": sum(bool(c["borderline_label"]) for c in cells),
            "sd_flagged": sum(bool(c["sd_flagged"]) for c in cells)}
    seconds = [r["seconds"] for r in main if r.get("cached_calls", 0) == 0 and r.get("model_calls")]
    return {"version": version, "cells": len(main), "failed": len(failed), "overall": overall,
            "per_category": per_category, "fitted": fitted, "borderline_flag": flag,
            "seconds_per_uncached_rating": (sum(seconds) / len(seconds)) if seconds else None}


def _fmt(est: Any) -> str:
    if isinstance(est, dict):
        value = est.get("estimate")
        if value is None:
            return "n/a"
        if est.get("ci_low") is not None:
            return f"{value:.2f} [{est['ci_low']:.2f}, {est['ci_high']:.2f}]"
        return f"{value:.2f}"
    return "n/a" if est is None else f"{est:.2f}"


def format_report(report: dict) -> str:
    """A plain-text table of :func:`validity_report`."""
    lines = [f"== {report['version']}: {report['cells']} cells ({report['failed']} failed)"]
    lines.append(f"{'method':28} {'exact':22} {'within one':22} {'kappa (quadratic)':24} {'alpha (ordinal)'}")
    for name, o in report["overall"].items():
        lines.append(f"{name:28} {_fmt(o['exact_agreement']):22} {_fmt(o['within_one']):22} "
                     f"{_fmt(o['kappa_quadratic']):24} {_fmt(o['alpha_ordinal'])}")
    lines.append("per category (held-out | fixed 0.5/1.5 | in-sample), cut-offs fitted on all:")
    for cat, pc in report["per_category"].items():
        extra = f" | no facts {pc['no_facts_cv']['exact']:.2f}" if "no_facts_cv" in pc else ""
        lines.append(f"  {cat:12} exact {pc['cv']['exact']:.2f} κ {_fmt(pc['cv']['kappa_quadratic'])} | "
                     f"{pc['fixed']['exact']:.2f} | {pc['in_sample']['exact']:.2f}  cut-offs {pc['cutoffs']} "
                     f"bands {pc['bands']}{extra}")
        for c in pc["cells"]:
            mark = "" if c["cv"] == c["reference"] else "  <-- wrong"
            lines.append(f"      {c['filing'][:28]:28} ref {c['reference']}{'b' if c['borderline_label'] else ' '} "
                         f"E {c['expected']:.2f} cv {c['cv']}{' flagged' if c['flagged'] else ''}{mark}")
    f = report["borderline_flag"]
    lines.append(f"borderline flag (held-out bands): {f['flagged']} cells flagged, {f['flagged_wrong']} of them wrong; "
                 f"{f['unflagged_wrong']} wrong among the unflagged; {f['flagged_label_borderline']} of "
                 f"{f['label_borderline']} borderline labels flagged; ±sd rule would flag {f['sd_flagged']}")
    return "\n".join(lines)


def write_cutoffs(report: dict, version: str) -> list[Path]:
    """Store the cut-offs fitted on all labels and the held-out figures in each category's prompt file."""
    from filinglens.prompts.loader import load_prompt

    written = []
    overall = report["overall"].get("cv") or {}
    for category, pc in report["per_category"].items():
        prompt = load_prompt(f"{category}@{version}")
        path = Path(prompt.path)
        text = path.read_text()
        c0, c1 = pc["cutoffs"]
        (b0, b1), (b2, b3) = pc["bands"]
        block = (f"cutoffs: [{c0:g}, {c1:g}]\n"
                 f"borderline_bands: [[{b0:g}, {b1:g}], [{b2:g}, {b3:g}]]\n"
                 f"calibration:\n"
                 f"  fitted_on: dev reference labels (../shared/data/labels/ratings_dev.json), "
                 f"{pc['cv']['n']} filings\n"
                 f"  rule: most exact agreements, ties by quadratic kappa, middle of the optimal range "
                 f"(evals/calibrate.py)\n"
                 f"  borderline_bands: central 80% of the cut-offs refitted on 200 bootstrap samples of the filings\n"
                 f"  held_out: leave one filing out\n"
                 f"  held_out_exact: {pc['cv']['exact']:.3f}\n"
                 f"  held_out_kappa_quadratic: {_num(pc['cv']['kappa_quadratic'])}\n"
                 f"  all_categories_held_out_exact: {_num((overall.get('exact_agreement') or {}).get('estimate'))}\n"
                 f"  all_categories_held_out_kappa_quadratic: "
                 f"{_num((overall.get('kappa_quadratic') or {}).get('estimate'))}\n")
        text = re.sub(r"(?m)^(?:cutoffs|borderline_bands):.*\n?", "", text)
        text = re.sub(r"(?ms)^calibration:\n(?:[ ].*\n)*", "", text)
        text = text.rstrip("\n") + "\n" + block
        from filinglens.settings import atomic_write

        with atomic_write(path, "w") as handle:
            handle.write(text)
        load_prompt(f"{category}@{version}")  # still valid
        written.append(path)
    return written


def _num(value: Any) -> str:
    return "null" if value is None else f"{float(value):.3f}"
