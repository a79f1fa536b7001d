"""Running eval suites: ratings, statistics, thresholds, report files, resume/cache, diff, CLI.

Unit tests use the scripted fake model and an evidence stub; one test runs the
real ``smoke`` suite end to end on the embedded model.
"""

from __future__ import annotations

import json
import re
import sys
import time
import types

import pandas as pd
import pytest
from typer.testing import CliRunner

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.providers.fake import register_script
from filinglens.agents.rating import Target
from filinglens.evals import run as run_mod
from filinglens.app import run_eval_suite
from filinglens.evals.run import diff_store_runs, run_id_for
from filinglens.evals.suite import parse_suite
from filinglens.store import Store

TARGETS = [
    Target("f-aapl-2019", "Apple Inc.", "AAPL", "320193", 2019, "hash-aapl-2019"),
    Target("f-aapl-2020", "Apple Inc.", "AAPL", "320193", 2020, "hash-aapl-2020"),
]
EVIDENCE = [
    EvidenceItem("c1", "We aim for carbon neutrality across our supply chain by 2030 and invest in R&D.", "1", "AAPL 10-K, Item 1"),
    EvidenceItem("c2", "Our people are central to our success; we offer training and benefits.", "1", "AAPL 10-K, Item 1"),
]
CATEGORY_SCORE = {"confidence": 2, "environment": 2, "innovation": 1, "people": 0}


def gather(prompt, target):
    return list(EVIDENCE)


def _category(messages) -> str:
    text = " ".join(str(m.content) for m in messages).lower()
    for category, word in (("environment", "environment"), ("people", "talent"), ("innovation", "innovation")):
        if word in text:
            return category
    return "confidence"


class Scripted:
    """A fake model's answers: direct JSON (optionally noisy across calls) and yes/no; counts calls."""

    def __init__(self, noisy: bool = False, garbage: set[str] = frozenset()):
        self.calls = 0
        self.noisy = noisy
        self.garbage = garbage

    def __call__(self, messages):
        self.calls += 1
        category = _category(messages)
        text = str(messages[-1].content)
        if category in self.garbage:
            return "I cannot rate this."
        if "yes or no" in text.lower():
            return "yes" if CATEGORY_SCORE[category] >= 1 else "no"
        score = CATEGORY_SCORE[category]
        if self.noisy and self.calls % 3 == 0:
            score = (score + 1) % 3
        return json.dumps({"score": score, "rationale": "scripted", "quotes": ["carbon neutrality"]})


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "results.db")


def make_suite(tmp_path, **overrides):
    data = {
        "name": "unit",
        "filings": [{"ticker": "AAPL", "years": "2019-2020"}],
        "categories": ["environment", "people", "innovation"],
        "models": ["fake:steady"],
        "prompt_versions": ["v1", "v2"],
        "samples": 2,
        "temperature": 0.7,
        "n_boot": 30,
        "n_boot_slow": 5,
    }
    data.update(overrides)
    return parse_suite(data)


def scripts(noisy=False, garbage=frozenset()):
    steady, other = Scripted(), Scripted(noisy=noisy, garbage=garbage)
    register_script("steady", func=steady)
    register_script("other", func=other)
    return steady, other


def test_suite_rates_every_cell_and_writes_the_report(tmp_path, store):
    steady, other = scripts(noisy=True)
    suite = make_suite(tmp_path, models=["fake:steady", "fake:other"], paper=True)
    out = tmp_path / "report"
    result = run_eval_suite(suite, out, store=store, gather=gather, targets=TARGETS)

    # 2 filings × 3 categories × 2 samples × (2 models × 2 prompt versions)
    assert len(result.ratings) == 48 and result.failed_ratings == 0
    assert result.raters == ["fake:steady@v1", "fake:steady@v2", "fake:other@v1", "fake:other@v2"]
    assert set(result.frame["unit"]) == {f"AAPL|{y}|{c}" for y in (2019, 2020) for c in ("environment", "people", "innovation")}
    for rater, run_id in result.runs.items():
        assert run_id.startswith(f"eval-unit-{rater}-")
        assert store.run(run_id)["status"] == "finished"
        assert len(store.ratings(run_id)) == 12

    tr = result.test_retest
    assert set(tr) == set(result.raters)
    assert tr["fake:steady@v1"]["exact_agreement"] == 1.0 and tr["fake:steady@v1"]["mean_spread"] == 0.0
    assert tr["fake:other@v1"]["exact_agreement"] < 1.0  # every third call is off by one
    assert tr["fake:steady@v1"]["alpha_interval"]["estimate"] == pytest.approx(1.0)
    assert {"estimate", "ci_low", "ci_high", "reason"} <= set(tr["fake:other@v1"]["alpha_ordinal"])

    assert [(p["rater_a"], p["rater_b"]) for p in result.cross_prompt] == [
        ("fake:steady@v1", "fake:steady@v2"), ("fake:other@v1", "fake:other@v2")]
    assert [(p["rater_a"], p["rater_b"]) for p in result.cross_model] == [
        ("fake:steady@v1", "fake:other@v1"), ("fake:steady@v2", "fake:other@v2")]
    pair = result.cross_prompt[0]
    for stat in ("alpha_interval", "alpha_ordinal", "kappa_linear", "kappa_quadratic", "icc2", "mean_abs_diff"):
        assert "estimate" in pair[stat]
    assert pair["n_units"] == 6 and set(pair["by_category"]) == {"environment", "people", "innovation"}
    assert {"command-r-plus@normal", "fake:steady@v1"} <= set(result.matrix["alpha_interval"].index)

    paper = result.paper["raters"]["fake:steady@v1"]
    alpha = paper["overall"]["alpha_interval"]
    assert paper["n_units"] == 6 and (alpha["estimate"] is not None or alpha["reason"])
    assert set(paper["by_category"]) == {"environment", "people", "innovation"}

    for name in ("report.md", "report.html", "results.json", "ratings.parquet", "plots/heatmap.png",
                 "plots/matrix.png", "plots/trend-AAPL.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    for heading in ("## Ratings", "## Test-retest", "## Across prompt versions", "## Across models",
                    "## Agreement with the paper", "## Year trends", "## Thresholds", "![", "eval diff"):
        assert heading in md, heading
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<table>" in html
    data = json.loads((out / "results.json").read_text())
    assert data["ok"] is True and len(data["ratings"]) == 48 and data["runs"] == result.runs
    assert data["test_retest"]["fake:steady@v1"]["alpha_interval"]["estimate"] == pytest.approx(1.0)
    assert data["counts"]["calls_made"] == result.calls_made > 0
    frame = pd.read_parquet(out / "ratings.parquet")
    assert len(frame) == 48 and {"unit", "rater", "run_id", "score", "sample_index"} <= set(frame.columns)


def test_rerun_makes_no_model_calls_and_keeps_run_ids(tmp_path, store):
    steady, _ = scripts()
    suite = make_suite(tmp_path)
    first = run_eval_suite(suite, tmp_path / "a", store=store, gather=gather, targets=TARGETS)
    calls, rows = steady.calls, len(store.calls())
    assert calls > 0 and first.calls_made == rows
    second = run_eval_suite(suite, tmp_path / "b", store=store, gather=gather, targets=TARGETS)
    assert steady.calls == calls and len(store.calls()) == rows  # everything from the cache
    assert second.calls_made == 0 and second.calls_cached > 0
    assert second.runs == first.runs
    assert [r.score for r in second.ratings] == [r.score for r in first.ratings]
    # a change to what is rated gives new runs
    more = make_suite(tmp_path, samples=3)
    assert run_id_for(more, TARGETS, "fake:steady", "v1") != first.runs["fake:steady@v1"]
    assert run_id_for(suite, TARGETS[:1], "fake:steady", "v1") != first.runs["fake:steady@v1"]


def test_an_interrupted_suite_resumes_where_it_stopped(tmp_path, store):
    steady, _ = scripts()
    suite = make_suite(tmp_path)
    fresh = Scripted()
    register_script("steady", func=fresh)
    run_eval_suite(suite, None, store=Store(tmp_path / "other.db"), gather=gather, targets=TARGETS, write=False)
    total = fresh.calls

    register_script("steady", func=steady)
    seen = {"n": 0}

    def flaky(prompt, target):
        seen["n"] += 1
        if seen["n"] == 9:
            raise KeyboardInterrupt
        return gather(prompt, target)

    with pytest.raises(KeyboardInterrupt):
        run_eval_suite(suite, None, store=store, gather=flaky, targets=TARGETS, write=False)
    interrupted = [r for r in store.runs() if r["status"] == "interrupted"]
    assert len(interrupted) == 1 and 0 < steady.calls < total
    result = run_eval_suite(suite, tmp_path / "out", store=store, gather=gather, targets=TARGETS)
    assert steady.calls == total  # the first part came from the cache
    assert result.ok and all(store.run(r)["status"] == "finished" for r in result.runs.values())


def test_thresholds_pass_fail_and_missing(tmp_path, store):
    _, other = scripts(noisy=True, garbage={"people"})
    suite = make_suite(tmp_path, models=["fake:other"], prompt_versions=["v1"], thresholds={
        "max_failed_share": 0.2,               # a third of the ratings fail (people)
        "min_test_retest_exact": 0.99,         # noisy
        "min_test_retest_within_one": 0.5,     # met
        "min_cross_prompt_alpha": 0.5,         # one prompt version: no pair, no check
    })
    result = run_eval_suite(suite, tmp_path / "out", store=store, gather=gather, targets=TARGETS)
    assert result.failed_ratings == 4 and not result.ok
    failed = {c.name for c in result.failures}
    assert failed == {"max_failed_share", "min_test_retest_exact"}
    passed = {c.name for c in result.checks if c.passed}
    assert passed == {"min_test_retest_within_one"}
    assert "malformed output" in (tmp_path / "out" / "report.md").read_text()
    assert "**FAIL**" in (tmp_path / "out" / "report.md").read_text()

    # a statistic that cannot be computed: skipped by default, a failure with on_missing: fail
    steady, _ = scripts()
    for policy, ok in (("skip", True), ("fail", False)):
        suite = make_suite(tmp_path, prompt_versions=["v1"], categories=["environment"], samples=1,
                           thresholds={"min_test_retest_alpha": 0.5, "on_missing": policy})
        result = run_eval_suite(suite, None, store=store, gather=gather, targets=TARGETS, write=False)
        assert result.ok is ok
        assert result.checks[0].value is None and "samples" in result.checks[0].reason


def _targets_and_gather(monkeypatch):
    monkeypatch.setattr(run_mod, "resolve_suite_targets", lambda suite, progress=None, **kw: list(TARGETS))
    monkeypatch.setattr("filinglens.app.index_gatherer", lambda searcher=None: gather)


def test_cli_exit_code_follows_thresholds(tmp_path, monkeypatch):
    import yaml

    from filinglens.cli import app

    scripts()
    _targets_and_gather(monkeypatch)
    base = {"name": "cli", "filings": [{"ticker": "AAPL", "years": "2019-2020"}], "categories": ["environment", "people"],
            "models": ["fake:steady"], "prompt_versions": ["v1"], "samples": 2, "temperature": 0.7,
            "n_boot": 20, "n_boot_slow": 5}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**base, "thresholds": {"min_test_retest_exact": 0.9}}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**base, "thresholds": {"max_test_retest_mean_spread": -0.0, "min_test_retest_alpha": 1.0,
                                                           "max_failed_share": 0.0, "min_test_retest_exact": 1.0},
                                   "categories": ["environment"]}))
    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "run", str(good), "--out", str(tmp_path / "good")])
    assert ok.exit_code == 0, ok.output
    assert "PASS" in ok.output and "Test-retest" in ok.output and (tmp_path / "good" / "report.html").is_file()

    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({**base, "models": ["fake:other"], "thresholds": {"min_test_retest_exact": 1.0}}))
    scripts(noisy=True)
    failed = runner.invoke(app, ["eval", "run", str(strict), "--out", str(tmp_path / "strict")])
    assert failed.exit_code == 1, failed.output
    assert "FAIL" in failed.output and "threshold not met: min_test_retest_exact" in failed.output

    as_json = runner.invoke(app, ["eval", "run", str(strict), "--json", "--out", str(tmp_path / "strict")])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout[as_json.stdout.index("{"):])
    assert data["ok"] is False and data["failures"] and data["counts"]["calls_made"] == 0  # cached


def test_diff_two_runs(tmp_path, store, monkeypatch):
    scripts(noisy=True)
    suite = make_suite(tmp_path, models=["fake:steady", "fake:other"], prompt_versions=["v1"])
    result = run_eval_suite(suite, None, store=store, gather=gather, targets=TARGETS, write=False)
    a, b = result.runs["fake:steady@v1"], result.runs["fake:other@v1"]
    diff = diff_store_runs(a, b[:-4], store=store, n_boot=50, n_boot_slow=10)  # a unique prefix works
    assert diff["run_a"]["id"] == a and diff["run_b"]["id"] == b
    assert diff["run_a"]["raters"] == ["fake:steady@v1"]
    assert sum(diff["counts"].values()) == 6 and diff["counts"].get("changed", 0) >= 1
    changed = [c for c in diff["cells"] if c["status"] == "changed"]
    assert all(abs(c["diff"]) > 0 and c["category"] in c["unit"] for c in changed)
    assert diff["cells"][0]["abs_diff"] >= diff["cells"][-1]["abs_diff"]
    assert "estimate" in diff["agreement"]["alpha_interval"] and set(diff["by_category"]) == {
        "environment", "people", "innovation"}

    from filinglens.cli import app

    monkeypatch.setenv("FILINGLENS_HOME", str(tmp_path))  # Store() opens tmp_path/results.db
    runner = CliRunner()
    shown = runner.invoke(app, ["eval", "diff", a, b, "--boot", "50"])
    assert shown.exit_code == 0, shown.output
    assert "Changed cells" in shown.output and "Agreement A vs B" in shown.output
    js = runner.invoke(app, ["eval", "diff", a, b, "--json", "--boot", "0"])
    assert json.loads(js.stdout)["run_b"]["id"] == b
    missing = runner.invoke(app, ["eval", "diff", a, "nope"])
    assert missing.exit_code == 2 and "no run `nope`" in missing.output


def _stub_metamorphic(monkeypatch, calls):
    module = types.ModuleType("filinglens.evals.metamorphic")

    def run_metamorphic(targets, categories, *, model_id, prompt_version, checks=("shuffle", "rename"),
                        store=None, gather=None, **kwargs):
        calls.append({"model_id": model_id, "prompt_version": prompt_version, "checks": list(checks),
                      "categories": list(categories), "targets": len(targets), "kwargs": kwargs})
        rates = {"shuffle": 1.0, "rename": 0.5 if prompt_version == "v1" else 1.0}
        by_check = {c: {"n": 2, "pass_rate": rates[c]} for c in checks}
        return types.SimpleNamespace(
            pass_rates={c: rates[c] for c in checks}, results=[],
            to_dict=lambda: {"model_id": model_id, "prompt_version": prompt_version, "pass_rate": 0.75,
                             "by_check": by_check})

    module.run_metamorphic = run_metamorphic
    monkeypatch.setitem(sys.modules, "filinglens.evals.metamorphic", module)


def test_metamorphic_section_and_threshold(tmp_path, store, monkeypatch):
    scripts()
    calls: list = []
    _stub_metamorphic(monkeypatch, calls)
    suite = make_suite(tmp_path, metamorphic={"checks": ["shuffle", "rename"], "categories": ["environment"]},
                       thresholds={"min_metamorphic_pass_rate": 0.8})
    result = run_eval_suite(suite, tmp_path / "out", store=store, gather=gather, targets=TARGETS)
    assert [(c["model_id"], c["prompt_version"]) for c in calls] == [("fake:steady", "v1"), ("fake:steady", "v2")]
    assert calls[0]["checks"] == ["shuffle", "rename"] and calls[0]["categories"] == ["environment"]
    assert calls[0]["kwargs"].get("temperature") == 0.7
    assert set(result.metamorphic.raters) == {"fake:steady@v1", "fake:steady@v2"}
    assert [c.scope for c in result.failures] == ["fake:steady@v1 rename"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Metamorphic checks" in md and "| `fake:steady@v1` | rename | 50% |" in md

    # not installed: the section says so, the threshold counts as missing
    monkeypatch.setitem(sys.modules, "filinglens.evals.metamorphic", None)
    result = run_eval_suite(suite, tmp_path / "out2", store=store, gather=gather, targets=TARGETS)
    assert result.metamorphic.available is False and result.ok  # on_missing: skip
    assert "not available" in (tmp_path / "out2" / "report.md").read_text()


def test_metamorphic_with_the_real_module(tmp_path, store):
    """The suite's `metamorphic:` section drives evals/metamorphic.py (fake rater): pass rates reach the report."""
    pytest.importorskip("filinglens.evals.metamorphic")
    scripts()
    suite = make_suite(tmp_path, prompt_versions=["v1"], categories=["environment"], samples=1,
                       metamorphic={"checks": ["shuffle", "rename"]}, thresholds={"min_metamorphic_pass_rate": 0.5})
    result = run_eval_suite(suite, tmp_path / "out", store=store, gather=gather, targets=TARGETS)
    got = result.metamorphic.raters["fake:steady@v1"]
    assert set(got.pass_rates) == {"shuffle", "rename"}
    assert [c.name for c in result.checks] == ["min_metamorphic_pass_rate"] * 2 and result.ok
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| `fake:steady@v1` | shuffle | 100% |" in report
    # one row per check result, with the expected scores that decided it
    detail = [line for line in report.splitlines() if line.startswith("| `fake:steady@v1` |") and "→" in line]
    assert len(detail) == len(got.results) == 4 and all("| pass |" in line for line in detail)


@pytest.mark.timeout(2400)  # ~3 min on a quiet 2-core machine; much longer when other model jobs share the CPU
@pytest.mark.model
def test_smoke_suite_end_to_end_on_the_local_model(tmp_path, monkeypatch):
    """The real `smoke` suite: ingest, rate with Qwen 1.5B, report; a second run makes zero model calls."""
    from filinglens.agents.providers import local
    from filinglens.cli import app

    out = tmp_path / "smoke"
    runner = CliRunner()
    try:
        t0 = time.perf_counter()
        first = runner.invoke(app, ["eval", "run", "smoke", "--out", str(out)])
        elapsed = time.perf_counter() - t0
        assert first.exit_code in (0, 1), first.output
        assert "Test-retest" in first.output
        for name in ("report.md", "report.html", "results.json", "ratings.parquet", "plots/heatmap.png"):
            assert (out / name).is_file(), name
        data = json.loads((out / "results.json").read_text())
        assert data["counts"]["ratings"] == 4 and data["counts"]["calls_made"] > 0
        for rater in ("local@v1", "local@v2"):
            alpha = data["test_retest"][rater]["alpha_interval"]
            assert (alpha["estimate"] is not None and alpha["ci_low"] is not None) or alpha["reason"]
        # rich wraps the table at the runner's 80 columns: the pair itself is checked in the JSON
        assert "Agreement between raters" in first.output
        [pair] = data["cross_prompt"]
        assert (pair["rater_a"], pair["rater_b"]) == ("local@v1", "local@v2") and "estimate" in pair["alpha_interval"]
        calls = len(Store().calls())
        second = runner.invoke(app, ["eval", "run", "smoke", "--out", str(out), "--json"])
        assert second.exit_code == first.exit_code, second.output
        again = json.loads(second.stdout[second.stdout.index("{"):])
        assert again["counts"]["calls_made"] == 0 and len(Store().calls()) == calls
        assert again["runs"] == data["runs"]
        print(f"\nsmoke suite: {elapsed:.0f}s first run, timings {data['timings']}")
        print(re.sub(r"\s+", " ", first.output)[-1500:])
    finally:
        local.unload_all()


def test_a_registered_agreement_metric_is_computed_by_the_harness_and_shown_in_the_report(tmp_path, store):
    """A new agreement metric is one decorated function: every rater pair, results.json and the report get it."""
    from filinglens.evals import stats

    @stats.agreement_metric("max_abs_diff_test", label="max |Δ| (test metric)", min_units=1, slow=False)
    def max_abs_diff(x, y):
        return float(abs(x - y).max())

    try:
        scripts(noisy=True)
        suite = make_suite(tmp_path, models=["fake:steady", "fake:other"], prompt_versions=["v1"], samples=1)
        result = run_eval_suite(suite, tmp_path / "out", store=store, gather=gather, targets=TARGETS)
        [pair] = result.cross_model
        means = result.frame.groupby(["unit", "rater"])["score"].mean().unstack()
        expected = float((means["fake:steady@v1"] - means["fake:other@v1"]).abs().max())
        assert expected > 0  # the noisy rater disagrees somewhere, so the metric is not trivially 0
        assert pair["max_abs_diff_test"]["estimate"] == pytest.approx(expected)
        assert pair["max_abs_diff_test"]["n_boot"] == suite.n_boot  # bootstrapped like the fast statistics
        assert set(pair["by_category"]["people"]) >= {"max_abs_diff_test", "kappa_quadratic"}
        saved = json.loads((tmp_path / "out" / "results.json").read_text())
        assert saved["cross_model"][0]["max_abs_diff_test"]["estimate"] == pytest.approx(expected)
        md = (tmp_path / "out" / "report.md").read_text()
        assert "| max |Δ| (test metric) |" in md.replace("\\|", "|")
        matrix = stats.agreement_matrix(result.frame, "max_abs_diff_test")
        assert matrix.loc["fake:steady@v1", "fake:other@v1"] == pytest.approx(expected)
    finally:
        stats.AGREEMENT_METRICS.pop("max_abs_diff_test", None)
