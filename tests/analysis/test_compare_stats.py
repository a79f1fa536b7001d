"""Bradley–Terry ranking, bootstrap intervals, position bias and the win matrix on known judgments."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from filinglens.analysis.compare import analyse, bradley_terry, position_bias, wilson, win_matrix


@dataclass
class J:
    first: str
    second: str
    verdict: str | None
    sample_index: int = 0
    status: str = "ok"

    @property
    def winner(self):
        if self.status != "ok":
            return None
        return {"A": self.first, "B": self.second}.get(self.verdict, "tie")


def both_orders(a: str, b: str, winner: str, sample: int = 0) -> list[J]:
    """``winner`` wins the pair whatever the order."""
    return [J(a, b, "A" if winner == a else "B", sample), J(b, a, "A" if winner == b else "B", sample)]


def test_bradley_terry_recovers_the_order_of_a_consistent_tournament():
    judgments = []
    for sample in range(4):
        judgments += both_orders("A", "B", "A", sample) + both_orders("B", "C", "B", sample)
        judgments += both_orders("A", "C", "A", sample)
    ranking = bradley_terry(["C", "B", "A"], judgments, n_boot=300)
    assert [r["company"] for r in ranking] == ["A", "B", "C"]
    assert [r["rank"] for r in ranking] == [1, 2, 3]
    a, b, c = ranking
    assert a["strength"] > b["strength"] > c["strength"]
    assert abs(sum(r["strength"] for r in ranking)) < 1e-3  # centred (rounded to 4 decimals)
    for r in ranking:
        lo, hi = r["strength_ci"]
        assert lo <= r["strength"] <= hi
    assert a["wins"] == 16 and a["losses"] == 0 and c["losses"] == 16
    assert a["rank_ci"] == [1, 1] and c["rank_ci"] == [3, 3]  # every resample agrees


def test_bradley_terry_strengths_match_the_win_rates_of_two_companies():
    # A beats B in 30 of 40 judgments: the BT log-odds should be near log(30/10), shrunk a little by alpha
    judgments = [J("A", "B", "A")] * 15 + [J("A", "B", "B")] * 5 + [J("B", "A", "B")] * 15 + [J("B", "A", "A")] * 5
    ranking = bradley_terry(["A", "B"], judgments, n_boot=200)
    gap = ranking[0]["strength"] - ranking[1]["strength"]
    assert ranking[0]["company"] == "A"
    assert 0.8 * np.log(3) < gap <= np.log(3) + 1e-6


def test_evenly_matched_companies_get_overlapping_intervals():
    judgments = []
    for a, b in itertools.permutations(["A", "B", "C"], 2):
        judgments += [J(a, b, "A"), J(a, b, "B")]
    ranking = bradley_terry(["A", "B", "C"], judgments, n_boot=300)
    assert all(abs(r["strength"]) < 1e-6 for r in ranking)
    assert all(r["strength_ci"][0] < 0 < r["strength_ci"][1] for r in ranking)
    assert all(r["rank_ci"] == [1, 3] for r in ranking)


def test_a_judge_that_always_prefers_the_first_shown_is_measured_as_fully_biased():
    judgments = [J(a, b, "A") for a, b in itertools.permutations(["A", "B", "C"], 2)]
    bias = position_bias(judgments)
    assert bias["p_first_wins"] == 1.0 and bias["flip_rate"] == 1.0
    assert bias["flipped"] == bias["pairs_both_orders"] == 3
    low, high = bias["p_first_wins_ci"]
    assert 0.5 < low < high == 1.0
    ranking = bradley_terry(["A", "B", "C"], judgments, n_boot=100)
    assert all(abs(r["strength"]) < 1e-6 for r in ranking)  # order bias cancels out when both orders are asked


def test_an_order_consistent_judge_has_no_flips_and_ties_count_half():
    judgments = both_orders("A", "B", "A") + [J("A", "C", "tie"), J("C", "A", "tie")] + both_orders("B", "C", "C")
    bias = position_bias(judgments)
    assert bias["flip_rate"] == 0.0 and bias["ties"] == 2 and bias["decided"] == 4
    assert bias["p_first_wins"] == 0.5
    matrix = win_matrix(["A", "B", "C"], judgments)
    assert matrix.loc["A", "B"] == 2 and matrix.loc["B", "A"] == 0
    assert matrix.loc["A", "C"] == matrix.loc["C", "A"] == 1.0
    assert matrix.to_numpy().sum() == len(judgments)


def test_failed_judgments_are_counted_and_left_out_of_the_fit():
    judgments = both_orders("A", "B", "A") + [J("A", "C", None, status="failed"), J("C", "A", "B")]
    result = analyse(["A", "B", "C"], judgments, n_boot=50)
    bias = result["position_bias"]
    assert bias["failed"] == 1 and bias["judgments"] == 4 and bias["pairs_both_orders"] == 1
    a = next(r for r in result["ranking"] if r["company"] == "A")
    assert a["wins"] == 3 and a["losses"] == 0


def test_wilson_interval():
    assert wilson(0, 0) == (None, None)
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
