"""The ``filinglens`` command line.  Thin: parse arguments, call one function, print.

Each command delegates to the package; user-facing errors (``FilingLensError``)
are printed as one red line and exit non-zero, never as a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

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
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/]")
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
    from filinglens.retrieval.report import sections_table

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
    """Download 10-K filings from SEC EDGAR into the data home (needs SEC_USER_AGENT)."""
    from filinglens.retrieval.edgar import RichProgress, fetch_filings, fetch_table

    with RichProgress(err_console) as progress:
        report = fetch_filings(ticker, cik, years, amendments, base_url=base_url, progress=progress)
    if as_json:
        print_json(report.to_dict())
    elif not report.results:
        err_console.print(f"[yellow]no 10-K filings on EDGAR for {report.company or report.cik} in those years[/]")
    else:
        console.print(fetch_table(report))


# --------------------------------------------------------------------------- index and search


@app.command()
@friendly_errors
def ingest(
    paths: Optional[list[Path]] = typer.Argument(None, help="10-K files or folders (HTML, full-submission text, PDF)."),
    ticker: Optional[str] = typer.Option(
        None, "--ticker", "-t", help="Label the files with this ticker; without PATHs: ingest its fetched 10-Ks."
    ),
    years: Optional[str] = typer.Option(None, "--years", "-y", help="With --ticker and no PATHs: 2023, 2019-2024."),
    chunk_chars: Optional[int] = typer.Option(None, "--chunk-chars", help="Chunk target size in characters."),
    as_json: bool = typer.Option(False, "--json", help="Print per-filing results as JSON."),
) -> None:
    """Chunk and index 10-K filings (idempotent: unchanged filings compute nothing)."""
    from filinglens.retrieval.chunking import DEFAULT_CHUNK_CHARS
    from filinglens.retrieval.ingest import RichIngestProgress, ingest as run_ingest, results_table

    with RichIngestProgress(err_console) as progress:
        results = run_ingest(paths or [], ticker=ticker, years=years, progress=progress,
                             chunk_chars=chunk_chars or DEFAULT_CHUNK_CHARS)
    if as_json:
        print_json([r.to_dict() for r in results])
    else:
        console.print(results_table(results))
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
    import re

    from filinglens.errors import InputError
    from filinglens.retrieval.search import HybridSearcher, SearchFilters, hits_table

    year_from = year_to = None
    if year:
        m = re.fullmatch(r"\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?", year)
        if not m:
            raise InputError(f"--year must be a year or a range like 2019-2022, not `{year}`")
        year_from, year_to = int(m.group(1)), int(m.group(2) or m.group(1))
    filters = SearchFilters(ticker=ticker, year_from=year_from, year_to=year_to, items=item or None, kind=kind)
    hits = HybridSearcher().search(query, k=k, filters=filters, mode=mode)
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
    from filinglens.agents.models import list_models, models_table

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
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """What the runtime was built with, CPU features, model files, index and store health."""
    from rich.table import Table

    from filinglens.doctor import as_dicts, diagnose

    checks = diagnose(self_check=self_check, model_id=model)
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
    from filinglens.agents.jobs import resolve_targets, run_ratings
    from filinglens.agents.rating import export_ratings, ratings_table
    from filinglens.prompts.loader import DEFAULT_RATING_VERSION, categories as all_categories
    from filinglens.retrieval.ingest import RichIngestProgress
    from rich.progress import Progress

    prompt_version = prompt_version or DEFAULT_RATING_VERSION

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
    from filinglens.agents.qa import answer_question, answer_panel
    from filinglens.retrieval.agent import RetrievalAgent
    from filinglens.store import Store

    evidence = RetrievalAgent().retrieve(question, ticker=ticker, year=year, k=k)
    answer = answer_question(question, evidence, store=Store(), model_id=model, prompt_version=prompt_version)
    if as_json:
        print_json(answer.to_dict())
    else:
        console.print(answer_panel(answer))
    if answer.error:
        raise typer.Exit(1)


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
    from filinglens.evals.report import summary_renderable
    from filinglens.evals.run import RichSuiteProgress, run_suite
    from filinglens.evals.suite import load_suite

    overrides = {"models": models, "prompt_versions": versions, "categories": categories, "samples": samples}
    with RichSuiteProgress(err_console) as progress:
        result = run_suite(load_suite(suite, overrides), out_dir=out, progress=progress)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(summary_renderable(result))
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
    from filinglens.evals.report import diff_renderable
    from filinglens.evals.run import diff_store_runs

    diff = diff_store_runs(run_a, run_b, n_boot=boot, n_boot_slow=boot // 5)
    if as_json:
        print_json(diff)
    else:
        console.print(diff_renderable(diff))


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
    from filinglens.prompts.loader import list_prompts, prompts_table

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
    shared_store: bool = typer.Option(False, "--shared-store", help="Search all indexed filings (default: the question's 10-K only)."),
    k: int = typer.Option(6, "-k", help="Evidence chunks per question."),
    prompt_version: Optional[str] = typer.Option(None, "--prompt-version", "-p", help="QA prompt version (prompts/qa/; default v2)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default: data home/evals/qa-TIMESTAMP)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Answer FinanceBench questions and score them (accuracy vs. the published anchor, ragas metrics)."""
    import time

    from filinglens import settings
    from filinglens.evals.qa_eval import RichQAProgress, run_qa_eval, summary_renderable

    out = out or settings.subdir("evals") / time.strftime("qa-%Y%m%d-%H%M%S")
    with RichQAProgress(err_console) as progress:
        result = run_qa_eval(questions, model_id=model, judge=judge, limit=limit, per_document=not shared_store,
                             k=k, out_dir=out, progress=progress, prompt_version=prompt_version)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(summary_renderable(result))


if __name__ == "__main__":  # pragma: no cover
    app()
