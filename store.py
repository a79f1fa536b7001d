"""The SQLite results store: runs, ratings and model calls (the call cache). The only module that talks SQL.

Lives at ``$FILINGLENS_HOME/results.db``. The schema evolves by numbered
migrations (``MIGRATIONS``), applied in order and recorded in
``schema_migrations``; WAL mode lets a reader look while a batch writes.
Model calls double as the cache: a successful call is found again by its
cache key (model, parameters, prompt hash, input hash, sample index), so
re-running an unchanged rating makes no model call. Failed calls are recorded
too (with their error) and are never served from the cache. Secrets are
never stored: parameters are recorded without keys.

Reliability: every write is one short ``BEGIN IMMEDIATE`` transaction, so a
process killed at any moment leaves each call and rating either recorded
or absent, never half-written, and concurrent writers (several ``rate``
processes on one data home) wait for each other for at most
``$FILINGLENS_DB_TIMEOUT`` seconds (default 15) instead of failing.  Every
SQLite failure surfaces as :class:`StoreError` with one line: a damaged file
(``quick_check`` at open, or a malformed page met later) names the file and
says to run ``filinglens doctor`` and move it aside — user data is never
deleted automatically; a database locked past the timeout says so.  Each
database gets a random SQLite ``application_id`` when created, recorded
beside it (``results.db.id``): a database file that was emptied (0 bytes)
or replaced by an empty one is reported instead of silently restarted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from filinglens.errors import (StoreDamagedError, StoreError, StoreLockedError,  # noqa: F401 - re-exported
                               redact_secrets)
from filinglens.settings import data_home

TIMEOUT_ENV = "FILINGLENS_DB_TIMEOUT"
DEFAULT_TIMEOUT = 15.0  # seconds a writer waits for another one before giving up

SECRET_KEYS = {"api_key", "cohere_api_key", "openai_api_key", "token", "authorization", "password"}

#: ``ratings`` columns stored as JSON text (lists; ``interval`` may be NULL).
RATING_JSON_COLUMNS = ("evidence", "quotes", "indicators", "facts", "interval")


def encode_rating_row(rating: dict) -> dict:
    """A rating row with its JSON columns as text (for SQLite, CSV, Parquet)."""
    row = dict(rating)
    for key in RATING_JSON_COLUMNS:
        if key in row:
            value = row[key]
            row[key] = None if value is None and key == "interval" else json.dumps(value or [], ensure_ascii=False)
    if "borderline" in row:
        row["borderline"] = int(bool(row["borderline"]))
    return row


def decode_rating_row(row) -> dict:
    """A stored rating row with its JSON columns as Python values."""
    out = dict(row)
    for key in RATING_JSON_COLUMNS:
        if key in out:
            out[key] = json.loads(out[key]) if out[key] is not None else None
    if "borderline" in out:
        out["borderline"] = bool(out["borderline"])
    return out


MIGRATIONS: list[str] = [
    # 1: runs, ratings, model calls
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        label TEXT,
        config TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'running',
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE model_calls (
        id INTEGER PRIMARY KEY,
        run_id TEXT REFERENCES runs(id),
        cache_key TEXT NOT NULL,
        model_id TEXT NOT NULL,
        params TEXT NOT NULL,
        prompt_ref TEXT,
        prompt_hash TEXT,
        input_hash TEXT NOT NULL,
        sample_index INTEGER NOT NULL DEFAULT 0,
        response TEXT,
        tokens_in INTEGER,
        tokens_out INTEGER,
        latency_ms REAL,
        cost_usd REAL,
        error TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX model_calls_cache ON model_calls(cache_key) WHERE error IS NULL;
    CREATE TABLE ratings (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id),
        cell_key TEXT NOT NULL,
        filing_hash TEXT NOT NULL,
        ticker TEXT,
        cik TEXT,
        company TEXT,
        fiscal_year INTEGER,
        category TEXT NOT NULL,
        prompt_version TEXT NOT NULL,
        prompt_hash TEXT NOT NULL,
        method TEXT NOT NULL,
        model_id TEXT NOT NULL,
        sample_index INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        score REAL,
        expected_score REAL,
        rationale TEXT,
        evidence TEXT NOT NULL DEFAULT '[]',
        quotes TEXT NOT NULL DEFAULT '[]',
        unverified_quotes INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        model_calls INTEGER NOT NULL DEFAULT 0,
        cached_calls INTEGER NOT NULL DEFAULT 0,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        latency_ms REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        UNIQUE (run_id, cell_key)
    );
    CREATE INDEX ratings_cell ON ratings(cell_key);
    """,
    # 2: batch units (filinglens.batch): one row per filing of a batch run, written by the driver only
    """
    CREATE TABLE batch_units (
        run_id TEXT NOT NULL REFERENCES runs(id),
        unit_key TEXT NOT NULL,
        source TEXT NOT NULL,
        label TEXT,
        status TEXT NOT NULL,
        filing_hash TEXT,
        filing_id TEXT,
        error TEXT,
        ratings INTEGER NOT NULL DEFAULT 0,
        failed_ratings INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        seconds REAL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (run_id, unit_key)
    );
    CREATE INDEX batch_units_key ON batch_units(unit_key);
    """,
    # 3: the indicators method's output, kept with the rating: the expected score's interval, the borderline
    # flag, every indicator's value and source, and the facts from the filing's own numbers it cited
    """
    ALTER TABLE ratings ADD COLUMN interval TEXT;
    ALTER TABLE ratings ADD COLUMN borderline INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ratings ADD COLUMN indicators TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE ratings ADD COLUMN facts TEXT NOT NULL DEFAULT '[]'
    """,
]


_DAMAGED = ("malformed", "not a database", "file is encrypted", "disk image", "corrupt")
_LOCKED = ("database is locked", "database table is locked", "database is busy")


def busy_timeout() -> float:
    """Seconds a store operation waits for a lock held by another process (``$FILINGLENS_DB_TIMEOUT``)."""
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise StoreError(f"{TIMEOUT_ENV} must be a number of seconds, not `{raw}`") from None
    if value < 0:
        raise StoreError(f"{TIMEOUT_ENV} must not be negative, not `{raw}`")
    return value


def damaged_message(path: Path, detail: str) -> str:
    """The one-line message for a damaged results database."""
    detail = " ".join(str(detail).split())
    detail = detail if len(detail) <= 160 else detail[:160] + "…"
    return (f"the results database {path} is damaged ({detail}): run `filinglens doctor` for details, then move it "
            f"aside (e.g. `mv {path} {path}.damaged`) to start a new one; nothing was deleted")


def _store_error(exc: sqlite3.Error, path: Path, timeout: float) -> StoreError:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    low = text.lower()
    if any(k in low for k in _LOCKED):
        return StoreLockedError(
            f"the results database {path} is locked by another process (waited {timeout:g} s): wait for the "
            f"other `filinglens` run to finish and retry, or raise {TIMEOUT_ENV}"
        )
    if any(k in low for k in _DAMAGED) or type(exc) is sqlite3.DatabaseError:
        return StoreDamagedError(damaged_message(path, text))
    return StoreError(f"the results database {path} cannot be used: {text}")


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(method: _F) -> _F:
    """Turn any SQLite failure inside a ``Store`` method into a one-line ``StoreError``."""

    @functools.wraps(method)
    def wrapper(self: "Store", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, self.timeout) from exc

    return wrapper  # type: ignore[return-value]


def json_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON (first 24 hex digits)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:24]


def public_params(params: dict) -> dict:
    """Model parameters without secrets, for recording and cache keys."""
    return {k: v for k, v in sorted(params.items()) if k.lower() not in SECRET_KEYS and v is not None}


def call_cache_key(model_id: str, params: dict, prompt_hash: str | None, input_hash: str, sample_index: int,
                   attempt: int = 0) -> str:
    """The identity of one model call: same key, same answer (served from the cache).

    ``attempt`` numbers the tries after a malformed answer: each retry is its own call (the first
    try's key is the same as before attempts were part of it, so existing caches stay valid).
    """
    parts = [model_id, public_params(params), prompt_hash, input_hash, sample_index]
    return json_hash(parts + [{"attempt": attempt}] if attempt else parts)


@dataclass
class CachedCall:
    response: str
    tokens_in: int
    tokens_out: int
    latency_ms: float


class Store:
    """The results database (``results.db`` in the data home unless ``path`` is given)."""

    def __init__(self, path: Path | None = None, *, timeout: float | None = None, check: bool = True):
        """Open (creating and migrating if needed) the results database.

        ``timeout``: seconds to wait for another process's lock (default
        ``$FILINGLENS_DB_TIMEOUT`` or 15); ``check``: run SQLite's
        ``quick_check`` first, so a damaged file is refused before anything
        is written into it.
        """
        self.path = Path(path) if path else data_home() / "results.db"
        self.timeout = busy_timeout() if timeout is None else float(timeout)
        self._lock = threading.RLock()
        if self.path.is_dir():
            raise StoreError(f"the results database {self.path} is a directory, not a file")
        existed = self.path.exists()
        try:
            self.db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, self.timeout) from exc
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            if check:
                self._quick_check()
            self._check_identity(existed)  # before anything writes into an emptied file
            self._enable_wal()
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._record_identity()
        except sqlite3.Error as exc:
            self.db.close()
            raise _store_error(exc, self.path, self.timeout) from exc
        except StoreError:
            self.db.close()
            raise

    # ------------------------------------------------------------------ schema

    @property
    def id_path(self) -> Path:
        """Where the database's ``application_id`` is recorded (beside it)."""
        return self.path.with_name(self.path.name + ".id")

    def _check_identity(self, existed: bool) -> None:
        """Refuse a database file that was emptied or replaced by an empty one behind our back."""
        try:
            recorded = int(self.id_path.read_text().strip())
        except (OSError, ValueError):
            return  # no record: a new data home (or one from before the record existed)
        if not existed:
            return  # the file was removed on purpose (e.g. moved aside): start a new database
        current = self.db.execute("PRAGMA application_id").fetchone()[0]
        if current == recorded:
            return
        has_tables = self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if current == 0 and not has_tables:
            size = self.path.stat().st_size
            if size == 0 and self._being_created():
                return
            raise StoreDamagedError(damaged_message(
                self.path, f"it is empty ({size} bytes) but held results before (id {recorded} in {self.id_path.name})"
            ))

    def _being_created(self, wait: float = 2.0) -> bool:
        """A 0-byte file may be another process creating the database right now: watch it a moment
        (without writing: a write would initialise the emptied file)."""
        deadline = time.monotonic() + min(wait, self.timeout)
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.path.stat().st_size > 0 and self.db.execute("PRAGMA application_id").fetchone()[0] != 0:
                return True
        return False

    def _record_identity(self) -> None:
        if str(self.path) == ":memory:":  # a worker's scratch store: nothing on disk to guard
            return
        current = self.db.execute("PRAGMA application_id").fetchone()[0]
        if current == 0:
            with self.transaction():
                current = self.db.execute("PRAGMA application_id").fetchone()[0]
                if current == 0:
                    current = int.from_bytes(os.urandom(4), "big") >> 1 or 1
                    self.db.execute(f"PRAGMA application_id={current}")
        try:
            if self.id_path.read_text().strip() == str(current):
                return
        except OSError:
            pass
        try:
            tmp = self.id_path.with_name(f".{self.id_path.name}.{os.getpid()}.part")
            tmp.write_text(str(current))
            os.replace(tmp, self.id_path)
        except OSError:
            pass  # a read-only folder: the record is a safeguard, not a requirement

    def _enable_wal(self) -> None:
        """Switch to write-ahead logging, retrying while another opener holds the lock.

        SQLite answers a journal-mode change that meets a concurrent opener's lock with an
        immediate "database is locked", without calling the busy handler (seen with six
        processes creating one database at once), so the wait is done here, up to the timeout.
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not any(s in str(exc).lower() for s in _LOCKED) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.2)

    def _quick_check(self) -> None:
        rows = [r[0] for r in self.db.execute("PRAGMA quick_check(3)")]
        if rows and rows != ["ok"]:
            raise StoreDamagedError(damaged_message(self.path, "quick_check: " + "; ".join(str(r) for r in rows)))

    def _migrate(self) -> None:
        has_table = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ).fetchone()
        if has_table:
            done = {row[0] for row in self.db.execute("SELECT version FROM schema_migrations")}
            if done >= set(range(1, len(MIGRATIONS) + 1)):
                return  # up to date: opening needs no write lock
        with self.transaction():
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
            )
        for number, sql in enumerate(MIGRATIONS, start=1):
            with self.transaction():
                # checked inside the write transaction: two processes opening a new
                # database at once apply each migration exactly once
                if self.db.execute("SELECT 1 FROM schema_migrations WHERE version=?", (number,)).fetchone():
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))

    @property
    @_guarded
    def schema_version(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: a failure inside rolls the whole block back.

        ``BEGIN IMMEDIATE`` takes the write lock up front (waiting up to the
        busy timeout for another writer); nested blocks join the outer one.
        """
        with self._lock:
            if self.db.in_transaction:
                yield self.db
                return
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path, self.timeout) from exc
            try:
                yield self.db
            except BaseException:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the failure that brought us here is the one to report
                raise
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise _store_error(exc, self.path, self.timeout) from exc

    def close(self) -> None:
        """Close the connection (pending transactions are rolled back)."""
        self.db.close()

    @_guarded
    def check(self) -> list[str]:
        """SQLite's ``quick_check`` verdict (``["ok"]`` when healthy)."""
        return [str(r[0]) for r in self.db.execute("PRAGMA quick_check(10)")]

    # ------------------------------------------------------------------ runs

    @_guarded
    def start_run(self, kind: str, config: dict, label: str | None = None, run_id: str | None = None) -> str:
        """Create (or reopen, to resume) a run and return its id."""
        run_id = run_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (id, kind, label, config, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET status='running', finished_at=NULL",
                (run_id, kind, label, json.dumps(config, sort_keys=True, default=str), time.time()),
            )
        return run_id

    @_guarded
    def finish_run(self, run_id: str, status: str = "finished") -> None:
        """Mark a run finished (or interrupted / finished with failures)."""
        with self.transaction():
            self.db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?", (status, time.time(), run_id))

    @_guarded
    def update_run(self, run_id: str, *, status: str | None = None, config: dict | None = None) -> dict:
        """Set a run's status and/or merge keys into its config, atomically; returns the updated run.

        Background jobs record their plan, progress, heartbeat and errors in the
        config this way, so any process (a reloaded page, the CLI) can read them.
        """
        with self.transaction():
            row = self.db.execute("SELECT config FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id} in {self.path}")
            if config:
                merged = {**json.loads(row[0] or "{}"), **config}
                self.db.execute("UPDATE runs SET config=? WHERE id=?",
                                (json.dumps(merged, sort_keys=True, default=str), run_id))
            if status:
                self.db.execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))
        return self.run(run_id)

    @_guarded
    def run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return dict(row) if row else None

    @_guarded
    def runs(self, kind: str | None = None) -> list[dict]:
        sql = "SELECT * FROM runs" + (" WHERE kind=?" if kind else "") + " ORDER BY created_at DESC"
        return [dict(r) for r in self.db.execute(sql, (kind,) if kind else ())]

    # ------------------------------------------------------------------ model calls

    @_guarded
    def cached_call(self, cache_key: str) -> CachedCall | None:
        """The latest successful call with this key, if any."""
        row = self.db.execute(
            "SELECT response, tokens_in, tokens_out, latency_ms FROM model_calls "
            "WHERE cache_key=? AND error IS NULL ORDER BY id DESC LIMIT 1",
            (cache_key,),
        ).fetchone()
        return CachedCall(row[0], row[1] or 0, row[2] or 0, row[3] or 0.0) if row else None

    @_guarded
    def record_call(
        self,
        *,
        cache_key: str,
        model_id: str,
        params: dict,
        input_hash: str,
        sample_index: int = 0,
        prompt_ref: str | None = None,
        prompt_hash: str | None = None,
        response: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        error: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Record one model call, successful or failed (secrets redacted from the error)."""
        error = redact_secrets(error) if error else error
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO model_calls (run_id, cache_key, model_id, params, prompt_ref, prompt_hash, input_hash, "
                "sample_index, response, tokens_in, tokens_out, latency_ms, cost_usd, error, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, cache_key, model_id, json.dumps(public_params(params), default=str), prompt_ref,
                    prompt_hash, input_hash, sample_index, response, tokens_in, tokens_out, latency_ms, cost_usd,
                    error, time.time(),
                ),
            )
            return cur.lastrowid

    @_guarded
    def calls(self, run_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM model_calls" + (" WHERE run_id=?" if run_id else "") + " ORDER BY id"
        return [dict(r) for r in self.db.execute(sql, (run_id,) if run_id else ())]

    # ------------------------------------------------------------------ ratings

    @_guarded
    def save_rating(self, run_id: str, rating: dict) -> None:
        """Insert or replace the rating of one cell (``rating['cell_key']``) in a run."""
        row = encode_rating_row({"evidence": [], "quotes": [], **rating})
        row["run_id"] = run_id
        if row.get("error"):
            row["error"] = redact_secrets(str(row["error"]))
        row.setdefault("created_at", time.time())
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction():
            self.db.execute(f"INSERT OR REPLACE INTO ratings ({columns}) VALUES ({marks})", tuple(row.values()))

    @_guarded
    def ok_ratings(self, cell_keys: Iterable[str]) -> dict[str, dict]:
        """The latest successful rating of each of ``cell_keys`` in any run (cell key -> row)."""
        keys = list(dict.fromkeys(cell_keys))
        out: dict[str, dict] = {}
        for b in range(0, len(keys), 500):
            part = keys[b : b + 500]
            marks = ", ".join("?" for _ in part)
            rows = self.db.execute(
                f"SELECT * FROM ratings WHERE status='ok' AND cell_key IN ({marks}) ORDER BY id", part
            )
            for r in rows:
                row = decode_rating_row(r)
                out[row["cell_key"]] = row
        return out

    @_guarded
    def import_results(
        self, run_id: str, ratings: Iterable[dict], calls: Iterable[dict] = (), unit: dict | None = None
    ) -> dict:
        """Insert ratings and model calls computed elsewhere (a batch worker), in one transaction.

        Idempotent: a rating replaces the run's rating of the same cell; a
        successful call is skipped when a successful call with its cache key is
        stored, a failed one when the same failure (key, error, time) is.
        ``unit`` (``batch_units`` columns) records the filing's outcome in the
        same transaction. Returns ``{"ratings", "calls", "duplicate_calls"}``.
        """
        counts = {"ratings": 0, "calls": 0, "duplicate_calls": 0}
        with self.transaction():
            for call in calls:
                if call.get("error") is None:
                    seen = self.db.execute(
                        "SELECT 1 FROM model_calls WHERE cache_key=? AND error IS NULL LIMIT 1", (call["cache_key"],)
                    ).fetchone()
                else:
                    seen = self.db.execute(
                        "SELECT 1 FROM model_calls WHERE cache_key=? AND error=? AND created_at=? LIMIT 1",
                        (call["cache_key"], redact_secrets(call["error"]), call["created_at"]),
                    ).fetchone()
                if seen:
                    counts["duplicate_calls"] += 1
                    continue
                params = call.get("params") or {}
                if isinstance(params, str):
                    params = json.loads(params)
                self.db.execute(
                    "INSERT INTO model_calls (run_id, cache_key, model_id, params, prompt_ref, prompt_hash, "
                    "input_hash, sample_index, response, tokens_in, tokens_out, latency_ms, cost_usd, error, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id, call["cache_key"], call["model_id"], json.dumps(public_params(params), default=str),
                        call.get("prompt_ref"), call.get("prompt_hash"), call["input_hash"],
                        call.get("sample_index") or 0, call.get("response"), call.get("tokens_in"),
                        call.get("tokens_out"), call.get("latency_ms"), call.get("cost_usd"),
                        redact_secrets(call["error"]) if call.get("error") else None,
                        call.get("created_at") or time.time(),
                    ),
                )
                counts["calls"] += 1
            for rating in ratings:
                row = {k: v for k, v in rating.items() if k not in ("id", "run_id", "target")}
                self.save_rating(run_id, row)
                counts["ratings"] += 1
            if unit is not None:
                self.save_batch_unit(run_id, unit)
        return counts

    @_guarded
    def save_batch_unit(self, run_id: str, unit: dict) -> None:
        """Insert or replace one filing's outcome in a batch run (``batch_units`` columns)."""
        row = {k: v for k, v in unit.items() if k not in ("run_id", "updated_at")}
        if row.get("error"):
            row["error"] = redact_secrets(str(row["error"]))
        row["run_id"] = run_id
        row["updated_at"] = time.time()
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT OR REPLACE INTO batch_units ({columns}) VALUES ({marks})", tuple(row.values()))

    @_guarded
    def batch_units(self, run_id: str | None = None, unit_key: str | None = None) -> list[dict]:
        """Batch outcomes per filing, of one run and/or one unit (newest first)."""
        where, args = [], []
        if run_id:
            where.append("run_id=?")
            args.append(run_id)
        if unit_key:
            where.append("unit_key=?")
            args.append(unit_key)
        sql = "SELECT * FROM batch_units" + (" WHERE " + " AND ".join(where) if where else "")
        return [dict(r) for r in self.db.execute(sql + " ORDER BY updated_at DESC", args)]

    @_guarded
    def finished_cells(self, run_id: str) -> set[str]:
        """Cells of a run that already have a successful rating (for resuming)."""
        return {r[0] for r in self.db.execute("SELECT cell_key FROM ratings WHERE run_id=? AND status='ok'", (run_id,))}

    @_guarded
    def ratings(self, run_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM ratings" + (" WHERE run_id=?" if run_id else "") + " ORDER BY id"
        out = []
        for r in self.db.execute(sql, (run_id,) if run_id else ()):
            out.append(decode_rating_row(r))
        return out
