"""Helpers for the batch tests: a deterministic scripted model and worker faults, usable in any process.

``scripted_setup(...)`` returns a ``worker_setup`` function for
:func:`filinglens.batch.run_batch`.  It is a closure with its imports inside,
so Ray ships it to worker processes by value.  In the worker it registers
``fake:rater``, whose answer is a pure function of the prompt (a yes/no, or a
JSON score, from a hash of the last message): scores depend on the evidence
retrieved, so two runs agree cell for cell only if they retrieved the same
evidence.  Faults, each at most once per ``marker_dir``:

* ``kill_during_rating``: the first model call writes its process id to
  ``marker_dir/rating-victim`` and waits; the test kills that process (kill -9)
  with :func:`kill_victim`;
* ``kill_during_index``: the process kills itself (SIGKILL) when the second
  batch of a filing's chunks is about to be embedded, after the first batch was
  written to the index: a half-indexed filing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

MODEL = "fake:rater"


def scripted_setup(marker_dir: str | None = None, *, kill_during_rating: bool = False,
                   kill_during_index: bool = False):
    """A ``worker_setup`` for ``run_batch`` (see the module doc)."""

    def setup() -> None:
        import hashlib
        import json
        import os
        import signal
        import time

        from filinglens.agents.providers.fake import register_script

        def first(name: str) -> bool:
            """True for exactly one caller per marker file (atomic create); records the caller's pid."""
            try:
                fd = os.open(os.path.join(marker_dir, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return False
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True

        def reply(messages) -> str:
            if marker_dir:
                with open(os.path.join(marker_dir, f"calls-{os.getpid()}"), "a") as handle:
                    handle.write("x")
                if kill_during_rating and first("rating-victim"):
                    time.sleep(300)  # killed here by the test
            text = "\n".join(str(m.content) for m in messages)
            digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
            if '"score"' in text:  # direct / cot prompts ask for JSON
                return json.dumps({"score": digest % 3, "rationale": "scripted", "quotes": []})
            return "yes" if digest % 3 else "no"

        register_script("rater", func=reply)
        if kill_during_index and marker_dir:
            from filinglens.retrieval.embeddings import get_embedder

            embedder = get_embedder()
            if not getattr(embedder, "_batch_test_wrapped", False):
                original = embedder.embed_documents
                batches = {"n": 0}

                def embed_documents(texts):
                    if len(texts) > 1:  # a batch of chunks (queries come one at a time)
                        batches["n"] += 1
                        if batches["n"] == 2 and first("index-victim"):
                            os.kill(os.getpid(), signal.SIGKILL)
                    return original(texts)

                embedder.embed_documents = embed_documents
                embedder._batch_test_wrapped = True

    return setup


def kill_victim(marker_dir: Path, name: str = "rating-victim", timeout: float = 600) -> threading.Thread:
    """Start a thread that kills (SIGKILL) the process whose pid appears in ``marker_dir/name``."""

    def run() -> None:
        path = Path(marker_dir) / name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = path.read_text().strip() if path.exists() else ""
            if text:
                time.sleep(0.5)  # let it settle into its wait
                os.kill(int(text), signal.SIGKILL)
                (Path(marker_dir) / f"{name}-killed").write_text(text)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def cells(store, run_id: str) -> dict[str, tuple]:
    """``cell_key -> (status, score, expected score, evidence chunk ids, quotes)`` of a run."""
    out = {}
    for row in store.ratings(run_id):
        assert row["cell_key"] not in out, f"duplicate rating for {row['cell_key']}"
        out[row["cell_key"]] = (row["status"], row["score"], row["expected_score"],
                                tuple(e["chunk_id"] for e in row["evidence"]), tuple(q["text"] for q in row["quotes"]))
    return out


def duplicate_calls(store) -> list:
    """Successful model calls stored more than once under one cache key (must be none)."""
    return store.db.execute(
        "SELECT cache_key, COUNT(*) FROM model_calls WHERE error IS NULL GROUP BY cache_key HAVING COUNT(*) > 1"
    ).fetchall()
