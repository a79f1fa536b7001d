"""Reliability of the chunk index, its manifests, the BM25 cache and the results store.

Four measurements, each driving the real CLI in child processes on real
shared filings (``../shared/data/filings``):

1. **kill -9 during ingest**: ``filinglens ingest FILING`` into a data home
   that already holds another filing is killed at a random moment of its
   write window (every fourth trial kills the first re-run too), then re-run
   to completion; the index must equal a clean ingest chunk for chunk (same
   ids, texts and vectors), the other filing untouched, ``verify(deep)`` ok.
2. **kill -9 during a rating batch**: ``filinglens rate FILING --model fake:bench
   --samples 2`` (8 ratings) killed at a random moment, then re-run: the
   finished run must hold every cell exactly once with the scores of a clean
   run, and no successful model call may be recorded twice.
3. **concurrent writers**: two ``ingest`` and two ``rate`` processes started
   together on one new data home (no retries): no failure, no "locked",
   nothing lost.
4. **damage**: the index database, its vector segment files, a manifest, a
   BM25 cache entry or ``results.db`` truncated, zeroed or overwritten; then
   ``search``, ``rate`` and ``ingest`` as a user would run them, following
   the advice of any error (``ingest --repair``, moving ``results.db``
   aside).  Each case ends as a clear error, an automatic reported repair,
   no effect, or — the failures — a silent loss or a traceback.

Embeddings: a deterministic hash embedder (``bench-hash64``) by default, so a
trial costs seconds and vectors can be compared exactly; ``--real-trials N``
adds kill -9 trials with the real embedded model (``minilm-int8``), where the
kill mostly lands while chunks are being embedded.  The fake model
``fake:bench`` answers yes/no from a hash of the question, so ratings are
deterministic and succeed.

    .venv/bin/python bench/reliability.py [--ingest-trials 20] [--rate-trials 20] [--rounds 3] [--real-trials 2]

Prints a table and writes ``bench/results/reliability.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HASH_EMBEDDER = "bench-hash64"
REAL_EMBEDDER = "minilm-int8"
FAKE = "fake:bench"
OUT = Path(__file__).parent / "results" / "reliability.json"


# --------------------------------------------------------------------------- plugins (bench and children)


def register_plugins() -> None:
    """The hash embedder and the scripted fake model, in this process."""
    import numpy as np

    from filinglens.agents.providers.fake import register_script
    from filinglens.retrieval.embeddings import Embedder, register_embedder

    class HashEmbedder(Embedder):
        name = HASH_EMBEDDER
        dimension = 64

        def _embed(self, texts):
            out = []
            for text in texts:
                v = np.frombuffer(hashlib.sha512(text.encode()).digest(), dtype=np.uint8).astype(np.float32) - 127.5
                out.append(v / np.linalg.norm(v))
            return np.stack(out)

    register_embedder(HASH_EMBEDDER, HashEmbedder)

    def answer(messages) -> str:
        text = messages[-1].content if messages else ""
        return "yes" if hashlib.sha256(str(text).encode()).digest()[0] < 150 else "no"

    register_script("bench", func=answer)


def child_main(args: list[str]) -> None:
    register_plugins()
    from filinglens.cli import app

    app(args=args, prog_name="filinglens")


# --------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    args: list[str]
    rc: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""
    killed: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def traceback(self) -> bool:
        """A Python traceback, or a crash by a signal (SIGSEGV in native code) that was not our SIGKILL."""
        crashed = self.rc is not None and self.rc < 0 and not self.killed
        return crashed or "Traceback (most recent call last)" in self.output

    @property
    def error(self) -> str | None:
        text = " ".join(self.stderr.split())
        return text[text.index("error:"):] if "error:" in text else None

    @property
    def notes(self) -> list[str]:
        text = " ".join(self.stderr.split())
        return [n.strip() for n in text.split("note:")[1:]]

    def json(self):
        return json.loads(self.stdout)


def _env(home: Path, embedder: str) -> dict:
    env = dict(os.environ, FILINGLENS_HOME=str(home), FILINGLENS_EMBEDDINGS=embedder, COLUMNS="250")
    env.pop("FILINGLENS_CHROMA_URL", None)
    return env


class Child:
    """A CLI child process whose output goes to files (a full pipe must never block it)."""

    def __init__(self, home: Path, args: list[str], embedder: str = HASH_EMBEDDER) -> None:
        self.args = args
        self.t0 = time.perf_counter()
        self._out = tempfile.TemporaryFile(mode="w+")
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "child", *args],
                                     env=_env(home, embedder), stdout=self._out, stderr=self._err, text=True)

    def poll(self):
        return self.proc.poll()

    def finish(self, timeout: float = 1200, killed: bool = False) -> Run:
        self.proc.wait(timeout=timeout)
        outputs = []
        for handle in (self._out, self._err):
            handle.seek(0)
            outputs.append(handle.read())
            handle.close()
        return Run(self.args, self.proc.returncode, time.perf_counter() - self.t0, outputs[0], outputs[1],
                   killed=killed)


def start(home: Path, args: list[str], embedder: str = HASH_EMBEDDER) -> Child:
    return Child(home, args, embedder)


def run(home: Path, args: list[str], embedder: str = HASH_EMBEDDER, timeout: float = 1200) -> Run:
    return start(home, args, embedder).finish(timeout)


def run_and_kill(home: Path, args: list[str], delay: float, embedder: str = HASH_EMBEDDER) -> Run:
    """Start the command and SIGKILL it after ``delay`` seconds (unless it finished first)."""
    child = start(home, args, embedder)
    while time.perf_counter() - child.t0 < delay and child.poll() is None:
        time.sleep(0.003)
    killed = child.poll() is None
    if killed:
        os.kill(child.proc.pid, signal.SIGKILL)
    result = child.finish(killed=killed)
    result.seconds = min(result.seconds, delay) if killed else result.seconds
    return result


def kill_after_event(home: Path, args: list[str], watch, extra: float, embedder: str = HASH_EMBEDDER) -> Run:
    """Start the command, wait until ``watch()`` changes (e.g. its first write), then ``extra`` seconds, then SIGKILL."""
    before = watch()
    child = start(home, args, embedder)
    while child.poll() is None and watch() == before:
        time.sleep(0.002)
    until = time.perf_counter() + extra
    while child.poll() is None and time.perf_counter() < until:
        time.sleep(0.002)
    killed = child.poll() is None
    if killed:
        os.kill(child.proc.pid, signal.SIGKILL)
    return child.finish(killed=killed)


def calibrate(home: Path, args: list[str], watch, embedder: str = HASH_EMBEDDER) -> dict:
    """Run once to completion, noting when ``watch()`` first and last changed (seconds from the start)."""
    value = watch()
    child = start(home, args, embedder)
    first = last = None
    while child.poll() is None:
        now = watch()
        if now != value:
            value = now
            last = time.perf_counter() - child.t0
            first = first if first is not None else last
        time.sleep(0.002)
    result = child.finish()
    if result.rc != 0:
        raise SystemExit(f"calibration run {args} failed: {result.output[-2000:]}")
    if first is None:
        first = last = result.seconds * 0.5
    return {"first": first, "last": last, "total": result.seconds, "run": result}


# --------------------------------------------------------------------------- expected and stored state


_EXPECTED: dict[str, dict[str, str]] = {}


def expected_chunks(path: Path) -> dict[str, str]:
    """What a clean ingest stores for ``path``: chunk id -> text (same parse, sidecar metadata and chunking)."""
    key = str(path)
    if key not in _EXPECTED:
        from filinglens.retrieval.chunking import chunk_filing, chunk_id
        from filinglens.retrieval.index import filing_key
        from filinglens.retrieval.ingest import _apply, sidecar_metadata
        from filinglens.retrieval.parse import parse_filing

        overrides = sidecar_metadata(path)
        filing = _apply(parse_filing(path, ticker=overrides.get("ticker")), overrides)
        fkey = filing_key(filing)
        _EXPECTED[key] = {chunk_id(fkey, c): c.text for c in chunk_filing(filing)}
    return _EXPECTED[key]


def read_index(home: Path, embedder: str = HASH_EMBEDDER) -> dict:
    """The stored chunks (id -> text, vector), the deep verify report and a probe query, read in this process."""
    from filinglens.errors import FilingLensError
    from filinglens.retrieval.index import ChunkStore, close_local_clients

    try:
        store = ChunkStore(home / "index", create=False, embedder=embedder)
        chunks = {c.id: (c.text, c.embedding) for c in store.get(embeddings=True)} if store.exists else {}
        report = store.verify(deep=True)
        manifests = {m["filing_id"]: m for m in store.manifests()}
        reachable = None
        if chunks and not report.get("damaged"):  # every vector reachable by a dense query
            import numpy as np

            dim = len(next(iter(chunks.values()))[1])
            probe = np.full(dim, dim ** -0.5, dtype=np.float32)
            got = store.collection.query(query_embeddings=[probe], n_results=len(chunks), include=[])
            reachable = len(set(got["ids"][0]))
        return {"chunks": chunks, "verify": report, "manifests": manifests, "error": None, "reachable": reachable}
    except FilingLensError as exc:
        return {"chunks": {}, "verify": None, "manifests": {}, "error": str(exc), "reachable": None}
    finally:
        close_local_clients()


def stored_ids(home: Path) -> set[str]:
    """Chunk ids in ``chroma.sqlite3``, read with SQLite alone (Chroma is not loaded: a read by Chroma can
    rewrite its vector files, which the next process would then have to re-check)."""
    try:
        con = sqlite3.connect(f"file:{home / 'index' / 'chroma' / 'chroma.sqlite3'}?mode=ro", uri=True, timeout=5)
        try:  # applied to the metadata segment, or still in Chroma's log (applied when next opened)
            ids = {r[0] for r in con.execute("SELECT embedding_id FROM embeddings")}
            ids |= {r[0] for r in con.execute("SELECT id FROM embeddings_queue WHERE operation IN (0, 2)")}
            return ids
        finally:
            con.close()
    except sqlite3.Error:
        return set()


def compare(state: dict, expected: dict[str, str], exact_vectors: bool) -> dict:
    """Differences between the stored index and a clean ingest."""
    stored = state["chunks"]
    lost = [cid for cid in expected if cid not in stored]
    extra = [cid for cid in stored if cid not in expected]
    texts = [cid for cid in expected if cid in stored and stored[cid][0] != expected[cid]]
    vectors = 0
    if exact_vectors and stored:
        import numpy as np

        from filinglens.retrieval.embeddings import get_embedder

        emb = get_embedder(HASH_EMBEDDER)
        ids = [cid for cid in expected if cid in stored]
        want = emb.embed_documents([expected[c] for c in ids])
        got = np.stack([stored[c][1] for c in ids]) if ids else want
        vectors = int(np.sum(np.max(np.abs(want - got), axis=1) > 1e-5)) if ids else 0
    report = state["verify"] or {}
    ok_manifests = all(set(m["ids"]) == {c for c in expected if c in set(m["ids"])} for m in state["manifests"].values())
    listed = set().union(*(set(m["ids"]) for m in state["manifests"].values())) if state["manifests"] else set()
    unreachable = len(stored) - state["reachable"] if state.get("reachable") is not None else len(stored)
    return {
        "lost": len(lost), "extra": len(extra), "text_mismatch": len(texts), "vector_mismatch": vectors,
        "unreachable_by_dense_search": unreachable,
        "manifests_cover": listed == set(expected) and ok_manifests,
        "verify_ok": bool(report.get("ok")), "verify": report.get("detail") if report else state["error"],
        "equal": not (lost or extra or texts or vectors or unreachable) and listed == set(expected)
        and bool(report.get("ok")),
    }


def copy_home(base: Path, dest: Path, *, results: bool = True) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest, ignore=None if results else shutil.ignore_patterns("results.db*"))
    return dest


def pending_watch(home: Path):
    """Changes when an ingest stores its first batch of chunks (its pending marker appears) and when it ends."""
    manifests = home / "index" / "manifests"

    def watch():
        try:
            return tuple(sorted(p.name for p in manifests.glob("*/*") if p.is_file()))
        except OSError:
            return ()

    return watch


def token_watch(home: Path):
    """Changes when an ingest writes: the generation token (stamped around each write) and the manifests."""
    path = home / "index" / ".generation"
    manifests = home / "index" / "manifests"

    def watch():
        try:
            token = path.read_text()
        except OSError:
            token = None
        try:
            names = tuple(sorted(p.name for p in manifests.glob("*/*.json")))
        except OSError:
            names = ()
        return token, names

    return watch


def ratings_watch(home: Path):
    db = home / "results.db"

    def watch():
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
            try:
                return con.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0

    return watch


# --------------------------------------------------------------------------- 1. kill -9 during ingest


def kill_ingest(work: Path, filings: list[Path], base_filing: Path, trials: int, rng: random.Random,
                embedder: str = HASH_EMBEDDER, label: str = "hash", watcher=token_watch) -> dict:
    base = work / f"ingest-base-{label}"
    base.mkdir(parents=True)
    if base_filing is not None:
        r = run(base, ["ingest", str(base_filing), "--json"], embedder)
        assert r.rc == 0, r.output[-2000:]
    windows = {}
    for f in filings[: min(len(filings), trials)]:
        home = copy_home(base, work / "calib")
        windows[f] = calibrate(home, ["ingest", str(f), "--json"], watcher(home), embedder)
        windows[f].pop("run")
    rows = []
    for n in range(trials):
        f = filings[n % len(filings)]
        w = windows[f]
        home = copy_home(base, work / f"ingest-{label}-{n}")
        args = ["ingest", str(f), "--json"]
        if n % 4 == 1:  # at a random time of the whole run (start-up, parsing, writing, exit)
            kills = [run_and_kill(home, args, rng.uniform(0.2, w["total"]), embedder)]
        else:  # at a random moment of the write window, timed from the first write
            kills = [kill_after_event(home, args, watcher(home), rng.uniform(0, 1.2 * (w["last"] - w["first"])),
                                      embedder)]
        at_kill = stored_ids(home)
        exp_f = expected_chunks(f)
        stored_f = sum(1 for c in exp_f if c in at_kill)
        manifest_f = any(set(json.loads(p.read_text()).get("ids", [])) == set(exp_f)
                         for p in (home / "index" / "manifests").glob("*/*.json"))
        if n % 4 == 3:  # the first re-run is killed too
            kills.append(run_and_kill(home, args, rng.uniform(0.2, w["total"]), embedder))
        final = run(home, args, embedder)
        expected = dict(exp_f)
        if base_filing is not None:
            expected.update(expected_chunks(base_filing))
        cmp = compare(read_index(home, embedder), expected, exact_vectors=embedder == HASH_EMBEDDER)
        rows.append({
            "trial": n, "filing": f.name, "kill_at": [round(k.seconds, 2) for k in kills],
            "killed": [k.killed for k in kills], "chunks_at_kill": f"{stored_f}/{len(exp_f)}",
            "partial_at_kill": 0 < stored_f < len(exp_f),
            "manifest_at_kill": manifest_f,
            "rerun_rc": final.rc, "traceback": final.traceback or any(k.traceback for k in kills), **cmp,
            "recovered": final.rc == 0 and cmp["equal"] and not final.traceback,
        })
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    return {"windows": {f.name: {k: round(v, 2) for k, v in w.items()} for f, w in windows.items()}, "trials": rows}


# --------------------------------------------------------------------------- 2. kill -9 during rating


def rate_state(home: Path) -> dict:
    con = sqlite3.connect(home / "results.db")
    con.row_factory = sqlite3.Row
    try:
        runs = [dict(r) for r in con.execute("SELECT * FROM runs WHERE kind='rate' ORDER BY created_at")]
        ratings = {}
        for r in runs:
            ratings[r["id"]] = [dict(x) for x in con.execute(
                "SELECT cell_key, status, score, expected_score FROM ratings WHERE run_id=?", (r["id"],))]
        dup_calls = con.execute("SELECT COUNT(*) FROM (SELECT cache_key FROM model_calls WHERE error IS NULL "
                                "GROUP BY cache_key HAVING COUNT(*) > 1)").fetchone()[0]
        calls = con.execute("SELECT COUNT(*) FROM model_calls").fetchone()[0]
        check = [r[0] for r in con.execute("PRAGMA quick_check")]
    finally:
        con.close()
    return {"runs": runs, "ratings": ratings, "dup_calls": dup_calls, "calls": calls, "quick_check": check}


def kill_rate(work: Path, filings: list[Path], trials: int, rng: random.Random, samples: int = 2) -> dict:
    """kill -9 at a random moment between the first and the last rating saved (a few after the end), re-run."""
    base = work / "rate-base"
    base.mkdir(parents=True)
    r = run(base, ["ingest", *map(str, filings), "--json"])
    assert r.rc == 0, r.output[-2000:]
    args = ["rate", *map(str, filings), "--model", FAKE, "--samples", str(samples), "--json"]
    ref_home = copy_home(base, work / "rate-ref")
    cal = calibrate(ref_home, args, ratings_watch(ref_home))
    ref_run = cal.pop("run")
    ref = rate_state(ref_home)
    reference = {x["cell_key"]: (x["status"], x["score"]) for x in ref["ratings"][ref["runs"][-1]["id"]]}
    assert all(s == "ok" for s, _ in reference.values()), "the reference batch has failed ratings"
    lo, hi = max(0.2, cal["first"] - 0.5), cal["last"] + 0.5
    span = max(0.05, cal["last"] - cal["first"])
    rows = []
    for n in range(trials):
        home = copy_home(base, work / f"rate-{n}")
        if n % 4 == 1:  # at a random time around the batch
            kills = [run_and_kill(home, args, rng.uniform(lo, hi))]
        else:  # after the first rating is saved, at a random moment of the batch
            kills = [kill_after_event(home, args, ratings_watch(home), rng.uniform(0, span))]
        if n % 4 == 3:
            kills.append(run_and_kill(home, args, rng.uniform(lo, hi)))
        final = run(home, args)
        state = rate_state(home)
        done = [r for r in state["runs"] if r["status"] == "finished"]
        last = state["ratings"][done[-1]["id"]] if done else []
        cells = [x["cell_key"] for x in last]
        got = {x["cell_key"]: (x["status"], x["score"]) for x in last}
        saved_before = [len(state["ratings"][r["id"]]) for r in state["runs"] if r["status"] == "running"]
        lost = sum(1 for c in reference if got.get(c) != reference[c])
        dup = (len(cells) - len(set(cells))) + state["dup_calls"]
        rows.append({
            "trial": n, "kill_at": [round(k.seconds, 2) for k in kills], "killed": [k.killed for k in kills],
            "ratings_saved_by_killed_runs": saved_before, "rerun_rc": final.rc,
            "mid_batch": any(0 < k < len(reference) for k in saved_before),
            "finished_runs": len(done), "ratings": len(last), "lost_or_wrong": lost, "duplicated": dup,
            "extra": len(set(cells) - set(reference)), "quick_check": state["quick_check"],
            "traceback": final.traceback or any(k.traceback for k in kills),
            "recovered": final.rc == 0 and lost == 0 and dup == 0 and len(cells) == len(reference)
            and state["quick_check"] == ["ok"],
        })
        shutil.rmtree(home, ignore_errors=True)
    return {"calibration": {k: round(v, 2) for k, v in cal.items()}, "window": [round(lo, 2), round(hi, 2)],
            "reference_ratings": len(reference),
            "reference_seconds": round(ref_run.seconds, 2), "trials": rows}


# --------------------------------------------------------------------------- 3. concurrent writers


def concurrency(work: Path, rounds: list[tuple[Path, Path, Path]]) -> dict:
    rows = []
    for n, (a, b, c) in enumerate(rounds):
        home = work / f"concurrent-{n}"
        home.mkdir(parents=True)
        commands = [["ingest", str(a), "--json"], ["ingest", str(b), "--json"],
                    ["rate", str(c), "--model", FAKE, "--json"], ["rate", str(c), "--model", FAKE, "--json"]]
        children = [start(home, cmd) for cmd in commands]
        results = [c.finish() for c in children]
        expected = {**expected_chunks(a), **expected_chunks(b), **expected_chunks(c)}
        cmp = compare(read_index(home), expected, exact_vectors=True)
        state = rate_state(home)
        runs_ok = []
        scores = []
        for r in state["runs"]:
            rows_ = state["ratings"][r["id"]]
            runs_ok.append(r["status"] == "finished" and len(rows_) == 4 and all(x["status"] == "ok" for x in rows_))
            scores.append(sorted((x["cell_key"], x["score"]) for x in rows_))
        rows.append({
            "round": n, "filings": [a.name, b.name, c.name],
            "exit_codes": [r.rc for r in results], "seconds": [round(r.seconds, 1) for r in results],
            "failed": sum(1 for r in results if r.rc != 0), "locked": sum(1 for r in results if "locked" in r.output),
            "traceback": sum(1 for r in results if r.traceback), **cmp,
            "rate_runs_complete": sum(runs_ok), "rate_runs": len(state["runs"]),
            "same_scores": len(scores) == 2 and scores[0] == scores[1], "dup_calls": state["dup_calls"],
            "errors": [r.error for r in results if r.error],
        })
        shutil.rmtree(home, ignore_errors=True)
    return {"rounds": rows}


# --------------------------------------------------------------------------- 4. damage


def _pages(path: Path, mode: str, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    size = len(data)
    if mode == "truncate":
        data = data[: size // 2]
    elif mode == "empty":
        data = bytearray()
    elif mode == "zero":
        data = bytearray(size)
    elif mode == "zero-pages":  # header page intact
        for page in range(1, max(2, size // 4096)):
            if page % 3 == 1:
                data[page * 4096:(page + 1) * 4096] = bytes(min(4096, size - page * 4096))
    elif mode == "random-pages":
        pages = max(1, size // 4096)
        for page in rng.sample(range(1, pages), k=min(max(1, pages // 5), pages - 1)) if pages > 1 else []:
            data[page * 4096:(page + 1) * 4096] = rng.randbytes(min(4096, size - page * 4096))
    elif mode == "random-bytes":  # same size, the last quarter overwritten
        start_at = size - max(1, size // 4)
        data[start_at:] = rng.randbytes(size - start_at)
    elif mode == "header":
        data[:100] = rng.randbytes(min(100, size))
    else:
        raise ValueError(mode)
    path.write_bytes(bytes(data))


def damage_cases(home: Path, bm25: Path) -> list[tuple[str, str, str]]:
    """(target, mode, relative path) for every damage case; paths are found in the base home.

    ``bm25`` is the cache entry the base's unfiltered search wrote (the one a later search reads).
    """
    index = home / "index"
    segments = [p for p in (index / "chroma").iterdir() if p.is_dir()]
    seg_files = sorted(p for s in segments for p in s.iterdir() if p.is_file())
    manifest = sorted((index / "manifests").glob("*/*.json"))[0]
    npy = max((p for p in bm25.iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size)
    rel = lambda p: str(p.relative_to(home))  # noqa: E731
    cases = [("index db", m, rel(index / "chroma" / "chroma.sqlite3"))
             for m in ("truncate", "empty", "zero", "zero-pages", "random-pages", "delete")]
    by_name = {p.name: p for p in seg_files}
    for name, mode in (("data_level0.bin", "random-bytes"), ("header.bin", "zero"), ("link_lists.bin", "truncate"),
                       ("length.bin", "delete")):
        if name in by_name:
            cases.append(("vector segment", mode, rel(by_name[name])))
    cases += [("manifest", m, rel(manifest)) for m in ("truncate", "random-bytes", "delete")]
    cases += [("bm25 cache", "random-bytes", rel(npy)), ("bm25 cache", "truncate", rel(bm25 / "chunk_ids.json")),
              ("bm25 cache", "delete", rel(bm25 / "checksums.json"))]
    cases += [("results.db", m, "results.db") for m in ("truncate", "empty", "random-pages", "header")]
    return cases


def damage(work: Path, filings: list[Path], rate_filing: Path, rng: random.Random) -> dict:
    base = work / "damage-base"
    base.mkdir(parents=True)
    bm25_dir = base / "index" / "bm25"
    for args in (["ingest", *map(str, filings), "--json"], ["search", "revenue growth", "--json"],
                 ["rate", str(rate_filing), "--model", FAKE, "--json"]):
        r = run(base, args)
        assert r.rc == 0, (args, r.output[-2000:])
        if args[0] == "search":
            [search_entry] = [p for p in bm25_dir.glob("*/*") if p.is_dir()]
    con = sqlite3.connect(base / "results.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    base_ratings = con.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
    con.close()
    expected: dict[str, str] = {}
    for f in filings:
        expected.update(expected_chunks(f))
    index_steps = [["search", "revenue growth", "--json"], ["ingest", str(filings[0]), "--json"]]
    store_steps = [["rate", str(rate_filing), "--model", FAKE, "--json"]]
    rows = []
    for n, (target, mode, relative) in enumerate(damage_cases(base, search_entry)):
        steps = store_steps if target == "results.db" else index_steps
        home = copy_home(base, work / f"damage-{n}")
        path = home / relative
        if mode == "delete":
            path.unlink()
        elif mode == "delete-dir":
            shutil.rmtree(path)
        else:
            _pages(path, mode, rng)
        log = []
        for args in steps:
            r = run(home, args)
            entry = {"cmd": args[0], "rc": r.rc, "error": r.error, "notes": r.notes, "traceback": r.traceback}
            if r.rc and r.rc < 0:
                entry["signal"] = -r.rc
            if r.rc == 0 and args[0] == "ingest":
                entry["rebuilt"] = sum(1 for row in r.json() if row.get("status") == "rebuilt")
            log.append(entry)
            followed = None
            if r.error and "ingest --repair" in r.error:
                fix = run(home, ["ingest", "--repair", "--json"])
                followed = {"cmd": "ingest --repair", "rc": fix.rc, "error": fix.error, "notes": fix.notes,
                            "traceback": fix.traceback}
            elif r.error and "move it aside" in r.error:
                for suffix in ("", "-wal", "-shm"):
                    src = home / f"results.db{suffix}"
                    if src.exists():
                        os.replace(src, home / f"results.db.damaged{suffix}")
                followed = {"cmd": "mv results.db results.db.damaged", "rc": 0}
            if followed:
                log.append(followed)
                again = run(home, args)
                log.append({"cmd": args[0] + " (again)", "rc": again.rc, "error": again.error,
                            "notes": again.notes, "traceback": again.traceback})
        cmp = compare(read_index(home), expected, exact_vectors=True)
        results_ok = True
        ratings_kept = None
        try:
            state = rate_state(home)
            results_ok = state["quick_check"] == ["ok"] and any(r["status"] == "finished" for r in state["runs"])
            ratings_kept = sum(len(v) for v in state["ratings"].values()) >= base_ratings + 4
        except sqlite3.Error:
            results_ok = False
        moved_aside = (home / "results.db.damaged").exists() or any((home / "index").glob("chroma.damaged-*"))
        crash = any(e.get("traceback") for e in log)
        errors = [e for e in log if e.get("error")]
        reported = any(e.get("notes") or e.get("rebuilt") for e in log)
        final_ok = cmp["equal"] and results_ok and log[-1]["rc"] == 0
        if crash:
            outcome = "crash" if any(e.get("signal") for e in log) else "traceback"
        elif not final_ok:
            outcome = "loss (reported)" if (errors or reported) else "silent loss"
        elif errors:
            outcome = "clear error, then repaired" if not (target == "results.db") else "clear error, file kept"
        elif reported:
            outcome = "repaired automatically, reported"
        else:
            outcome = "no effect"
        if outcome == "no effect" and target == "results.db" and not ratings_kept:
            outcome = "silent loss"
        rows.append({"target": target, "mode": mode, "path": relative, "outcome": outcome, "moved_aside": moved_aside,
                     "one_line_errors": all("\n" not in (e.get("error") or "") for e in log),
                     "index_equal": cmp["equal"], "lost": cmp["lost"], "results_ok": results_ok, "log": log})
        shutil.rmtree(home, ignore_errors=True)
    return {"cases": rows}


# --------------------------------------------------------------------------- report


def summarize(result: dict) -> list[tuple[str, str]]:
    lines = []
    for key, label in (("ingest_kill", "kill -9 during ingest (hash embedder)"),
                       ("ingest_kill_real", f"kill -9 during ingest ({REAL_EMBEDDER})")):
        t = result.get(key, {}).get("trials", [])
        if t:
            killed = sum(1 for r in t if any(r["killed"]))
            partial = sum(1 for r in t if r["partial_at_kill"])
            lines.append((label,
                          f"{len(t)} trials ({killed} killed mid-run, {partial} with the filing half-written, "
                          f"{sum(1 for r in t if sum(r['killed']) > 1)} killed twice), "
                          f"{sum(r['recovered'] for r in t)} recovered, "
                          f"{sum(r['lost'] for r in t)} chunks lost, {sum(r['extra'] for r in t)} extra/duplicated, "
                          f"{sum(r['text_mismatch'] + r['vector_mismatch'] for r in t)} altered"))
    t = result.get("rate_kill", {}).get("trials", [])
    if t:
        mid = sum(1 for r in t if r["mid_batch"])
        killed = sum(1 for r in t if any(r["killed"]))
        lines.append(("kill -9 during a rating batch",
                      f"{len(t)} trials ({killed} killed, {mid} of them with the batch half-saved), "
                      f"{sum(r['recovered'] for r in t)} recovered, "
                      f"{sum(r['lost_or_wrong'] for r in t)} ratings lost, {sum(r['duplicated'] for r in t)} "
                      f"duplicated ({result['rate_kill']['reference_ratings']} ratings per batch)"))
    t = result.get("concurrency", {}).get("rounds", [])
    if t:
        procs = sum(len(r["exit_codes"]) for r in t)
        lines.append(("concurrent writers (2 ingest + 2 rate)",
                      f"{len(t)} rounds, {procs} processes, {sum(r['failed'] for r in t)} failed, "
                      f"{sum(r['locked'] for r in t)} locked, {sum(r['lost'] for r in t)} chunks lost, "
                      f"{sum(4 - 4 * (r['rate_runs_complete'] == 2) for r in t)} ratings lost; "
                      f"{sum(r['dup_calls'] for r in t)} model calls made by both rate processes at once"))
    cases = result.get("damage", {}).get("cases", [])
    by_target: dict[str, list] = {}
    for c in cases:
        by_target.setdefault(c["target"], []).append(c)
    for target, rows in by_target.items():
        counts: dict[str, int] = {}
        for c in rows:
            counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
        lines.append((f"damaged {target}", f"{len(rows)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items())))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ingest-trials", type=int, default=20)
    parser.add_argument("--rate-trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--real-trials", type=int, default=2)
    parser.add_argument("--no-damage", action="store_true")
    parser.add_argument("--only", nargs="*", help="run only these stages (ingest_kill rate_kill concurrency damage "
                                                  "ingest_kill_real)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    register_plugins()
    from filinglens.settings import shared_dir

    data = shared_dir() / "data" / "filings"
    html = lambda name: next((data / "html").glob(f"{name}-10-k-*.html"))  # noqa: E731
    medicis, commonwealth, gainsco = html("medicis"), html("commonwealth-fund-v"), html("gainsco")
    ibm, aapl = html("ibm"), html("aapl")
    netflix_pdf = data / "pdf" / "NETFLIX_2015_10K.pdf"
    rng = random.Random(args.seed)
    result: dict = {"seed": args.seed, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    timings = {}
    with tempfile.TemporaryDirectory(prefix="filinglens-reliability-") as tmp:
        work = Path(tmp)
        stages = [
            ("ingest_kill", lambda: kill_ingest(work, [medicis, commonwealth, gainsco, aapl, netflix_pdf], ibm,
                                                args.ingest_trials, rng)),
            ("rate_kill", lambda: kill_rate(work, [medicis], args.rate_trials, rng)),
            ("concurrency", lambda: concurrency(work, [(medicis, commonwealth, ibm), (gainsco, aapl, medicis),
                                                       (netflix_pdf, ibm, commonwealth)][: args.rounds])),
            ("damage", lambda: {"cases": []} if args.no_damage else damage(work, [ibm, medicis, commonwealth, gainsco],
                                                                             ibm, rng)),
            ("ingest_kill_real", lambda: kill_ingest(work, [medicis], None, args.real_trials, rng,
                                                     embedder=REAL_EMBEDDER, label="real", watcher=pending_watch)
             if args.real_trials else {"trials": []}),
        ]
        for name, stage in stages:
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
            result[name] = stage()
            timings[name] = round(time.perf_counter() - t0, 1)
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {timings[name]} s", file=sys.stderr, flush=True)
    result["seconds"] = timings
    result["summary"] = summarize(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))

    from rich.console import Console
    from rich.table import Table

    table = Table(title="FilingLens reliability")
    table.add_column("scenario")
    table.add_column("result")
    for label, text in result["summary"]:
        table.add_row(label, text)
    Console().print(table)
    print(f"wrote {args.out} ({sum(timings.values()):.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_main(sys.argv[2:])
    else:
        main()
