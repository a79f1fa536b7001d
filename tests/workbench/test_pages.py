"""Page logic of the workbench with Streamlit's AppTest, on real (shortened) 10-Ks rated by ``fake:analyst``."""

from __future__ import annotations

import re
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from filinglens import app
from filinglens.store import Store

MAIN = str(Path(__file__).resolve().parents[2] / "workbench" / "main.py")


def open_page(page: str, **query) -> AppTest:
    """A fresh session (as a reload of the page would give) on ``views/<page>.py``."""
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def wait_for_job(run_id: str, timeout: float = 120) -> dict:
    """Wait for the job's thread (jobs run in threads of this process) and return its run."""
    thread = app._JOBS.get(run_id)
    assert thread is not None, f"job {run_id} was not started in this process"
    thread.join(timeout)
    run = Store().run(run_id)
    assert not thread.is_alive(), f"job {run_id} still {run['status']} after {timeout} s"
    return run


def submit_rating(at: AppTest, *, tickers="", years="", model="fake:analyst", version="v1",
                  categories=("people",), upload: tuple[str, bytes] | None = None) -> AppTest:
    if upload:
        at.file_uploader(key="uploads").upload(upload[0], upload[1], "text/html")
    at.text_input(key="tickers").set_value(tickers)
    at.text_input(key="years").set_value(years)
    at.text_input(key="rate-model-other").set_value(model)
    at.selectbox(key="version").set_value(version)
    at.multiselect(key="categories").set_value(list(categories))
    at.button[0].click()  # the form's submit button
    return at.run()


def latest_job(kind: str) -> dict | None:
    runs = [r for r in Store().runs(kind) if '"job"' in (r["config"] or "")]
    return runs[0] if runs else None


# --------------------------------------------------------------------------- ratings and evidence


def test_ratings_page_shows_each_rater_panel_with_every_number_linking_to_its_evidence(wb_home):
    at = open_page("ratings")
    text = markdown(at)
    assert "fake:analyst@v1" in text and "fake:analyst@v2" in text  # two raters side by side
    ids = {int(r["id"]) for r in Store().ratings()}
    linked = {int(i) for i in re.findall(r"evidence\?rating=(\d+)", text)}
    assert len(linked) == 20 and linked <= ids  # 5 filings × 2 categories × 2 raters, each one clickable
    assert "AAPL FY2021" in text and "MMM FY2022" in text
    assert len(at.tabs) == 5 and not errors(at)


def test_ratings_page_selection_filters_companies_and_years(wb_home):
    at = open_page("ratings")
    at.multiselect(key="companies").set_value(["MSFT"])
    at.slider(key="years").set_value((2022, 2022))
    at.run()
    text = markdown(at)
    assert "MSFT FY2022" in text and "MSFT FY2021" not in text and "AAPL" not in text.split("<table")[1]


def test_evidence_page_highlights_the_quote_inside_its_item_with_its_span(wb_home):
    row = next(r for r in Store().ratings() if r["prompt_version"] == "v1" and r["ticker"] == "AAPL"
               and r["category"] == "innovation" and r["fiscal_year"] == 2022)
    quote = row["quotes"][0]["text"]
    at = open_page("evidence", rating=str(row["id"]))
    text = markdown(at)
    marked = re.search(r"<mark>(.*?)</mark>", text, re.S).group(1)
    assert marked.replace("&#x27;", "'").replace("’", "'")[:60] == quote.replace("’", "'")[:60]
    span = re.search(r"AAPL 10-K FY2022, Item 1\*\* \(Business\), characters ([\d,]+)–([\d,]+)", text)
    assert span, text[:500]
    start, end = (int(g.replace(",", "")) for g in span.groups())
    assert end - start == len(quote)
    assert "Rubric level **2**" in text  # the rubric level that decided a direct rating
    assert at.selectbox(key="evidence-rating").value == row["id"]


def test_evidence_page_shows_the_yes_no_answers_that_decided_a_v2_rating(wb_home):
    row = next(r for r in Store().ratings() if r["prompt_version"] == "v2" and r["ticker"] == "MMM"
               and r["category"] == "environment")
    at = open_page("evidence", rating=str(row["id"]))
    answers = at.dataframe[0].value
    assert list(answers["level"]) == ["1", "2", "2"]
    assert answers["p_yes"].notna().all() and answers["question"].str.contains("environment").any()


def test_evidence_page_shows_the_indicators_and_interval_of_a_default_v5_rating(wb_home):
    targets = app.resolve_targets((), "MSFT", "2022")
    run_id, [rating] = app.run_ratings(targets, ["environment"], model_id="fake:analyst")  # the default version
    assert rating.prompt_version == "v5" and rating.status == "ok", rating.error
    row = next(r for r in Store().ratings(run_id))
    assert row["indicators"] and row["interval"] == rating.interval  # kept in the store, not only printed
    at = open_page("evidence", rating=str(row["id"]))
    [frame] = [d.value for d in at.dataframe if "contribution" in d.value.columns]
    assert list(frame["id"]) == [i["id"] for i in rating.indicators]
    low, high = rating.interval
    assert any(f"interval {low:.2f}–{high:.2f}" in c.value for c in at.caption), [c.value for c in at.caption]


def test_evidence_page_with_an_unknown_rating_id_says_so(wb_home):
    at = open_page("evidence", rating="999999")
    assert any("no rating 999999" in e for e in errors(at))


# --------------------------------------------------------------------------- background rating jobs


def test_rating_job_runs_in_the_background_and_survives_a_page_reload(wb_home):
    at = submit_rating(open_page("filings"), tickers="AAPL", years="2022", categories=("people", "confidence"))
    assert not errors(at) and at.success, errors(at)
    run = latest_job("rate")
    assert wait_for_job(run["id"])["status"] == "finished"
    again = open_page("filings")  # a new session: everything comes from the store
    job_text = markdown(again)
    assert run["id"] in job_text and "finished" in job_text
    grid = again.dataframe[-1].value
    assert set(grid.columns) == {"confidence", "people"} and list(grid.index) == ["AAPL FY2022"]
    rows = [r for r in Store().ratings(run["id"]) if r["status"] == "ok"]
    assert {(r["category"], r["fiscal_year"]) for r in rows} == {("people", 2022), ("confidence", 2022)}


def test_a_running_job_can_be_cancelled_from_the_page(wb_home):
    from filinglens.agents.providers.fake import register_script

    def slow(messages):
        time.sleep(0.6)
        return '{"score": 1, "rationale": "slow", "quotes": []}'

    register_script("slow", func=slow)
    at = submit_rating(open_page("filings"), tickers="AAPL, MSFT", years="2021-2022", model="fake:slow",
                       categories=("people", "confidence", "environment", "innovation"))
    run = latest_job("rate")
    deadline = time.monotonic() + 30
    while not Store().ratings(run["id"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    at = open_page("filings")
    before = len(Store().ratings(run["id"]))
    at.button(key=f"cancel-{run['id']}").click().run()
    final = wait_for_job(run["id"])
    saved = Store().ratings(run["id"])
    assert final["status"] == "cancelled", (final, app.job_view(final), before, len(saved))
    assert 1 <= len(saved) < 16 and all(r["status"] == "ok" for r in saved), saved  # nothing half-written
    assert "cancelled" in markdown(open_page("filings"))


def test_unknown_ticker_without_edgar_access_shows_a_message_and_starts_nothing(wb_home, monkeypatch):
    monkeypatch.delenv("SEC_USER_AGENT", raising=False)
    before = len(Store().runs())
    at = submit_rating(open_page("filings"), tickers="ZZZZ")
    assert any("ZZZZ: no indexed 10-K here" in e and "SEC_USER_AGENT" in e for e in errors(at))
    assert len(Store().runs()) == before


def test_unknown_ticker_on_edgar_fails_the_job_with_its_reason(wb_home, monkeypatch):
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "fake_edgar.py"
    spec = importlib.util.spec_from_file_location("filinglens_tests_fake_edgar", path)
    fake_edgar = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = fake_edgar
        spec.loader.exec_module(fake_edgar)
    with fake_edgar.FakeEdgar() as server:
        monkeypatch.setenv("SEC_USER_AGENT", "FilingLens tests tests@example.com")
        monkeypatch.setenv("FILINGLENS_EDGAR_URL", server.url)
        monkeypatch.setenv("FILINGLENS_EDGAR_DATA_URL", server.url)
        at = submit_rating(open_page("filings"), tickers="ZZZZ")
        assert not errors(at)
        run = latest_job("rate")
        final = wait_for_job(run["id"])
    assert final["status"] == "failed"
    view = app.job_view(final)
    assert "ZZZZ" in view["error"] and Store().ratings(run["id"]) == []
    assert any("ZZZZ" in e for e in errors(open_page("filings")))


def test_local_paths_are_not_offered_when_served_beyond_loopback(wb_home, monkeypatch):
    assert [t.label for t in open_page("filings").text_area] == ["Local files or folders (one per line)"]
    monkeypatch.setenv("FILINGLENS_WORKBENCH_LOCAL_PATHS", "0")
    assert not open_page("filings").text_area


def test_a_non_10k_upload_is_refused_with_a_message(wb_home):
    eight_k = (b"<html><body><p>UNITED STATES SECURITIES AND EXCHANGE COMMISSION</p><p>FORM 8-K</p>"
               b"<p>CURRENT REPORT</p><p>Item 2.02 Results of Operations and Financial Condition.</p></body></html>")
    at = submit_rating(open_page("filings"), upload=("current-report.html", eight_k))
    assert any("upload refused" in e and "8-K" in e for e in errors(at)), errors(at)
    assert not (wb_home / "uploads").exists() or not any((wb_home / "uploads").rglob("*.html"))
    assert latest_job("rate") is None


def test_a_100_mb_upload_is_refused_with_a_message(wb_home):
    at = submit_rating(open_page("filings"), upload=("huge-10k.html", b"<html>" + b" " * (100 * 2**20)))
    assert any("upload refused" in e and "100 MB" in e and "limit" in e for e in errors(at)), errors(at)
    assert latest_job("rate") is None


def test_a_real_10k_upload_is_kept_and_rated(wb_home, shared):
    data = shared / "filings" / "html" / "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html"
    at = submit_rating(open_page("filings"), categories=("people",), upload=(data.name, data.read_bytes()))
    assert not errors(at), errors(at)
    final = wait_for_job(latest_job("rate")["id"], timeout=300)
    assert final["status"] in ("finished", "finished-with-failures")
    assert list((wb_home / "uploads").rglob(data.name))


def test_a_failing_model_shows_failed_cells_and_keeps_the_store_consistent(wb_home):
    submit_rating(open_page("filings"), tickers="MSFT", years="2022", model="fake:boom",
                  categories=("people", "innovation"))
    run = latest_job("rate")
    final = wait_for_job(run["id"])
    assert final["status"] == "finished-with-failures"
    rows = Store().ratings(run["id"])
    assert len(rows) == 2 and all(r["status"] == "failed" and r["score"] is None for r in rows)
    assert all("unreachable" in r["error"] for r in rows)
    calls = [c for c in Store().calls(run["id"])]
    assert calls and all(c["error"] and c["response"] is None for c in calls)  # recorded, never cached
    page = open_page("filings")
    assert any("2 of 2 ratings failed" in w.value for w in page.warning)
    assert set(page.dataframe[-1].value.loc["MSFT FY2022"]) == {"failed"}
    assert any("unreachable" in c.value for c in page.caption)


# --------------------------------------------------------------------------- compare, stability, ask


def test_compare_page_ranks_three_companies_with_position_bias(wb_home):
    at = open_page("compare")
    at.selectbox(key="cmp-year").set_value(2022)
    at.run()
    at.multiselect(key="cmp-companies").set_value(["AAPL", "MMM", "MSFT"])
    at.text_input(key="cmp-model-other").set_value("fake:analyst")
    at.selectbox(key="cmp-category").set_value("innovation")
    at.selectbox(key="cmp-item").set_value("1")  # section by section: Item 1 alone
    at.button[0].click()
    at.run()
    assert not errors(at), errors(at)
    run = latest_job("compare")
    assert wait_for_job(run["id"])["status"] == "finished"
    assert app.load_comparison(Store().run(run["id"]))["item"] == "1" and "Item 1" in run["label"]
    page = open_page("compare")
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["judgments"] == "6"  # 3 pairs × both orders
    assert metrics["verdicts flipped by order"] == "0%"  # fake:analyst ignores the order
    ranking = next(d.value for d in page.dataframe if "strength" in d.value.columns)
    assert list(ranking["rank"]) == sorted(ranking["rank"]) and set(ranking["company"]) == {"AAPL", "MMM", "MSFT"}


def test_stability_page_shows_a_suite_result_and_a_prompt_diff(wb_home, tmp_path):
    from filinglens.evals.suite import load_suite

    suite = tmp_path / "wb.yaml"
    suite.write_text("name: wb\nfilings:\n  - {ticker: AAPL, years: [2021, 2022]}\n  - {ticker: MSFT, years: [2021, 2022]}\n"
                     "categories: [innovation, environment]\nmodels: [fake:analyst]\nprompt_versions: [v1, v2]\n"
                     "samples: 1\n")
    result = app.run_eval_suite(load_suite(suite))
    at = open_page("stability")
    text = markdown(at)
    assert "**wb**" in text and "Across prompt versions" in text
    pairs = [d.value for d in at.dataframe]
    assert any("α interval" in d.columns and "fake:analyst@v1" in set(d["rater A"]) for d in pairs)
    codes = [c.value for c in at.code]
    assert codes and codes[0].startswith("---") and "+++" in codes[0]
    assert result.out_dir is not None


def test_ask_page_answers_with_a_checked_citation(wb_home):
    at = open_page("ask")
    at.text_area(key="ask-question").set_value("How does Apple manufacture its hardware?")
    at.selectbox(key="ask-ticker").set_value("AAPL")
    at.text_input(key="ask-model-other").set_value("fake:analyst")
    at.button[0].click()
    at.run()
    assert not errors(at), errors(at)
    assert at.success and ":green-badge[verified]" in markdown(at)


def test_ask_page_with_an_empty_question_says_so(wb_home):
    at = open_page("ask")
    at.text_input(key="ask-model-other").set_value("fake:analyst")
    at.button[0].click()
    at.run()
    assert any("question is empty" in e for e in errors(at))


def test_a_batch_run_shows_its_counts_and_failed_filings_on_the_filings_page(wb_home, shared, tmp_path):
    from filinglens.batch import BatchSpec, file_units, run_batch

    bad = tmp_path / "not-a-10k.html"
    bad.write_text("<html><body><p>FORM 8-K</p><p>CURRENT REPORT</p></body></html>")
    good = shared / "filings" / "html" / "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html"
    report = run_batch(file_units([good, bad]), BatchSpec(categories=["people"], models=["fake:analyst"]),
                       label="two filings")
    assert (report.stats.done, report.stats.failed) == (1, 1)
    view = app.batch_view(Store().run(report.run_id))
    assert view["progress"]["finished"] == 2 and view["status"] == "finished-with-failures"
    at = open_page("filings")
    bars = [b.proto.text for b in at.get("progress")]
    assert any("1 done · 1 failed · 0 cached · of 2 filings" in t for t in bars), bars
    [failed] = at.dataframe[-1].value.to_dict("records")
    assert failed["filing"] == "not-a-10k.html" and failed["error"].endswith("Form 8-K filing, not a 10-K")
