"""Cut-off fitting on synthetic data: the optimum, its middle, held-out folds, and writing the prompt file."""

from __future__ import annotations

import numpy as np
import pytest

from filinglens.evals.calibrate import (
    cross_validate, fit_cutoffs, predict, quadratic_kappa, recompute, scores, validity_report, write_cutoffs,
)
from filinglens.prompts.loader import load_prompt


def test_separable_scores_get_cutoffs_in_the_middle_of_the_gaps():
    e = [0.1, 0.2, 0.9, 1.0, 1.1, 1.7, 1.9]
    y = [0, 0, 1, 1, 1, 2, 2]
    c0, c1 = fit_cutoffs(e, y)
    assert c0 == pytest.approx(0.55, abs=0.011) and c1 == pytest.approx(1.4, abs=0.011)
    assert predict(e, (c0, c1)).tolist() == y


def test_compressed_scores_are_spread_by_the_fit():
    # the v2 problem: expected scores informative but squeezed under the default 1.5 cut-off
    e = [0.6, 0.7, 0.75, 1.1, 1.2, 1.25, 1.3, 1.35]
    y = [1, 1, 1, 2, 2, 2, 2, 2]
    assert (predict(e, (0.5, 1.5)) == np.array(y)).mean() == pytest.approx(3 / 8)
    c0, c1 = fit_cutoffs(e, y)
    assert 0.75 < c1 <= 1.1 and c0 < 0.6
    assert predict(e, (c0, c1)).tolist() == y


def test_a_level_missing_from_training_leaves_its_cutoff_below_the_lowest_score():
    e = [0.8, 0.9, 1.0, 1.6, 1.8]
    y = [1, 1, 1, 2, 2]
    c0, _ = fit_cutoffs(e, y)
    assert c0 == pytest.approx(0.4, abs=0.011)  # midway between 0 and the lowest training score


def test_ties_prefer_the_higher_quadratic_kappa():
    # one 0 sits among the 2s: with c0 = 0.5 nothing changes the exact count, but where c1 goes does
    e = [0.2, 1.0, 1.1, 1.9, 1.95, 1.92]
    y = [0, 1, 1, 2, 0, 2]
    c0, c1 = fit_cutoffs(e, y)
    assert predict(e, (c0, c1)).tolist()[:4] == [0, 1, 1, 2]


def test_cross_validation_fits_only_on_the_training_folds():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 1, 1, 2, 2, 2, 1, 2, 0, 1, 2])
    e = np.clip(y * 0.8 + rng.normal(0, 0.25, len(y)), 0, 2)
    groups = [f"f{i // 2}" for i in range(len(y))]
    cv = cross_validate(e, y, groups)
    g = np.array(groups)
    for fold in cv["folds"]:
        test = g == fold["held_out"]
        assert fold["cutoffs"] == list(fit_cutoffs(e[~test], y[~test]))  # never sees the held-out labels
        assert np.array(cv["pred"])[test].tolist() == predict(e[test], fold["cutoffs"]).tolist()
    got = scores(y, cv["pred"])
    assert got["n"] == 12 and 0 <= got["exact"] <= 1 and got["within_one"] >= got["exact"]


def test_quadratic_kappa_edge_cases():
    assert quadratic_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    assert quadratic_kappa([1, 1], [1, 1]) == 1.0 and quadratic_kappa([1], [1]) is None
    assert quadratic_kappa([0, 2, 0, 2], [2, 0, 2, 0]) < 0


def _rows(prompt, cells):
    rows = []
    for filing, ref, gate, plan in cells:
        inds = [{"id": i.id, "value": gate if i.gate else plan, "source": "model"} for i in prompt.indicators]
        rows.append({"filing": filing, "category": prompt.category, "reference": ref, "borderline_label": False,
                     "status": "ok", "expected": None, "indicators": inds, "borderline": False, "seconds": 1.0,
                     "model_calls": 4, "cached_calls": 0})
    return rows


def test_validity_report_and_write_cutoffs_to_a_prompt_file(tmp_path, monkeypatch):
    user = tmp_path / "prompts" / "rating" / "people"
    user.mkdir(parents=True)
    source = load_prompt("people@v5")
    (user / "v5.yaml").write_text(open(source.path).read())
    monkeypatch.setenv("FILINGLENS_PROMPTS", str(tmp_path / "prompts"))
    prompt = load_prompt("people@v5")
    assert prompt.path == str(user / "v5.yaml")
    cells = [(f"f{i}", ref, gate, plan) for i, (ref, gate, plan) in enumerate(
        [(0, 0.05, 0.0), (1, 0.9, 0.1), (1, 0.95, 0.2), (2, 0.95, 0.9), (2, 1.0, 0.8), (2, 0.9, 1.0), (2, 1.0, 0.7)])]
    rows = _rows(prompt, cells)
    assert recompute(rows[3], prompt) == pytest.approx(0.95 * (1 + 0.9))
    report = validity_report(rows, "v5", n_boot=10, band_boot=20)
    assert report["cells"] == 7 and report["per_category"]["people"]["in_sample"]["exact"] == 1.0
    assert {"cv", "fixed 0.5/1.5", "in-sample", "logistic (indicators)"} <= set(report["overall"])
    [path] = write_cutoffs(report, "v5")
    again = load_prompt("people@v5")
    assert again.cutoffs == report["per_category"]["people"]["cutoffs"] and again.hash != prompt.hash
    assert again.calibration["held_out"] == "leave one filing out"
    assert again.indicators == prompt.indicators  # only the cut-offs and the calibration changed
    write_cutoffs(report, "v5")  # idempotent: one cutoffs line, one calibration block
    text = path.read_text()
    assert text.count("cutoffs:") == 1 and text.count("calibration:") == 1


def test_quadratic_kappa_matches_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    for _ in range(20):
        t, p = rng.integers(0, 3, 12), rng.integers(0, 3, 12)
        if len(set(t)) > 1 or len(set(p)) > 1:
            assert quadratic_kappa(t, p) == pytest.approx(cohen_kappa_score(t, p, labels=[0, 1, 2], weights="quadratic"))


def test_cutoff_bands_widen_where_the_labels_are_thin():
    from filinglens.evals.calibrate import cutoff_bands, in_band

    e = [0.1, 0.9, 1.0, 1.1, 1.2, 1.3, 1.45, 1.6, 1.7, 1.8, 1.9, 2.0]
    y = [0, 1, 1, 1, 1, 1, 2, 1, 2, 2, 2, 2]  # a 2 at 1.45 and a 1 at 1.6: the upper cut-off is unsure
    bands = cutoff_bands(e, y, [f"f{i}" for i in range(len(e))], n_boot=100)
    (low0, high0), (low1, high1) = bands
    assert low0 <= high0 < 0.9 and low1 <= 1.45 and high1 >= 1.6 and high1 - low1 > high0 - low0 - 1e-9
    assert in_band(1.5, bands) and not in_band(1.0, bands)
