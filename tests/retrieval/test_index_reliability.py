"""The chunk index under damage, concurrency and kill -9 (issue 8).

A lost or damaged index is reported and rebuilt from the indexed filings'
sources, never half-trusted; two processes creating or writing one index do
not race or overwrite each other; a damaged manifest or BM25 cache entry is
repaired and reported; an ingest killed with -9 resumes to exactly the chunks
of a clean ingest.  Real filings where the cost allows (Medicis FY1999, 160
chunks), a few-paragraph 10-K where a test needs many ingests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from filinglens.errors import IndexDamagedError
from filinglens.retrieval import index as index_mod
from filinglens.retrieval.chunking import chunk_filing, chunk_id
from filinglens.retrieval.index import ChunkStore, filing_id, filing_key, open_store
from filinglens.retrieval.ingest import IngestProgress, ingest, ingest_file
from filinglens.retrieval.search import HybridSearcher

MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"


def small_10k(path: Path, company: str, year: int = 2023, paragraphs: int = 3) -> Path:
    """A minimal real-shaped 10-K (cover, two items) for tests that need many ingests."""
    body = "".join(
        f"<p>{company} paragraph {n}: {company} designs and sells industrial widgets to manufacturers in "
        f"North America and Europe; revenue grew {n} percent and steel supply is a risk.</p>"
        for n in range(paragraphs)
    )
    path.write_text(
        f"<html><body><p>FORM 10-K</p><p>For the fiscal year ended December 31, {year}</p>"
        f"<p>{company} Corporation</p><p>PART I</p><p>Item 1. Business</p>{body}"
        f"<p>Item 1A. Risk Factors</p><p>Our business depends on the supply of steel.</p>"
        f"<p>SIGNATURES</p></body></html>"
    )
    return path


def clean_chunks(path: Path) -> dict[str, str]:
    """What a clean ingest of ``path`` stores: chunk id -> exact text."""
    from filinglens.retrieval.parse import parse_filing

    filing = parse_filing(path)
    key = filing_key(filing)
    return {chunk_id(key, c): c.text for c in chunk_filing(filing)}


def stored_chunks(store: ChunkStore) -> dict[str, str]:
    return {c.id: c.text for c in store.get()}


def cli(*args: str):
    from filinglens.cli import app

    return CliRunner().invoke(app, list(args))


class Notes(IngestProgress):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def notice(self, message: str) -> None:
        self.notes.append(message)


def child_env(home: Path) -> dict:
    env = dict(os.environ, FILINGLENS_HOME=str(home))  # the child imports the package this test imports
    env.pop("FILINGLENS_CHROMA_URL", None)
    return env


@pytest.fixture(scope="session")
def medicis_home(tmp_path_factory, shared, _models_dir):
    """A data home with the real Medicis FY1999 10-K indexed (embedded once per session)."""
    home = tmp_path_factory.mktemp("medicis-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILINGLENS_HOME", str(home))
        mp.setenv("FILINGLENS_MODELS", str(_models_dir))
        mp.delenv("FILINGLENS_CHROMA_URL", raising=False)
        [result] = ingest([shared / "filings" / "html" / MEDICIS])
        assert result.status == "indexed" and result.chunks > 100
    return home


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("FILINGLENS_HOME", str(path))
    return path


@pytest.fixture
def medicis_copy(home, medicis_home) -> Path:
    """A private copy of the Medicis data home, to damage."""
    shutil.rmtree(home)
    shutil.copytree(medicis_home, home)
    return home


# --------------------------------------------------------------------------- lost or damaged index


def test_search_on_a_zero_byte_index_with_manifests_says_how_to_rebuild_and_repair_rebuilds_it(
    medicis_copy, shared
):
    sqlite = medicis_copy / "index" / "chroma" / "chroma.sqlite3"
    sqlite.write_bytes(b"")
    result = cli("search", "revenue")
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in output
    assert "damaged or lost" in output and "filinglens ingest --repair" in output and "1 indexed filing" in output
    assert sqlite.stat().st_size == 0  # search did not quietly start a new, empty database
    doctor = cli("doctor", "--json")
    index_check = [c for c in json.loads(doctor.stdout) if c["part"] == "index"][0]
    assert not index_check["ok"] and "--repair" in index_check["detail"]

    repaired = cli("ingest", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    rows = json.loads(repaired.stdout[repaired.stdout.index("["):])
    assert [(r["status"], r["company"]) for r in rows] == [("rebuilt", "MEDICIS PHARMACEUTICAL CORPORATION")]
    store = open_store(create=False)
    assert stored_chunks(store) == clean_chunks(shared / "filings" / "html" / MEDICIS)
    assert store.verify(deep=True)["ok"]
    assert list((medicis_copy / "index").glob("chroma.damaged-*"))  # moved aside, never deleted
    hits = cli("search", "revenue", "--json")
    assert hits.exit_code == 0 and json.loads(hits.stdout)["hits"]


def test_ingest_of_another_filing_first_rebuilds_filings_the_lost_index_had(home, tmp_path):
    first = small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets")
    second = small_10k(tmp_path / "bolt-10-k-2023.html", "Bolt Fasteners")
    ingest([first])
    index_mod.close_local_clients()
    shutil.rmtree(home / "index" / "chroma")  # the whole index folder is gone, manifests remain
    notes = Notes()
    results = ingest([second], progress=notes)
    assert [(r.status, Path(r.source).name) for r in results] == [
        ("rebuilt", first.name), ("indexed", second.name)]
    assert any("missing from the index" in n for n in notes.notes)
    store = open_store()
    assert stored_chunks(store) == {**clean_chunks(first), **clean_chunks(second)}
    assert store.verify()["ok"]


def test_lost_filing_whose_source_is_gone_is_reported_and_its_manifest_set_aside(home, tmp_path):
    gone = small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets")
    kept = small_10k(tmp_path / "bolt-10-k-2023.html", "Bolt Fasteners")
    [acme] = ingest([gone])
    gone.unlink()
    index_mod.close_local_clients()
    (home / "index" / "chroma" / "chroma.sqlite3").write_bytes(b"")
    result = cli("ingest", str(kept), "--json")
    assert result.exit_code == 1  # a loss is a failure, not a footnote
    rows = json.loads(result.stdout[result.stdout.index("["):])
    lost = [r for r in rows if r["status"] == "failed"]
    assert len(lost) == 1 and lost[0]["filing_id"] == acme.filing_id and "is gone" in lost[0]["error"]
    store = open_store()
    assert store.manifest(acme.filing_id) is None
    assert (store.stale_dir / f"{acme.filing_id}.json").is_file()
    report = store.verify()
    assert not report["ok"] and report["stale"] == [acme.filing_id] and "re-ingest" in report["detail"]
    small_10k(gone, "Acme Widgets")  # the user restores and re-ingests it: resolved
    ingest([gone])
    assert open_store().verify()["ok"]


def test_search_refuses_an_index_that_lost_a_filings_chunks(medicis_copy):
    store = open_store(create=False)
    fid = store.manifests()[0]["filing_id"]
    with store.writing():
        store._before_write()
        store.collection.delete(where={"filing_id": fid})  # lost behind the manifests' back
    with pytest.raises(IndexDamagedError, match="lost the chunks of 1 indexed filing.*ingest --repair"):
        HybridSearcher(store).search("revenue")
    report = store.verify()
    assert report["missing"] == [fid] and not report["ok"]


def test_damaged_pages_in_the_index_database_are_detected_and_repaired(home, tmp_path):
    doc = small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets", paragraphs=40)
    ingest([doc])
    index_mod.close_local_clients()  # the damage below happens while no process has the index open
    sqlite = home / "index" / "chroma" / "chroma.sqlite3"
    data = bytearray(sqlite.read_bytes())
    rng = np.random.default_rng(3)
    for page in range(2, len(data) // 4096, 3):  # header page intact, every third page overwritten
        data[page * 4096:(page + 1) * 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    sqlite.write_bytes(bytes(data))
    searched = cli("search", "steel")
    output = " ".join(searched.output.split())
    assert searched.exit_code == 2 and "Traceback" not in output and "--repair" in output
    repaired = cli("ingest", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    rows = json.loads(repaired.stdout[repaired.stdout.index("["):])
    assert [r["status"] for r in rows] == ["rebuilt"]
    assert stored_chunks(open_store()) == clean_chunks(doc)
    moved = list((home / "index").glob("chroma.damaged-*"))
    assert len(moved) == 1 and (moved[0] / "chroma.sqlite3").read_bytes() == bytes(data)  # kept as it was


def test_unreadable_manifest_is_reported_and_rewritten_from_the_index(home, tmp_path):
    doc = small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets")
    [result] = ingest([doc])
    store = open_store()
    path = store.manifest_path(result.filing_id)
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:50])  # truncated
    report = store.verify()
    assert not report["ok"] and report["unreadable"] == [str(path)] and report["unlisted"] == [result.filing_id]
    notes = Notes()
    [rebuilt] = ingest(repair=True, progress=notes)
    assert rebuilt.status == "rebuilt" and rebuilt.embedded == 0  # chunks were intact: nothing re-embedded
    assert json.loads(path.read_text())["ids"] == good["ids"]
    assert store.verify()["ok"]


def _interrupt_ingest(doc: Path, monkeypatch) -> str:
    """Ingest ``doc`` but stop it (Ctrl-C) after its first batch of chunks is stored; returns its filing id."""
    monkeypatch.setattr(index_mod, "WRITE_BATCH", 4)
    store = open_store()
    original = store.embedder._embed
    calls = []

    def flaky(texts):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(texts)

    monkeypatch.setattr(store.embedder, "_embed", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest([doc], store=store)
    monkeypatch.setattr(store.embedder, "_embed", original)
    report = store.verify()
    [fid] = report["unlisted"]
    assert not report["ok"] and report["in_progress"] == [] and "interrupted ingest" in report["detail"]
    return fid


def test_an_interrupted_ingest_is_completed_by_the_next_ingest_of_any_filing(home, tmp_path, monkeypatch):
    half = small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets", paragraphs=30)
    other = small_10k(tmp_path / "bolt-10-k-2023.html", "Bolt Fasteners")
    _interrupt_ingest(half, monkeypatch)
    results = ingest([other])
    assert [(r.status, Path(r.source).name) for r in results] == [("rebuilt", half.name), ("indexed", other.name)]
    store = open_store()
    assert stored_chunks(store) == {**clean_chunks(half), **clean_chunks(other)}
    assert store.verify()["ok"]


def test_half_written_filing_whose_source_is_gone_is_removed_and_reported(home, tmp_path, monkeypatch):
    half = small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets", paragraphs=30)
    other = small_10k(tmp_path / "bolt-10-k-2023.html", "Bolt Fasteners")
    fid = _interrupt_ingest(half, monkeypatch)
    half.unlink()
    results = ingest([other])
    assert results[0].status == "failed" and results[0].filing_id == fid and "is gone" in results[0].error
    store = open_store()
    assert stored_chunks(store) == clean_chunks(other)  # the half-written chunks are no longer searchable
    assert store.verify()["ok"]


def test_damaged_bm25_cache_entry_is_rebuilt_and_reported(home, tmp_path):
    ingest([small_10k(tmp_path / "acme-10-k-2023.html", "Acme Widgets", paragraphs=12)])
    store = open_store(create=False)
    before = [h.chunk_id for h in HybridSearcher(store).search("steel supply", mode="bm25")]
    [entry] = [p for p in (store.root / "bm25" / store.collection_name).iterdir() if p.is_dir()]
    victim = max((p for p in entry.iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[-16:] = b"\x00" * 16  # same size, last values zeroed: loads fine, scores wrong
    victim.write_bytes(bytes(data))
    searcher = HybridSearcher(store)
    after = [h.chunk_id for h in searcher.search("steel supply", mode="bm25")]
    assert after == before
    assert len(searcher.notices) == 1 and "damaged" in searcher.notices[0] and victim.name in searcher.notices[0]
    assert _fresh_notices(store) == []  # the rebuilt entry loads cleanly


def _fresh_notices(store: ChunkStore) -> list[str]:
    searcher = HybridSearcher(store)
    searcher.search("steel supply", mode="bm25")
    return searcher.notices


# --------------------------------------------------------------------------- concurrency


def test_two_first_time_ingests_do_not_race_on_creating_the_collection(tmp_path, monkeypatch):
    """A creator that listed the collections just before another process created it gets it, not an error."""
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    root = tmp_path / "index"
    ChunkStore(root)  # the other process won the race
    real = ChunkStore._find_collection
    calls = []

    def listed_too_early(self, ef):
        calls.append(1)
        return None if len(calls) <= 2 else real(self, ef)  # both looks (before and under the lock) miss it

    monkeypatch.setattr(ChunkStore, "_find_collection", listed_too_early)
    late = ChunkStore(root)
    assert late.exists and late.count() == 0 and len(calls) == 2


def test_two_first_time_ingest_processes_into_a_new_data_home_both_succeed(home, tmp_path):
    docs = [small_10k(tmp_path / f"co{n}-10-k-2023.html", f"Company{n}") for n in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "filinglens.cli", "ingest", str(d), "--json"],
                              env=child_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for d in docs]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outs]
    store = open_store()
    assert stored_chunks(store) == {**clean_chunks(docs[0]), **clean_chunks(docs[1])}
    report = store.verify()
    assert report["ok"], report["detail"]




def test_a_writer_with_a_stale_client_does_not_overwrite_another_processes_vectors(home, tmp_path, monkeypatch):
    """Chroma keeps the vector index in memory: a process that loaded it before another process wrote
    must reload before writing, or it persists its stale copy (measured before the fix: 768 of 4,005
    vectors gone and "Error finding id" on search)."""
    monkeypatch.setenv("FILINGLENS_EMBEDDINGS", "hash")  # the library's sha256 embedder: no model
    docs = [small_10k(tmp_path / f"{name}-10-k-2023.html", name, paragraphs=8000) for name in ("Xray", "Yankee", "Zulu")]
    store = open_store()
    ingest_file(docs[0], store=store)  # this process has the index loaded
    script = tmp_path / "other_writer.py"
    script.write_text(f"from filinglens.retrieval.ingest import ingest\ningest([{str(docs[1])!r}])\n")
    env = child_env(home) | {"FILINGLENS_EMBEDDINGS": "hash"}
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=300)
    ingest_file(docs[2], store=store)  # writes after the other process did, without reading first
    index_mod.close_local_clients()
    fresh = open_store(create=False)
    report = fresh.verify()
    assert report["ok"] and report["filings"] == 3 and report["damaged"] is None, report["detail"]
    probe = np.full(32, 32 ** -0.5, dtype=np.float32)
    total = fresh.count()
    assert total > 3000
    assert len(fresh.collection.query(query_embeddings=[probe], n_results=total, include=[])["ids"][0]) == total


def test_damaged_vector_segment_file_is_a_clear_error_not_a_segfault(home, tmp_path, monkeypatch):
    """Chroma's native loader crashes (SIGSEGV) on a damaged vector file: the files are checked first."""
    monkeypatch.setenv("FILINGLENS_EMBEDDINGS", "hash")  # the library's sha256 embedder: no model
    doc = small_10k(tmp_path / "big-10-k-2023.html", "Bigco", paragraphs=8000)  # enough for Chroma to persist
    ingest([doc])
    index_mod.close_local_clients()
    [data] = (home / "index" / "chroma").glob("*/data_level0.bin")
    raw = bytearray(data.read_bytes())
    raw[len(raw) * 3 // 4:] = np.random.default_rng(5).integers(0, 256, len(raw) - len(raw) * 3 // 4,
                                                                  dtype=np.uint8).tobytes()
    data.write_bytes(bytes(raw))
    script = tmp_path / "cli.py"
    script.write_text("import sys\nfrom filinglens.cli import app\napp(args=sys.argv[1:], "
                      "prog_name='filinglens')\n")
    env = child_env(home) | {"FILINGLENS_EMBEDDINGS": "hash", "COLUMNS": "400"}
    search = subprocess.run([sys.executable, str(script), "search", "widgets"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert search.returncode == 2, (search.returncode, search.stderr[-1000:])  # not -11
    assert "crashes Chroma" in search.stderr and "ingest --repair" in search.stderr
    repaired = subprocess.run([sys.executable, str(script), "ingest", "--repair", "--json"], env=env,
                              capture_output=True, text=True, timeout=600)
    assert repaired.returncode == 0, repaired.stderr[-1000:]
    assert [r["status"] for r in json.loads(repaired.stdout)] == ["rebuilt"]
    assert subprocess.run([sys.executable, str(script), "search", "widgets"], env=env, capture_output=True,
                          timeout=300).returncode == 0
    assert stored_chunks(open_store(create=False)) == clean_chunks(doc)


# --------------------------------------------------------------------------- kill -9


def test_ingest_killed_with_sigkill_mid_filing_resumes_to_a_clean_ingest(home, shared):
    doc = shared / "filings" / "html" / MEDICIS
    proc = subprocess.Popen([sys.executable, "-m", "filinglens.cli", "ingest", str(doc)], env=child_env(home),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sqlite = home / "index" / "chroma" / "chroma.sqlite3"
    deadline = time.monotonic() + 240
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:  # kill once the first batch is in
        try:
            con = sqlite3.connect(f"file:{sqlite}?mode=ro", uri=True, timeout=1)
            stored = con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            con.close()
        except sqlite3.Error:
            stored = 0
        if stored:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    expected = clean_chunks(doc)
    assert 0 < stored < len(expected)
    index_mod.close_local_clients()
    assert filing_id_of(doc) not in {m["filing_id"] for m in open_store().manifests()}  # no manifest for half
    result = cli("ingest", str(doc), "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout[result.stdout.index("["):])
    assert row["skipped"] >= stored and row["embedded"] == len(expected) - row["skipped"]
    store = open_store()
    assert stored_chunks(store) == expected
    assert store.verify(deep=True)["ok"]


def filing_id_of(path: Path) -> str:
    from filinglens.retrieval.parse import parse_filing

    return filing_id(parse_filing(path))
