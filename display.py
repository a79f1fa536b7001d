"""The display layer: every rich table, panel and progress bar the CLI shows.

Only ``cli.py`` imports this module.  Domain functions return data and report
progress through plain callbacks; this module turns both into terminal output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from rich import box
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)
from rich.table import Table
from rich.text import Text

from filinglens import settings
from filinglens.agents.models import ModelStatus
from filinglens.agents.qa import Answer
from filinglens.agents.rating import PROBABILITY_METHODS, Rating, deciding_indicators
from filinglens.analysis.render import fmt_est, fmt_num, fmt_share
from filinglens.evals.metamorphic import CHECKS as METAMORPHIC_CHECKS, TOLERANCE as METAMORPHIC_TOLERANCE, MetamorphicReport
from filinglens.evals.qa_eval import ANCHOR_MODEL as QA_ANCHOR_MODEL, ANCHORS as QA_ANCHORS, QAEvalResult
from filinglens.evals.report import extra_metrics
from filinglens.evals.results import SuiteResult
from filinglens.evals.run import SuiteProgress
from filinglens.prompts.loader import RatingPrompt
from filinglens.retrieval.edgar import FetchReport, FilingRef
from filinglens.retrieval.filing import Filing
from filinglens.retrieval.ingest import IngestProgress, IngestResult
from filinglens.retrieval.search import SearchHit


# ---------------------------------------------------------------------- from retrieval/report.py


def approx_tokens(text: str) -> int:
    """Rough token count (~4 characters per token for English prose)."""
    return (len(text) + 3) // 4


def sections_table(filing: Filing) -> Table:
    """A table of the filing's items: item, title, status, characters, tokens; warnings (truncation) below it."""
    meta = filing.metadata()
    caption = " · ".join(
        str(v)
        for v in (meta["company"], f"CIK {meta['cik']}" if meta["cik"] else None, meta["form"],
                  f"FY{meta['fiscal_year']}" if meta["fiscal_year"] else None, meta["period_end"])
        if v
    )
    table = Table(title=caption, title_justify="left")
    if filing.warnings:
        what = "looks truncated" if filing.truncated else "warning"
        table.caption = f"{what}: " + "; ".join(filing.warnings)
        table.caption_style = "yellow"
        table.caption_justify = "left"
    table.add_column("item", style="bold")
    table.add_column("title")
    table.add_column("status")
    table.add_column("chars", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("tables", justify="right")
    colors = {"body": "green", "stub": "yellow", "absent": "dim"}
    for item in filing.items.values():
        note = f" → {item.reference}" if item.reference else ""
        table.add_row(
            item.item,
            (item.title or "")[:70],
            f"[{colors[item.status]}]{item.status}[/]{note}",
            f"{len(item.text):,}",
            f"{approx_tokens(item.text):,}",
            str(len(item.tables)),
        )
    return table


# ---------------------------------------------------------------------- from retrieval/edgar.py


def fetch_table(report: FetchReport):
    """A rich table of a ``FetchReport`` (fiscal year, form, filed, accession, status, document).

    The caption gives the folder; documents are at ``{folder}/{accession}/{document}``.
    Invalid listings (``report.failed``) are counted in the title; ``FetchFailure.line``
    gives their details.
    """

    who = report.ticker or report.cik
    folder = settings.data_home() / "filings" / report.cik
    invalid = f", {len(report.failed)} invalid (not fetched)" if report.failed else ""
    table = Table(
        title=f"{escape(report.company or who)} (CIK {report.cik}): {len(report.downloaded)} downloaded, "
        f"{len(report.skipped)} already stored{invalid}",
        caption=f"stored as {folder}/<accession>/<document>",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("FY", "form", "filed", "accession", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("document", overflow="fold")
    for result in report.results:
        ref = result.filing
        style = "green" if result.status == "downloaded" else "dim"
        table.add_row(str(ref.fiscal_year), ref.form, ref.filing_date, ref.accession,
                      f"[{style}]{result.status}[/]", result.path.name)
    return table


class RichProgress:
    """A ``progress`` hook for ``fetch_filings`` that draws a rich progress bar per download."""

    def __init__(self, console=None):

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=console, transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, ref: FilingRef, done: int, total: Optional[int]) -> None:
        if done < 0:  # already stored
            return
        key = ref.accession
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(f"FY{ref.fiscal_year} {ref.form} {ref.accession}", total=total)
        self._progress.update(self._tasks[key], completed=done, total=total)


# ---------------------------------------------------------------------- from retrieval/ingest.py


def results_table(results: Sequence[IngestResult]):
    """A rich table of ingest results for the CLI."""

    table = Table(title="ingest")
    for col in ("filing", "FY", "status", "items", "chunks", "embedded", "skipped", "deleted", "seconds"):
        table.add_column(col, justify="right" if col not in ("filing", "status") else "left", overflow="fold")
    for r in results:
        label = r.ticker or r.company or Path(r.source).name
        style = {"failed": "red", "unchanged": "dim", "indexed": "green", "updated": "yellow",
                 "rebuilt": "yellow"}.get(r.status, "")
        status = f"[{style}]{r.status}[/]" + (f": {escape(r.error)}" if r.error else "")
        if r.warnings and r.status != "failed":
            status += f" [yellow](warning: {escape('; '.join(r.warnings))})[/]"
        table.add_row(label, str(r.fiscal_year or ""), status, str(r.items), str(r.chunks), str(r.embedded),
                      str(r.skipped), str(r.deleted), f"{r.seconds:.1f}")
    return table


class RichIngestProgress(IngestProgress):
    """A rich progress display for the CLI: one bar over the files, one over the current file's embeddings."""

    def __init__(self, console=None) -> None:

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self._files = None
        self._embed = None
        self._console = console

    def __enter__(self) -> "RichIngestProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def file_started(self, path: Path, index: int, total: int) -> None:
        if self._files is None:
            self._files = self._progress.add_task("filings", total=total)
        if self._embed is not None:
            self._progress.remove_task(self._embed)
        self._embed = self._progress.add_task(f"  {path.name}: parsing", total=None)

    def embedding(self, done: int, total: int) -> None:
        if self._embed is not None:
            self._progress.update(self._embed, description="  embedding chunks", completed=done, total=total)

    def notice(self, message: str) -> None:
        if self._console is not None:
            self._progress.console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)

    def file_done(self, result: IngestResult) -> None:
        if self._files is not None:
            self._progress.advance(self._files)
        if self._console is not None:
            name = Path(result.source).name
            if result.status == "failed":
                self._progress.console.print(f"[red]failed[/] {escape(name)}: {escape(result.error or '')}",
                                             highlight=False, soft_wrap=True)
            else:
                self._progress.console.print(
                    f"{result.status:9s} {escape(name)}: {result.items} items, {result.chunks} chunks, "
                    f"{result.embedded} embedded, {result.skipped} skipped, {result.seconds:.1f}s",
                    highlight=False, soft_wrap=True,
                )
                if result.warnings:
                    self._progress.console.print(
                        f"[yellow]warning[/] {escape(name)}: {escape('; '.join(result.warnings))}",
                        highlight=False, soft_wrap=True,
                    )


# ---------------------------------------------------------------------- from agents/models.py


def models_table(rows: list[ModelStatus]):
    """A rich table of :func:`list_models` rows for the CLI."""

    table = Table(title="Chat models", title_justify="left")
    table.add_column("id", style="bold")
    table.add_column("provider")
    table.add_column("available")
    table.add_column("reason / note", overflow="fold")
    for row in rows:
        mark = "[green]yes[/]" if row.available else "[red]no[/]"
        table.add_row(row.id, row.provider, mark, row.reason or row.description)
    return table


# ---------------------------------------------------------------------- from agents/qa.py


def answer_panel(answer: Answer):
    """A rich rendering of an answer with its numbered citations."""

    parts = [Text(answer.answer, style="bold" if answer.sufficient else "yellow")]
    shown: set[tuple[int, str]] = set()
    for c in answer.citations:
        if (c.n, c.quote) in shown:  # two figures read from one row: the row is cited once
            continue
        shown.add((c.n, c.quote))
        mark = "" if c.verified else "  [quote NOT found in the filing]"
        parts.append(Text(f"[E{c.n}] {c.citation}\n    “{c.quote}”{mark}", style="" if c.verified else "red"))
    if answer.error:
        parts.append(Text(f"error: {answer.error}", style="red"))
    footer = f"{answer.model_id} · {answer.prompt} · {answer.tokens_in} tokens in" + (" · cached" if answer.cached else "")
    return Panel(Group(*parts), title=answer.question, subtitle=footer)


# ---------------------------------------------------------------------- from prompts/loader.py


def prompts_table(prompts: list[RatingPrompt]):
    """A rich table of prompts: ref, method, hash, note; each category's default version is marked."""
    from filinglens.prompts.loader import DEFAULT_RATING_VERSION, preferred_version

    table = Table(title=f"Rating prompts (default version: {DEFAULT_RATING_VERSION}, else a category's newest)")
    for col in ("prompt", "method", "hash", "note"):
        table.add_column(col)
    versions: dict[str, list[str]] = {}
    for p in prompts:
        versions.setdefault(p.category, []).append(p.version)
    defaults = {c: preferred_version(vs) for c, vs in versions.items()}
    for p in prompts:
        ref = p.ref + (" (default)" if p.version == defaults[p.category] else "")
        table.add_row(ref, p.method, p.hash, (p.note or "")[:70])
    return table


# ---------------------------------------------------------------------- from retrieval/search.py


def hits_table(hits: Iterable[SearchHit], query: str):
    """A rich table of search hits for the CLI."""

    table = Table(title=f"search: {query}", show_lines=True)
    for col in ("#", "score", "filing", "item", "kind", "span", "text"):
        table.add_column(col, overflow="fold")
    for n, hit in enumerate(hits, start=1):
        m = hit.metadata
        who = m.get("ticker") or m.get("company") or "?"
        span = f"{m.get('start')}-{m.get('end')}" + (f" p.{m['page'] + 1}" if m.get("page") is not None else "")
        text = hit.text if len(hit.text) <= 600 else hit.text[:600] + " …"
        table.add_row(str(n), f"{hit.score:.4f}", f"{who} FY{m.get('fiscal_year', '?')}",
                      f"{m.get('item')} {m.get('item_title', '')}", m.get("kind", ""), span, text)
    return table


# ---------------------------------------------------------------------- from agents/rating.py


def ratings_table(ratings: Sequence[Rating]):
    """A rich table: filing, category, score (expected score with its interval, borderline flag), the
    indicators and facts that decided it, the first evidence quote with its citation, calls."""

    setups = sorted({f"{r.model_id} · prompt {r.prompt_version} ({r.method})" for r in ratings})
    table = Table(title="Ratings — " + "; ".join(setups), show_lines=True, expand=True)
    table.add_column("filing", ratio=1)
    table.add_column("category", ratio=1)
    table.add_column("score", ratio=1)
    if any(r.indicators for r in ratings):
        table.add_column("decided by", ratio=3)
    table.add_column("evidence", ratio=4)
    table.add_column("calls (cached)", ratio=1)
    with_why = any(r.indicators for r in ratings)
    for r in ratings:
        why = ""
        if r.status == "ok":
            expected = ""
            if r.method in PROBABILITY_METHODS and r.expected_score is not None:
                expected = f"\nE={r.expected_score:.2f}"
                if r.interval:
                    expected += f" [{r.interval[0]:.2f}–{r.interval[1]:.2f}]"
            flag = "\n[yellow]borderline[/]" if r.borderline else ""
            score = f"[bold]{r.score}[/]{expected}{flag}"
            quote = next((q for q in r.quotes if q["verified"]), r.quotes[0] if r.quotes else None)
            evidence = ""
            if quote:
                evidence = f"“{escape(quote['text'][:200])}”" + ("" if quote["verified"] else " [red](unverified)[/]")
                cited = next((e for e in r.evidence if e["chunk_id"] == quote.get("chunk_id")), None)
                if cited or r.evidence:
                    evidence += f"\n[dim]{escape((cited or r.evidence[0])['citation'])}[/]"
            elif r.evidence:
                evidence = f"[dim]{escape(r.evidence[0]['citation'])}[/]"
            why = "\n".join(escape(line) for line in deciding_indicators(r))
            facts = [f["text"] for f in r.facts if f.get("text")]
            if facts:
                why += "\n[dim]" + "\n".join(escape(text[:160]) for text in facts[:3]) + "[/]"
        else:
            score, evidence = "[red]failed[/]", f"[red]{escape((r.error or '')[:200])}[/]"
        sample = f" #{r.sample_index}" if r.sample_index else ""
        row = [r.target.label + sample, r.category, score] + ([why] if with_why else []) + [
            evidence, f"{r.model_calls} ({r.cached_calls})"]
        table.add_row(*row)
    return table


# ---------------------------------------------------------------------- from batch.py


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(stats) -> str:
    """``12/40 filings: 10 done, 1 failed, 1 cached · 95.0/h · ETA 17m40s``."""
    rate = f"{stats.per_hour:.1f} filings/h" if stats.per_hour else "- filings/h"
    return (f"{stats.finished}/{stats.total} filings: {stats.done} done, {stats.failed} failed, "
            f"{stats.cached} cached · {rate} · ETA {_duration(stats.eta_s)}")


class RichBatchProgress:
    """A rich progress bar for ``run_batch`` (a ``batch.BatchProgress``): counts, throughput and ETA;
    one line per finished filing."""

    def __init__(self, console=None) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=True)
        self._task = None

    def __enter__(self) -> "RichBatchProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def _ensure(self, stats) -> None:
        if self._task is None:
            self._task = self._progress.add_task("batch", total=stats.total)

    def started(self, stats, info: dict) -> None:
        self._ensure(stats)
        self._progress.console.print(
            f"batch {info['run_id']}: {stats.total} filings, {stats.cached} served from the store, "
            f"{stats.dispatched} to rate · executor {info['executor']} ({info['workers']} worker(s)) · "
            f"index: {escape(info['index'])}", highlight=False)
        self._progress.update(self._task, completed=stats.finished, description=progress_line(stats))

    def unit_finished(self, outcome: dict, stats) -> None:
        self._ensure(stats)
        self._progress.update(self._task, completed=stats.finished, description=progress_line(stats))
        if outcome["status"] == "failed":
            self._progress.console.print(f"[red]failed[/] {escape(outcome['label'])}: {escape(outcome['error'] or '')}",
                                         highlight=False)
        elif outcome["status"] == "done":
            self._progress.console.print(
                f"done   {escape(outcome['label'])}: {outcome['ratings']} ratings, {outcome['seconds'] or 0:.1f}s"
                f" on {outcome['worker']}", highlight=False)


def batch_table(report):
    """A rich table of the filings that failed, with their errors, under a summary title."""
    s = report.stats
    rate = f", {s.per_hour:.1f} filings/h" if s.per_hour else ""
    table = Table(title=f"batch {report.run_id}: {s.done} done, {s.failed} failed, {s.cached} cached of {s.total} "
                        f"filings; {s.ratings} ratings ({s.failed_ratings} failed), {s.calls_made} model calls made; "
                        f"{report.seconds:.1f}s{rate}", title_justify="left")
    table.add_column("failed filing", overflow="fold")
    table.add_column("error", overflow="fold")
    for o in report.failures:
        table.add_row(escape(o["label"]), escape(o["error"] or ""))
    return table


# ---------------------------------------------------------------------- eval harness (evals/run.py, report.py)


class RichSuiteProgress(SuiteProgress):
    """A rich progress bar on a console (stderr in the CLI): filings, then one bar over every rating."""

    def __init__(self, console=None) -> None:
        self.console = console
        self.ingest = RichIngestProgress(console)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=True,
        )
        self._task = None
        self._made = 0
        self._cached = 0

    def __enter__(self) -> "RichSuiteProgress":
        self.ingest.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._task is not None:
            self._progress.__exit__(*exc)
        else:
            self.ingest.__exit__(*exc)

    def stage(self, text: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=text)
        elif self.console is not None:
            self.console.print(f"[dim]{text}[/]", highlight=False)

    def start(self, total: int) -> None:
        self.ingest.__exit__(None, None, None)
        self._progress.__enter__()
        self._task = self._progress.add_task("rating", total=total)

    def rated(self, rating: Rating, rater: str) -> None:
        self._made += rating.model_calls - rating.cached_calls
        self._cached += rating.cached_calls
        self._progress.update(
            self._task, advance=1,
            description=f"rating {rater} · {rating.target.label} · {rating.category} "
                        f"[dim]({self._made} calls made, {self._cached} cached)[/]",
        )


def suite_summary(result: SuiteResult):
    """What ``eval run`` prints: test-retest and cross-rater α with intervals, paper, checks, files."""

    reasons: dict[str, None] = {}

    def est(value: dict | None) -> str:
        if value and value.get("estimate") is None and value.get("reason"):
            reasons[value["reason"]] = None
        return fmt_est(value, reason=False)

    parts: list[Any] = []
    head = Text.assemble(
        ("PASS" if result.ok else "FAIL", "bold green" if result.ok else "bold red"),
        f"  suite {result.suite.name}: {len(result.targets)} filings × {len(result.suite.category_list)} categories × "
        f"{result.suite.samples} samples × {len(result.raters)} raters = {len(result.ratings)} ratings "
        f"({result.failed_ratings} failed); model calls {result.calls_made} made, {result.calls_cached} cached; "
        f"{result.timings.get('total_s', 0):.0f}s",
    )
    parts.append(head)
    if result.test_retest:
        table = Table(title="Test-retest (repeated samples)", title_justify="left")
        for col in ("rater", "cells", "α interval [95% CI]", "α ordinal [95% CI]", "exact", "within one", "mean spread"):
            table.add_column(col)
        for rater, tr in result.test_retest.items():
            table.add_row(rater, str(tr["n_units"]), est(tr["alpha_interval"]), est(tr["alpha_ordinal"]),
                          fmt_share(tr["exact_agreement"]), fmt_share(tr["within_one"]), fmt_num(tr["mean_spread"]))
        parts.append(table)
    pairs = result.cross_prompt + result.cross_model
    paper_pairs = [got["overall"] for got in ((result.paper or {}).get("raters") or {}).values() if got.get("overall")]
    if pairs or paper_pairs:
        table = Table(title="Agreement between raters", title_justify="left")
        extra = extra_metrics()  # registered agreement metrics beyond these columns
        for col in ("raters", "cells", "α interval [95% CI]", "κ quadratic", "ICC(2,1)", "mean |Δ|",
                    *(m.label for m in extra)):
            table.add_column(col)
        for p in pairs + paper_pairs:
            table.add_row(f"{p['rater_a']} vs {p['rater_b']}", str(p["n_units"]), est(p["alpha_interval"]),
                          est(p["kappa_quadratic"]), est(p["icc2"]), est(p["mean_abs_diff"]),
                          *(est(p.get(m.name)) for m in extra))
        parts.append(table)
    ref_raters = ((result.reference or {}).get("raters") or {})
    if ref_raters:
        ref = result.reference
        table = Table(title=f"Agreement with reference labels ({ref['matched']} of {ref['labels']} matched)",
                      title_justify="left")
        for col in ("rater", "cells", "exact [95% CI]", "within one", "κ quadratic [95% CI]", "α ordinal",
                    "evidence recall"):
            table.add_column(col)
        for rater, got in ref_raters.items():
            o = got["overall"]
            recall = (got.get("evidence_recall") or {}).get("shown") or {}
            table.add_row(rater, str(o["n_units"]), est(o["exact_agreement"]), est(o["within_one"]),
                          est(o["kappa_quadratic"]), est(o["alpha_ordinal"]),
                          fmt_share(recall.get("estimate")) if recall.get("estimate") is not None else "n/a")
        parts.append(table)
    elif result.reference is not None and result.reference.get("reason"):
        parts.append(Text(f"reference labels: {result.reference['reason']}", style="yellow"))
    for reason in reasons:
        parts.append(Text(f"n/a: {reason}", style="dim"))
    if result.metamorphic is not None:
        rates = {f"{r} {n}": v for r, got in result.metamorphic.raters.items() for n, v in got.pass_rates.items()}
        line = ", ".join(f"{k}: {fmt_share(v)}" for k, v in rates.items()) or result.metamorphic.reason or "no results"
        parts.append(Text(f"metamorphic: {line}"))
    for note in result.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    for check in result.failures:
        parts.append(Text(f"threshold not met: {check.describe()}", style="red"))
    if result.files:
        parts.append(Text(f"report: {result.files.get('markdown')} · {result.files.get('html')} · "
                          f"{result.files.get('json')} · {result.files.get('parquet')}"))
    parts.append(Text("runs: " + ", ".join(result.runs.values()), style="dim"))
    return Group(*parts)


def diff_summary(diff: dict, limit: int = 30):
    """What ``eval diff`` prints: the changed cells (largest first), counts and agreement."""

    a, b = diff["run_a"], diff["run_b"]
    parts: list[Any] = [Text(f"A = {a['id']} ({', '.join(a['raters'])}, {a['ratings']} ratings)\n"
                             f"B = {b['id']} ({', '.join(b['raters'])}, {b['ratings']} ratings)")]
    counts = diff["counts"]
    parts.append(Text("cells: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in ("same", "changed", "only_a", "only_b", "missing")
                                            if counts.get(k))))
    changed = [c for c in diff["cells"] if c["status"] != "same"]
    if changed:
        table = Table(title=f"Changed cells ({len(changed)}; B − A, mean over samples)", title_justify="left")
        for col in ("cell", "A", "B", "Δ", "status"):
            table.add_column(col)
        for c in changed[:limit]:
            delta = "" if c["diff"] is None else f"{c['diff']:+.2f}"
            table.add_row(c["unit"], fmt_num(c["score_a"]), fmt_num(c["score_b"]), delta, c["status"])
        if len(changed) > limit:
            table.caption = f"… {len(changed) - limit} more (use --json)"
        parts.append(table)
    agreement = diff.get("agreement")
    if agreement:
        table = Table(title="Agreement A vs B", title_justify="left")
        for col in ("", "cells", "α interval [95% CI]", "α ordinal", "κ quadratic", "ICC(2,1)", "mean |Δ|", "exact"):
            table.add_column(col)
        rows = [("all", agreement)] + list((diff.get("by_category") or {}).items())
        for name, p in rows:
            table.add_row(name, str(p["n_units"]), fmt_est(p["alpha_interval"]), fmt_est(p["alpha_ordinal"], reason=False),
                          fmt_est(p["kappa_quadratic"], reason=False), fmt_est(p["icc2"], reason=False),
                          fmt_est(p["mean_abs_diff"]), fmt_est(p["exact_agreement"]))
        parts.append(table)
    else:
        parts.append(Text("no cells rated in both runs: agreement not computable", style="yellow"))
    return Group(*parts)


# ---------------------------------------------------------------------- metamorphic checks


def _fmt_rate(stats: dict) -> str:
    rate = stats.get("pass_rate")
    return "—" if rate is None else f"{rate:.0%}"


def metamorphic_table(report: MetamorphicReport | Sequence[MetamorphicReport], detail: bool = False):
    """A rich table: pass rate per model × prompt version × check (``detail``: one row per result)."""

    reports = [report] if isinstance(report, MetamorphicReport) else list(report)
    if detail:
        table = Table(title="Metamorphic checks — results", show_lines=False)
        for col in ("model · prompt", "filing", "category", "check", "expect", "baseline", "variant", "Δ E", "outcome"):
            table.add_column(col)
        for rep in reports:
            for r in rep.results:
                def score(s, e):
                    return "—" if s is None else (f"{s} (E={e:.2f})" if e is not None else str(s))

                outcome = {"pass": "[green]pass[/]", "fail": "[red]fail[/]"}.get(r.outcome, f"[yellow]{r.outcome}[/]")
                if r.went_down:
                    outcome += " ↓"
                table.add_row(f"{rep.model_id} · {rep.prompt_version}", r.filing, r.category, r.check, r.expect,
                              score(r.baseline_score, r.baseline_expected), score(r.variant_score, r.variant_expected),
                              "—" if r.delta is None else f"{r.delta:+.2f}", outcome)
        return table
    table = Table(title=f"Metamorphic checks — pass rates (tolerance ±{METAMORPHIC_TOLERANCE} on E)")
    table.add_column("model · prompt")
    table.add_column("check")
    table.add_column("expect")
    for col in ("pass", "fail", "error", "pass rate", "went down"):
        table.add_column(col, justify="right")
    for rep in reports:
        setup = f"{rep.model_id} · {rep.prompt_version}"
        for name, stats in rep.by_check().items():
            down = ""
            if "down_rate" in stats:
                down = "—" if stats["down_rate"] is None else f"{stats['down_rate']:.0%}"
            table.add_row(setup, name, METAMORPHIC_CHECKS[name].expect, str(stats["passed"]), str(stats["failed"]),
                          str(stats["errors"]), _fmt_rate(stats), down)
        o = rep.overall()
        table.add_row(setup, "[bold]all[/]", "", str(o["passed"]), str(o["failed"]), str(o["errors"]),
                      f"[bold]{_fmt_rate(o)}[/]", "", end_section=True)
    return table


# ---------------------------------------------------------------------- FinanceBench QA (evals/qa_eval.py)


def _qa_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _qa_val(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def qa_summary(result: QAEvalResult):
    """Rich tables: accuracy next to the FinanceBench anchor, then the other measures."""

    agg = result.aggregates
    setting = result.config["setting"]
    head = Table(title=f"FinanceBench QA: {agg['questions']} questions, {setting}, model {result.config['model']}")
    for col in ("system", "setting", "accuracy", "95% CI", "refusals", "evidence recall@k"):
        head.add_column(col, justify="left" if col in ("system", "setting") else "right")
    ci = agg.get("accuracy_ci95")
    head.add_row(f"FilingLens ({result.config['model']})", setting, _qa_pct(agg["accuracy"]),
                 f"{_qa_pct(ci[0])}-{_qa_pct(ci[1])}" if ci else "-", _qa_pct(agg["refusal_rate"]),
                 _qa_val(agg["evidence_recall"]))
    for name, value in QA_ANCHORS.items():
        head.add_row(QA_ANCHOR_MODEL, name, f"~{_qa_pct(value)}", "", "", "", style="bold" if name == setting else "dim")

    detail = Table(title="measures (means over questions)")
    detail.add_column("measure")
    detail.add_column("value", justify="right")
    rows = [
        ("correct", f"{agg['correct']}/{agg['questions']}"),
        ("accuracy when answered", _qa_pct(agg["accuracy_when_answered"])),
        ("errors (model/retrieval)", str(agg["errors"])),
        ("evidence page hit rate", _qa_pct(agg["evidence_hit_rate"])),
        ("quotes / unverified", f"{agg['quotes']} / {agg['unverified_quotes']}"),
        ("answers whose numbers all trace (quote or calculation)",
         f"{_qa_pct(agg['traced_share'])} ({agg['answers_traced']}/{agg['answers_with_numbers']})"),
        ("metric questions: calculations shown / lookups / refused",
         f"{agg['calculations_shown']} / {agg['compute_lookups']} / {agg['compute_refusals']} "
         f"of {agg['compute_questions']}"),
        ("tokens in / out", f"{agg['tokens_in']:,} / {agg['tokens_out']:,}"),
        ("answer latency p50 / p95 (s)",
         "-" if agg["answer_latency_p50_ms"] is None
         else f"{agg['answer_latency_p50_ms'] / 1000:.1f} / {agg['answer_latency_p95_ms'] / 1000:.1f}"),
    ]
    for qtype, entry in sorted(agg["by_question_type"].items()):
        ci = entry.get("accuracy_ci95")
        rows.append((f"accuracy: {qtype}", f"{_qa_pct(entry['accuracy'])} ({entry['correct']}/{entry['n']}"
                     + (f", 95% CI {_qa_pct(ci[0])}-{_qa_pct(ci[1])})" if ci else ")")))
        rows.append((f"  evidence recall / numbers traced: {qtype}",
                     f"{_qa_val(entry.get('evidence_recall'))} / {_qa_pct(entry.get('traced_share'))} "
                     f"({entry.get('answers_traced', 0)}/{entry.get('answers_with_numbers', 0)})"))
    for name, entry in (agg.get("by_split") or {}).items():
        ci = entry.get("accuracy_ci95")
        rows.append((f"accuracy: {name} half", f"{_qa_pct(entry['accuracy'])} ({entry['correct']}/{entry['n']}"
                     + (f", 95% CI {_qa_pct(ci[0])}-{_qa_pct(ci[1])})" if ci else ")")))
    for name, value in agg["metrics"].items():
        rows.append((f"ragas {name}", _qa_val(value)))
    for name, count in (agg.get("judge_errors") or {}).items():
        rows.append((f"judge errors: {name}", f"{count} of {agg.get('judged', 0)}"))
    t = result.timings
    rows.append(("runtime (ingest / answer / score / judge)",
                 f"{t['total_s']:.0f} s ({t['ingest_s']:.0f} / {t['answer_s']:.0f} / {t['score_s']:.0f} / "
                 f"{t['judge_s']:.0f})"))
    if result.skipped:
        rows.append(("skipped (documents missing)", str(len(result.skipped))))
    for name, value in rows:
        detail.add_row(name, value)
    parts = [head, detail]
    if result.out_dir:
        parts.append(Text(f"results: {result.out_dir}/qa_eval.json, qa_eval.parquet"))
    return Group(*parts)


class RichQAProgress:
    """A ``progress`` callback for the CLI: one rich bar per stage."""

    LABELS = {"ingest": "ingesting 10-Ks", "answer": "answering", "score": "ragas (no LLM)", "judge": "judging"}

    def __init__(self, console=None) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[label]}"), TimeElapsedColumn(), console=console,
                                 transient=True)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "RichQAProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def __call__(self, stage: str, done: int, total: int, label: str) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(self.LABELS.get(stage, stage), total=total, label="")
        self.progress.update(self.tasks[stage], completed=done, total=total, label=label)
