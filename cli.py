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


if __name__ == "__main__":  # pragma: no cover
    app()
