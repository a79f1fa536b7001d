"""Batch runs: rate a whole market's 10-Ks, serially or on a Ray cluster, losing nothing when a worker dies.

``filinglens batch --tickers-file F --years 2015-2024`` (or ``PATHS...``, or
``--suite S``) rates every filing on every category, with ``--executor local``
(in this process, one filing after another) or ``--executor ray`` (a Ray
runtime started here, or the cluster at ``RAY_ADDRESS``).

**Unit of work: one filing.**  A worker fetches it (EDGAR units), parses,
chunks, embeds and indexes it, then rates the cells the driver asked for
(categories x prompt versions x models x samples) through the rating chain,
against a scratch in-memory results store (:class:`ScratchStore`).  It
returns plain records: the ratings (store rows) and every model call it made
(:func:`rate_unit`).

**The driver alone writes the results store.**  Per finished filing one
transaction inserts its model calls (idempotent by cache key), its ratings
(keyed by cell) and its ``batch_units`` row (:meth:`Store.import_results`).
Before dispatch it serves cache hits: a filing whose every cell already has a
successful rating in the store (any run; same filing bytes, model and prompt
hash) is not dispatched, its ratings are copied into the batch run.  An
unchanged re-run dispatches nothing; after a killed driver the next run (same
run id) resumes, since finished filings are cache hits.

**Faults.**  Ray re-runs a task whose worker process died (``--retries``,
Ray's ``max_retries``) on another worker.  Chunk ids are deterministic and
``ChunkStore.sync_filing`` makes a filing's stored chunks exactly its chunks,
so a filing half-indexed by a dead worker is completed, never duplicated; the
records of a dead attempt never reach the driver, so no rating or call is
counted twice.  A filing that fails (unreadable file, fetch error, model
error, retries exhausted) is recorded with its error and the batch goes on.

**The index.**  An embedded Chroma belongs to one process, so:

* ``FILINGLENS_CHROMA_URL`` set: every worker writes to and searches that
  Chroma server (``chroma run``), the shared index;
* ``--executor local`` without a server: the data home's embedded Chroma, in
  the driver's process (as ``filinglens rate``);
* ``--executor ray`` without a server: each worker process indexes into its
  own scratch index (a temporary folder; the filing is removed from it after
  rating, folders of dead workers are removed).  Ratings are the same; the
  shared index is not updated -- run a Chroma server to keep the chunks.

**Models.**  ``local`` runs the embedded model in each worker process (loaded
once per process); ``openai:NAME`` with ``endpoints`` spreads filings
round-robin over OpenAI-compatible servers (vLLM, ``llama_cpp.server``) that
serve the same model: the endpoint is not part of the call cache key.

Nothing here prints: progress goes through a :class:`BatchProgress`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import urlparse

from filinglens.errors import ConfigError, FilingLensError, IndexStoreError, InputError
from filinglens.processes import pid_alive
from filinglens.store import Store, json_hash

EXECUTORS = ("local", "ray")
DEFAULT_RETRIES = 3
#: Non-secret settings a Ray cluster's workers get from the driver (keys are never sent: set them on the workers).
FORWARDED_ENV = (
    "FILINGLENS_CHROMA_URL", "FILINGLENS_COLLECTION", "FILINGLENS_EMBEDDINGS", "FILINGLENS_THREADS",
    "FILINGLENS_EMBED_THREADS", "FILINGLENS_EDGAR_URL", "FILINGLENS_EDGAR_DATA_URL", "FILINGLENS_EDGAR_TIMEOUT",
    "FILINGLENS_EDGAR_TRIES", "FILINGLENS_EDGAR_BACKOFF", "FILINGLENS_EDGAR_MAX_BACKOFF", "FILINGLENS_EDGAR_DEADLINE",
    "SEC_USER_AGENT", "OLLAMA_HOST",
)
SCRATCH_DIR = "filinglens-scratch"


# --------------------------------------------------------------------------- what to rate


@dataclass
class Unit:
    """One filing to rate: a file (``file:<sha256>``) or an EDGAR filing (``edgar:<cik>:<accession>``)."""

    key: str
    source: str  # the path, or the EDGAR document URL
    label: str
    ticker: str | None = None
    content_hash: str | None = None  # sha256 of the document when known before dispatch
    ref: dict | None = None  # the EDGAR FilingRef (as a dict) for EDGAR units
    base_url: str | None = None  # the EDGAR host the ref was listed on (None: the default or the environment's)
    error: str | None = None  # could not even be listed (e.g. an unknown ticker): recorded as failed

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """One rating to produce for each filing: category x prompt version x model x sample."""

    category: str
    prompt_version: str
    prompt_hash: str
    model_id: str
    sample_index: int = 0

    def key(self, content_hash: str) -> str:
        """The cell key of this rating for a filing (the same as ``Rating.cell_key``)."""
        return "|".join([content_hash, self.category, self.prompt_hash, self.model_id, str(self.sample_index)])


@dataclass
class BatchSpec:
    """How every filing is rated."""

    categories: list[str] = field(default_factory=list)  # empty: every category
    prompt_versions: list[str] = field(default_factory=list)  # empty: each category's default version
    models: list[str] = field(default_factory=lambda: ["local"])
    samples: int = 1
    temperature: float = 0.0
    evidence_chars: int | None = None

    def cells(self) -> list[Cell]:
        """Every cell of one filing (prompts are loaded here: an unknown category or version fails now)."""
        from filinglens.prompts.loader import categories as all_categories, load_prompt

        if self.samples < 1:
            raise InputError("samples must be at least 1")
        if not self.models:
            raise InputError("give at least one model")
        for model_id in self.models:
            _check_model_id(model_id)
        out = []
        for model_id in self.models:
            for version in self.prompt_versions or [""]:  # "": the category's default version
                for category in self.categories or all_categories():
                    prompt = load_prompt(f"{category}@{version}" if version else category)
                    for sample in range(self.samples):
                        out.append(Cell(prompt.category, prompt.version, prompt.hash, model_id, sample))
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def _check_model_id(model_id: str) -> None:
    from filinglens.agents.models import parse_model_id, providers

    name, _ = parse_model_id(model_id)
    if name not in providers():
        raise ConfigError(f"unknown model '{model_id}' (see: filinglens models)")


def file_units(paths: Iterable[str | Path], ticker: str | None = None) -> list[Unit]:
    """Units for files and folders (folders searched for 10-K documents); the same bytes twice are one unit."""
    from filinglens.retrieval.ingest import expand_paths
    from filinglens.settings import sha256_file

    units: dict[str, Unit] = {}
    for path in expand_paths(paths):
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
        key = f"file:{digest}"
        label = f"{ticker.upper()} {path.name}" if ticker else path.name
        units.setdefault(key, Unit(key, str(Path(path).resolve()), label, ticker.upper() if ticker else None, digest))
    return list(units.values())


def read_tickers_file(path: str | Path) -> list[str]:
    """Tickers from a file: one per line (or separated by commas/spaces); ``#`` starts a comment."""
    from filinglens.retrieval.edgar import normalize_ticker

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the tickers file ({exc})") from exc
    tickers: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for word in re.split(r"[\s,;]+", line.split("#", 1)[0].strip()):
            if not word:
                continue
            try:
                symbol = normalize_ticker(word)
            except InputError:
                raise InputError(f"{path}:{number}: `{word}` is not a ticker") from None
            if symbol not in tickers:
                tickers.append(symbol)
    if not tickers:
        raise InputError(f"{path}: no tickers in the file")
    return tickers


def edgar_units(tickers: Sequence[str], years: str | None = None, *, base_url: str | None = None,
                client=None) -> list[Unit]:
    """Units for the 10-Ks EDGAR lists for ``tickers`` in ``years`` (listed here; fetched by the workers).

    A ticker that cannot be listed (unknown, EDGAR error) becomes one failed
    unit with its error; the others go on.  Needs ``SEC_USER_AGENT``.
    """
    from filinglens.retrieval import edgar

    edgar.parse_years(years)  # a bad range fails before any request
    http = client or edgar.EdgarClient(base_url)
    units: list[Unit] = []
    try:
        for ticker in tickers:
            symbol = edgar.normalize_ticker(ticker)
            try:
                cik, _title = edgar.resolve_cik(symbol, http)
                refs = edgar.list_filings(cik, years, client=http)
            except FilingLensError as exc:
                units.append(Unit(f"ticker:{symbol}", symbol, symbol, symbol, error=str(exc)))
                continue
            stored = {s.accession: s.metadata.get("sha256") for s in edgar.stored_filings(cik=cik)}
            for ref in refs:
                ref.ticker = symbol
                units.append(Unit(
                    f"edgar:{ref.cik}:{ref.accession}", ref.url, f"{symbol} FY{ref.fiscal_year} {ref.form}",
                    symbol, stored.get(ref.accession), ref.to_dict(), base_url,
                ))
            if not refs:
                units.append(Unit(f"ticker:{symbol}", symbol, symbol, symbol,
                                  error=f"EDGAR lists no 10-K for {symbol} {years or ''}".strip()))
    finally:
        if client is None:
            http.close()
    return units


def suite_units(suite) -> list[Unit]:
    """Units for an eval suite's filings (its paths; its tickers' 10-Ks from EDGAR for their years)."""
    units: dict[str, Unit] = {}
    for spec in suite.filings:
        if spec.paths:
            found = file_units(suite.resolve_paths(spec), ticker=spec.ticker)
        else:
            found = edgar_units([spec.ticker], spec.year_range)
        for unit in found:
            units.setdefault(unit.key, unit)
    return list(units.values())


def suite_spec(suite) -> BatchSpec:
    """A suite's categories, models, prompt versions, samples, temperature and evidence budget."""
    return BatchSpec(list(suite.category_list), list(suite.prompt_versions), list(suite.models), suite.samples,
                     suite.temperature, suite.evidence_chars)


def prepare(
    paths: Sequence[str | Path] = (),
    *,
    tickers_file: str | Path | None = None,
    tickers: Sequence[str] = (),
    years: str | None = None,
    suite: str | Path | None = None,
    categories: Sequence[str] = (),
    models: Sequence[str] = (),
    prompt_versions: Sequence[str] = (),
    samples: int | None = None,
    temperature: float | None = None,
    evidence_chars: int | None = None,
    base_url: str | None = None,
) -> tuple[list[Unit], BatchSpec, str]:
    """Units, spec and a label from the CLI's inputs: exactly one of paths, tickers (file) or a suite."""
    given = [bool(paths), bool(tickers_file or tickers), bool(suite)]
    if sum(given) != 1:
        raise InputError("give 10-K files or folders, or --tickers-file (with --years), or --suite -- one of them")
    if years and not (tickers_file or tickers):
        raise InputError("--years goes with --tickers-file (a suite names its own years)")
    if suite:
        from filinglens.evals.suite import load_suite

        loaded = load_suite(suite, {"models": list(models), "prompt_versions": list(prompt_versions),
                                    "categories": list(categories), "samples": samples, "temperature": temperature})
        spec = suite_spec(loaded)
        if evidence_chars:
            spec.evidence_chars = evidence_chars
        return suite_units(loaded), spec, f"suite {loaded.name}"
    spec = BatchSpec(list(categories), list(prompt_versions), list(models) or ["local"], samples or 1,
                     temperature or 0.0, evidence_chars)
    if paths:
        return file_units(paths), spec, f"{len(paths)} path(s)"
    symbols = list(tickers) + (read_tickers_file(tickers_file) if tickers_file else [])
    return edgar_units(symbols, years, base_url=base_url), spec, f"{len(symbols)} ticker(s) {years or 'all years'}"


def check_endpoints(endpoints: Sequence[str], models: Sequence[str]) -> list[str]:
    """Validated OpenAI-compatible endpoint URLs (only for ``openai:`` models)."""
    out = []
    for url in endpoints or ():
        parsed = urlparse(url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InputError(f"--endpoint `{url}` is not a URL like http://127.0.0.1:8080/v1")
        out.append(url.strip().rstrip("/"))
    if out and not all(m.startswith("openai:") for m in models):
        raise InputError("--endpoint serves OpenAI-compatible models: use --model openai:NAME")
    return out


# --------------------------------------------------------------------------- the worker side


class ScratchStore(Store):
    """An in-memory results store for one unit of work; call-cache lookups read through to ``cache``."""

    def __init__(self, cache: Store | None = None):
        super().__init__(Path(":memory:"))
        self.cache = cache

    def cached_call(self, cache_key: str):
        return super().cached_call(cache_key) or (self.cache.cached_call(cache_key) if self.cache else None)


_WORKER: dict[str, Any] = {}  # per worker process: the index and retrieval agent, kept between tasks


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _scratch_root() -> Path:
    """This process's scratch index folder; folders of processes that are gone are removed."""
    base = Path(tempfile.gettempdir()) / SCRATCH_DIR
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.name.isdigit() and int(old.name) != os.getpid() and not pid_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    return base / str(os.getpid())


def _index(options: dict):
    """The chunk store a unit of work writes to and searches (see the module doc)."""
    from filinglens.retrieval.index import ChunkStore, open_store

    mode = options.get("index", "default")
    key = f"{mode}:{options.get('chroma_url') or ''}"
    root = _scratch_root() if mode == "scratch" else None  # (cleans up after dead workers at every filing)
    if key not in _WORKER:
        if mode == "scratch":
            store = ChunkStore(root)
        elif mode == "server":
            store = open_store(url=options["chroma_url"])
        else:
            store = open_store()
        store.lock_wait = 24 * 3600.0  # workers of one machine take turns writing; none gives up
        _WORKER.clear()
        _WORKER[key] = store
    return _WORKER[key]


def _agent(chunk_store):
    from filinglens.retrieval.agent import RetrievalAgent

    agent = _WORKER.get("agent")
    if agent is None or agent.searcher.store is not chunk_store:
        agent = _WORKER["agent"] = RetrievalAgent(store=chunk_store)
    return agent


def _materialize(unit: dict) -> tuple[Path, dict]:
    """The local document of a unit (EDGAR units are fetched here) and metadata for ingest."""
    if unit.get("ref"):
        from filinglens.retrieval.edgar import fetch_ref

        fetched = fetch_ref(unit["ref"], base_url=unit.get("base_url"))
        ref = fetched.filing
        return fetched.path, {"ticker": ref.ticker, "cik": ref.cik, "company": ref.company,
                              "fiscal_year": ref.fiscal_year, "accession": ref.accession}
    path = Path(unit["source"])
    if not path.is_file():
        raise InputError(f"{path}: no such file on worker {worker_id()} (paths must be visible to every worker)")
    return path, {}


def _target(record: dict):
    from filinglens.agents.rating import Target

    return Target(
        filing_id=record["filing_id"], company=record.get("company") or None, ticker=record.get("ticker") or None,
        cik=record.get("cik") or None, fiscal_year=record.get("fiscal_year"),
        content_hash=record.get("source_hash") or record["filing_id"],
    )


def rate_unit(unit: dict, cells: Sequence[dict], options: dict, *, index=None, cache: Store | None = None,
              setup: Callable[[], None] | None = None) -> dict:
    """The unit of work: fetch, parse, chunk, embed, index and rate one filing; return its records.

    ``unit`` is :meth:`Unit.to_dict`, ``cells`` are :class:`Cell` dicts,
    ``options``: ``temperature``, ``evidence_chars``, ``index`` (``default``,
    ``server`` with ``chroma_url``, ``scratch``), ``endpoint``.  Writes no
    results store: the ratings (``ratings``, store rows) and model calls
    (``calls``) come back for the driver.  A ``FilingLensError`` becomes
    ``status="failed"`` with its message; a rating that fails is returned as
    a failed rating (and fails the unit).
    """
    from filinglens.agents.rating import RatingChain
    from filinglens.app import index_gatherer
    from filinglens.retrieval.facts import cached_financials
    from filinglens.prompts.loader import load_prompt
    from filinglens.retrieval.ingest import ingest_file

    t0 = time.perf_counter()
    out: dict[str, Any] = {"unit_key": unit["key"], "status": "failed", "error": None, "worker": worker_id(),
                           "endpoint": options.get("endpoint"), "ratings": [], "calls": [], "filing_hash": None,
                           "filing_id": None, "ingest": None}
    chunk_store = None
    try:
        if setup is not None:
            setup()
        chunk_store = index if index is not None else _index(options)
        path, meta = _materialize(unit)
        ingested = ingest_file(path, store=chunk_store, ticker=unit.get("ticker"), metadata=meta)
        out["ingest"] = {k: getattr(ingested, k) for k in ("status", "chunks", "embedded", "skipped", "seconds")}
        out["filing_id"] = ingested.filing_id
        records = chunk_store.filings(where={"filing_id": ingested.filing_id})
        if not records:
            raise IndexStoreError(f"{path}: indexed, but its chunks are not in the index at {chunk_store.location}")
        target = _target(records[0])
        out["filing_hash"] = target.content_hash
        out["label"] = target.label
        if unit.get("content_hash") and target.content_hash != unit["content_hash"]:
            raise InputError(f"{path} changed during the batch (its sha256 is not the one listed); run it again")
        scratch = ScratchStore(cache)
        gather = index_gatherer(_agent(chunk_store))
        chains: dict[str, RatingChain] = {}
        ratings = []
        for cell in cells:
            prompt = load_prompt(f"{cell['category']}@{cell['prompt_version']}")
            if prompt.hash != cell["prompt_hash"]:
                raise ConfigError(f"prompt {prompt.ref} on worker {worker_id()} differs from the driver's "
                                  f"(hash {prompt.hash} != {cell['prompt_hash']}): install the same prompts everywhere")
            chain = chains.get(cell["model_id"])
            if chain is None:
                chain = chains[cell["model_id"]] = RatingChain(
                    scratch, model_id=cell["model_id"], temperature=options.get("temperature", 0.0), gather=gather,
                    facts=lambda t, source=Path(path): cached_financials(source, t.content_hash.split("#", 1)[0]),
                    connection={"base_url": options["endpoint"]} if options.get("endpoint") else {},
                )
                if options.get("evidence_chars"):
                    chain.evidence_chars = options["evidence_chars"]
            ratings.append(chain.rate(target, cell["category"], cell["prompt_version"], cell["sample_index"]))
        out["ratings"] = [r.to_row() for r in ratings]
        out["calls"] = scratch.calls()
        scratch.close()
        failed = [r for r in ratings if r.status != "ok"]
        if failed:
            out["error"] = f"{len(failed)} of {len(ratings)} ratings failed: {failed[0].category}: {failed[0].error}"
        else:
            out["status"] = "done"
    except FilingLensError as exc:
        out["error"] = str(exc)
    finally:
        if chunk_store is not None and options.get("index") == "scratch" and out.get("filing_id"):
            try:
                chunk_store.delete_filing(out["filing_id"])
            except FilingLensError:
                pass  # the folder goes with the process anyway
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _remote_unit(unit: dict, cells: list[dict], options: dict, setup=None) -> dict:
    """``rate_unit`` in a Ray worker: threads set to the CPUs Ray gave the task."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU") or 1
    os.environ.setdefault("FILINGLENS_THREADS", str(max(1, int(cpus))))
    os.environ.setdefault("FILINGLENS_EMBED_THREADS", str(max(1, int(cpus))))
    return rate_unit(unit, cells, options, setup=setup)


# --------------------------------------------------------------------------- progress and report


@dataclass
class BatchStats:
    """Counts so far: filings done / failed / served from the store, throughput and ETA."""

    total: int = 0
    cached: int = 0
    done: int = 0
    failed: int = 0
    dispatched: int = 0  # filings sent to workers
    worked: int = 0  # of those, finished (done or failed)
    ratings: int = 0
    failed_ratings: int = 0
    calls_made: int = 0
    started: float = field(default_factory=time.monotonic)
    dispatch_started: float | None = None

    @property
    def finished(self) -> int:
        return self.cached + self.done + self.failed

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def per_hour(self) -> float | None:
        """Filings finished by workers per hour (cache hits excluded)."""
        if not self.worked or self.dispatch_started is None:
            return None
        return self.worked / max(time.monotonic() - self.dispatch_started, 1e-9) * 3600

    @property
    def eta_s(self) -> float | None:
        """Seconds until the dispatched filings are finished, at the rate so far."""
        rate = self.per_hour
        if rate is None:
            return None
        return (self.dispatched - self.worked) / rate * 3600

    def to_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items() if k not in ("started", "dispatch_started")}
        data.update(finished=self.finished, elapsed_s=round(self.elapsed_s, 2),
                    per_hour=None if self.per_hour is None else round(self.per_hour, 1),
                    eta_s=None if self.eta_s is None else round(self.eta_s, 1))
        return data


class BatchProgress:
    """Callbacks for a progress display (all optional)."""

    def started(self, stats: BatchStats, info: dict) -> None: ...

    def unit_finished(self, outcome: dict, stats: BatchStats) -> None: ...


@dataclass
class BatchReport:
    """The outcome of a batch: its run, how it ran, counts, and one outcome per filing."""

    run_id: str
    executor: str
    workers: int
    index: str
    stats: BatchStats
    outcomes: list[dict]
    seconds: float = 0.0

    @property
    def failures(self) -> list[dict]:
        return [o for o in self.outcomes if o["status"] == "failed"]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "executor": self.executor, "workers": self.workers, "index": self.index,
                "seconds": round(self.seconds, 2), "stats": self.stats.to_dict(), "filings": self.outcomes}


# --------------------------------------------------------------------------- the driver


def batch_run_id(units: Sequence[Unit], spec: BatchSpec, cells: Sequence[Cell]) -> str:
    """Deterministic: the same filings and settings give the same run (so a killed batch resumes it)."""
    key = json_hash({"units": sorted(u.key for u in units), "cells": sorted(json_hash(asdict(c)) for c in cells),
                     "temperature": spec.temperature, "evidence_chars": spec.evidence_chars})
    return f"batch-{key[:16]}"


def index_mode(executor: str) -> tuple[str, str | None]:
    """(mode, Chroma URL) for an executor: ``server`` when FILINGLENS_CHROMA_URL is set, else see the module doc."""
    from filinglens.retrieval.index import URL_ENV

    url = os.environ.get(URL_ENV) or None
    if url:
        return "server", url
    return ("scratch", None) if executor == "ray" else ("default", None)


def _outcome(unit: Unit, status: str, **values) -> dict:
    row = {"unit_key": unit.key, "source": unit.source, "label": unit.label, "status": status,
           "filing_hash": unit.content_hash, "filing_id": None, "error": None, "ratings": 0, "failed_ratings": 0,
           "worker": None, "seconds": None}
    row.update({k: v for k, v in values.items() if k in row})
    return row


def run_batch(
    units: Sequence[Unit],
    spec: BatchSpec | None = None,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    endpoints: Sequence[str] = (),
    retries: int = DEFAULT_RETRIES,
    cpus_per_task: float = 1,
    store: Store | None = None,
    run_id: str | None = None,
    label: str | None = None,
    progress: BatchProgress | None = None,
    worker_setup: Callable[[], None] | None = None,
) -> BatchReport:
    """Rate every unit x cell; the driver (this process) alone writes ``store``.

    ``executor``: ``local`` (here, one filing at a time) or ``ray`` (a local
    Ray runtime with ``workers`` CPUs, or the cluster at ``address`` /
    ``RAY_ADDRESS``).  ``endpoints``: OpenAI-compatible servers for an
    ``openai:`` model, one per filing in turn.  ``retries``: how often Ray
    re-runs a filing whose worker died.  ``worker_setup`` runs in the worker
    before each filing (tests register scripted models with it).
    """
    if executor not in EXECUTORS:
        raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, not `{executor}`")
    if workers is not None and workers < 1:
        raise InputError("--workers must be at least 1")
    spec = spec or BatchSpec()
    progress = progress or BatchProgress()
    cells = spec.cells()
    endpoints = check_endpoints(endpoints, spec.models)
    store = store or Store()
    run_id = run_id or batch_run_id(units, spec, cells)
    mode, chroma_url = index_mode(executor)
    if mode == "server":  # fail now, with the server's address, rather than once per filing
        from filinglens.retrieval.index import open_store

        open_store(url=chroma_url)
    config = {"executor": executor, "filings": len(units), "spec": spec.to_dict(), "endpoints": len(endpoints)}
    store.start_run("batch", config, label=label, run_id=run_id)
    stats = BatchStats(total=len(units))
    outcomes: dict[str, dict] = {}

    def save_progress() -> None:
        """Counts, throughput and ETA in the run, for any reader (the app's batch panel, another shell)."""
        store.update_run(run_id, config={"progress": stats.to_dict(), "driver": {
            "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}})

    def record(outcome: dict) -> None:
        outcomes[outcome["unit_key"]] = outcome
        setattr(stats, outcome["status"], getattr(stats, outcome["status"]) + 1)  # done, failed or cached
        save_progress()
        progress.unit_finished(outcome, stats)

    save_progress()

    # -- cache hits and filings that could not be listed: no dispatch
    in_run = store.finished_cells(run_id)  # cells this run already holds (a resumed run)
    todo: list[tuple[Unit, list[Cell], dict[str, dict]]] = []
    for unit in units:
        if unit.error:
            outcome = _outcome(unit, "failed", error=unit.error)
            store.save_batch_unit(run_id, outcome)
            record(outcome)
            continue
        previous = _previous(store, unit.key)
        content_hash = unit.content_hash or previous.get("filing_hash")
        if content_hash is None:
            todo.append((unit, cells, {}))
            continue
        have = store.ok_ratings(c.key(content_hash) for c in cells)
        missing = [c for c in cells if c.key(content_hash) not in have]
        if missing:
            todo.append((unit, missing, have))
            continue
        outcome = _outcome(unit, "cached", filing_hash=content_hash, filing_id=previous.get("filing_id"),
                           ratings=len(have), worker=previous.get("worker"))
        store.import_results(run_id, [r for k, r in have.items() if k not in in_run], unit=outcome)
        stats.ratings += len(have)
        record(outcome)

    def finish(unit: Unit, result: dict, have: dict[str, dict]) -> None:
        ratings = result.get("ratings") or []
        ok = sum(1 for r in ratings if r.get("status") == "ok")
        outcome = _outcome(
            unit, result["status"], label=result.get("label") or unit.label,
            filing_hash=result.get("filing_hash") or unit.content_hash,
            filing_id=result.get("filing_id"), error=result.get("error"), ratings=ok + len(have),
            failed_ratings=len(ratings) - ok, worker=result.get("worker"), seconds=result.get("seconds"),
        )
        earlier = [r for k, r in have.items() if k not in in_run]  # cells rated before, in another run
        store.import_results(run_id, [*earlier, *ratings], result.get("calls") or [], unit=outcome)
        stats.worked += 1
        stats.ratings += ok + len(have)
        stats.failed_ratings += len(ratings) - ok
        stats.calls_made += len(result.get("calls") or [])
        record(outcome)

    options = {"temperature": spec.temperature, "evidence_chars": spec.evidence_chars, "index": mode,
               "chroma_url": chroma_url}
    jobs = []
    for n, (unit, unit_cells, have) in enumerate(todo):
        job_options = dict(options, endpoint=endpoints[n % len(endpoints)] if endpoints else None)
        jobs.append((unit, [asdict(c) for c in unit_cells], job_options, have))
    stats.dispatched = len(jobs)
    stats.dispatch_started = time.monotonic()
    used_workers = 1
    try:
        if executor == "local" or not jobs:
            progress.started(stats, {"executor": executor, "workers": 1, "index": _describe_index(mode, chroma_url),
                                     "run_id": run_id})
            if executor == "local":
                _run_local(jobs, finish, store, worker_setup)
        if executor == "ray" and jobs:
            used_workers = _run_ray(jobs, finish, stats, progress, run_id, mode, chroma_url, workers=workers,
                                    address=address, retries=retries, cpus_per_task=cpus_per_task,
                                    setup=worker_setup)
    except BaseException:
        try:
            save_progress()
        except Exception:  # the store itself may be what failed: keep the original error
            pass
        store.finish_run(run_id, "interrupted")
        raise
    save_progress()
    store.finish_run(run_id, "finished" if not stats.failed else "finished-with-failures")
    ordered = [outcomes[u.key] for u in units if u.key in outcomes]
    return BatchReport(run_id, executor, used_workers, _describe_index(mode, chroma_url), stats, ordered,
                       stats.elapsed_s)


def _previous(store: Store, unit_key: str) -> dict:
    """The latest batch outcome of a filing that knew its bytes' hash (any run), or {}."""
    for row in store.batch_units(unit_key=unit_key):
        if row.get("filing_hash"):
            return row
    return {}


def _describe_index(mode: str, url: str | None) -> str:
    return {
        "server": f"Chroma server {url} (shared by all workers)",
        "scratch": "per-worker scratch index (ratings only; the shared index is not updated: set FILINGLENS_CHROMA_URL)",
        "default": "the data home's index, in this process",
    }[mode]


def _run_local(jobs, finish, store: Store, setup) -> None:
    from filinglens.retrieval.index import open_store

    for unit, cells, options, have in jobs:
        index = open_store(url=options.get("chroma_url")) if options["index"] == "server" else open_store()
        try:
            result = rate_unit(unit.to_dict(), cells, options, index=index, cache=store, setup=setup)
        except Exception as exc:  # a bug in one filing's path must not stop the batch
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "worker": worker_id()}
        finish(unit, result, have)


def ray_env() -> dict[str, str]:
    """The settings a Ray cluster's workers get from the driver (``FORWARDED_ENV`` that are set), with the
    libraries' usage analytics off (``settings.TELEMETRY_OFF``)."""
    from filinglens.settings import TELEMETRY_OFF

    return {**TELEMETRY_OFF, **{name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}}


def start_ray(workers: int | None, address: str | None = None) -> bool:
    """Connect to ``address`` / ``RAY_ADDRESS``, or start a local Ray runtime with ``workers`` CPUs.

    Returns True when this call started (and so must shut down) the runtime.
    No dashboard, no usage statistics, nothing beyond loopback for a local runtime.
    """
    import logging
    import sys

    from filinglens import settings

    settings.disable_telemetry()
    address = address or settings.get().ray_address or None
    host = (urlparse(address if "://" in address else f"ray://{address}").hostname or "") if address else ""
    if (not address or host in ("127.0.0.1", "localhost", "::1")) and "ray" not in sys.modules:
        # a runtime on this machine stays on loopback: Ray otherwise swaps 127.0.0.1 for the machine's
        # address (and binds it), which a head started on 127.0.0.1 does not listen on
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if address and not os.environ.get("RAY_AUTH_MODE") and _ray_token_available():
        # `ray start` clusters require their token, which Ray (read at import) does not send unless asked to
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'filinglens[cluster]' (or: pip install ray)") from None
    if ray.is_initialized():
        return False
    if address and "://" not in address and re.fullmatch(r"[^:]+:\d+", address):
        # Ray retries an unreachable head for many minutes: say so at once
        name, port = address.rsplit(":", 1)
        try:
            socket.create_connection((name, int(port)), timeout=10).close()
        except OSError as exc:
            raise ConfigError(f"the Ray cluster at {address} is not reachable ({exc.strerror or exc}); start it "
                              f"with `ray start --head` or unset RAY_ADDRESS for a local runtime") from None
    try:
        if address:
            ray.init(address=address, runtime_env={"env_vars": ray_env()}, log_to_driver=False,
                     logging_level=logging.ERROR)
        else:  # address="local": a new runtime, even when `ray start` left one running on this machine
            ray.init(address="local", num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.ERROR, object_store_memory=256 * 1024 * 1024,
                     _node_ip_address="127.0.0.1")
    except FilingLensError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; one readable line
        where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if address and "auth" in repr(exc.__cause__ or exc).lower():
            text += " (set RAY_AUTH_MODE=token and give the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        raise ConfigError(f"cannot use {where}: {text}") from exc
    return True


def _settings():
    from filinglens import settings

    return settings.get()


def _ray_token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    return os.path.isfile(path)


def _ray_error(exc: BaseException, retries: int) -> str:
    import ray

    if isinstance(exc, ray.exceptions.WorkerCrashedError) or "worker died" in str(exc).lower():
        return f"the worker died {retries + 1} time(s) on this filing (retries exhausted): {type(exc).__name__}"
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"[:500]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]


def _run_ray(jobs, finish, stats: BatchStats, progress: BatchProgress, run_id: str, mode: str, chroma_url,
             *, workers, address, retries: int, cpus_per_task: float, setup) -> int:
    started = start_ray(workers, address)  # first: it sets Ray's environment before Ray is imported
    import ray

    stats.dispatch_started = time.monotonic()  # throughput without Ray's start-up
    try:
        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        slots = max(1, int(total_cpus // cpus_per_task))
        used = min(workers or slots, slots)
        progress.started(stats, {"executor": "ray", "workers": used, "index": _describe_index(mode, chroma_url),
                                 "run_id": run_id, "address": address or _settings().ray_address or "local"})
        remote = ray.remote(_remote_unit).options(max_retries=retries, retry_exceptions=False,
                                                  num_cpus=cpus_per_task)
        queue = deque(jobs)
        pending: dict = {}
        window = 2 * used
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    unit, cells, options, have = queue.popleft()
                    pending[remote.remote(unit.to_dict(), cells, options, setup)] = (unit, have)
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    unit, have = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = {"status": "failed", "error": _ray_error(exc, retries)}
                    finish(unit, result, have)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return used
    finally:
        if started:
            ray.shutdown()
