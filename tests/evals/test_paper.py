"""The paper's published Command-R+ ratings through the harness: the published numbers must come out."""

from __future__ import annotations

import json

import pytest

from filinglens.evals import paper, stats


def test_paper_frame_shape(shared):
    main = paper.paper_frame(include_msft=False)
    assert set(main["rater"]) == {paper.RATER_NORMAL, paper.RATER_STRICT}
    assert main["unit"].nunique() == 112  # 28 filings × 4 categories
    assert main["score"].between(0, 2).all()
    both = paper.paper_frame()
    assert both["unit"].nunique() == 128  # + MSFT 2020–2023
    assert {stats.unit_category(u) for u in both["unit"]} == {"confidence", "environment", "innovation", "people"}
    wide = paper.load_wide()
    assert not wide.duplicated(["ticker", "fiscal_year", "category"]).any()
    assert set(wide["ticker"]) == {"RGLD", "AAPL", "IBM", "MSFT"}


def test_paper_ratings_lookup(shared):
    normal = paper.paper_ratings()
    assert len(normal) == 128
    assert normal[("AAPL", 2019, "confidence")] == 0.5
    assert normal[("AAPL", 2017, "environment")] == 0.0
    assert normal[("MSFT", 2020, "environment")] == 2.0
    assert normal[("RGLD", 2023, "confidence")] == 1.9
    strict = paper.paper_ratings("strict")
    assert strict[("RGLD", 2013, "confidence")] == 0.9
    assert ("RGLD", 2016, "confidence") not in normal  # the paper has no RGLD 2016
    with pytest.raises(ValueError):
        paper.paper_ratings("lenient")


def test_normal_vs_strict_reproduces_published_numbers(shared):
    # ../shared/README.md: "the normal and strict ratings differ in 47 of 112 cells (42%), 39 by a full
    # point or more; Krippendorff's α (interval) ≈ 0.42" — the 112 cells are the main CSV alone.
    result = paper.normal_vs_strict(n_boot=200, n_boot_slow=10, by_category=True)
    assert result["files"] == ["ratings_command_r_plus.csv"]
    assert result["n_units"] == 112
    assert result["n_changed"] == 47
    assert result["n_changed_full_point"] == 39
    assert round(result["changed_share"]["estimate"], 2) == 0.42
    alpha = result["alpha_interval"]
    assert 0.38 <= alpha["estimate"] <= 0.46
    assert round(alpha["estimate"], 2) == 0.42
    assert alpha["ci_low"] < alpha["estimate"] < alpha["ci_high"]
    assert set(result["by_category"]) == {"confidence", "environment", "innovation", "people"}
    assert sum(r["n_units"] for r in result["by_category"].values()) == 112
    assert sum(r["n_changed"] for r in result["by_category"].values()) == 47
    json.dumps(result, allow_nan=False)


def test_agreement_with_paper_per_category(shared):
    # our "ratings" here are the paper's strict ones on a subset: agreement must equal normal-vs-strict there
    strict = paper.paper_frame(include_msft=False)
    ours = strict[(strict["rater"] == paper.RATER_STRICT) & strict["unit"].str.startswith("AAPL|")]
    ours = ours.assign(rater="local@v1")
    result = paper.agreement_with_paper(ours, n_boot=50, n_boot_slow=5)
    assert result["n_units"] == 40
    assert result["paper_rater"] == paper.RATER_NORMAL
    assert set(result["by_category"]) == {"confidence", "environment", "innovation", "people"}
    aapl = strict[strict["unit"].str.startswith("AAPL|")]
    expected = stats.pairwise_agreement(aapl, paper.RATER_STRICT, paper.RATER_NORMAL, n_boot=0, n_boot_slow=0)
    assert result["overall"]["alpha_interval"]["estimate"] == pytest.approx(expected["alpha_interval"]["estimate"])
    assert result["overall"]["n_changed"] == expected["n_changed"]
    json.dumps(result, allow_nan=False)

    none = paper.agreement_with_paper(stats.ratings_frame([("ZZZ|1999|people", "x", 0, 1.0)]), n_boot=0)
    assert none["n_units"] == 0 and none["overall"] is None
