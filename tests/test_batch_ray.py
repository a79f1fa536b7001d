"""The batch runner on a local Ray cluster: ``ray start --head`` on 127.0.0.1 with 2 CPUs, reached by address.

Two small real 10-Ks are rated with the scripted fake model; each Ray run
must equal the serial (``--executor local``) run cell for cell, while worker
processes are killed (kill -9) in the middle of a filing's rating and of its
indexing.  The batch completes, counts are exact, no rating or model call is
stored twice, and the Chroma server holds every filing's chunks exactly once.
One tiny run uses the embedded model (one filing, one category).  The
cluster is stopped at the end of the module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from filinglens.batch import SCRATCH_DIR, BatchSpec, file_units, run_batch
from filinglens.store import Store

_HELPERS = Path(__file__).resolve().parent / "batch_helpers.py"
_spec = importlib.util.spec_from_file_location("filinglens_tests_batch_helpers_ray", _HELPERS)
helpers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = helpers
_spec.loader.exec_module(helpers)

VENV_BIN = Path(sys.executable).parent
MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"
FUND = "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html"
# Prompt v2 (one query set per category): its evidence is the same from a worker's scratch index as from the
# data home's index. With v5 (one query set per indicator, interleaved) one environment cell's evidence differed
# in one of two fresh-clone runs between the two indexes (near-tied chunks ordered differently by Chroma's approximate search
# over indexes holding different filings): tracked in the session note, not hidden by a looser comparison.
SPEC = BatchSpec(categories=["environment", "people"], prompt_versions=["v2"], models=[helpers.MODEL])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"nothing listens on {port}: {log.read_text()[-3000:]}"
            time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster_home(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-home")


@pytest.fixture(scope="module")
def ray_cluster(cluster_home, _models_dir, tmp_path_factory):
    """A Ray head with 2 CPUs on loopback; its workers share this module's data home. Yields its address."""
    port, client_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("ray-log") / "ray.log"
    env = {**os.environ, "FILINGLENS_HOME": str(cluster_home), "FILINGLENS_MODELS": str(_models_dir),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    for name in ("FILINGLENS_CHROMA_URL", "RAY_ADDRESS", "FILINGLENS_THREADS"):
        env.pop(name, None)
    with open(log_path, "wb") as log:
        head = subprocess.Popen(
            [str(VENV_BIN / "ray"), "start", "--head", f"--port={port}", "--num-cpus=2",
             "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
             f"--ray-client-server-port={client_port}", "--object-store-memory=300000000", "--block"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, head, log_path)
        yield f"127.0.0.1:{port}"
    finally:
        stop(head)


@pytest.fixture
def home(cluster_home, monkeypatch):
    monkeypatch.setenv("FILINGLENS_HOME", str(cluster_home))
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return cluster_home


@pytest.fixture(scope="module")
def filings(shared):
    return [shared / "filings" / "html" / MEDICIS, shared / "filings" / "html" / FUND]


@pytest.fixture(scope="module")
def serial(cluster_home, filings, _models_dir, tmp_path_factory):
    """The reference: the same batch with ``--executor local`` (the data home's embedded index)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILINGLENS_HOME", str(cluster_home))
        mp.setenv("FILINGLENS_MODELS", str(_models_dir))
        mp.delenv("FILINGLENS_CHROMA_URL", raising=False)
        setup = helpers.scripted_setup()
        setup()
        store = Store(tmp_path_factory.mktemp("serial") / "results.db")
        report = run_batch(file_units(filings), SPEC, store=store, worker_setup=setup)
        assert (report.stats.done, report.stats.failed) == (2, 0)
        got = helpers.cells(store, report.run_id)
        assert len(got) == 4 and all(c[0] == "ok" for c in got.values())
        return got


@pytest.fixture
def chroma_url(tmp_path, monkeypatch):
    port = free_port()
    log_path = tmp_path / "chroma.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(VENV_BIN / "chroma"), "run", "--path", str(tmp_path / "chroma-data"), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    try:
        wait_for_port(port, server, log_path)
        url = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("FILINGLENS_CHROMA_URL", url)
        yield url
    finally:
        stop(server)


def check_counts(report, store, n_cells: int) -> None:
    """Exact counts: every filing done once, one rating per cell, every stored call made by a surviving attempt."""
    assert (report.stats.done, report.stats.failed, report.stats.cached, report.stats.dispatched) == (2, 0, 0, 2)
    assert report.stats.ratings == n_cells and report.stats.failed_ratings == 0
    assert helpers.duplicate_calls(store) == []
    assert len(store.calls()) == report.stats.calls_made == sum(r["model_calls"] for r in store.ratings())
    assert sorted(u["status"] for u in store.batch_units(report.run_id)) == ["done", "done"]
    assert store.run(report.run_id)["status"] == "finished"


# --------------------------------------------------------------------------- scratch index, killed worker


def test_ray_batch_equals_the_serial_run_while_a_worker_is_killed(home, ray_cluster, filings, serial, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    setup = helpers.scripted_setup(str(markers), kill_during_rating=True)
    killer = helpers.kill_victim(markers)
    store = Store(tmp_path / "results.db")
    report = run_batch(file_units(filings), SPEC, executor="ray", address=ray_cluster, workers=2, retries=3,
                       store=store, worker_setup=setup)
    killer.join(timeout=5)
    killed = int((markers / "rating-victim-killed").read_text())

    assert report.executor == "ray" and report.workers == 2 and report.index.startswith("per-worker scratch")
    check_counts(report, store, 4)
    assert helpers.cells(store, report.run_id) == serial
    # the killed filing was rated again in another process; its dead attempt left nothing behind
    workers = [o["worker"] for o in report.outcomes]
    assert len(set(workers)) >= 1 and all(not w.endswith(f":{killed}") for w in workers)
    assert (markers / f"calls-{killed}").read_text() == "x"  # it died in its first model call
    assert not (Path(tempfile.gettempdir()) / SCRATCH_DIR / str(killed)).exists()

    # an unchanged re-run starts no Ray at all and dispatches nothing
    again = run_batch(file_units(filings), SPEC, executor="ray", address="127.0.0.1:1", store=store)
    assert (again.stats.cached, again.stats.dispatched) == (2, 0)


# --------------------------------------------------------------------------- Chroma server, two kills


def test_ray_batch_through_a_chroma_server_survives_kills_mid_index_and_mid_rating(
    home, ray_cluster, chroma_url, filings, serial, tmp_path
):
    from filinglens.retrieval.index import ChunkStore

    markers = tmp_path / "markers"
    markers.mkdir()
    setup = helpers.scripted_setup(str(markers), kill_during_rating=True, kill_during_index=True)
    killer = helpers.kill_victim(markers)
    store = Store(tmp_path / "results.db")
    report = run_batch(file_units(filings), SPEC, executor="ray", address=ray_cluster, workers=2, retries=3,
                       store=store, worker_setup=setup)
    killer.join(timeout=5)
    assert (markers / "index-victim").exists() and (markers / "rating-victim-killed").exists()

    assert report.index.startswith(f"Chroma server {chroma_url}")
    check_counts(report, store, 4)
    assert helpers.cells(store, report.run_id) == serial

    # the server holds each filing's chunks exactly once: what its manifest lists, as the serial index has them
    index = ChunkStore(url=chroma_url)
    verified = index.verify()
    assert verified["ok"] and verified["filings"] == 2 and not verified["unlisted"], verified
    got = index.collection.get(include=["metadatas"])
    assert len(got["ids"]) == len(set(got["ids"]))
    by_filing: dict[str, set] = {}
    for cid, meta in zip(got["ids"], got["metadatas"]):
        by_filing.setdefault(meta["filing_id"], set()).add(cid)
    serial_manifests = home / "index" / "manifests" / "filinglens"
    for fid, ids in by_filing.items():
        expected = json.loads((serial_manifests / f"{fid}.json").read_text())
        assert ids == set(expected["ids"]) and len(ids) == expected["chunks"]
    assert len(got["ids"]) == sum(len(v) for v in by_filing.values())


# --------------------------------------------------------------------------- the embedded model, once


def test_embedded_model_on_ray_equals_the_serial_run(home, ray_cluster, filings, monkeypatch, tmp_path):
    """One small filing, one category, the real local model: in a Ray worker as in this process."""
    monkeypatch.setenv("FILINGLENS_THREADS", "1")  # the same llama.cpp threads here and in the worker
    spec = BatchSpec(categories=["environment"], models=["local"])
    serial_store = Store(tmp_path / "serial.db")
    here = run_batch(file_units(filings[:1]), spec, store=serial_store)
    assert here.stats.done == 1, here.failures
    ray_store = Store(tmp_path / "ray.db")
    there = run_batch(file_units(filings[:1]), spec, executor="ray", address=ray_cluster, workers=1,
                      store=ray_store)
    assert there.stats.done == 1, there.failures
    [a] = helpers.cells(serial_store, here.run_id).items()
    [b] = helpers.cells(ray_store, there.run_id).items()
    assert a[0] == b[0]  # the same cell
    (status_a, score_a, expected_a, evidence_a, quotes_a), (status_b, score_b, expected_b, evidence_b, quotes_b) = a[1], b[1]
    assert (status_a, score_a, evidence_a, quotes_a) == (status_b, score_b, evidence_b, quotes_b) and status_a == "ok"
    assert abs(expected_a - expected_b) < 1e-3
