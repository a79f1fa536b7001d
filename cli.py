"""The ``filinglens`` command line.  Thin: parse arguments, call one function, print.

Each command delegates to the package; user-facing errors (``FilingLensError``)
are printed as one red line and exit non-zero, never as a traceback.  Ctrl-C
anywhere (even while this module's imports load) prints one line,
``interrupted``, and exits 130; the console script is :func:`main`.
"""

from __future__ import annotations

import signal
import sys

_interrupt_reported = False


def _report_interrupted() -> None:
    """Write ``interrupted`` to stderr once per process."""
    global _interrupt_reported
    if not _interrupt_reported:
        _interrupt_reported = True
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()


def _exit_interrupted(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    _report_interrupted()
    raise SystemExit(130)


# Ctrl-C while the imports below load (typer, rich: a noticeable fraction of a
# second) exits at once with one line instead of a KeyboardInterrupt traceback
# from inside some library.  Run as the CLI, the handler stays until ``main``
# takes over; imported as a library, the previous handler is restored at the end.
try:
    _previous_sigint = signal.signal(signal.SIGINT, _exit_interrupted) or signal.default_int_handler
    _sigint_installed = True
except ValueError:  # not the main thread: signals cannot be handled here
    _sigint_installed = False

import functools
import json
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from filinglens.errors import FilingLensError, redact_secrets

app = typer.Typer(
    help="FilingLens: evidence-backed ratings and answers from SEC 10-K filings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def friendly_errors(func: Callable) -> Callable:
    """Turn ``FilingLensError`` into a one-line message and a non-zero exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FilingLensError as exc:
            # The message may quote values from files or servers: never read them as rich markup; one line.
            err_console.print(f"[bold red]error:[/] {escape(' '.join(str(exc).split()))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(exc.exit_code)
        except KeyboardInterrupt:
            _report_interrupted()
            raise typer.Exit(130)

    return wrapper


def print_json(data) -> None:
    """Write JSON to stdout (no rich markup, so it can be piped)."""
    sys.stdout.write(redact_secrets(json.dumps(data, indent=2, ensure_ascii=False, default=str)) + "\n")


# --------------------------------------------------------------------------- ingest


@app.command()
@friendly_errors
def sections(
    path: Path = typer.Argument(..., help="A 10-K as HTML/iXBRL, full-submission text, or PDF."),
    as_json: bool = typer.Option(False, "--json", help="Print metadata and item texts as JSON."),
) -> None:
    """Split a 10-K into its Items and show them."""
    from filinglens.retrieval.parse import parse_filing
    from filinglens.display import sections_table

    filing = parse_filing(path)
    if as_json:
        print_json(filing.to_dict())
    else:
        console.print(sections_table(filing))


@app.command()
@friendly_errors
def fetch(
    ticker: Optional[str] = typer.Option(None, "--ticker", "-t", help="Stock ticker, e.g. AAPL."),
    cik: Optional[str] = typer.Option(None, "--cik", help="SEC CIK (wins over --ticker), e.g. 320193."),
    years: Optional[str] = typer.Option(
        None, "--years", "-y", help="Fiscal years (year of the period end): 2023, 2019-2024 or 2019,2021. Default: all."
    ),
    amendments: bool = typer.Option(False, "--amendments", help="Also fetch amendments (10-K/A ...)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", help="Serve both EDGAR hosts from this URL (mirror or test server)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Download 10-K filings from SEC EDGAR into the data home (needs SEC_USER_AGENT).

    Exits 1 when EDGAR listed filings whose data failed validation (not fetched; one line each on stderr).
    """
    from filinglens.display import RichProgress, fetch_table
    from filinglens.retrieval.edgar import fetch_filings

    with RichProgress(err_console) as progress:
        report = fetch_filings(ticker, cik, years, amendments, base_url=base_url, progress=progress)
    if as_json:
        print_json(report.to_dict())
    elif report.results:
        console.print(fetch_table(report))
    elif not report.failed:
        err_console.print(f"[yellow]no 10-K filings on EDGAR for {escape(report.company or report.cik)} in those years[/]")
    for note in report.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for failure in report.failed:
        err_console.print(f"[bold red]not fetched:[/] {escape(failure.line())}", highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- index and search


@app.command()
@friendly_errors
def ingest(
    paths: Optional[list[Path]] = typer.Argument(None, help="10-K files or folders (HTML, full-submission text, PDF)."),
    ticker: Optional[str] = typer.Option(
        None, "--ticker", "-t", help="Label the files with this ticker; without PATHs: ingest its fetched 10-Ks."
    ),
    years: Optional[str] = typer.Option(None, "--years", "-y", help="With --ticker and no PATHs: 2023, 2019-2024."),
    chunk_chars: Optional[int] = typer.Option(
        None, "--chunk-chars", help="Chunk target size in characters (200-6,000; default 1,000)."
    ),
    allow_truncated: bool = typer.Option(
        False, "--allow-truncated", help="Index filings that look cut off anyway (the warning is kept in their metadata)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print per-filing results as JSON."),
    repair: bool = typer.Option(
        False, "--repair", help="Check the index deeply and rebuild what was lost or damaged (no PATH needed)."
    ),
) -> None:
    """Chunk and index 10-K filings (idempotent: unchanged filings compute nothing; lost ones are rebuilt).

    Every file gets a result; one that fails (unreadable, not a 10-K, truncated)
    does not stop the others, and the run ends with a summary line.
    """
    from filinglens.retrieval.chunking import DEFAULT_CHUNK_CHARS
    from filinglens.display import RichIngestProgress, results_table
    from filinglens.retrieval.ingest import ingest as run_ingest, summary_line

    with RichIngestProgress(err_console) as progress:
        results = run_ingest(paths or [], ticker=ticker, years=years, progress=progress,
                             chunk_chars=DEFAULT_CHUNK_CHARS if chunk_chars is None else chunk_chars,
                             allow_truncated=allow_truncated, repair=repair)
    if as_json:
        print_json([r.to_dict() for r in results])
        err_console.print(summary_line(results), highlight=False, soft_wrap=True)
    else:
        console.print(results_table(results))
        console.print(summary_line(results), highlight=False, soft_wrap=True)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def search(
    query: str = typer.Argument(..., help="What to look for."),
    ticker: Optional[str] = typer.Option(None, "--ticker", "-t", help="Only this company (ticker)."),
    year: Optional[str] = typer.Option(None, "--year", "-y", help="Fiscal year, or a range like 2019-2022."),
    item: Optional[list[str]] = typer.Option(None, "--item", "-i", help="Only these items (repeatable): 1A, 7..."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only `text` or `table` chunks."),
    k: int = typer.Option(5, "-k", "--k", help="Number of chunks."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, dense or bm25."),
    as_json: bool = typer.Option(False, "--json", help="Print hits (score, metadata, exact text) as JSON."),
) -> None:
    """Hybrid (dense + BM25) search of the indexed filings."""
    from filinglens.retrieval.filing import parse_years
    from filinglens.display import hits_table
    from filinglens.retrieval.search import HybridSearcher, SearchFilters

    years = parse_years(year)
    year_from, year_to = (years[0], years[-1]) if years else (None, None)
    filters = SearchFilters(ticker=ticker, year_from=year_from, year_to=year_to, items=item or None, kind=kind)
    searcher = HybridSearcher()
    searcher.on_notice = lambda message: err_console.print(f"[yellow]note:[/] {message}", highlight=False)
    hits = searcher.search(query, k=k, filters=filters, mode=mode)
    if as_json:
        print_json({"query": query, "filters": filters.describe(), "hits": [h.to_dict() for h in hits]})
    else:
        console.print(hits_table(hits, query))


# --------------------------------------------------------------------------- models


@app.command()
@friendly_errors
def models(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List chat-model ids, whether each can be used here and, if not, the fix."""
    from filinglens.agents.models import list_models
    from filinglens.display import models_table

    rows = list_models()
    if as_json:
        print_json([row.to_dict() for row in rows])
    else:
        console.print(models_table(rows))


@app.command()
@friendly_errors
def doctor(
    self_check: bool = typer.Option(False, "--self-check", help="Also load the embedded model and generate one token."),
    model: str = typer.Option("local", "--model", "-m", help="Local model for --self-check."),
    runtime_only: bool = typer.Option(False, "--runtime-only", help="Only the runtime, CPU and models (the install check)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """What the runtime was built with, CPU features, model files, index and store health."""
    from rich.table import Table

    from filinglens.doctor import as_dicts, diagnose

    checks = diagnose(self_check=self_check, model_id=model, runtime_only=runtime_only)
    if as_json:
        print_json(as_dicts(checks))
    else:
        table = Table(show_header=True, header_style="bold")
        for column in ("part", "", "detail"):
            table.add_column(column, overflow="fold")
        for check in checks:
            table.add_row(check.part, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
        console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


# --------------------------------------------------------------------------- rate and ask


@app.command()
@friendly_errors
def rate(
    paths: Optional[list[Path]] = typer.Argument(None, help="10-K files or folders (indexed first if needed)."),
    ticker: Optional[str] = typer.Option(None, "--ticker", "-t", help="Rate this company's indexed (or fetched) 10-Ks."),
    year: Optional[str] = typer.Option(None, "--year", "-y", help="Fiscal year or range, with --ticker."),
    category: Optional[list[str]] = typer.Option(None, "--category", "-c", help="Categories (repeatable); default all."),
    model: str = typer.Option("local", "--model", "-m", help="Model id (see `filinglens models`)."),
    prompt_version: Optional[str] = typer.Option(None, "--prompt-version", "-p", help="Prompt version (v1 direct, v2 yes/no, v3 CoT, v4 strict, v5 indicators; default: the one `prompts list` marks)."),
    samples: int = typer.Option(1, "--samples", "-n", min=1, help="Repeated samples per cell."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature."),
    evidence_chars: Optional[int] = typer.Option(None, "--evidence-chars", help="Evidence budget per rating (characters)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also export to .csv, .parquet or .json."),
    as_json: bool = typer.Option(False, "--json", help="Print ratings as JSON."),
) -> None:
    """Rate 10-K filings on categories from retrieved evidence (cached, recorded)."""
    from filinglens.app import resolve_targets, run_ratings
    from filinglens.agents.rating import export_ratings
    from filinglens.display import ratings_table
    from filinglens.display import RichIngestProgress
    from filinglens.prompts.loader import categories as all_categories
    from rich.progress import Progress

    with RichIngestProgress(err_console) as ingest_progress:
        targets = resolve_targets(paths or [], ticker, year, progress=ingest_progress)
    cats = category or all_categories()
    total = len(targets) * len(cats) * samples
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("rating", total=total)
        run_id, ratings = run_ratings(
            targets, cats, model_id=model, prompt_version=prompt_version, samples=samples,
            temperature=temperature, evidence_chars=evidence_chars, progress=lambda r: bar.advance(task),
        )
    if out:
        export_ratings(ratings, out)
    calls = sum(r.model_calls for r in ratings)
    cached = sum(r.cached_calls for r in ratings)
    if as_json:
        print_json({"run_id": run_id, "ratings": [r.to_dict() for r in ratings]})
    else:
        console.print(ratings_table(ratings))
        console.print(
            f"run [bold]{run_id}[/]: {len(ratings)} ratings, {calls} model calls "
            f"({cached} served from cache, {calls - cached} made), "
            f"{sum(r.tokens_in for r in ratings):,} prompt tokens" + (f"; exported to {out}" if out else "")
        )
    if any(r.status != "ok" for r in ratings):
        raise typer.Exit(1)


@app.command()
@friendly_errors
def batch(
    paths: Optional[list[Path]] = typer.Argument(None, help="10-K files or folders (each worker must see them)."),
    tickers_file: Optional[Path] = typer.Option(None, "--tickers-file", help="Tickers, one per line: their 10-Ks from EDGAR."),
    years: Optional[str] = typer.Option(None, "--years", "-y", help="With --tickers-file: fiscal years, e.g. 2015-2024."),
    suite: Optional[str] = typer.Option(None, "--suite", help="An eval suite's filings, categories, models and prompts."),
    category: Optional[list[str]] = typer.Option(None, "--category", "-c", help="Categories (repeatable); default all."),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Model id (repeatable; default local)."),
    prompt_version: Optional[list[str]] = typer.Option(None, "--prompt-version", "-p", help="Prompt version (repeatable; default: each category's default, as `prompts list` marks)."),
    samples: Optional[int] = typer.Option(None, "--samples", "-n", min=1, help="Repeated samples per cell."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature."),
    evidence_chars: Optional[int] = typer.Option(None, "--evidence-chars", help="Evidence budget per rating (characters)."),
    executor: str = typer.Option("local", "--executor", "-e", help="local (this process) or ray (RAY_ADDRESS, else a local runtime)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Parallel filings (ray; default: the cluster's CPUs)."),
    endpoint: Optional[list[str]] = typer.Option(None, "--endpoint", help="OpenAI-compatible server URL for an openai: model (repeatable, round-robin)."),
    retries: int = typer.Option(3, "--retries", min=0, help="Re-runs of a filing whose worker died (ray)."),
    cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", min=0.1, help="Ray CPUs per filing (threads of its models)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="EDGAR mirror or test server (both hosts)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report (counts, one row per filing) as JSON."),
) -> None:
    """Rate many filings, here or on a Ray cluster; re-runs and resumes are served from the results store."""
    from filinglens.batch import prepare, run_batch
    from filinglens.display import RichBatchProgress, batch_table

    units, spec, label = prepare(
        paths or [], tickers_file=tickers_file, years=years, suite=suite, categories=category or [],
        models=model or [], prompt_versions=prompt_version or [], samples=samples, temperature=temperature,
        evidence_chars=evidence_chars, base_url=base_url,
    )
    with RichBatchProgress(err_console) as progress:
        report = run_batch(units, spec, executor=executor, workers=workers, endpoints=endpoint or [],
                           retries=retries, cpus_per_task=cpus_per_task, label=label, progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(batch_table(report))
    if report.failures:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def ask(
    question: str = typer.Argument(..., help="A question about indexed filings."),
    ticker: Optional[str] = typer.Option(None, "--ticker", "-t", help="Only this company."),
    year: Optional[int] = typer.Option(None, "--year", "-y", help="Only this fiscal year."),
    model: str = typer.Option("local", "--model", "-m", help="Model id (see `filinglens models`)."),
    k: int = typer.Option(6, "-k", help="Evidence chunks to retrieve."),
    prompt_version: Optional[str] = typer.Option(None, "--prompt-version", "-p", help="QA prompt version (prompts/qa/; default v2)."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer, citations and evidence as JSON."),
) -> None:
    """Answer a question from indexed 10-Ks, citing filing, item and the quoted span."""
    from filinglens.display import answer_panel
    from filinglens.app import ask as ask_question

    answer = ask_question(question, ticker=ticker, year=year, model_id=model, k=k, prompt_version=prompt_version)
    if as_json:
        print_json(answer.to_dict())
    else:
        console.print(answer_panel(answer))
    if answer.error:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- analyses and the workbench


@app.command()
@friendly_errors
def trends(
    ticker: Optional[list[str]] = typer.Option(None, "--ticker", "-t", help="Companies (repeatable); default all rated."),
    years: Optional[str] = typer.Option(None, "--years", "-y", help="Fiscal years: 2023 or 2015-2024."),
    category: Optional[list[str]] = typer.Option(None, "--category", "-c", help="Categories (repeatable); default all."),
    rater: Optional[list[str]] = typer.Option(None, "--rater", "-r", help="Raters MODEL@VERSION (repeatable); default all."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: data home/analyses/trends-TICKERS)."),
    as_json: bool = typer.Option(False, "--json", help="Print the cells and averages as JSON."),
) -> None:
    """Ratings over fiscal years from the results store: plot (PNG, HTML) and tables (JSON, CSV)."""
    from filinglens.analysis.outputs import table_records
    from filinglens.app import trends as run_trends

    result = run_trends(ticker or [], years, category, rater, out_dir=out)
    if as_json:
        print_json({"cells": table_records(result["trends"]), "averages": table_records(result["averages"]),
                    "files": result["files"]})
        return
    from rich.table import Table

    table = Table(title="Averages over fiscal years (expected score)")
    for col in ("company", "category", "rater", "years", "mean", "range"):
        table.add_column(col)
    for r in table_records(result["averages"]):
        table.add_row(r["company"], r["category"], r["rater"], str(r["years"]), f"{r['mean']:.2f}",
                      f"{r['min']:.2f}–{r['max']:.2f}")
    console.print(table)
    for kind, path in result["files"].items():
        console.print(f"{kind}: {path}", highlight=False)


@app.command()
@friendly_errors
def compare(
    tickers: list[str] = typer.Argument(..., help="Two or more tickers, e.g. AAPL MSFT MMM."),
    year: int = typer.Option(..., "--year", "-y", help="Fiscal year of the 10-Ks compared."),
    category: str = typer.Option(..., "--category", "-c", help="Rating category, e.g. innovation."),
    item: Optional[str] = typer.Option(None, "--item", "-i", help="Compare on this 10-K Item alone (e.g. 1A, 7): section by section."),
    model: str = typer.Option("local", "--model", "-m", help="Model id that judges (see `filinglens models`)."),
    prompt_version: Optional[str] = typer.Option(None, "--prompt-version", "-p", help="Rating prompt whose rubric and retrieval are used (default: the category's default version)."),
    compare_version: Optional[str] = typer.Option(None, "--compare-prompt", help="Comparison prompt version (prompts/compare/; default v1)."),
    samples: int = typer.Option(1, "--samples", "-n", min=1, help="Judgments per ordered pair."),
    boot: int = typer.Option(1000, "--boot", min=0, help="Bootstrap resamples for the intervals."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: data home/analyses/compare-RUN)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result (compare.json) as JSON."),
) -> None:
    """Rank companies on a category by pairwise judgments in both orders (Bradley–Terry, position bias)."""
    from rich.progress import Progress

    from filinglens.app import check_item, compare_targets, run_comparison
    from filinglens.prompts.loader import load_compare_prompt, load_prompt
    from filinglens.display import RichIngestProgress

    load_prompt(f"{category}@{prompt_version}" if prompt_version else category)  # bad category or version: say so now
    load_compare_prompt(compare_version)
    item = check_item(item)
    with RichIngestProgress(err_console) as ingest_progress:
        targets = compare_targets(tickers, year, progress=ingest_progress)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("judging pairs", total=len(targets) * (len(targets) - 1) * samples)
        run_id, result = run_comparison(
            targets, category, model_id=model, prompt_version=prompt_version, compare_version=compare_version, item=item,
            samples=samples, n_boot=boot, out_dir=out, progress=lambda j, done, total: bar.advance(task),
        )
    if as_json:
        print_json(result)
    else:
        from rich.table import Table

        table = Table(title=f"{category}{f' · Item {item}' if item else ''} · FY{year}: Bradley–Terry ranking ({model})")
        for col in ("rank", "company", "strength [95% CI]", "rank 95%", "won/lost/tied"):
            table.add_column(col)
        for r in result["ranking"]:
            ci = r["strength_ci"]
            shown = f"{r['strength']:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci[0] is not None else "")
            table.add_row(str(r["rank"]), r["company"], shown, f"{r['rank_ci'][0]}–{r['rank_ci'][1]}",
                          f"{r['wins']}/{r['losses']}/{r['ties']}")
        console.print(table)
        bias = result["position_bias"]
        p = bias["p_first_wins"]
        flip = bias["flip_rate"]
        console.print(
            f"position bias: P(first shown wins) = {'n/a' if p is None else f'{p:.2f}'} over {bias['decided']} decided "
            f"judgments; verdict flipped with the order in {bias['flipped']}/{bias['pairs_both_orders']} pairs"
            + ("" if flip is None else f" ({100 * flip:.0f}%)"), highlight=False)
        counts = result["counts"]
        console.print(f"run {run_id}: {counts['judgments']} judgments ({counts['failed']} failed), "
                      f"{counts['model_calls']} model calls ({counts['cached_calls']} from cache)", highlight=False)
        for kind, path in result["files"].items():
            console.print(f"{kind}: {path}", highlight=False)
        errors = list(dict.fromkeys(j["error"] for j in result["judgments"] if j.get("error")))
        for error in errors[:3]:
            err_console.print(f"failed judgment: {error}", highlight=False, markup=False)
        if len(errors) > 3:
            err_console.print(f"... and {len(errors) - 3} other errors (compare.json)", highlight=False)
    if result["counts"]["failed"]:
        raise typer.Exit(1)


@app.command("app")
@friendly_errors
def workbench(
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port of the web app."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default loopback only)."),
) -> None:
    """Start the analyst's workbench (a Streamlit web app) on the same data home and results store."""
    import os

    from filinglens.workbench.launch import streamlit_command, streamlit_env

    command = streamlit_command(port=port, host=host)
    err_console.print(f"FilingLens workbench: http://{host}:{port}  (Ctrl-C stops it)", highlight=False)
    sys.stderr.flush()
    os.execve(command[0], command, streamlit_env(host=host))  # the app replaces this process: signals reach it


# --------------------------------------------------------------------------- eval

eval_app = typer.Typer(help="Evaluate rating stability and validity, and QA quality.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("run")
@friendly_errors
def eval_run(
    suite: str = typer.Argument(..., help="A suite YAML file, or a built-in suite name (smoke, demo, validity, apple-microsoft)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: data home/evals/SUITE-HASH)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results (results.json) to stdout."),
    models: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Rate with these models instead (repeatable)."),
    versions: Optional[list[str]] = typer.Option(None, "--prompt-version", "-p",
                                                 help="Use these prompt versions instead (repeatable)."),
    categories: Optional[list[str]] = typer.Option(None, "--category", "-c", help="Only these categories (repeatable)."),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, help="Samples per cell instead of the suite's."),
) -> None:
    """Run an eval suite (cached, resumable) and write its report; exit 1 when a threshold is not met.

    Options override the suite file: a new prompt version on the same filings is `-p v5`.
    """
    from filinglens.app import run_eval_suite
    from filinglens.display import RichSuiteProgress, suite_summary
    from filinglens.evals.suite import load_suite

    overrides = {"models": models, "prompt_versions": versions, "categories": categories, "samples": samples}
    with RichSuiteProgress(err_console) as progress:
        result = run_eval_suite(load_suite(suite, overrides), out_dir=out, progress=progress)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(suite_summary(result))
    if not result.ok:
        raise typer.Exit(1)


@eval_app.command("diff")
@friendly_errors
def eval_diff(
    run_a: str = typer.Argument(..., help="Results-store run id (or a unique prefix), e.g. from `eval run`."),
    run_b: str = typer.Argument(..., help="The run to compare with it."),
    boot: int = typer.Option(1000, "--boot", min=0, help="Bootstrap resamples for the intervals (κ/ICC use a fifth)."),
    as_json: bool = typer.Option(False, "--json", help="Print every cell and the statistics as JSON."),
) -> None:
    """Which cells changed between two runs, by how much, and how well the runs agree."""
    from filinglens.display import diff_summary
    from filinglens.evals.run import diff_store_runs

    diff = diff_store_runs(run_a, run_b, n_boot=boot, n_boot_slow=boot // 5)
    if as_json:
        print_json(diff)
    else:
        console.print(diff_summary(diff))


# --------------------------------------------------------------------------- prompts

prompts_app = typer.Typer(help="Versioned rating prompts: list, show, diff.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")
PromptsDir = typer.Option(None, "--prompts-dir", help="Extra prompt directory (searched first).")


@prompts_app.command("list")
@friendly_errors
def prompts_list(
    prompts_dir: Optional[list[Path]] = PromptsDir,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """All prompt versions by category, with method and content hash."""
    from filinglens.display import prompts_table
    from filinglens.prompts.loader import list_prompts

    prompts = list_prompts(prompts_dir)
    if as_json:
        print_json([{"ref": p.ref, "method": p.method, "hash": p.hash, "path": p.path, "note": p.note} for p in prompts])
    else:
        console.print(prompts_table(prompts))


@prompts_app.command("show")
@friendly_errors
def prompts_show(
    ref: str = typer.Argument(..., help="CATEGORY or CATEGORY@VERSION, e.g. environment@v2."),
    prompts_dir: Optional[list[Path]] = PromptsDir,
) -> None:
    """Print a resolved prompt (template included) as YAML."""
    from filinglens.prompts.loader import load_prompt

    prompt = load_prompt(ref, prompts_dir)
    sys.stdout.write(f"# {prompt.ref} hash={prompt.hash} file={prompt.path}\n{prompt.render_yaml()}")


@prompts_app.command("diff")
@friendly_errors
def prompts_diff(
    ref_a: str = typer.Argument(..., help="e.g. environment@v1"),
    ref_b: str = typer.Argument(..., help="e.g. environment@v2"),
    prompts_dir: Optional[list[Path]] = PromptsDir,
) -> None:
    """Unified diff of two resolved prompts."""
    from filinglens.prompts.loader import diff_prompts

    sys.stdout.write(diff_prompts(ref_a, ref_b, prompts_dir) or "(identical)\n")


# --------------------------------------------------------------------------- eval qa


@eval_app.command("qa")
@friendly_errors
def eval_qa(
    questions: Optional[Path] = typer.Option(None, "--questions", help="FinanceBench questions (jsonl). Default: the shared dev set."),
    model: str = typer.Option("local", "--model", "-m", help="Model id that answers (see `filinglens models`)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Model id that judges faithfulness and answer relevancy."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Only the first N questions."),
    split: Optional[str] = typer.Option(None, "--split", help="Only one half of the fixed split: tune or held-out."),
    shared_store: bool = typer.Option(False, "--shared-store", help="Search all indexed filings (default: the question's 10-K only)."),
    k: int = typer.Option(6, "-k", help="Evidence chunks per question."),
    prompt_version: Optional[str] = typer.Option(None, "--prompt-version", "-p", help="QA prompt version (prompts/qa/; default v2)."),
    compute: bool = typer.Option(True, "--compute/--no-compute", help="Compute metric questions (metric library, shown calculation); --no-compute: the plain prompt for every question."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default: data home/evals/qa-TIMESTAMP)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Answer FinanceBench questions and score them (accuracy vs. the published anchor, ragas metrics)."""
    import time

    from filinglens import settings
    from filinglens.display import RichQAProgress, qa_summary
    from filinglens.evals.qa_eval import run_qa_eval

    out = out or settings.subdir("evals") / time.strftime("qa-%Y%m%d-%H%M%S")
    with RichQAProgress(err_console) as progress:
        result = run_qa_eval(questions, model_id=model, judge=judge, limit=limit, split=split,
                             per_document=not shared_store, k=k, out_dir=out, progress=progress, prompt_version=prompt_version,
                             compute=None if compute else False)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(qa_summary(result))


def main() -> None:
    """Console entry point: the app, with Ctrl-C anywhere reported as one line ``interrupted`` (exit 130)."""
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on Ctrl-C is a KeyboardInterrupt
        app()
    except KeyboardInterrupt:
        _report_interrupted()
        _forget_caught_interrupt()
        raise SystemExit(130)
    except SystemExit as exc:
        if exc.code == 130:  # typer turns a KeyboardInterrupt outside a command body into a silent exit 130
            _report_interrupted()
            _forget_caught_interrupt()
        raise


def _forget_caught_interrupt() -> None:
    """Let ``python -m filinglens.cli`` exit 130 after a caught Ctrl-C, not die by SIGINT.

    CPython marks a KeyboardInterrupt as unhandled when it leaves code run from
    a *string* (``exec(str)``: dataclasses, namedtuples build their methods
    so), even if a caller catches it later; under ``-m`` the interpreter then
    kills itself with SIGINT at exit (status -2) instead of exiting 130.  Each
    string eval resets that mark when it starts, so one harmless eval clears it.
    """
    exec("None", {})  # noqa: S102 - a constant string, see the docstring


if __name__ == "__main__" or Path(sys.argv[0]).name in ("filinglens", "filinglens.exe"):
    pass  # the CLI: keep the import-time handler until main() takes over
elif _sigint_installed:
    signal.signal(signal.SIGINT, _previous_sigint)

if __name__ == "__main__":  # pragma: no cover
    main()
