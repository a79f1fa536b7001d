"""The application layer: what the CLI, the eval harness, the app and batch workers call.

It resolves filings (ingesting them on demand), builds the evidence gatherer
and runs rating batches with their lifecycle in the results store.  Nothing
here prints: progress goes through callbacks.

``resolve_targets`` turns paths or ticker/year into indexed filings (ingesting
them first: ingest is idempotent, so an indexed filing costs nothing);
``index_gatherer`` collects a rating prompt's evidence from one filing with
the hybrid searcher; ``run_ratings`` runs a batch through the rating chain,
saving each rating as it finishes so an interrupted batch resumes.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Callable, Sequence

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.rating import Rating, RatingChain, Target, rate_many
from filinglens.errors import FilingLensError, InputError
from filinglens.prompts.loader import RatingPrompt
from filinglens.processes import pid_alive
from filinglens.retrieval.filing import parse_years
from filinglens.store import Store


def _target(record: dict) -> Target:
    return Target(
        filing_id=record["filing_id"],
        company=record.get("company") or None,
        ticker=record.get("ticker") or None,
        cik=record.get("cik") or None,
        fiscal_year=record.get("fiscal_year"),
        content_hash=record.get("source_hash") or record["filing_id"],
    )


def resolve_targets(
    paths: Sequence[Path] = (), ticker: str | None = None, year: str | None = None, progress=None
) -> list[Target]:
    """Indexed filings for ``paths`` (ingested if needed) or for ``ticker`` and ``year``."""
    from filinglens.retrieval.index import open_store
    from filinglens.retrieval.ingest import ingest

    years = parse_years(year)
    store = open_store()
    if paths:
        results = ingest(paths, ticker=ticker, store=store, progress=progress)
        failed = [r for r in results if r.status == "failed"]
        if failed and len(failed) == len(results):
            raise InputError(f"{failed[0].source}: {failed[0].error}")
        wanted = {r.filing_id for r in results if r.status != "failed"}
        records = [f for f in store.filings() if f["filing_id"] in wanted]
    elif ticker:
        def indexed():
            return [
                f for f in store.filings()
                if (f.get("ticker") or "").upper() == ticker.upper()
                and (years is None or f.get("fiscal_year") in years)
            ]

        records = indexed()
        if not records:  # fetch and index them (needs SEC_USER_AGENT)
            ingest(ticker=ticker, years=year, store=store, progress=progress)
            records = indexed()
    else:
        raise InputError("give a 10-K file or folder, or --ticker with --year")
    if not records:
        raise InputError(f"no indexed 10-K for {ticker or paths} {year or ''}".strip())
    return [_target(r) for r in sorted(records, key=lambda r: (r.get("ticker") or "", r.get("fiscal_year") or 0))]


def index_gatherer(agent=None, exclude_items: Sequence[str] = (),
                   only_items: Sequence[str] = ()) -> Callable[[RatingPrompt, Target], list[EvidenceItem]]:
    """Evidence for a rating prompt from one indexed filing, found by the retrieval agent
    with the prompt's own queries (its likely items first, then the whole filing).

    ``exclude_items`` (e.g. ``["1A"]``) leaves those Items out of the evidence; ``only_items``
    (e.g. ``["7"]``) keeps only those Items (a section-by-section comparison).
    """
    opened: list = [agent]  # opened on first use: the index may be built after this is made
    only = {str(i).upper() for i in only_items}
    excluded = {str(i).upper() for i in exclude_items}

    def gather(prompt: RatingPrompt, target: Target) -> list[EvidenceItem]:
        from filinglens.retrieval.agent import RetrievalAgent

        if opened[0] is None:
            opened[0] = RetrievalAgent()
        k = prompt.retrieval.evidence_chunks
        items = sorted(only) if only else [i for i in prompt.retrieval.items if i.upper() not in excluded]
        wide = 3 * k if (excluded or only) else k  # room for what the filter drops

        def wanted(e) -> bool:
            item = str(e.item).upper()
            return item not in excluded and (not only or item in only)

        asked = [i for i in prompt.indicators if i.question and i.queries]
        if not asked:
            evidence = opened[0].retrieve(
                prompt.description, queries=prompt.retrieval.queries, items=items,
                filing_id=target.filing_id, k=wide,
            )
        else:  # the indicators method: each indicator's own queries, merged in turn
            ranked = [[e for e in opened[0].retrieve(i.question, queries=i.queries, items=items,
                                                     filing_id=target.filing_id, k=wide) if wanted(e)]
                      for i in asked]
            evidence = interleave(ranked, wide)
        kept = [EvidenceItem.from_evidence(e) for e in evidence if wanted(e)]
        return kept[:k]

    return gather


def interleave(ranked: Sequence[Sequence], k: int) -> list:
    """Merge ranked lists in turn (first of each, then second of each, ...), without repeats, up to ``k``."""
    out, seen = [], set()
    for depth in range(max((len(r) for r in ranked), default=0)):
        for items in ranked:
            if depth < len(items) and items[depth].chunk_id not in seen:
                seen.add(items[depth].chunk_id)
                out.append(items[depth])
                if len(out) >= k:
                    return out
    return out


def index_facts() -> Callable[[Target], object]:
    """The key figures (``filinglens.retrieval.facts.Financials``) of an indexed filing, read from its source
    file when that file is still there and unchanged (else None: the indicators fall back to questions)."""
    cache: dict[str, object] = {}

    def facts(target: Target):
        from filinglens.retrieval.facts import cached_financials
        from filinglens.retrieval.index import open_store
        from filinglens.settings import sha256_file

        content_hash = target.content_hash.split("#", 1)[0]  # metamorphic variants rate the same filing
        if content_hash not in cache:
            record = next((f for f in open_store().filings() if f["filing_id"] == target.filing_id), None)
            source = Path(record["source"]) if record and record.get("source") else None
            found = None
            if source is not None and source.is_file() and sha256_file(source) == content_hash:
                found = cached_financials(source, content_hash)
            cache[content_hash] = found
        return cache[content_hash]

    return facts


def run_ratings(
    targets: Sequence[Target],
    categories: Sequence[str],
    *,
    model_id: str = "local",
    prompt_version: str | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    evidence_chars: int | None = None,
    store: Store | None = None,
    run_id: str | None = None,
    label: str | None = None,
    gather=None,
    facts=None,
    progress: Callable[[Rating], None] | None = None,
) -> tuple[str, list[Rating]]:
    """Rate every target × category × sample into a run of the results store; returns (run id, ratings).

    ``prompt_version`` None: each category's default version, or its newest when it lacks that one (a new
    category with only ``v1`` is rated beside the others); each rating records the version it used.
    """
    from filinglens.prompts.loader import DEFAULT_RATING_VERSION

    store = store or Store()
    config = {"model": model_id, "prompt_version": prompt_version or DEFAULT_RATING_VERSION, "samples": samples,
              "temperature": temperature, "categories": list(categories), "filings": [t.filing_id for t in targets]}
    run_id = store.start_run("rate", config, label=label, run_id=run_id)
    chain = RatingChain(store, model_id=model_id, temperature=temperature, run_id=run_id,
                        gather=gather or index_gatherer(), facts=facts if facts is not None else
                        (index_facts() if gather is None else None))
    if evidence_chars:
        chain.evidence_chars = evidence_chars
    try:
        ratings = rate_many(chain, targets, categories, prompt_version, samples, progress)
    except BaseException:
        store.finish_run(run_id, "interrupted")
        raise
    store.finish_run(run_id, "finished" if all(r.status == "ok" for r in ratings) else "finished-with-failures")
    return run_id, ratings


def rate(
    paths: Sequence[Path | str] = (),
    *,
    ticker: str | None = None,
    year: str | int | None = None,
    categories: Sequence[str] | None = None,
    model_id: str | None = None,
    prompt_version: str | None = None,
    samples: int = 1,
    progress: Callable[[Rating], None] | None = None,
) -> list[Rating]:
    """Rate 10-Ks (files/folders, or a ticker and years) on categories; ingests them first if needed.

    >>> ratings = rate(["aapl-10-k.html"], categories=["environment"], model_id="fake")
    """
    from filinglens.agents.models import DEFAULT_MODEL
    from filinglens.prompts.loader import categories as all_categories

    targets = resolve_targets([Path(p) for p in paths], ticker, None if year is None else str(year))
    _, ratings = run_ratings(
        targets, list(categories or all_categories()), model_id=model_id or DEFAULT_MODEL,
        prompt_version=prompt_version, samples=samples, progress=progress,
    )
    return ratings


def ask(
    question: str,
    *,
    ticker: str | None = None,
    year: int | None = None,
    model_id: str | None = None,
    k: int = 6,
    prompt_version: str | None = None,
):
    """Answer a question from the indexed 10-Ks with citations (an ``agents.qa.Answer``)."""
    from filinglens.agents.models import DEFAULT_MODEL
    from filinglens.agents.qa import answer_question
    from filinglens.retrieval.agent import RetrievalAgent

    agent = RetrievalAgent()
    evidence = agent.retrieve(question, ticker=ticker, year=year, k=k)
    return answer_question(question, evidence, store=Store(), model_id=model_id or DEFAULT_MODEL,
                           prompt_version=prompt_version,
                           statements=lambda keys: agent.statement_evidence(question, keys, ticker=ticker, year=year))


# --------------------------------------------------------------------------- analyses: trends and comparisons


def _analysis_dir(kind: str, key: str) -> Path:
    from filinglens.settings import subdir

    return subdir("analyses") / f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)[:80]}"


def ratings_panel(store: Store | None = None):
    """The ratings panel of the whole results store (see :func:`filinglens.analysis.panel.panel_frame`)."""
    from filinglens.analysis.panel import panel_frame

    store = store or Store()
    return panel_frame(store.ratings(), store.runs())


def trends(
    tickers: Sequence[str] = (),
    years: str | None = None,
    categories: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    *,
    store: Store | None = None,
    out_dir: str | Path | None = None,
    write: bool = True,
) -> dict:
    """Trends over fiscal years from the ratings in the store; writes PNG, HTML, JSON and CSV unless ``write=False``.

    Returns ``{"trends", "averages"}`` (DataFrames), ``"files"`` and ``"out_dir"``.
    """
    from filinglens.analysis.outputs import write_trends
    from filinglens.analysis.panel import averages, filter_panel, trend_table

    frame = ratings_panel(store)
    wanted_years = parse_years(years)
    lo, hi = (wanted_years[0], wanted_years[-1]) if wanted_years else (None, None)
    chosen = filter_panel(frame, tickers, (lo, hi), categories, raters)
    if chosen.empty:
        have = ", ".join(sorted({f"{c} FY{y}" for c, y in zip(frame["company"], frame["fiscal_year"])})[:12])
        wanted = " ".join(filter(None, [",".join(tickers) or "any company", years or "", ",".join(categories or [])]))
        raise InputError(f"no ratings in the store for {wanted}" + (f" (rated: {have})" if have else
                                                                    " (the store has no ratings: run `rate` first)"))
    table = trend_table(chosen)
    avgs = averages(table)
    result = {"trends": table, "averages": avgs, "files": {}, "out_dir": None}
    if write:
        out = Path(out_dir) if out_dir else _analysis_dir("trends", "-".join(tickers) or "all")
        selection = {"tickers": list(tickers), "years": years, "categories": list(categories or []),
                     "raters": list(raters or [])}
        title = f"Trends: {', '.join(tickers) or 'all companies'}" + (f" FY{years}" if years else "")
        result["files"] = write_trends(table, avgs, out, title=title, selection=selection)
        result["out_dir"] = str(out)
    return result


def compare_targets(tickers: Sequence[str], year: int, progress=None) -> list[Target]:
    """One indexed (or fetched and indexed) 10-K per ticker for fiscal ``year``; an error names the missing ones."""
    targets, missing = [], []
    seen = set()
    for ticker in tickers:
        key = ticker.strip().upper()
        if not key or key in seen:
            continue
        seen.add(key)
        try:
            found = [t for t in resolve_targets((), key, str(year), progress=progress) if t.fiscal_year == year]
        except FilingLensError as exc:  # not indexed and not fetchable (unknown, no SEC_USER_AGENT, EDGAR down)
            missing.append(f"{key} ({exc})")
            continue
        if not found:
            missing.append(f"{key} (no 10-K for fiscal {year})")
            continue
        targets.append(found[-1])
    if missing:
        raise InputError(f"cannot compare without a FY{year} 10-K of: {'; '.join(missing)}")
    if len(targets) < 2:
        raise InputError("a comparison needs at least two different companies")
    return targets


def check_item(item: str | None) -> str | None:
    """A 10-K Item id in canonical form (``"1a"`` → ``"1A"``), None for None; ``InputError`` otherwise."""
    if item is None:
        return None
    from filinglens.retrieval.structure import item_ids

    canonical = {i.upper(): i for i in item_ids()}
    key = str(item).strip().upper().removeprefix("ITEM").strip()
    if key not in canonical:
        raise InputError(f"--item must be a 10-K Item such as 1, 1A or 7, not `{str(item)[:20]}`")
    return canonical[key]


def run_comparison(
    targets: Sequence[Target],
    category: str,
    *,
    model_id: str = "local",
    prompt_version: str | None = None,
    compare_version: str | None = None,
    samples: int = 1,
    store: Store | None = None,
    gather=None,
    run_id: str | None = None,
    label: str | None = None,
    out_dir: str | Path | None = None,
    n_boot: int = 1000,
    model=None,
    progress: Callable | None = None,
    item: str | None = None,
) -> tuple[str, dict]:
    """Judge every pair of ``targets`` in both orders, rank them (Bradley–Terry) and write the outputs.

    ``item`` (e.g. ``"7"``) compares the companies on that Item of their 10-Ks alone (the category's
    questions asked of that section). Returns (run id, result dict as in ``compare.json``).
    ``progress(judgment, done, total)`` after each judgment.
    """
    from filinglens.agents.compare import PairJudge, judge_all, target_label
    from filinglens.analysis.compare import analyse
    from filinglens.analysis.outputs import write_comparison

    store = store or Store()
    item = check_item(item)
    judge = PairJudge(store, category, model_id=model_id, prompt_version=prompt_version,
                      compare_version=compare_version, model=model,
                      gather=gather or index_gatherer(only_items=[item] if item else ()))
    labels = [target_label(t) for t in targets]
    years = sorted({t.fiscal_year for t in targets if t.fiscal_year})
    config = {"model": model_id, "prompt_version": judge.rating_prompt.version, "compare_prompt": judge.prompt.ref,
              "category": category, "item": item, "samples": samples, "companies": labels,
              "filings": [t.filing_id for t in targets], "years": years}
    what = f"{category}, Item {item}" if item else category
    run_id = store.start_run("compare", config, label=label or f"compare {what}: {' '.join(labels)}",
                             run_id=run_id)
    judge.run_id = run_id
    try:
        judgments = judge_all(judge, targets, samples, progress)
    except BaseException:
        store.finish_run(run_id, "interrupted")
        raise
    result = {
        "run_id": run_id, "category": category, "item": item, "year": years[0] if len(years) == 1 else years,
        "model": model_id, "prompt_version": prompt_version, "compare_prompt": judge.prompt.ref,
        "compare_prompt_hash": judge.prompt.hash, "samples": samples,
        "filings": [{"company": lab, "filing_id": t.filing_id, "fiscal_year": t.fiscal_year, "label": t.label}
                    for lab, t in zip(labels, targets)],
        **analyse(labels, judgments, n_boot=n_boot),
        "judgments": [j.to_dict() for j in judgments],
        "counts": {"judgments": len(judgments), "failed": sum(1 for j in judgments if j.status != "ok"),
                   "model_calls": sum(j.model_calls for j in judgments),
                   "cached_calls": sum(j.cached_calls for j in judgments)},
    }
    out = Path(out_dir) if out_dir else _analysis_dir("compare", run_id)
    result["files"] = write_comparison(result, out)
    result["out_dir"] = str(out)
    ok = result["counts"]["failed"] == 0
    store.update_run(run_id, config={"out_dir": str(out)})
    store.finish_run(run_id, "finished" if ok else "finished-with-failures")
    return run_id, result


def load_comparison(run: dict) -> dict | None:
    """The ``compare.json`` a finished comparison run wrote (None if it has none)."""
    import json

    config = run.get("config") or {}
    if isinstance(config, str):
        config = json.loads(config or "{}")
    out = config.get("out_dir")
    path = Path(out) / "compare.json" if out else None
    if not path or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- uploads


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded 10-K in the data home (``uploads/<sha256>/<name>``) after checking it is one.

    Refused with an ``InputError`` (and nothing written): a name without a 10-K
    suffix, an empty or oversized file, a document that does not parse as a
    10-K (an 8-K, a 10-Q, junk).
    """
    import hashlib

    from filinglens.retrieval.ingest import SUFFIXES
    from filinglens.retrieval.parse import MAX_BYTES, parse_bytes
    from filinglens.settings import atomic_write, subdir

    base = Path(str(name).replace("\\", "/")).name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:120]
    if not safe or Path(safe).suffix.lower() not in SUFFIXES:
        raise InputError(f"{base or 'upload'}: not a 10-K document (expected {', '.join(SUFFIXES)})")
    if not data:
        raise InputError(f"{base}: the file is empty")
    if len(data) > MAX_BYTES:
        raise InputError(f"{base}: {len(data) / 2**20:.0f} MB is larger than any 10-K document "
                         f"({MAX_BYTES // 2**20} MB limit)")
    parse_bytes(data, source=base)  # raises InputError / NotA10KError with the reason
    folder = subdir("uploads") / hashlib.sha256(data).hexdigest()[:16]
    path = folder / safe
    if not path.is_file():
        with atomic_write(path) as handle:
            handle.write(data)
    return path


# --------------------------------------------------------------------------- background jobs
#
# A job is a results-store run (kind "rate" or "compare") whose config holds the
# request, and whose ``job`` entry holds the phase, progress, errors, the worker
# (pid, host, thread) and a heartbeat. The work runs in a thread of the process
# that started it (the app's server); any process can read its state from the
# store, request a cancel (``cancel_requested``), or resume a job whose worker
# is gone. Ratings are saved as they finish, and every model call is cached, so
# a resumed job only does what is missing.

JOB_STALE_S = 600.0
JOB_KINDS = ("rate", "compare", "eval")
_JOBS: dict = {}  # run id -> thread, in this process


class JobCancelled(Exception):
    """Raised inside a job's callbacks when a cancel was requested (not a FilingLensError: nothing catches it)."""


def _config(run: dict | None) -> dict:
    import json

    if not run:
        return {}
    config = run.get("config") or {}
    return json.loads(config) if isinstance(config, str) else dict(config)


def create_job(kind: str, request: dict, *, store: Store | None = None, label: str | None = None) -> str:
    """Record a queued job (``kind`` rate, compare or eval) with its request; returns its run id."""
    if kind not in JOB_KINDS:
        raise InputError(f"unknown job kind {kind!r}")
    store = store or Store()
    config = {**request, "job": {"phase": "queued", "created": _now()}}
    run_id = store.start_run(kind, config, label=label)
    store.update_run(run_id, status="queued")
    return run_id


def _now() -> float:
    import time

    return time.time()


class _JobRecorder:
    """Writes a job's progress into its run and raises ``JobCancelled`` when a cancel was requested."""

    def __init__(self, store: Store, run_id: str):
        import os
        import socket
        import threading

        self.store, self.run_id = store, run_id
        self.state = dict(_config(store.run(run_id)).get("job") or {})
        self.state.update(pid=os.getpid(), host=socket.gethostname(), thread=threading.get_ident(), error=None)
        self.state.setdefault("ingest", [])
        self.state.setdefault("errors", [])

    def save(self, **changes) -> None:
        self.state.update(changes, heartbeat=_now())
        self.store.update_run(self.run_id, config={"job": self.state})

    def check(self) -> None:
        if _config(self.store.run(self.run_id)).get("cancel_requested"):
            raise JobCancelled(self.run_id)


class _IngestRecorder:
    """Ingest callbacks (the ``IngestProgress`` protocol) that record each file's outcome in the job and honour cancels."""

    def __init__(self, recorder: _JobRecorder):
        self.recorder = recorder

    def file_started(self, path, index, total) -> None:
        self.recorder.check()
        self.recorder.save(message=f"indexing {Path(path).name} ({index + 1}/{total})")

    def embedding(self, done, total) -> None:
        self.recorder.check()
        if _now() - float(self.recorder.state.get("heartbeat") or 0) > 5:
            self.recorder.save(message=f"embedding chunks {done}/{total}")

    def file_done(self, result) -> None:
        self.recorder.state["ingest"].append({"source": Path(result.source).name, "status": result.status,
                                              "error": result.error})
        self.recorder.save()

    def notice(self, message) -> None:
        self.recorder.state.setdefault("notices", []).append(message)
        self.recorder.save(message=message)


def execute_job(run_id: str, *, store: Store | None = None, gather=None) -> str:
    """Run a recorded job to its end in this thread; returns its final status.

    Statuses: ``finished``, ``finished-with-failures``, ``failed`` (the error is
    in the job's ``error``), ``cancelled``.
    """
    store = store or Store()
    run = store.run(run_id)
    if run is None:
        raise InputError(f"no job {run_id}")
    config = _config(run)
    recorder = _JobRecorder(store, run_id)
    store.update_run(run_id, status="running", config={"cancel_requested": False})
    recorder.save(phase="resolving", message="finding the filings", started=_now())
    try:
        if run["kind"] == "rate":
            status = _execute_rating(run_id, config, store, recorder, gather)
        elif run["kind"] == "compare":
            status = _execute_comparison(run_id, config, store, recorder, gather)
        else:
            status = _execute_eval(run_id, config, store, recorder, gather)
        recorder.save(phase="done", message=status)
    except JobCancelled:
        status = "cancelled"
        recorder.save(phase="done", message="cancelled")
    except FilingLensError as exc:
        status = "failed"
        recorder.save(phase="done", error=str(exc), message="failed")
    except Exception as exc:  # a bug or an unexpected library error: recorded, never silent
        status = "failed"
        recorder.save(phase="done", error=f"{type(exc).__name__}: {exc}", message="failed")
    store.finish_run(run_id, status)
    return status


def _resolve_request(config: dict, recorder: _JobRecorder) -> list[Target]:
    progress = _IngestRecorder(recorder)
    targets: dict[str, Target] = {}
    errors = []
    paths = [Path(p) for p in config.get("paths") or []]
    if paths:
        try:
            for t in resolve_targets(paths, progress=progress):
                targets.setdefault(t.filing_id, t)
        except FilingLensError as exc:
            errors.append(str(exc))
    for ticker in config.get("tickers") or []:
        recorder.check()
        try:
            for t in resolve_targets((), ticker, config.get("years"), progress=progress):
                targets.setdefault(t.filing_id, t)
        except FilingLensError as exc:
            errors.append(f"{ticker}: {exc}" if ticker.upper() not in str(exc).upper() else str(exc))
    if errors:
        recorder.save(errors=errors)
    if not targets:
        raise InputError("; ".join(errors) or "no filings: give tickers or files")
    return sorted(targets.values(), key=lambda t: (t.ticker or t.company or "", t.fiscal_year or 0))


def _execute_rating(run_id: str, config: dict, store: Store, recorder: _JobRecorder, gather) -> str:
    targets = _resolve_request(config, recorder)
    categories = config.get("categories") or []
    samples = int(config.get("samples") or 1)
    recorder.save(phase="rating", message="rating",
                  filings=[{"filing_id": t.filing_id, "label": t.label, "content_hash": t.content_hash}
                           for t in targets], total=len(targets) * len(categories) * samples)

    def progress(rating: Rating) -> None:
        recorder.save(message=f"rated {rating.target.label} · {rating.category}")
        recorder.check()

    recorder.check()
    _, ratings = run_ratings(
        targets, categories, model_id=config.get("model") or "local",
        prompt_version=config.get("prompt_version") or None, samples=samples,
        store=store, run_id=run_id, gather=gather or index_gatherer(exclude_items=config.get("exclude_items") or ()),
        progress=progress,
    )
    failed = [r for r in ratings if r.status != "ok"]
    return "finished" if not failed and not recorder.state.get("errors") else "finished-with-failures"


def _execute_comparison(run_id: str, config: dict, store: Store, recorder: _JobRecorder, gather) -> str:
    year = int(config["year"])
    targets = compare_targets(config.get("tickers") or [], year, progress=_IngestRecorder(recorder))
    recorder.save(phase="judging", message="judging pairs",
                  filings=[{"filing_id": t.filing_id, "label": t.label} for t in targets],
                  total=len(targets) * (len(targets) - 1) * int(config.get("samples") or 1))

    def progress(judgment, done: int, total: int) -> None:
        recorder.save(message=f"judged {judgment.first} vs {judgment.second}", done=done)
        recorder.check()

    _, result = run_comparison(
        targets, config["category"], model_id=config.get("model") or "local",
        prompt_version=config.get("prompt_version") or None, compare_version=config.get("compare_version"),
        samples=int(config.get("samples") or 1), store=store, gather=gather, run_id=run_id, progress=progress,
        item=config.get("item"),
    )
    return "finished" if result["counts"]["failed"] == 0 else "finished-with-failures"


def run_eval_suite(suite, out_dir: Path | str | None = None, progress=None, *, store: Store | None = None,
                   gather=None, targets: Sequence[Target] | None = None, write: bool = True, chunk_text=None,
                   facts=None):
    """Run an eval suite (``filinglens.evals.run.run_suite``) on the index: this layer resolves (and ingests) its
    filings, gathers evidence and runs the ratings; ``gather``/``targets``/``facts`` replace the index's (tests)."""
    from filinglens.evals.run import run_suite

    if facts is None and gather is None:
        facts = index_facts()
    return run_suite(suite, out_dir, progress, rate=run_ratings, resolve=resolve_targets, store=store,
                     gather=gather or index_gatherer(), targets=targets, write=write, chunk_text=chunk_text,
                     facts=facts)


def _execute_eval(run_id: str, config: dict, store: Store, recorder: _JobRecorder, gather) -> str:
    from filinglens.evals.run import SuiteProgress
    from filinglens.evals.suite import load_suite

    class Progress(SuiteProgress):
        ingest = _IngestRecorder(recorder)
        done = 0

        def stage(self, text: str) -> None:
            recorder.check()
            recorder.save(phase="eval", message=text)

        def start(self, total: int) -> None:
            recorder.save(total=total)

        def rated(self, rating, rater: str) -> None:
            Progress.done += 1
            recorder.save(done=Progress.done, message=f"{rater}: {rating.target.label} · {rating.category}")
            recorder.check()

    overrides = {k: config.get(k) for k in ("models", "prompt_versions", "categories", "samples") if config.get(k)}
    result = run_eval_suite(load_suite(config["suite"], overrides), progress=Progress(), store=store, gather=gather)
    store.update_run(run_id, config={"out_dir": str(result.out_dir) if result.out_dir else None,
                                     "eval_runs": result.runs, "ok": result.ok})
    return "finished" if result.ok else "finished-with-failures"


def start_job(run_id: str, *, store_path: Path | None = None, gather=None):
    """Run a recorded job in a background thread of this process (its own store connection); returns the thread."""
    import threading

    def work() -> None:
        store = Store(store_path) if store_path else Store()
        try:
            execute_job(run_id, store=store, gather=gather)
        finally:
            store.close()

    thread = threading.Thread(target=work, name=f"filinglens-job-{run_id}", daemon=True)
    _JOBS[run_id] = thread
    thread.start()
    return thread


def request_cancel(run_id: str, store: Store | None = None) -> None:
    """Ask a running job to stop after its current step (it records ``cancelled``)."""
    store = store or Store()
    run = store.run(run_id)
    if run is None:
        raise InputError(f"no job {run_id}")
    store.update_run(run_id, config={"cancel_requested": True})
    if run["status"] == "queued":
        store.finish_run(run_id, "cancelled")


def job_alive(run: dict) -> bool:
    """Whether a job's worker still exists: a thread of this process, or a live process with a recent heartbeat."""
    import os
    import socket

    thread = _JOBS.get(run["id"])
    if thread is not None:
        return thread.is_alive()
    job = _config(run).get("job") or {}
    if job.get("pid") is None:
        return False
    if job.get("host") == socket.gethostname() and job.get("pid") != os.getpid() and not pid_alive(job["pid"]):
        return False
    return _now() - float(job.get("heartbeat") or 0) < JOB_STALE_S


def batch_view(run: dict, store: Store | None = None) -> dict:
    """A batch run's state for display: status (``interrupted`` when its driver is gone), counts (done,
    failed, cached of total), throughput and ETA as the driver last saved them, and the failed filings."""
    store = store or Store()
    config = _config(run)
    driver = config.get("driver") or {}
    status = run["status"]
    if status == "running" and driver.get("host") == socket.gethostname() and driver.get("pid") != os.getpid() \
            and driver.get("pid") is not None and not pid_alive(driver["pid"]):
        status = "interrupted"
    units = store.batch_units(run["id"])
    return {"run_id": run["id"], "label": run.get("label"), "status": status, "created_at": run.get("created_at"),
            "finished_at": run.get("finished_at"), "executor": config.get("executor"),
            "progress": config.get("progress") or {"total": config.get("filings")},
            "failed": [{"filing": u.get("label") or u.get("unit_key"), "error": u.get("error")}
                       for u in units if u.get("status") == "failed"]}


def job_view(run: dict, store: Store | None = None) -> dict:
    """A job's state for display: status (``interrupted`` when its worker is gone), phase, message, errors,
    notices (e.g. an index repair met on the way), progress counts and, for rating jobs, each planned filing × category cell's status."""
    store = store or Store()
    config = _config(run)
    job = config.get("job") or {}
    status = run["status"]
    if status in ("running", "queued") and run["kind"] in ("rate", "compare") and job.get("pid") is not None \
            and not job_alive(run):
        status = "interrupted"
    view = {"run_id": run["id"], "kind": run["kind"], "label": run.get("label"), "status": status,
            "phase": job.get("phase"), "message": job.get("message"), "error": job.get("error"),
            "errors": job.get("errors") or [], "notices": job.get("notices") or [], "ingest": job.get("ingest") or [], "total": job.get("total"),
            "done": 0, "failed": 0, "cells": [], "created_at": run.get("created_at"),
            "finished_at": run.get("finished_at"), "cancel_requested": bool(config.get("cancel_requested")),
            "config": {k: v for k, v in config.items() if k != "job"}}
    if run["kind"] == "rate":
        rows = store.ratings(run["id"])
        by_cell = {(r["filing_hash"], r["category"], r["sample_index"]): r for r in rows}
        for filing in job.get("filings") or []:
            for category in config.get("categories") or []:
                for sample in range(int(config.get("samples") or 1)):
                    r = by_cell.get((filing.get("content_hash"), category, sample))
                    view["cells"].append({"filing": filing["label"], "category": category, "sample": sample,
                                          "status": r["status"] if r else "pending",
                                          "score": r["score"] if r else None,
                                          "error": r["error"] if r else None})
        view["done"] = sum(1 for r in rows if r["status"] == "ok")
        view["failed"] = sum(1 for r in rows if r["status"] != "ok")
    else:
        view["done"] = int(job.get("done") or 0)
    return view
