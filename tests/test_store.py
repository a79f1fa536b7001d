"""The SQLite results store: migrations, call cache, failures, secrets, atomicity."""

from __future__ import annotations


import pytest

from filinglens.store import MIGRATIONS, Store, StoreError, call_cache_key


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
    with pytest.raises(StoreError, match="cannot be used"):
        Store(path)


def test_a_new_database_opened_by_several_processes_at_once_migrates_once(tmp_path):
    """Regression: two openers both saw a migration missing and the second failed with 'table already exists'
    (a batch driver creating results.db while a reader opens it)."""
    import threading

    for round_ in range(20):
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
