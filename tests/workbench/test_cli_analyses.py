"""``filinglens trends``, ``compare`` and ``app`` on real (shortened) 10-Ks rated by ``fake:analyst``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from filinglens.cli import app as cli
from filinglens.store import Store

runner = CliRunner()


def invoke(*args):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_trends_writes_plot_and_tables_for_scripts(wb_home, tmp_path):
    out = tmp_path / "trends"
    result = invoke("trends", "--ticker", "AAPL", "--ticker", "MSFT", "--years", "2021-2022", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "trends.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "trends.html").read_text()
    assert "data:image/png;base64," in html and "AAPL" in html and "<table>" in html
    data = json.loads((out / "trends.json").read_text())
    cells = data["cells"]
    assert len(cells) == 2 * 2 * 2 * 2  # companies × years × categories × raters
    assert {c["rater"] for c in cells} == {"fake:analyst@v1", "fake:analyst@v2"}
    aapl = next(c for c in cells if c["company"] == "AAPL" and c["fiscal_year"] == 2022
                and c["category"] == "innovation" and c["rater"] == "fake:analyst@v1")
    stored = next(r for r in Store().ratings() if r["ticker"] == "AAPL" and r["fiscal_year"] == 2022
                  and r["category"] == "innovation" and r["prompt_version"] == "v1")
    assert aapl["expected"] == stored["expected_score"] and aapl["band"] == "none"
    assert {c["band"] for c in cells if c["rater"].endswith("v2")} == {"yes/no"}
    csv = (out / "trends.csv").read_text().splitlines()
    assert csv[0].startswith("company,fiscal_year,category,rater") and len(csv) == 17


def test_trends_for_a_company_without_ratings_is_one_clear_line(wb_home):
    result = runner.invoke(cli, ["trends", "--ticker", "NVDA"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "no ratings in the store for NVDA" in text and "rated: AAPL FY2021" in text
    assert "Traceback" not in result.output


def test_compare_ranks_three_companies_and_a_rerun_is_served_from_the_cache(wb_home, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "AAPL", "MSFT", "MMM", "--year", "2022", "--category", "innovation", "--model", "fake:analyst",
            "--out", str(out), "--boot", "200"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "compare.json").read_text())
    assert data["companies"] == ["AAPL", "MSFT", "MMM"] and data["counts"]["judgments"] == 6
    assert data["position_bias"]["flip_rate"] == 0.0  # this judge ignores the order
    ranking = data["ranking"]
    assert [r["wins"] for r in ranking] == sorted((r["wins"] for r in ranking), reverse=True)  # best first
    assert ranking[0]["rank"] == 1 and ranking[0]["strength"] > ranking[-1]["strength"]
    assert sum(r["wins"] for r in ranking) + sum(r["ties"] for r in ranking) / 2 == 6
    for name in ("compare.png", "compare.html", "ranking.csv", "judgments.csv", "win_matrix.csv"):
        assert (out / name).stat().st_size > 0
    run = Store().run(data["run_id"])
    assert run["kind"] == "compare" and run["status"] == "finished"
    again = invoke(*args, "--json")
    assert again.exit_code == 0
    assert json.loads(again.output)["counts"] == {"judgments": 6, "failed": 0, "model_calls": 6, "cached_calls": 6}


def test_compare_on_one_item_judges_only_that_item_s_text(wb_home, tmp_path):
    """Section by section: `--item 1` shows the judge Item 1 alone; an Item a filing lacks is a clear error."""
    out = tmp_path / "cmp-item"
    result = invoke("compare", "AAPL", "MSFT", "--year", "2022", "--category", "environment", "--item", "1",
                    "--model", "fake:analyst", "--out", str(out), "--boot", "50", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "compare.json").read_text())
    assert data["item"] == "1" and data["counts"] == {"judgments": 2, "failed": 0, "model_calls": 2, "cached_calls": 0}
    shown = [e for j in data["judgments"] for e in j["evidence_first"] + j["evidence_second"]]
    assert shown and {e["item"] for e in shown} == {"1"}
    assert Store().run(data["run_id"])["label"] == "compare environment, Item 1: AAPL MSFT"
    # these shortened filings hold Item 1 only: Item 7 has no evidence, and every judgment says so
    missing = runner.invoke(cli, ["compare", "AAPL", "MSFT", "--year", "2022", "--category", "environment",
                                  "--item", "7", "--model", "fake:analyst", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "no evidence for environment" in missing.output
    bad = runner.invoke(cli, ["compare", "AAPL", "MSFT", "--year", "2022", "--category", "environment",
                              "--item", "../7", "--model", "fake:analyst"])
    assert bad.exit_code != 0 and "--item must be a 10-K Item" in bad.output and "Traceback" not in bad.output


def test_compare_reports_a_judge_that_always_picks_the_first_company(wb_home, tmp_path):
    result = invoke("compare", "AAPL", "MSFT", "MMM", "--year", "2022", "--category", "environment", "--model",
                    "fake:first", "--out", str(tmp_path / "c"), "--boot", "100")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "P(first shown wins) = 1.00" in text and "flipped with the order in 3/3 pairs (100%)" in text


def test_compare_with_a_failing_model_records_the_failures_and_exits_1(wb_home, tmp_path):
    result = runner.invoke(cli, ["compare", "AAPL", "MSFT", "--year", "2022", "--category", "people", "--model",
                                 "fake:boom", "--out", str(tmp_path / "c"), "--boot", "10"])
    assert result.exit_code == 1 and "2 judgments (2 failed)" in " ".join(result.output.split())
    data = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert all(j["status"] == "failed" and "unreachable" in j["error"] for j in data["judgments"])
    assert Store().run(data["run_id"])["status"] == "finished-with-failures"


@pytest.mark.parametrize("args, message", [
    (["AAPL", "--year", "2022"], "at least two different companies"),
    (["AAPL", "ZZZZ", "--year", "2022"], "ZZZZ"),
    (["AAPL", "MSFT", "--year", "2019"], "without a FY2019 10-K of: AAPL"),
    (["AAPL", "MSFT", "--year", "2022", "--prompt-version", "v99"], "no prompt innovation@v99"),
    (["AAPL", "MSFT", "--year", "2022", "--compare-prompt", "v7"], "no comparison prompt v7"),
])
def test_compare_bad_input_is_one_clear_line(wb_home, monkeypatch, args, message):
    monkeypatch.delenv("SEC_USER_AGENT", raising=False)
    before = len(Store().runs())
    result = runner.invoke(cli, ["compare", *args, "--category", "innovation", "--model", "fake:analyst"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and message in text and "Traceback" not in text
    assert len(Store().runs()) == before  # nothing started


def test_app_starts_streamlit_on_loopback_headless_without_telemetry(monkeypatch):
    seen = {}

    def execve(path, command, env):
        seen["command"], seen["env"] = command, env
        assert path == command[0]

    monkeypatch.setattr("os.execve", execve)
    result = runner.invoke(cli, ["app", "--port", "8999"])
    assert result.exit_code == 0, result.output
    command = seen["command"]
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("workbench/main.py")
    flags = dict(zip(command[5::2], command[6::2]))
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8999"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert seen["env"]["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"


def test_app_served_beyond_loopback_does_not_read_local_paths(monkeypatch):
    seen = {}
    monkeypatch.setattr("os.execve", lambda path, command, env: seen.update(env=env))
    assert runner.invoke(cli, ["app", "--host", "0.0.0.0"]).exit_code == 0
    assert seen["env"]["FILINGLENS_WORKBENCH_LOCAL_PATHS"] == "0"
    assert runner.invoke(cli, ["app"]).exit_code == 0
    assert seen["env"]["FILINGLENS_WORKBENCH_LOCAL_PATHS"] == "1"


def test_app_refuses_a_malformed_host(monkeypatch):
    monkeypatch.setattr("os.execve", lambda *a, **k: pytest.fail("must not start"))
    result = runner.invoke(cli, ["app", "--host", "0.0.0.0; rm -rf /"])
    assert result.exit_code == 2 and "--host must be an address" in " ".join(result.output.split())
