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

from filinglens.errors import FilingLensError

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
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


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


if __name__ == "__main__":  # pragma: no cover
    app()
