"""The batch runner with the local executor: real shared filings, the scripted fake model.

What is checked: a batch gives the same ratings as ``rate`` (cell for cell),
an unchanged re-run dispatches nothing, a partly rated filing gets only its
missing cells, bad filings are listed with their errors and never stop the
batch, a killed driver resumes from the store, the driver's imports are
idempotent, EDGAR filings are fetched by the worker, endpoints are spread
round-robin and are not part of the cache key, and the CLI's errors.
(Ray, worker kills and a Chroma server: ``test_batch_ray.py``.)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from filinglens.batch import (
    BatchProgress,
    BatchSpec,
    Cell,
    check_endpoints,
    file_units,
    prepare,
    read_tickers_file,
    run_batch,
)
from filinglens.errors import FetchError, InputError
from filinglens.prompts.loader import load_prompt
from filinglens.store import Store

_HELPERS = Path(__file__).resolve().parent / "batch_helpers.py"
_spec = importlib.util.spec_from_file_location("filinglens_tests_batch_helpers", _HELPERS)
helpers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = helpers
_spec.loader.exec_module(helpers)

MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"
FUND = "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html"
CATEGORIES = ["environment", "people"]


@pytest.fixture(scope="module")
def small_home(tmp_path_factory, shared, _models_dir):
    """A data home with two small real 10-Ks indexed (embedded once for the module)."""
    from filinglens.retrieval.ingest import ingest

    home = tmp_path_factory.mktemp("batch-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILINGLENS_HOME", str(home))
        mp.setenv("FILINGLENS_MODELS", str(_models_dir))
        mp.delenv("FILINGLENS_CHROMA_URL", raising=False)
        results = ingest([shared / "filings" / "html" / MEDICIS, shared / "filings" / "html" / FUND])
        assert [r.status for r in results] == ["indexed", "indexed"], results
    return home


@pytest.fixture
def home(small_home, monkeypatch):
    monkeypatch.setenv("FILINGLENS_HOME", str(small_home))
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    return small_home


@pytest.fixture
def filings(shared):
    return [shared / "filings" / "html" / MEDICIS, shared / "filings" / "html" / FUND]


class Spy(BatchProgress):
    def __init__(self):
        self.info = None
        self.dispatched = None
        self.events = []

    def started(self, stats, info):
        self.info, self.dispatched = info, stats.dispatched

    def unit_finished(self, outcome, stats):
        self.events.append((outcome["status"], outcome["label"], stats.finished, stats.per_hour, stats.eta_s))


def spec(categories=CATEGORIES, **kw) -> BatchSpec:
    return BatchSpec(categories=list(categories), models=[helpers.MODEL], **kw)


# --------------------------------------------------------------------------- results, cache, resume


def test_batch_equals_rate_cell_for_cell_and_an_unchanged_rerun_dispatches_nothing(home, filings, tmp_path):
    from filinglens.app import resolve_targets, run_ratings

    setup = helpers.scripted_setup()
    setup()
    store = Store(tmp_path / "results.db")
    spy = Spy()
    report = run_batch(file_units(filings), spec(), store=store, progress=spy, worker_setup=setup)
    assert (report.stats.done, report.stats.failed, report.stats.cached, spy.dispatched) == (2, 0, 0, 2)
    assert report.stats.ratings == 4 and report.stats.failed_ratings == 0
    assert [e[2] for e in spy.events] == [1, 2] and spy.events[-1][3] > 0 and spy.events[-1][4] == 0
    got = helpers.cells(store, report.run_id)
    assert len(got) == 4 and all(c[0] == "ok" and c[3] for c in got.values())
    assert {o["label"] for o in report.outcomes} == {"MEDICIS PHARMACEUTICAL CORPORATION FY1999",
                                                    "COMMONWEALTH INCOME & GROWTH FUND V FY2015"}

    # the serial path of `filinglens rate` gives the same ratings, cell for cell
    rate_store = Store(tmp_path / "rate.db")
    run_id, _ = run_ratings(resolve_targets(filings), CATEGORIES, model_id=helpers.MODEL, prompt_version=None,
                            store=rate_store)
    assert helpers.cells(rate_store, run_id) == got

    # unchanged re-run: same run, nothing dispatched, no model call, the same cells
    calls = len(store.calls())
    again_spy = Spy()
    again = run_batch(file_units(filings), spec(), store=store, progress=again_spy, worker_setup=setup)
    assert again.run_id == report.run_id
    assert (again.stats.cached, again.stats.done, again_spy.dispatched, again.stats.calls_made) == (2, 0, 0, 0)
    assert len(store.calls()) == calls and helpers.cells(store, again.run_id) == got
    assert helpers.duplicate_calls(store) == []
    units = store.batch_units(report.run_id)
    assert sorted(u["status"] for u in units) == ["cached", "cached"] and all(u["filing_hash"] for u in units)
    assert store.run(report.run_id)["status"] == "finished"


def test_a_partly_rated_filing_gets_only_its_missing_cells(home, filings, tmp_path):
    setup = helpers.scripted_setup()
    setup()
    store = Store(tmp_path / "results.db")
    first = run_batch(file_units(filings), spec(["environment"]), store=store, worker_setup=setup)
    assert first.stats.done == 2 and all(c["prompt_ref"].startswith("environment@") for c in store.calls())
    before = {c["id"] for c in store.calls()}

    second = run_batch(file_units(filings), spec(["environment", "people"]), store=store, worker_setup=setup)
    assert second.run_id != first.run_id and second.stats.done == 2
    new_calls = [c for c in store.calls() if c["id"] not in before]
    assert new_calls and all(c["prompt_ref"].startswith("people@") for c in new_calls)
    got = helpers.cells(store, second.run_id)
    assert len(got) == 4 and all(c[0] == "ok" for c in got.values())
    # the environment cells were copied from the first run, unchanged
    first_cells = helpers.cells(store, first.run_id)
    assert {k: v for k, v in got.items() if "|environment|" in k} == first_cells


def test_one_bad_filing_never_stops_the_batch(home, filings, tmp_path):
    setup = helpers.scripted_setup()
    setup()
    empty = tmp_path / "empty-10k.html"
    empty.write_bytes(b"")
    letter = tmp_path / "letter.html"
    letter.write_text("<html><body><p>Dear shareholders, thank you.</p></body></html>")
    store = Store(tmp_path / "results.db")
    report = run_batch(file_units([empty, filings[0], letter]), spec(), store=store, worker_setup=setup)
    assert (report.stats.done, report.stats.failed) == (1, 2)
    failed = {Path(o["source"]).name: o["error"] for o in report.failures}
    assert set(failed) == {"empty-10k.html", "letter.html"} and all(failed.values())
    assert "empty" in failed["empty-10k.html"].lower()
    rows = {Path(r["source"]).name: r for r in store.batch_units(report.run_id)}
    assert rows["letter.html"]["status"] == "failed" and rows["letter.html"]["error"] == failed["letter.html"]
    assert rows[MEDICIS]["status"] == "done" and rows[MEDICIS]["ratings"] == 2
    assert store.run(report.run_id)["status"] == "finished-with-failures"


def test_an_unexpected_error_in_one_filing_is_recorded_and_the_batch_goes_on(home, filings, tmp_path):
    rater = helpers.scripted_setup()
    rater()
    calls = {"n": 0}

    def setup():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug that only this filing hits")
        rater()

    report = run_batch(file_units(filings), spec(), store=Store(tmp_path / "r.db"), worker_setup=setup)
    assert (report.stats.done, report.stats.failed) == (1, 1)
    assert report.failures[0]["error"] == "RuntimeError: a bug that only this filing hits"


def test_failed_ratings_fail_the_filing_are_recorded_and_redone_next_run(home, filings, tmp_path):
    from filinglens.agents.providers.fake import register_script

    def down(messages):
        raise ConnectionError("the model server is down")

    register_script("rater", func=down)
    store = Store(tmp_path / "results.db")
    first = run_batch(file_units(filings[:1]), spec(), store=store)
    assert first.stats.failed == 1 and first.stats.failed_ratings == 2
    assert first.failures[0]["error"].startswith("2 of 2 ratings failed: environment: model fake:rater failed: "
                                                 "ConnectionError: the model server is down")
    rows = store.ratings(first.run_id)
    assert [r["status"] for r in rows] == ["failed", "failed"] and all(r["score"] is None for r in rows)
    assert [c["error"] is not None for c in store.calls()] == [True, True]  # the failed calls are on record

    helpers.scripted_setup()()
    second = run_batch(file_units(filings[:1]), spec(), store=store)
    questions = sum(1 for c in CATEGORIES for i in load_prompt(c).indicators if i.question)  # the default method
    assert second.run_id == first.run_id and second.stats.done == 1 and second.stats.calls_made == questions
    got = helpers.cells(store, second.run_id)
    assert len(got) == 2 and all(c[0] == "ok" for c in got.values())  # replaced, not duplicated
    assert store.run(second.run_id)["status"] == "finished"


_DRIVER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("h", {helpers!r})
h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)
setup = h.scripted_setup()
def slow():
    import time
    from filinglens.agents.providers import fake
    setup()
    reply = fake._scripts["rater"]["func"]
    fake.register_script("rater", func=lambda m: (time.sleep(0.4), reply(m))[1])
from filinglens.batch import BatchSpec, file_units, run_batch
from filinglens.store import Store
run_batch(file_units({paths!r}), BatchSpec(categories={cats!r}, models=[h.MODEL]), store=Store({db!r}),
          worker_setup=slow)
"""


def test_a_killed_driver_resumes_from_the_store(home, filings, tmp_path):
    db = tmp_path / "results.db"
    code = _DRIVER.format(helpers=str(_HELPERS), paths=[str(p) for p in filings], cats=CATEGORIES, db=str(db))
    driver = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while True:  # kill -9 the driver as soon as one filing is committed
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the first filing never finished"
            if db.exists():
                done = Store(db).db.execute("SELECT COUNT(*) FROM batch_units WHERE status='done'").fetchone()[0]
                if done:
                    break
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    store = Store(db)
    [run] = store.runs("batch")
    assert run["status"] == "running"  # it never finished
    assert len(store.batch_units(run["id"])) == 1 and len(store.ratings(run["id"])) == 2

    helpers.scripted_setup()()
    spy = Spy()
    resumed = run_batch(file_units(filings), spec(), store=store, progress=spy)
    assert resumed.run_id == run["id"]
    assert (resumed.stats.cached, resumed.stats.done, spy.dispatched) == (1, 1, 1)
    got = helpers.cells(store, run["id"])
    assert len(got) == 4 and all(c[0] == "ok" for c in got.values())
    assert helpers.duplicate_calls(store) == []
    assert store.run(run["id"])["status"] == "finished"


def test_import_results_is_idempotent(tmp_path):
    store = Store(tmp_path / "r.db")
    run = store.start_run("batch", {})
    rating = dict(cell_key="h|people|ph|fake|0", filing_hash="h", category="people", prompt_version="v2",
                  prompt_hash="ph", method="yesno", model_id="fake", sample_index=0, status="ok", score=1.0)
    ok_call = dict(cache_key="k1", model_id="fake", params='{"temperature": 0.0, "api_key": "sk-very-secret"}',
                   input_hash="i", sample_index=0, response="yes", tokens_in=10, tokens_out=1, latency_ms=5.0,
                   error=None, created_at=100.0)
    failed_call = dict(ok_call, cache_key="k2", response=None, error="timeout", created_at=101.0)
    unit = dict(unit_key="file:h", source="x.html", label="X", status="done", filing_hash="h", ratings=1)
    first = store.import_results(run, [rating], [ok_call, failed_call], unit=unit)
    again = store.import_results(run, [rating], [ok_call, failed_call], unit=unit)
    assert first == {"ratings": 1, "calls": 2, "duplicate_calls": 0}
    assert again == {"ratings": 1, "calls": 0, "duplicate_calls": 2}
    assert len(store.ratings(run)) == 1 and len(store.calls()) == 2 and len(store.batch_units(run)) == 1
    assert "sk-very-secret" not in json.dumps(store.calls())
    # another failure of the same call (a later attempt) is kept on record
    store.import_results(run, [], [dict(failed_call, created_at=102.0)])
    assert len(store.calls()) == 3
    # a rollback leaves nothing half-written
    with pytest.raises(KeyError):
        store.import_results(run, [dict(rating, cell_key="other")], [{"cache_key": "k3"}])
    assert len(store.ratings(run)) == 1 and len(store.calls()) == 3


def test_cell_keys_are_the_rating_chain_s():
    from filinglens.agents.rating import Rating, Target

    target = Target("fid", "Co", "CO", "1", 2020, "abc")
    rating = Rating(target, "people", "v2", "ph", "yesno", "fake:rater", 1, "ok")
    assert Cell("people", "v2", "ph", "fake:rater", 1).key("abc") == rating.cell_key


# --------------------------------------------------------------------------- EDGAR units


def _fake_edgar():
    path = Path(__file__).resolve().parent / "fake_edgar.py"
    spec_ = importlib.util.spec_from_file_location("filinglens_tests_fake_edgar_batch", path)
    module = importlib.util.module_from_spec(spec_)
    sys.modules[spec_.name] = module
    spec_.loader.exec_module(module)
    return module


def test_tickers_file_units_are_fetched_by_the_worker_and_bad_ones_listed(aapl_index, tmp_path, monkeypatch):
    from filinglens.retrieval.index import close_local_clients

    close_local_clients()  # never copy an index a live Chroma client of this process may still be writing
    home = tmp_path / "home"
    shutil.copytree(aapl_index, home)  # Apple FY2024 already embedded: the worker only re-diffs it
    monkeypatch.setenv("FILINGLENS_HOME", str(home))
    monkeypatch.setenv("SEC_USER_AGENT", "FilingLens tests tests@example.com")
    tickers = tmp_path / "tickers.txt"
    tickers.write_text("# two companies\naapl\nZZZZ  # not listed\n")
    setup = helpers.scripted_setup()
    setup()
    with _fake_edgar().FakeEdgar() as edgar:
        units, batch_spec, _ = prepare(tickers_file=tickers, years="2022-2024", categories=["people"],
                                       models=[helpers.MODEL], base_url=edgar.url)
        assert [u.key.split(":")[0] for u in units] == ["edgar", "edgar", "edgar", "ticker"]
        assert all(u.content_hash is None for u in units)  # nothing stored yet
        store = Store(tmp_path / "results.db")
        report = run_batch(units, batch_spec, store=store, worker_setup=setup)
        assert (report.stats.done, report.stats.failed) == (1, 3), [f["error"] for f in report.failures]
        done = [o for o in report.outcomes if o["status"] == "done"]
        assert done[0]["label"] == "AAPL FY2024" and done[0]["ratings"] == 1
        errors = {o["label"]: o["error"] for o in report.failures}
        assert "unknown ticker 'ZZZZ'" in errors["ZZZZ"]
        assert sum("no 10-K items" in e for e in errors.values()) == 2  # the synthetic FY2022/2023 documents
        # fetched into the data home by the worker, then served from disk on the next run
        stored = list((home / "filings" / "0000320193").glob("*/filing.json"))
        assert len(stored) == 3
        hits = dict(edgar.hits)
        again = run_batch(prepare(tickers_file=tickers, years="2022-2024", categories=["people"],
                                  models=[helpers.MODEL], base_url=edgar.url)[0],
                          batch_spec, store=store, worker_setup=setup)
        assert again.stats.cached == 1 and again.stats.failed == 3
        assert not [p for p, n in edgar.hits.items() if "/Archives/" in p and n != hits.get(p)]


def test_batch_rates_confidence_from_the_filing_s_own_numbers_like_rate(aapl_index, shared, tmp_path, monkeypatch):
    """The default method (v5) reads confidence facts from the filing in a batch worker too, as `rate` does."""
    from filinglens.app import resolve_targets, run_ratings
    from filinglens.retrieval.index import close_local_clients

    close_local_clients()
    home = tmp_path / "home"
    shutil.copytree(aapl_index, home)
    monkeypatch.setenv("FILINGLENS_HOME", str(home))
    setup = helpers.scripted_setup()
    setup()
    path = shared / "filings" / "html" / "aapl-10-k-2024-11-01.html"
    store = Store(tmp_path / "results.db")
    report = run_batch(file_units([path]), BatchSpec(categories=["confidence"], models=[helpers.MODEL]), store=store,
                       worker_setup=setup)
    assert report.stats.done == 1, report.failures
    [row] = store.ratings(report.run_id)
    assert row["method"] == "indicators" and row["facts"] and row["indicators"], row  # the figures it cited
    assert {"us-gaap:NetIncomeLoss", "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax"} <= {
        f["concept"] for f in row["facts"]}
    rate_store = Store(tmp_path / "rate.db")
    run_id, _ = run_ratings(resolve_targets([path]), ["confidence"], model_id=helpers.MODEL, store=rate_store)
    assert helpers.cells(rate_store, run_id) == helpers.cells(store, report.run_id)
    assert store.ratings(report.run_id)[0]["facts"] == rate_store.ratings(run_id)[0]["facts"]


def test_fetch_ref_refuses_accession_with_path_traversal(tmp_path, monkeypatch):
    from filinglens.retrieval.edgar import fetch_ref

    monkeypatch.setenv("SEC_USER_AGENT", "FilingLens tests tests@example.com")
    ref = dict(cik="0000320193", company="Apple", ticker="AAPL", form="10-K", accession="../../../../tmp/x",
               filing_date="2024-11-01", report_date="2024-09-28", fiscal_year=2024,
               primary_document="aapl.htm", url="http://127.0.0.1:9/x")
    with pytest.raises(FetchError, match="accession number"):
        fetch_ref(ref)
    with pytest.raises(FetchError, match="document name"):
        fetch_ref(dict(ref, accession="0000320193-24-000123", primary_document=".."))
    with pytest.raises(InputError, match="bad CIK"):
        fetch_ref(dict(ref, accession="0000320193-24-000123", cik="../1"))
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- endpoints


class _OpenAIHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.seen.append(body)
        text = "\n".join(m["content"] for m in body["messages"])
        answer = "yes" if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3 else "no"
        data = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def openai_servers():
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIHandler)
        server.seen = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def test_endpoints_are_spread_round_robin_and_not_part_of_the_cache_key(home, filings, tmp_path, openai_servers,
                                                                        monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    urls = [f"http://127.0.0.1:{s.server_address[1]}/v1" for s in openai_servers]
    batch_spec = BatchSpec(categories=["people"], models=["openai:replica-test"])
    store = Store(tmp_path / "results.db")
    report = run_batch(file_units(filings), batch_spec, endpoints=urls, store=store)
    assert report.stats.done == 2
    questions = sum(1 for i in load_prompt("people").indicators if i.question)  # the default method's questions
    assert [len(s.seen) for s in openai_servers] == [questions, questions]  # one filing each
    assert all(b["model"] == "replica-test" for s in openai_servers for b in s.seen)
    assert not any("127.0.0.1" in c["params"] for c in store.calls())
    # the other way round: every call is served from the cache, whichever replica would have been asked
    shuffled = run_batch(file_units(filings[::-1]), BatchSpec(categories=["people"], models=["openai:replica-test"],
                                                              temperature=0.0), endpoints=urls[::-1],
                         store=store, run_id="batch-other")
    assert shuffled.stats.cached == 2 and [len(s.seen) for s in openai_servers] == [questions, questions]


def test_endpoint_and_executor_errors_are_one_line(tmp_path):
    with pytest.raises(InputError, match="use --model openai:NAME"):
        check_endpoints(["http://127.0.0.1:8080/v1"], ["local"])
    with pytest.raises(InputError, match="not a URL"):
        check_endpoints(["file:///etc/passwd"], ["openai:x"])
    with pytest.raises(InputError, match="--executor must be one of local, ray"):
        run_batch([], BatchSpec(models=["fake"]), executor="spark", store=Store(tmp_path / "r.db"))
    with pytest.raises(Exception, match="unknown model"):
        run_batch([], BatchSpec(models=["nosuch:model"]), store=Store(tmp_path / "r.db"))


def test_an_unreachable_ray_cluster_is_a_one_line_error(home, filings, tmp_path):
    from filinglens.errors import ConfigError

    store = Store(tmp_path / "r.db")
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"the Ray cluster at 127\.0\.0\.1:1 is not reachable"):
        run_batch(file_units(filings[:1]), spec(), executor="ray", address="127.0.0.1:1", store=store)
    assert time.monotonic() - t0 < 30
    [run] = store.runs("batch")
    assert run["status"] == "interrupted" and store.ratings(run["id"]) == []


def test_read_tickers_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# S&P sample\naapl, msft\nbrk.b\n\nAAPL  # twice\n")
    assert read_tickers_file(path) == ["AAPL", "MSFT", "BRK-B"]
    path.write_text("AAPL\nnot/a/ticker!\n")
    with pytest.raises(InputError, match=r"t\.txt:2: `not/a/ticker!` is not a ticker"):
        read_tickers_file(path)
    path.write_text("# nothing\n")
    with pytest.raises(InputError, match="no tickers"):
        read_tickers_file(path)


# --------------------------------------------------------------------------- CLI


def test_cli_batch_lists_failed_filings_and_exits_1(home, filings):
    from filinglens.cli import app

    # the unscripted fake model never answers yes/no: every rating fails, and says so
    result = CliRunner().invoke(app, ["batch", str(filings[0]), "-m", "fake", "-c", "people", "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["stats"]["failed"] == 1 and data["filings"][0]["status"] == "failed"
    assert "no yes/no answer" in data["filings"][0]["error"]


@pytest.mark.parametrize("args, message", [
    ([], "give 10-K files or folders, or --tickers-file"),
    (["--years", "2020", "x.html"], "--years goes with --tickers-file"),
    (["--tickers-file", "/nonexistent/t.txt"], "cannot read the tickers file"),
    (["/nonexistent/10k.html"], "no such file or folder"),
])
def test_cli_batch_bad_input_is_one_line(args, message, tmp_path):
    from filinglens.cli import app

    result = CliRunner().invoke(app, ["batch", *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert "Traceback" not in result.output
