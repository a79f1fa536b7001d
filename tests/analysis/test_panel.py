"""The ratings panel, its trends and bands, and locating quotes in an Item's text."""

from __future__ import annotations

import json
import random

import pytest

from filinglens.analysis.evidence import locate
from filinglens.analysis.panel import (
    averages, panel_frame, rater_label, trend_table, yesno_probabilities, yesno_sd,
)


def row(id, ticker, year, category, score, *, version="v1", method="direct", sample=0, expected=None, status="ok",
        run="r1", rationale="", filing=None):
    return {"id": id, "run_id": run, "cell_key": f"{filing or ticker + str(year)}|{category}|{version}|m|{sample}",
            "filing_hash": filing or f"{ticker}{year}", "ticker": ticker, "company": ticker, "fiscal_year": year,
            "category": category, "model_id": "m", "prompt_version": version, "method": method,
            "sample_index": sample, "status": status, "score": score,
            "expected_score": expected if expected is not None else score, "rationale": rationale,
            "quotes": [], "unverified_quotes": 0, "error": None if status == "ok" else "boom", "created_at": id}


def test_yes_no_probabilities_are_read_from_the_rationale_of_the_chain():
    rationale = ("P(yes | Does the evidence state that the company intends to innovate…) = 0.83; "
                 "P(yes | Does the evidence (e.g. in Item 7) describe new products…) = 0.40; P(yes | Plans?…) = 1.00")
    assert yesno_probabilities(rationale) == [0.83, 0.40, 1.00]


def test_yes_no_band_matches_a_simulation_of_the_answers():
    probs = [0.8, 0.3, 0.6]
    rng = random.Random(1)
    draws = []
    for _ in range(200_000):
        l1 = rng.random() < probs[0]
        l2 = [rng.random() < p for p in probs[1:]]
        draws.append(l1 * (1 + sum(l2) / len(l2)))
    mean = sum(draws) / len(draws)
    sd = (sum((d - mean) ** 2 for d in draws) / len(draws)) ** 0.5
    assert yesno_sd(probs) == pytest.approx(sd, abs=0.01)
    assert yesno_sd([1.0, 1.0, 0.0]) == 0.0 and yesno_sd([0.5]) is None


def test_latest_rating_of_a_cell_counts_and_bands_come_from_samples_or_probabilities():
    rows = [
        row(1, "AAPL", 2021, "people", 1),
        row(2, "AAPL", 2021, "people", 2, run="r2"),  # the same cell re-rated later: this one counts
        row(3, "AAPL", 2022, "people", 1, sample=0), row(4, "AAPL", 2022, "people", 2, sample=1),
        row(5, "AAPL", 2022, "people", 1, version="v2", method="yesno", expected=1.2,
            rationale="P(yes | q1…) = 0.90; P(yes | q2…) = 0.40; P(yes | q3…) = 0.30"),
        row(6, "MSFT", 2022, "people", None, status="failed"),
    ]
    frame = panel_frame(rows, [{"id": "r1", "config": "{}"}, {"id": "r2", "config": json.dumps({})}])
    assert len(frame) == 5
    table = trend_table(frame).set_index(["company", "fiscal_year", "rater"])
    assert table.loc[("AAPL", 2021, "m@v1"), "expected"] == 2.0
    assert table.loc[("AAPL", 2021, "m@v1"), "band"] == "none"
    two = table.loc[("AAPL", 2022, "m@v1")]
    assert two["n"] == 2 and two["band"] == "samples" and two["expected"] == 1.5
    assert two["low"] == pytest.approx(1.5 - 0.7071, abs=1e-3) and two["high"] == pytest.approx(2.0)  # clipped
    yn = table.loc[("AAPL", 2022, "m@v2")]
    assert yn["band"] == "yes/no" and yn["low"] < 1.2 < yn["high"]
    failed = table.loc[("MSFT", 2022, "m@v1")]
    assert failed["n"] == 0 and failed["failed"] == 1
    avg = averages(trend_table(frame))
    assert avg[(avg["company"] == "AAPL") & (avg["rater"] == "m@v1") & (avg["category"] == "people")]["mean"].item() \
        == pytest.approx(1.75)


def test_a_run_that_left_items_out_is_its_own_rater():
    rows = [row(1, "AAPL", 2021, "people", 1, run="r1"), row(2, "AAPL", 2021, "people", 2, run="r2")]
    runs = [{"id": "r1", "config": "{}"}, {"id": "r2", "config": json.dumps({"exclude_items": ["1A", "7"]})}]
    frame = panel_frame(rows, runs)
    assert sorted(frame["rater"]) == ["m@v1", "m@v1-1A,7"]
    assert rater_label("m", "v1", ["1A"]) == "m@v1-1A"


def test_quotes_are_located_ignoring_case_quote_style_and_whitespace():
    text = "Our  employees\nare our “greatest” asset. We invest in training."
    start, end = locate(text, 'our employees are our "greatest" asset.')
    assert text[start:end] == "Our  employees\nare our “greatest” asset."
    start, end = locate(text, "we invest in training…")
    assert text[start:end] == "We invest in training"
    assert locate(text, "not there") is None and locate(text, "   ") is None
