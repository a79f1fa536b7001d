"""Background jobs in the results store (app.py): plan, progress, failures, a dead worker, resume; Items left out."""

from __future__ import annotations

from types import SimpleNamespace

from filinglens import app
from filinglens.agents.rating import Target
from filinglens.prompts.loader import load_prompt
from filinglens.store import Store


def request(**changes) -> dict:
    base = {"tickers": ["AAPL"], "years": "2021-2022", "paths": [], "categories": ["people"], "model": "fake:analyst",
            "prompt_version": "v1", "samples": 1, "exclude_items": []}
    return {**base, **changes}


def test_a_job_records_its_plan_progress_and_cells_in_the_store(wb_home):
    run_id = app.create_job("rate", request(), label="test")
    assert Store().run(run_id)["status"] == "queued"
    assert app.execute_job(run_id) == "finished"
    view = app.job_view(Store().run(run_id))
    assert view["status"] == "finished" and view["phase"] == "done" and view["total"] == 2 and view["done"] == 2
    assert [(c["filing"], c["category"], c["status"]) for c in view["cells"]] == [
        ("AAPL FY2021", "people", "ok"), ("AAPL FY2022", "people", "ok")]
    assert view["config"]["model"] == "fake:analyst" and "pid" not in view["config"]


def test_a_job_whose_worker_died_is_shown_interrupted_and_resumes_where_it_stopped(wb_home):
    store = Store()
    run_id = app.create_job("rate", request(categories=["people", "confidence"]), store=store)
    # a worker in another process that died after one rating: its pid no longer exists
    app.execute_job(run_id, store=store)
    first = store.ratings(run_id)
    store.db.execute("DELETE FROM ratings WHERE run_id=? AND category='confidence'", (run_id,))
    job = app._config(store.run(run_id))["job"]
    store.update_run(run_id, status="running", config={"job": {**job, "pid": 2**22 + 12345, "phase": "rating"}})
    view = app.job_view(store.run(run_id), store)
    assert view["status"] == "interrupted"
    assert sum(1 for c in view["cells"] if c["status"] == "pending") == 2
    thread = app.start_job(run_id)
    thread.join(120)
    resumed = Store().ratings(run_id)
    assert Store().run(run_id)["status"] == "finished" and len(resumed) == len(first) == 4
    assert all(r["cached_calls"] == r["model_calls"] for r in resumed)  # every call served from the cache


def test_a_job_with_no_usable_filing_fails_with_the_reasons(wb_home, monkeypatch):
    monkeypatch.delenv("SEC_USER_AGENT", raising=False)
    run_id = app.create_job("rate", request(tickers=["ZZZZ"], years=None))
    assert app.execute_job(run_id) == "failed"
    view = app.job_view(Store().run(run_id))
    assert "ZZZZ" in view["error"] and "SEC_USER_AGENT" in view["error"] and view["cells"] == []


def test_one_bad_ticker_is_reported_while_the_others_are_rated(wb_home, monkeypatch):
    monkeypatch.delenv("SEC_USER_AGENT", raising=False)
    run_id = app.create_job("rate", request(tickers=["AAPL", "ZZZZ"]))
    assert app.execute_job(run_id) == "finished-with-failures"
    view = app.job_view(Store().run(run_id))
    assert view["done"] == 2 and any("ZZZZ" in e for e in view["errors"])


def test_a_cancel_before_the_job_starts_cancels_it(wb_home):
    run_id = app.create_job("rate", request())
    app.request_cancel(run_id)
    assert Store().run(run_id)["status"] == "cancelled"


def test_items_left_out_never_reach_the_evidence(wb_home):
    run_id = app.create_job("rate", request(exclude_items=["1"]))
    app.execute_job(run_id)
    rows = Store().ratings(run_id)
    assert rows and all(r["status"] == "failed" and "no evidence" in r["error"] for r in rows)  # only Item 1 indexed
    panel = app.ratings_panel()
    assert "fake:analyst@v1-1" in set(panel["rater"])  # its own rater, beside the full-evidence one


def test_the_gatherer_asks_for_more_and_drops_the_excluded_items():
    seen = {}

    class Agent:
        def retrieve(self, question, **kw):
            seen.update(kw)
            items = ["1A", "7", "1A", "1", "7", "1A", "1", "7"] * 3
            return [SimpleNamespace(chunk_id=f"c{n}", text="t", item=i, citation=lambda: "x", score=1.0)
                    for n, i in enumerate(items)]

    prompt = load_prompt("innovation@v1")  # preferred items 1 and 7, 8 chunks
    gather = app.index_gatherer(Agent(), exclude_items=["1a", "7"])
    got = gather(prompt, Target("f", "X", "X", "1", 2022, "h"))
    assert {e.item for e in got} == {"1"} and len(got) <= prompt.retrieval.evidence_chunks
    assert seen["items"] == ["1"] and seen["k"] == 3 * prompt.retrieval.evidence_chunks
