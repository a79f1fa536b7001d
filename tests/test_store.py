"""The SQLite results store: migrations, call cache, failures, secrets, atomicity."""

from __future__ import annotations

from pathlib import Path

import pytest

from filinglens.store import MIGRATIONS, Store, StoreDamagedError, StoreError, StoreLockedError, call_cache_key


def test_migrations_apply_once_and_reopen(tmp_path):
    store = Store(tmp_path / "r.db")
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    again = Store(tmp_path / "r.db")
    assert again.schema_version == len(MIGRATIONS)
    rows = again.db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert rows == len(MIGRATIONS)


def test_default_location_is_the_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FILINGLENS_HOME", str(tmp_path / "home"))
    assert Store().path == tmp_path / "home" / "results.db"


def test_cache_serves_only_successful_calls(tmp_path):
    store = Store(tmp_path / "r.db")
    key = call_cache_key("local", {"temperature": 0.0}, "abc", "in1", 0)
    store.record_call(cache_key=key, model_id="local", params={"temperature": 0.0}, input_hash="in1", error="timeout")
    assert store.cached_call(key) is None
    store.record_call(cache_key=key, model_id="local", params={"temperature": 0.0}, input_hash="in1",
                      response='{"score": 1}', tokens_in=100, tokens_out=5, latency_ms=12.5)
    hit = store.cached_call(key)
    assert hit.response == '{"score": 1}' and hit.tokens_in == 100
    assert len(store.calls()) == 2  # the failure is kept on record
    # another sample index or prompt hash is another call
    assert store.cached_call(call_cache_key("local", {"temperature": 0.0}, "abc", "in1", 1)) is None
    assert store.cached_call(call_cache_key("local", {"temperature": 0.0}, "abd", "in1", 0)) is None


def test_secrets_are_never_stored_nor_part_of_the_cache_key(tmp_path):
    store = Store(tmp_path / "r.db")
    params = {"temperature": 0.0, "api_key": "sk-SECRET-123"}
    key = call_cache_key("cohere:command-r-plus", params, "p", "i", 0)
    assert key == call_cache_key("cohere:command-r-plus", {"temperature": 0.0, "api_key": "other"}, "p", "i", 0)
    store.record_call(cache_key=key, model_id="cohere:command-r-plus", params=params, input_hash="i", response="x")
    raw = (tmp_path / "r.db").read_bytes() + (tmp_path / "r.db-wal").read_bytes()
    assert b"sk-SECRET-123" not in raw


def test_ratings_resume_and_transaction_rollback(tmp_path):
    store = Store(tmp_path / "r.db")
    run = store.start_run("rate", {"models": ["fake"]})
    base = dict(filing_hash="h", category="people", prompt_version="v1", prompt_hash="ph", method="direct",
                model_id="fake", sample_index=0)
    store.save_rating(run, dict(base, cell_key="a", status="ok", score=2.0, quotes=["We value our people."]))
    store.save_rating(run, dict(base, cell_key="b", status="failed", error="malformed output after 3 tries"))
    assert store.finished_cells(run) == {"a"}
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.save_rating(run, dict(base, cell_key="c", status="ok", score=1.0))
            raise RuntimeError("interrupted")
    assert {r["cell_key"] for r in store.ratings(run)} == {"a", "b"}
    failed = [r for r in store.ratings(run) if r["status"] == "failed"][0]
    assert failed["score"] is None and "malformed" in failed["error"]
    assert store.ratings(run)[0]["quotes"] == ["We value our people."]
    assert store.start_run("rate", {}, run_id=run) == run  # reopening resumes the same run


def test_a_damaged_database_is_a_clear_error(tmp_path):
    path = tmp_path / "r.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="damaged"):
        Store(path)


# --------------------------------------------------------------------------- damage, locks, concurrency


def _filled_store(path, rows: int = 400) -> None:
    """A results database with enough ratings and calls to span many pages."""
    store = Store(path)
    run = store.start_run("rate", {"model": "fake"})
    with store.transaction():  # the writes below join this one transaction
        for n in range(rows):
            store.record_call(cache_key=f"k{n}", model_id="fake", params={}, input_hash=f"i{n}", response="x" * 300)
            store.save_rating(run, dict(cell_key=f"c{n}", filing_hash="h", category="people", prompt_version="v1",
                                        prompt_hash="ph", method="direct", model_id="fake", status="ok", score=1.0,
                                        rationale="because " * 40))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def _overwrite_pages(path, pages=(3, 5, 8, 13), page_size: int = 4096) -> bytes:
    """Header page intact, some later pages overwritten with random bytes (a disk or copy fault)."""
    import random

    data = bytearray(path.read_bytes())
    rng = random.Random(7)
    for page in pages:
        start = (page - 1) * page_size
        data[start:start + page_size] = bytes(rng.randrange(256) for _ in range(page_size))
    path.write_bytes(bytes(data))
    return bytes(data)


def test_store_with_overwritten_pages_is_a_damaged_error_and_keeps_the_file(tmp_path):
    path = tmp_path / "results.db"
    _filled_store(path)
    damaged = _overwrite_pages(path)
    with pytest.raises(StoreDamagedError) as info:
        Store(path)
    message = str(info.value)
    assert "damaged" in message and str(path) in message and "filinglens doctor" in message and "\n" not in message
    assert path.read_bytes() == damaged  # never deleted nor rewritten


def test_damage_met_after_open_is_a_store_error_not_a_traceback(tmp_path):
    path = tmp_path / "results.db"
    _filled_store(path)
    _overwrite_pages(path)
    store = Store(path, check=False)  # as if the pages were damaged after the open-time check
    with pytest.raises(StoreDamagedError, match="damaged"):
        store.ratings()
        store.save_rating("x", dict(cell_key="new", filing_hash="h", category="people", prompt_version="v1",
                                    prompt_hash="ph", method="direct", model_id="fake", status="ok"))


def test_locked_store_waits_the_bounded_timeout_then_says_locked(tmp_path, monkeypatch):
    import sqlite3
    import time

    path = tmp_path / "results.db"
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        monkeypatch.setenv("FILINGLENS_DB_TIMEOUT", "0.5")
        store = Store(path, check=False)
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError) as info:
            store.start_run("rate", {})
        waited = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert 0.4 <= waited < 5
    assert "locked by another process" in str(info.value) and "FILINGLENS_DB_TIMEOUT" in str(info.value)
    assert store.start_run("rate", {}, run_id="after") == "after"  # usable once the lock is gone


def _writer(path: str, worker: int, rows: int) -> None:
    store = Store(Path(path))
    run = store.start_run("rate", {"worker": worker}, run_id=f"run-{worker}")
    for n in range(rows):
        key = f"w{worker}-{n}"
        store.record_call(cache_key=key, model_id="fake", params={}, input_hash=key, response="ok")
        store.save_rating(run, dict(cell_key=key, filing_hash="h", category="people", prompt_version="v1",
                                    prompt_hash="ph", method="direct", model_id="fake", status="ok", score=1.0))
    store.finish_run(run)


def test_concurrent_writers_on_a_new_database_wait_instead_of_failing(tmp_path):
    """Four processes create, migrate and write one new database at once: nothing lost, nothing locked."""
    import multiprocessing as mp

    path = tmp_path / "results.db"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 60)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = Store(path)
    assert store.db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    assert len(store.ratings()) == 240 and len(store.calls()) == 240
    assert {r["status"] for r in store.runs()} == {"finished"}


# --------------------------------------------------------------------------- through `filinglens rate`


def _small_10k(path):
    path.write_text(
        "<html><body><p>FORM 10-K</p><p>For the fiscal year ended December 31, 2023</p>"
        "<p>Acme Widgets Corporation</p><p>PART I</p><p>Item 1. Business</p>"
        "<p>Acme Widgets designs and sells industrial widgets; it employs about 1,200 people and invests in "
        "training, safety and new products, and reports its energy use and emissions.</p>"
        "<p>Item 1A. Risk Factors</p><p>Our business depends on the supply of steel.</p>"
        "<p>SIGNATURES</p></body></html>"
    )
    return path


def _rate(*args):
    """``filinglens rate ARGS --model fake``: the fake model's stock answer is no yes/no, so every
    rating is recorded as a failure (exit code 1): what matters here is the store."""
    from typer.testing import CliRunner

    from filinglens.cli import app

    result = CliRunner().invoke(app, ["rate", *map(str, args), "--model", "fake"])
    return result, " ".join(result.output.split())


def test_rate_on_a_damaged_results_database_is_one_line_and_keeps_the_file(tmp_path):
    from filinglens.settings import data_home

    doc = _small_10k(tmp_path / "acme-10-k-2023.html")
    first, output = _rate(doc)
    assert first.exit_code == 1 and "error:" not in output, output
    path = data_home() / "results.db"
    Store(path).db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _filled_store(path)  # enough pages to damage some without touching the header
    damaged = _overwrite_pages(path)
    result, output = _rate(doc)
    assert result.exit_code == 2 and "Traceback" not in output
    assert "is damaged" in output and "filinglens doctor" in output and "move it aside" in output
    assert path.read_bytes() == damaged


def test_rate_on_a_locked_results_database_waits_then_says_locked(tmp_path, monkeypatch):
    import sqlite3

    from filinglens.settings import data_home

    doc = _small_10k(tmp_path / "acme-10-k-2023.html")
    assert _rate(doc)[0].exit_code == 1
    holder = sqlite3.connect(data_home() / "results.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setenv("FILINGLENS_DB_TIMEOUT", "1")
    try:
        result, output = _rate(doc)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 2 and "Traceback" not in output and "locked by another process" in output
    assert _rate(doc)[0].exit_code == 1  # and usable once the other writer is done


def test_rating_batch_killed_with_sigkill_loses_and_duplicates_nothing_after_a_rerun(tmp_path):
    """kill -9 once the first ratings are saved, then re-run: every cell rated exactly once in the
    finished run, each model call recorded once (the re-run is served from the cache)."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from filinglens.retrieval.ingest import ingest
    from filinglens.settings import data_home

    doc = _small_10k(tmp_path / "acme-10-k-2023.html")
    ingest([doc])  # indexing is not what this test kills
    db = data_home() / "results.db"
    cmd = [sys.executable, "-m", "filinglens.cli", "rate", str(doc), "--model", "fake", "--samples", "3", "--json"]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and saved < 2:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            saved = con.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
            con.close()
        except sqlite3.Error:
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the batch finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1 and "error:" not in rerun.stderr, rerun.stderr[-800:]  # ratings failed, store fine
    store = Store(db)
    assert store.check() == ["ok"]
    runs = store.runs("rate")
    killed = [r for r in runs if r["status"] == "running"]
    finished = [r for r in runs if r["status"] == "finished-with-failures"]
    assert len(killed) == 1 and len(finished) == 1
    cells = [r["cell_key"] for r in store.ratings(finished[0]["id"])]
    assert len(cells) == len(set(cells)) == 12  # 4 categories x 3 samples, each once
    assert store.db.execute("SELECT COUNT(*) FROM model_calls WHERE run_id=?", (finished[0]["id"],)).fetchone()[0] \
        < store.db.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0]  # the re-run used the cache
    assert 2 <= len(store.ratings(killed[0]["id"])) < 12
    dup = store.db.execute("SELECT COUNT(*) FROM (SELECT cache_key FROM model_calls WHERE error IS NULL "
                           "GROUP BY cache_key HAVING COUNT(*) > 1)").fetchone()[0]
    assert dup == 0


def test_emptied_results_database_is_reported_not_silently_restarted(tmp_path):
    path = tmp_path / "results.db"
    _filled_store(path, rows=5)
    path.write_bytes(b"")  # truncated to nothing: every rating gone
    with pytest.raises(StoreDamagedError, match="is empty .* held results before"):
        Store(path)
    assert path.stat().st_size == 0
    path.rename(tmp_path / "results.db.damaged")  # what the message advises: move it aside
    fresh = Store(path)
    assert fresh.ratings() == [] and fresh.schema_version == len(MIGRATIONS)


def test_a_new_database_opened_by_several_processes_at_once_migrates_once(tmp_path):
    """Regression: two openers both saw a migration missing and the second failed with 'table already exists'
    (a batch driver creating results.db while a reader opens it)."""
    import threading

    # CI, 2026-11-30: about one round in a hundred failed within milliseconds, "database is locked" from
    # PRAGMA journal_mode=WAL, which SQLite does not retry through the busy handler; 100 rounds catch it
    for round_ in range(100):
        path = tmp_path / f"r{round_}.db"
        barrier = threading.Barrier(6)
        errors = []

        def open_it():
            barrier.wait()
            try:
                Store(path).close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert Store(path).schema_version == len(MIGRATIONS)
