"""Agreement statistics against published and hand-checked values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from filinglens.evals import stats

# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School for
# Communication, Departmental Papers 43, example C (4 observers × 12 units, missing values).
# Published: nominal α = 0.743, ordinal α = 0.815, interval α = 0.849, ratio α = 0.797.
NAN = np.nan
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def krippendorff_frame() -> pd.DataFrame:
    return stats.from_matrix(KRIPPENDORFF_2011.T, raters=list("ABCD"), score_range=None)


def json_clean(value) -> str:
    """JSON without NaN/Infinity: fails if a result is not plain JSON."""
    return json.dumps(value, allow_nan=False)


# --------------------------------------------------------------------------- frame


def test_ratings_frame_from_store_rows_and_checks():
    rows = [
        {"ticker": "aapl", "fiscal_year": 2019, "category": "environment", "sample_index": 0, "score": 1.0},
        {"ticker": "AAPL", "fiscal_year": 2019, "category": "environment", "sample_index": 1, "score": None},
    ]
    frame = stats.ratings_frame(rows, rater="local@environment/v1")
    assert list(frame.columns) == ["unit", "rater", "sample", "score"]
    assert list(frame["unit"]) == ["AAPL|2019|environment"] * 2
    assert frame["score"].isna().tolist() == [False, True]
    assert stats.split_unit("AAPL|2019|environment") == ("AAPL", 2019, "environment")

    with pytest.raises(ValueError, match="duplicate"):
        stats.ratings_frame([("u", "r", 0, 1.0), ("u", "r", 0, 2.0)])
    with pytest.raises(ValueError, match="outside"):
        stats.ratings_frame([("u", "r", 0, 3.0)])


# --------------------------------------------------------------------------- Krippendorff's alpha


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_krippendorff_2011_published_values(level, published):
    result = stats.krippendorff_alpha(krippendorff_frame(), level, n_boot=0)
    assert round(result["estimate"], 3) == published
    assert result["reason"] is None
    assert result["n_units"] == 11  # unit 12 has a single value: not pairable
    assert result["n_raters"] == 4


def test_alpha_perfect_agreement_is_one():
    scores = [[0, 0], [1, 1], [2, 2], [1, 1], [0.5, 0.5]]
    frame = stats.from_matrix(scores)
    for level in stats.LEVELS:
        assert stats.krippendorff_alpha(frame, level, n_boot=0)["estimate"] == pytest.approx(1.0)


def test_alpha_constant_ratings_is_undefined_not_one():
    frame = stats.from_matrix([[1, 1], [1, 1], [1, 1], [1, 1]])
    result = stats.krippendorff_alpha(frame, "interval")
    assert result["estimate"] is None
    assert "no variation" in result["reason"]
    assert result["ci_low"] is None and result["ci_high"] is None
    too_few = stats.krippendorff_alpha(stats.from_matrix([[0, 2], [1, NAN]]), "interval")
    assert too_few["estimate"] is None and "fewer than 2 units" in too_few["reason"]
    json_clean(result)


def test_alpha_ignores_units_only_one_rater_scored():
    base = [[0, 0], [1, 2], [2, 2], [1, 0], [2, 1]]
    with_extra = base + [[2, NAN], [NAN, 0]]
    a = stats.krippendorff_alpha(stats.from_matrix(base), n_boot=0)["estimate"]
    b = stats.krippendorff_alpha(stats.from_matrix(with_extra), n_boot=0)["estimate"]
    assert a == pytest.approx(b)


def test_alpha_uses_mean_over_samples():
    # rater B is sampled twice; its expected score is the mean
    frame = stats.ratings_frame(
        [
            ("u1", "A", 0, 0.0), ("u1", "B", 0, 0.0), ("u1", "B", 1, 0.0),
            ("u2", "A", 0, 1.5), ("u2", "B", 0, 1.0), ("u2", "B", 1, 2.0),
            ("u3", "A", 0, 2.0), ("u3", "B", 0, 2.0), ("u3", "B", 1, NAN),
        ]
    )
    assert stats.expected_scores(frame).loc["u2", "B"] == 1.5
    assert stats.krippendorff_alpha(frame, n_boot=0)["estimate"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- kappa and ICC


def test_weighted_kappa_hand_checked():
    # a = 0 0 2 2, b = 0 1 2 2. Observed: (0,0), (0,1), (2,2), (2,2).
    # Expected counts a_i * b_j / 4 with a = (2, 0, 2), b = (1, 1, 2):
    #   E(0,1) = .5, E(0,2) = 1, E(2,0) = .5, E(2,1) = .5
    # linear:    1 - (1*1) / (.5*1 + 1*2 + .5*2 + .5*1) = 1 - 1/4 = 0.75
    # quadratic: 1 - (1*1) / (.5*1 + 1*4 + .5*4 + .5*1) = 1 - 1/7
    frame = stats.from_matrix([[0, 0], [0, 1], [2, 2], [2, 2]], raters=["a", "b"])
    result = stats.pairwise_agreement(frame, "a", "b", n_boot=50, n_boot_slow=10)
    assert result["kappa_linear"]["estimate"] == pytest.approx(0.75)
    assert result["kappa_quadratic"]["estimate"] == pytest.approx(1 - 1 / 7)
    assert result["mean_abs_diff"]["estimate"] == pytest.approx(0.25)
    assert result["exact_agreement"]["estimate"] == pytest.approx(0.75)
    assert result["n_changed"] == 1 and result["n_changed_full_point"] == 1


def test_kappa_rounds_expected_scores_half_up():
    # means 1.5 → 2 and 0.5 → 1 (not to even): identical categories → κ = 1
    frame = stats.from_matrix([[1.5, 2], [0.5, 1], [0, 0], [2, 2]], raters=["a", "b"])
    result = stats.pairwise_agreement(frame, "a", "b", n_boot=0, n_boot_slow=0)
    assert result["kappa_linear"]["estimate"] == pytest.approx(1.0)
    assert result["exact_agreement"]["estimate"] == pytest.approx(0.5)


def test_icc2_pingouin_documented_example():
    # pingouin's bundled "icc" dataset (8 wines × 4 judges, shipped inside the package, no download);
    # its documentation gives ICC(2,1) = ICC(A,1) = 0.728 with 95% CI [0.43, 0.93].
    import pingouin

    data = pingouin.read_dataset("icc")
    wide = data.pivot_table(index="Wine", columns="Judge", values="Scores")
    frame = stats.from_matrix(wide, score_range=None)
    result = stats.icc2(frame, n_boot=20)
    assert round(result["estimate"], 3) == 0.728
    assert result["ci_f"] == [0.43, 0.93]
    assert result["n_units"] == 8 and result["n_raters"] == 4
    assert result["ci_low"] <= result["estimate"] <= result["ci_high"]


def test_icc2_undefined_without_variation():
    result = stats.icc2(stats.from_matrix([[1, 1], [1, 1], [1, 1]]))
    assert result["estimate"] is None and result["reason"]


# --------------------------------------------------------------------------- bootstrap


def synthetic(n_units: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n_units).astype(float)
    noisy = np.clip(truth + rng.choice([-1, 0, 0, 0, 1], n_units), 0, 2)
    return stats.from_matrix(np.column_stack([truth, noisy]), raters=["a", "b"])


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_units():
    small = stats.pairwise_agreement(synthetic(40), "a", "b", n_boot=400, n_boot_slow=40)
    large = stats.pairwise_agreement(synthetic(400), "a", "b", n_boot=400, n_boot_slow=40)
    assert small["within_one"]["estimate"] == 1.0  # noise is at most one point here
    for name in ("alpha_interval", "alpha_ordinal", "mean_abs_diff", "exact_agreement", "changed_share",
                 "kappa_linear", "kappa_quadratic", "icc2"):
        for result in (small, large):
            est = result[name]
            assert est["ci_low"] <= est["estimate"] <= est["ci_high"], (name, est)
        width_small = small[name]["ci_high"] - small[name]["ci_low"]
        width_large = large[name]["ci_high"] - large[name]["ci_low"]
        assert width_large < width_small, name
    assert small["alpha_interval"]["n_boot"] == 400
    assert small["icc2"]["n_boot"] == 40
    json_clean(small)


def test_bootstrap_is_seeded():
    frame = synthetic(60)
    one = stats.krippendorff_alpha(frame, n_boot=200, seed=7)
    two = stats.krippendorff_alpha(frame, n_boot=200, seed=7)
    other = stats.krippendorff_alpha(frame, n_boot=200, seed=8)
    assert one == two
    assert (one["ci_low"], one["ci_high"]) != (other["ci_low"], other["ci_high"])


# --------------------------------------------------------------------------- test-retest


def test_test_retest_per_rater():
    rows = []
    samples = {"u1": [0, 0, 0], "u2": [1, 2, 1], "u3": [0, 2, NAN], "u4": [2, 2, 2], "u5": [1, NAN, NAN]}
    for unit, scores in samples.items():
        for i, score in enumerate(scores):
            rows.append((unit, "m@p/v1", i, score))
            rows.append((unit, "steady", i, 1.0 if unit != "u5" or i == 0 else NAN))
    result = stats.test_retest(stats.ratings_frame(rows))
    noisy = result["m@p/v1"]
    assert noisy["n_units"] == 4  # u5 has one sample only
    assert noisy["n_samples"] == 3
    assert noisy["n_missing"] == 3
    assert noisy["exact_agreement"] == pytest.approx(2 / 4)  # u1, u4
    assert noisy["within_one"] == pytest.approx(3 / 4)  # u3 spans 0..2
    assert noisy["max_spread"] == 2.0
    assert noisy["per_unit"]["u2"]["spread"] == 1.0
    assert noisy["per_unit"]["u2"]["std"] == pytest.approx(np.std([1, 2, 1]))
    assert noisy["per_unit"]["u5"]["n"] == 1
    assert 0 < noisy["alpha_interval"]["estimate"] < 1
    assert noisy["alpha_ordinal"]["estimate"] is not None

    steady = result["steady"]  # every sample the same value: perfectly stable, but α undefined
    assert steady["exact_agreement"] == 1.0
    assert steady["alpha_interval"]["estimate"] is None
    assert "no variation" in steady["alpha_interval"]["reason"]
    json_clean(result)


# --------------------------------------------------------------------------- matrices and diffs


def test_agreement_matrix_symmetric_with_unit_diagonal():
    frame = synthetic(50)
    third = stats.from_matrix(np.full((50, 1), 1.0), units=sorted(frame["unit"].unique()), raters=["flat"])
    frame = pd.concat([frame, third], ignore_index=True)
    for stat in stats.MATRIX_STATS:
        table = stats.agreement_matrix(frame, stat)
        assert list(table.index) == ["a", "b", "flat"] == list(table.columns)
        assert np.allclose(table.loc["a", "b"], table.loc["b", "a"])
        assert table.loc["a", "a"] == pytest.approx(0.0 if stat == "mad" else 1.0)
    alpha = stats.agreement_matrix(frame, "alpha_interval")
    assert math.isnan(alpha.loc["flat", "flat"])  # constant rater against itself: undefined, not 1
    with pytest.raises(ValueError):
        stats.agreement_matrix(frame, "pearson")


def test_cell_changes_and_diff_runs():
    run_a = stats.ratings_frame(
        [("u1", "A", 0, 0.0), ("u2", "A", 0, 1.0), ("u3", "A", 0, 2.0), ("u4", "A", 0, 1.0), ("u5", "A", 0, NAN)]
    )
    run_b = stats.ratings_frame(
        [("u1", "B", 0, 2.0), ("u1", "B", 1, 2.0), ("u2", "B", 0, 1.0), ("u3", "B", 0, 1.5), ("u6", "B", 0, 0.0),
         ("u5", "B", 0, NAN)]
    )
    cells = stats.cell_changes(run_a, run_b).set_index("unit")
    assert cells.loc["u1", "diff"] == 2.0 and cells.loc["u1", "status"] == "changed"
    assert cells.loc["u3", "diff"] == -0.5
    assert cells.loc["u2", "status"] == "same"
    assert cells.loc["u4", "status"] == "only_a"
    assert cells.loc["u6", "status"] == "only_b"
    assert cells.loc["u5", "status"] == "missing"
    assert list(stats.cell_changes(run_a, run_b)["unit"])[:2] == ["u1", "u3"]  # largest change first

    report = stats.diff_runs(run_a, run_b, n_boot=50, n_boot_slow=5)
    json_clean(report)
    assert report["counts"] == {"changed": 2, "same": 1, "only_a": 1, "only_b": 1, "missing": 1}
    agreement = report["agreement"]
    assert agreement["n_units"] == 3 and agreement["n_unpaired"] == 2
    assert agreement["n_changed"] == 2


def test_pairwise_agreement_by_category():
    rows = []
    for i, category in enumerate(["environment", "people"] * 10):
        unit = stats.unit_key("T", 2000 + i, category)
        rows += [(unit, "a", 0, float(i % 3)), (unit, "b", 0, float(i % 3) if category == "people" else 2 - i % 3)]
    result = stats.pairwise_agreement_by(stats.ratings_frame(rows), "a", "b", n_boot=20, n_boot_slow=5)
    assert set(result) == {"environment", "people"}
    assert result["people"]["alpha_interval"]["estimate"] == pytest.approx(1.0)
    assert result["environment"]["alpha_interval"]["estimate"] < 0
