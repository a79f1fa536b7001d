"""The SQLite results store: runs, ratings and model calls (the call cache). The only module that talks SQL.

Lives at ``$FILINGLENS_HOME/results.db``. The schema evolves by numbered
migrations (``MIGRATIONS``), applied in order and recorded in
``schema_migrations``; WAL mode lets a reader look while a batch writes.
Model calls double as the cache: a successful call is found again by its
cache key (model, parameters, prompt hash, input hash, sample index), so
re-running an unchanged rating makes no model call. Failed calls are recorded
too (with their error) and are never served from the cache. Secrets are
never stored: parameters are recorded without keys.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from filinglens.errors import FilingLensError, redact_secrets
from filinglens.settings import data_home

SECRET_KEYS = {"api_key", "cohere_api_key", "openai_api_key", "token", "authorization", "password"}

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
]


class StoreError(FilingLensError):
    """The results database cannot be opened or is damaged."""


def json_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON (first 24 hex digits)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:24]


def public_params(params: dict) -> dict:
    """Model parameters without secrets, for recording and cache keys."""
    return {k: v for k, v in sorted(params.items()) if k.lower() not in SECRET_KEYS and v is not None}


def call_cache_key(model_id: str, params: dict, prompt_hash: str | None, input_hash: str, sample_index: int) -> str:
    """The identity of one model call: same key, same answer (served from the cache)."""
    return json_hash([model_id, public_params(params), prompt_hash, input_hash, sample_index])


@dataclass
class CachedCall:
    response: str
    tokens_in: int
    tokens_out: int
    latency_ms: float


class Store:
    """The results database (``results.db`` in the data home unless ``path`` is given)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else data_home() / "results.db"
        try:
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"results database {self.path} cannot be used: {exc}") from exc

    # ------------------------------------------------------------------ schema

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
        done = {row[0] for row in self.db.execute("SELECT version FROM schema_migrations")}
        for number, sql in enumerate(MIGRATIONS, start=1):
            if number in done:
                continue
            with self.transaction():
                # another process (a batch driver, a reader) may have applied it since we looked
                if self.db.execute("SELECT 1 FROM schema_migrations WHERE version=?", (number,)).fetchone():
                    continue
                for statement in filter(str.strip, sql.split(";")):
                    self.db.execute(statement)
                self.db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (number, time.time()))

    @property
    def schema_version(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: a failure inside rolls the whole block back."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ runs

    def start_run(self, kind: str, config: dict, label: str | None = None, run_id: str | None = None) -> str:
        """Create (or reopen, to resume) a run and return its id."""
        run_id = run_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.db.execute(
            "INSERT INTO runs (id, kind, label, config, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status='running', finished_at=NULL",
            (run_id, kind, label, json.dumps(config, sort_keys=True, default=str), time.time()),
        )
        return run_id

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        self.db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?", (status, time.time(), run_id))

    def run(self, run_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        return dict(row) if row else None

    def runs(self, kind: str | None = None) -> list[dict]:
        sql = "SELECT * FROM runs" + (" WHERE kind=?" if kind else "") + " ORDER BY created_at DESC"
        return [dict(r) for r in self.db.execute(sql, (kind,) if kind else ())]

    # ------------------------------------------------------------------ model calls

    def cached_call(self, cache_key: str) -> CachedCall | None:
        """The latest successful call with this key, if any."""
        row = self.db.execute(
            "SELECT response, tokens_in, tokens_out, latency_ms FROM model_calls "
            "WHERE cache_key=? AND error IS NULL ORDER BY id DESC LIMIT 1",
            (cache_key,),
        ).fetchone()
        return CachedCall(row[0], row[1] or 0, row[2] or 0, row[3] or 0.0) if row else None

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
        cur = self.db.execute(
            "INSERT INTO model_calls (run_id, cache_key, model_id, params, prompt_ref, prompt_hash, input_hash, "
            "sample_index, response, tokens_in, tokens_out, latency_ms, cost_usd, error, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, cache_key, model_id, json.dumps(public_params(params), default=str), prompt_ref, prompt_hash,
                input_hash, sample_index, response, tokens_in, tokens_out, latency_ms, cost_usd, error, time.time(),
            ),
        )
        return cur.lastrowid

    def calls(self, run_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM model_calls" + (" WHERE run_id=?" if run_id else "") + " ORDER BY id"
        return [dict(r) for r in self.db.execute(sql, (run_id,) if run_id else ())]

    # ------------------------------------------------------------------ ratings

    def save_rating(self, run_id: str, rating: dict) -> None:
        """Insert or replace the rating of one cell (``rating['cell_key']``) in a run."""
        row = dict(rating)
        for key in ("evidence", "quotes"):
            row[key] = json.dumps(row.get(key) or [], ensure_ascii=False)
        row["run_id"] = run_id
        if row.get("error"):
            row["error"] = redact_secrets(str(row["error"]))
        row.setdefault("created_at", time.time())
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.db.execute(f"INSERT OR REPLACE INTO ratings ({columns}) VALUES ({marks})", tuple(row.values()))

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
                row = dict(r)
                row["evidence"] = json.loads(row["evidence"])
                row["quotes"] = json.loads(row["quotes"])
                out[row["cell_key"]] = row
        return out

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

    def finished_cells(self, run_id: str) -> set[str]:
        """Cells of a run that already have a successful rating (for resuming)."""
        return {r[0] for r in self.db.execute("SELECT cell_key FROM ratings WHERE run_id=? AND status='ok'", (run_id,))}

    def ratings(self, run_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM ratings" + (" WHERE run_id=?" if run_id else "") + " ORDER BY id"
        out = []
        for r in self.db.execute(sql, (run_id,) if run_id else ()):
            row = dict(r)
            row["evidence"] = json.loads(row["evidence"])
            row["quotes"] = json.loads(row["quotes"])
            out.append(row)
        return out
