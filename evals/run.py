"""Run an eval suite: rate every cell, compute agreement statistics, check thresholds, write the report.

One results-store run per rater (``model@prompt_version``). Its id is
deterministic — ``eval-{suite}-{model}@{version}-{hash}`` where the hash
covers the suite's content, the resolved prompt hashes and the filings'
content hashes — so an interrupted suite resumes in the same run and a
finished one is served entirely from the call cache (zero model calls). Edit
a prompt and the id changes: ``filinglens eval diff OLD NEW`` compares them.

Statistics (all from :mod:`filinglens.evals.stats`, with bootstrap CIs):

* test-retest per rater (samples of the same model + prompt): α interval and
  ordinal, exact and within-one agreement, per-cell spread;
* across prompt versions (same model) and across models (same prompt
  version): α, weighted κ, ICC(2,1), mean absolute difference, overall and
  per category;
* agreement with the paper's Command-R+ ratings when ``paper: true``;
* metamorphic pass rates when the suite has a ``metamorphic:`` section;
* criterion validity when the suite names ``reference`` labels
  (:mod:`filinglens.evals.reference`): exact / within-one agreement,
  quadratic κ and ordinal α with the labels per rater, per category and on
  clear vs borderline labels, the confusion matrix and evidence recall.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from filinglens.agents.rating import Rating, Target
from filinglens.errors import FilingLensError, InputError
from filinglens.evals import stats
from filinglens.evals.suite import Suite, SuiteError, Thresholds
from filinglens.store import Store, json_hash


# --------------------------------------------------------------------------- units and raters


def rater_id(model_id: str, prompt_version: str) -> str:
    """The rater label of a (model, prompt version) pair: ``"local@v2"``."""
    return f"{model_id}@{prompt_version}"


def unit_id(ticker: str | None, fiscal_year: int | None, category: str, fallback: str = "?") -> str:
    """``"AAPL|2019|environment"`` (the paper's unit ids); company or filing hash when there is no ticker."""
    if ticker and fiscal_year:
        return stats.unit_key(ticker, fiscal_year, category)
    return f"{(ticker or fallback).upper()}|{fiscal_year or '?'}|{category}"


def target_unit(target: Target, category: str) -> str:
    return unit_id(target.ticker, target.fiscal_year, category, target.company or target.content_hash[:12])


def row_unit(row: dict) -> str:
    """Unit id of a results-store ``ratings`` row."""
    return unit_id(row.get("ticker"), row.get("fiscal_year"), row["category"],
                   row.get("company") or str(row.get("filing_hash", "?"))[:12])


def frame_from_rows(rows: Sequence[dict], rater: str | None = None) -> pd.DataFrame:
    """Long ratings frame (unit, rater, sample, score) from store rows; failed ratings are NaN."""
    records = []
    for row in rows:
        who = rater or row.get("rater") or rater_id(row["model_id"], row["prompt_version"])
        score = row.get("score") if row.get("status", "ok") == "ok" else None
        records.append((row_unit(row), who, int(row.get("sample_index") or 0), score))
    if not records:
        return pd.DataFrame(columns=list(stats.COLUMNS))
    return stats.ratings_frame(records)


# --------------------------------------------------------------------------- progress


class SuiteProgress:
    """Callbacks for a progress display (all optional)."""

    ingest = None  # an ``IngestProgress`` for resolving filings, or None

    def stage(self, text: str) -> None: ...

    def start(self, total: int) -> None: ...

    def rated(self, rating: Rating, rater: str) -> None: ...


class RichSuiteProgress(SuiteProgress):
    """A rich progress bar on a console (stderr in the CLI): filings, then one bar over every rating."""

    def __init__(self, console=None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from filinglens.display import RichIngestProgress

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


# --------------------------------------------------------------------------- the result


@dataclass
class Check:
    """One threshold applied to one statistic."""

    name: str  # the threshold, e.g. min_test_retest_alpha
    scope: str  # rater, pair or "all"
    threshold: float
    value: float | None
    passed: bool
    reason: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "scope": self.scope, "threshold": self.threshold, "value": self.value,
                "passed": self.passed, "reason": self.reason}

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.3f}"
        op = "≥" if self.name.startswith("min_") else "≤"
        tail = f" ({self.reason})" if self.reason else ""
        return f"{self.name} [{self.scope}]: {shown} (needs {op} {self.threshold}){tail}"


@dataclass
class SuiteResult:
    """Everything ``eval run`` computed; ``to_dict()`` is ``results.json``."""

    suite: Suite
    suite_hash: str
    targets: list[Target]
    runs: dict[str, str]  # rater -> results-store run id
    ratings: list[Rating]
    frame: pd.DataFrame
    test_retest: dict[str, Any] = field(default_factory=dict)
    cross_prompt: list[dict] = field(default_factory=list)
    cross_model: list[dict] = field(default_factory=list)
    matrix: dict[str, pd.DataFrame] = field(default_factory=dict)
    paper: dict[str, Any] | None = None
    metamorphic: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def raters(self) -> list[str]:
        return list(self.runs)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def calls_made(self) -> int:
        return sum(r.model_calls - r.cached_calls for r in self.ratings)

    @property
    def calls_cached(self) -> int:
        return sum(r.cached_calls for r in self.ratings)

    @property
    def failed_ratings(self) -> int:
        return sum(1 for r in self.ratings if r.status != "ok")

    def rating_rows(self) -> list[dict]:
        """One flat row per rating (the Parquet file): unit, rater, run id and the store's columns."""
        rows = []
        for r in self.ratings:
            row = r.to_row()
            rater = rater_id(r.model_id, r.prompt_version)
            row.update(unit=target_unit(r.target, r.category), rater=rater, run_id=self.runs.get(rater),
                       filing_id=r.target.filing_id, filing=r.target.label)
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        slim = [
            {k: row[k] for k in ("unit", "rater", "run_id", "filing", "ticker", "fiscal_year", "category",
                                 "prompt_version", "model_id", "sample_index", "status", "score",
                                 "expected_score", "error", "unverified_quotes", "model_calls", "cached_calls")}
            for row in self.rating_rows()
        ]
        return _jsonable({
            "suite": {"name": self.suite.name, "path": self.suite.path, "hash": self.suite_hash,
                      "description": self.suite.description,
                      "config": self.suite.model_dump(mode="json", exclude={"path"})},
            "ok": self.ok,
            "failures": [c.describe() for c in self.failures],
            "checks": [c.to_dict() for c in self.checks],
            "runs": self.runs,
            "filings": [{"filing_id": t.filing_id, "label": t.label, "ticker": t.ticker, "company": t.company,
                         "fiscal_year": t.fiscal_year} for t in self.targets],
            "counts": {"ratings": len(self.ratings), "failed": self.failed_ratings,
                       "calls_made": self.calls_made, "calls_cached": self.calls_cached},
            "test_retest": self.test_retest,
            "cross_prompt": self.cross_prompt,
            "cross_model": self.cross_model,
            "agreement_matrix": {stat: _matrix_dict(m) for stat, m in self.matrix.items()},
            "paper": self.paper,
            "metamorphic": self.metamorphic,
            "reference": self.reference,
            "notes": self.notes,
            "timings": self.timings,
            "files": self.files,
            "ratings": slim,
        })


def _matrix_dict(matrix: pd.DataFrame) -> dict:
    return {str(a): {str(b): _clean(v) for b, v in row.items()} for a, row in matrix.iterrows()}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _jsonable(value: Any) -> Any:
    """Plain JSON types all the way down (numpy scalars, NaN → None, Paths → str)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- running


def resolve_suite_targets(suite: Suite, progress: SuiteProgress | None = None) -> list[Target]:
    """The suite's filings as indexed targets (ingested first when needed), filtered to ``years``."""
    from filinglens.app import resolve_targets

    ingest_progress = getattr(progress, "ingest", None)
    targets: dict[str, Target] = {}
    if not suite.filings:  # the files the reference labels name
        reference = suite.load_reference()
        files = reference.files() if reference else []
        if not files:
            raise SuiteError(f"{suite.path or suite.name}: no `filings`, and the reference labels name no 10-K file "
                             "that exists here")
        for t in resolve_targets(files, progress=ingest_progress):
            targets.setdefault(t.filing_id, t)
    for i, spec in enumerate(suite.filings):
        if spec.paths:
            paths = suite.resolve_paths(spec)
            found = resolve_targets(paths, ticker=spec.ticker, progress=ingest_progress)
        else:
            found = resolve_targets((), ticker=spec.ticker, year=spec.year_range, progress=ingest_progress)
        if spec.years:
            found = [t for t in found if t.fiscal_year in spec.years]
        if not found:
            raise SuiteError(f"{suite.path or suite.name}: filings[{i}] gives no filing"
                             + (f" for years {spec.years[0]}–{spec.years[-1]}" if spec.years else ""))
        for t in found:
            targets.setdefault(t.filing_id, t)
    return sorted(targets.values(), key=lambda t: (t.ticker or t.company or "", t.fiscal_year or 0, t.filing_id))


def run_id_for(suite: Suite, targets: Sequence[Target], model_id: str, prompt_version: str) -> str:
    """Deterministic run id of one rater: same suite content, prompts and filings → same id."""
    from filinglens.prompts.loader import load_prompt

    prompts = {c: load_prompt(f"{c}@{prompt_version}").hash for c in suite.category_list}
    key = json_hash({
        "suite": suite.content_hash(), "model": model_id, "prompt_version": prompt_version, "prompts": prompts,
        "filings": sorted(t.content_hash for t in targets), "categories": suite.category_list,
        "samples": suite.samples, "temperature": suite.temperature, "evidence_chars": suite.evidence_chars,
    })
    return f"eval-{suite.name}-{rater_id(model_id, prompt_version)}-{key[:12]}"


def run_suite(
    suite: Suite,
    out_dir: str | Path | None = None,
    progress: SuiteProgress | None = None,
    *,
    store: Store | None = None,
    gather: Callable | None = None,
    targets: Sequence[Target] | None = None,
    write: bool = True,
    chunk_text: Callable[[list[str]], dict[str, str]] | None = None,
    facts: Callable | None = None,
) -> SuiteResult:
    """Rate every cell of ``suite``, compute its statistics and checks, and write the report.

    ``gather`` (evidence for a prompt and target), ``targets``, ``chunk_text``
    (evidence texts by chunk id, for evidence recall) and ``facts`` (a filing's
    key figures, for the indicators method) default to the index
    (:func:`filinglens.app.index_gatherer`, :func:`resolve_suite_targets`,
    :func:`filinglens.evals.reference.index_chunk_text`,
    :func:`filinglens.app.index_facts`; no facts when ``gather`` is
    given); tests pass stubs. The report goes to
    ``out_dir`` (default ``$FILINGLENS_HOME/evals/{suite}-{hash}``).
    """
    from filinglens.app import index_facts, index_gatherer, run_ratings

    progress = progress or SuiteProgress()
    store = store or Store()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    reference = suite.load_reference()  # a bad label file fails before any rating

    progress.stage(f"suite {suite.name}: resolving filings")
    targets = list(targets) if targets is not None else resolve_suite_targets(suite, progress)
    if not targets:
        raise SuiteError(f"{suite.path or suite.name}: no filings to rate")
    timings["filings_s"] = round(time.perf_counter() - started, 2)
    if facts is None and gather is None:
        facts = index_facts()
    gather = gather or index_gatherer()
    categories = suite.category_list
    suite_hash = json_hash([suite.content_hash(), sorted(t.content_hash for t in targets)])[:12]

    t0 = time.perf_counter()
    progress.start(len(targets) * len(categories) * suite.samples * len(suite.raters))
    runs: dict[str, str] = {}
    ratings: list[Rating] = []
    for model_id, version in suite.raters:
        rater = rater_id(model_id, version)
        run_id, got = run_ratings(
            targets, categories, model_id=model_id, prompt_version=version, samples=suite.samples,
            temperature=suite.temperature, evidence_chars=suite.evidence_chars, store=store,
            run_id=run_id_for(suite, targets, model_id, version), label=f"{suite.name}: {rater}", gather=gather,
            facts=facts, progress=lambda r, rater=rater: progress.rated(r, rater),
        )
        runs[rater] = run_id
        ratings.extend(got)
    timings["rating_s"] = round(time.perf_counter() - t0, 2)
    done = [r for r in ratings if r.status == "ok"]
    if ratings:
        timings["per_rating_s"] = round(timings["rating_s"] / len(ratings), 2)
    made = sum(r.model_calls - r.cached_calls for r in ratings)
    if made:
        timings["per_model_call_s"] = round(sum(r.latency_ms for r in ratings) / 1000 / max(made, 1), 2)

    frame = stats.ratings_frame(
        [(target_unit(r.target, r.category), rater_id(r.model_id, r.prompt_version), r.sample_index,
          r.score if r.status == "ok" else None) for r in ratings]
    )
    result = SuiteResult(suite, suite_hash, targets, runs, ratings, frame)
    if not done:
        result.notes.append("no rating succeeded: every statistic is undefined")

    t0 = time.perf_counter()
    progress.stage("statistics")
    compute_statistics(result)
    if suite.paper.enabled:
        progress.stage("agreement with the paper")
        result.paper = paper_agreement(result)
    if reference is not None:
        from filinglens.evals.reference import reference_agreement

        progress.stage("agreement with the reference labels")
        result.reference = reference_agreement(reference, targets, ratings, frame, chunk_text=chunk_text,
                                               n_boot=suite.n_boot, n_boot_slow=suite.n_boot_slow, seed=suite.seed)
    if suite.metamorphic is not None:
        progress.stage("metamorphic checks")
        result.metamorphic = run_metamorphic_checks(suite, targets, store, gather, facts)
    timings["statistics_s"] = round(time.perf_counter() - t0, 2)
    result.checks = check_thresholds(result)
    result.timings = timings

    if write:
        from filinglens.evals.report import write_report
        from filinglens.settings import subdir

        progress.stage("report")
        t0 = time.perf_counter()
        out = Path(out_dir) if out_dir else subdir("evals") / f"{suite.name}-{suite_hash}"
        result.out_dir = out
        timings["total_s"] = round(time.perf_counter() - started, 2)
        write_report(result, out)
        timings["report_s"] = round(time.perf_counter() - t0, 2)
    timings["total_s"] = round(time.perf_counter() - started, 2)
    return result


# --------------------------------------------------------------------------- statistics


def compute_statistics(result: SuiteResult) -> None:
    """Test-retest per rater, pairs across prompt versions and across models, the agreement matrices."""
    suite, frame = result.suite, result.frame
    boot = dict(n_boot=suite.n_boot, n_boot_slow=suite.n_boot_slow, seed=suite.seed)
    if suite.samples >= 2:
        result.test_retest = stats.test_retest(frame, n_boot=suite.n_boot, seed=suite.seed)
        from filinglens.agents.rating import PROBABILITY_METHODS, token_probabilities

        fixed = sorted({rater_id(r.model_id, r.prompt_version) for r in result.ratings
                        if r.method in PROBABILITY_METHODS and token_probabilities(r.model_id)})
        if fixed:
            result.notes.append(f"{', '.join(fixed)}: yes/no from next-token probabilities is deterministic, "
                                "so its samples agree by construction (test-retest shows the sampling method, "
                                "not chance)")
    else:
        result.notes.append("test-retest needs samples ≥ 2 (the suite has 1)")

    def pair(a: str, b: str, kind: str, **extra) -> dict:
        out = stats.pairwise_agreement(frame, a, b, **boot)
        out.update(kind=kind, **extra)
        out["by_category"] = stats.pairwise_agreement_by(frame, a, b, **boot)
        return out

    for model_id in suite.models:
        for va, vb in itertools.combinations(suite.prompt_versions, 2):
            result.cross_prompt.append(pair(rater_id(model_id, va), rater_id(model_id, vb), "prompt", model=model_id))
    for version in suite.prompt_versions:
        for ma, mb in itertools.combinations(suite.models, 2):
            result.cross_model.append(pair(rater_id(ma, version), rater_id(mb, version), "model",
                                           prompt_version=version))
    matrix_frame = frame
    if suite.paper.enabled:
        try:
            from filinglens.evals.paper import paper_frame

            paper = paper_frame()
            paper = paper[paper["unit"].isin(set(frame["unit"]))]
            matrix_frame = pd.concat([frame, paper], ignore_index=True)
        except (FileNotFoundError, ValueError):
            pass  # reported by paper_agreement
    if len(stats.rater_names(matrix_frame)) >= 2:
        for stat in ("alpha_interval", "mad"):
            result.matrix[stat] = stats.agreement_matrix(matrix_frame, stat)


def paper_agreement(result: SuiteResult) -> dict:
    """Per rater: :func:`filinglens.evals.paper.agreement_with_paper` (overall and per category)."""
    from filinglens.evals.paper import agreement_with_paper

    suite = result.suite
    out: dict[str, Any] = {"prompt": suite.paper.prompt, "raters": {}}
    for rater in result.raters:
        try:
            out["raters"][rater] = agreement_with_paper(
                result.frame, rater, prompt=suite.paper.prompt,
                n_boot=suite.n_boot, n_boot_slow=suite.n_boot_slow, seed=suite.seed,
            )
        except FileNotFoundError as exc:
            out["reason"] = str(exc)
            break
    return out


def run_metamorphic_checks(suite: Suite, targets: Sequence[Target], store: Store, gather, facts=None) -> dict:
    """Per rater: ``filinglens.evals.metamorphic.run_metamorphic(...)`` (imported only when a suite asks)."""
    import inspect

    spec = suite.metamorphic
    try:
        from filinglens.evals.metamorphic import run_metamorphic
    except ImportError as exc:
        return {"available": False, "reason": f"metamorphic checks are not available ({exc})", "raters": {}}
    try:
        accepted = inspect.signature(run_metamorphic).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    except (TypeError, ValueError):
        accepted, takes_any = {}, True
    out: dict[str, Any] = {"available": True, "checks": list(spec.checks), "raters": {}}
    categories = spec.categories or suite.category_list
    for model_id in spec.models or suite.models:
        for version in spec.prompt_versions or suite.prompt_versions:
            rater = rater_id(model_id, version)
            kwargs: dict[str, Any] = dict(model_id=model_id, prompt_version=version, store=store, gather=gather)
            if spec.checks:
                kwargs["checks"] = list(spec.checks)
            optional = {"temperature": suite.temperature, "evidence_chars": suite.evidence_chars,
                        "label": f"{suite.name}: metamorphic {rater}", "facts": facts}
            kwargs.update({k: v for k, v in optional.items() if v is not None and (takes_any or k in accepted)})
            kwargs.update(spec.options)
            try:
                got = run_metamorphic(targets, categories, **kwargs)
            except FilingLensError as exc:
                got = {"error": str(exc)}
            out["raters"][rater] = _jsonable(got.to_dict() if hasattr(got, "to_dict") else got)
    return out


def metamorphic_pass_rates(result: Any) -> dict[str, float | None]:
    """Pass rate per check of one rater's metamorphic result (``by_check`` / ``pass_rates``, else any ``pass_rate``)."""
    if not isinstance(result, dict):
        return {}
    if isinstance(result.get("by_check"), dict):
        return {str(k): (v.get("pass_rate") if isinstance(v, dict) else v) for k, v in result["by_check"].items()}
    if isinstance(result.get("pass_rates"), dict):
        return {str(k): v for k, v in result["pass_rates"].items()}
    rates: dict[str, float | None] = {}

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key == "pass_rate":
                rates[path or "overall"] = value
            elif isinstance(value, dict):
                walk(value, path if key in ("checks", "results") else (f"{path}/{key}" if path else str(key)))

    walk(result, "")
    return rates


# --------------------------------------------------------------------------- thresholds


def check_thresholds(result: SuiteResult) -> list[Check]:
    """Apply the suite's thresholds; a statistic that is None is skipped (or fails with ``on_missing: fail``)."""
    th: Thresholds = result.suite.thresholds
    level = f"alpha_{th.alpha_level}"
    checks: list[Check] = []

    def add(name: str, scope: str, value: Any, reason: str | None = None) -> None:
        limit = getattr(th, name)
        if limit is None:
            return
        if isinstance(value, dict):
            reason = reason or value.get("reason")
            value = value.get("estimate")
        if value is None:
            checks.append(Check(name, scope, limit, None, th.on_missing == "skip", reason or "not computable"))
            return
        value = float(value)
        passed = value >= limit - 1e-12 if name.startswith("min_") else value <= limit + 1e-12
        checks.append(Check(name, scope, limit, value, passed))

    if result.ratings:
        add("max_failed_share", "all", result.failed_ratings / len(result.ratings))
    for rater in result.raters:
        tr = result.test_retest.get(rater)
        reason = None if tr else "test-retest needs samples ≥ 2"
        add("min_test_retest_alpha", rater, (tr or {}).get(level), reason)
        add("min_test_retest_exact", rater, (tr or {}).get("exact_agreement"), reason)
        add("min_test_retest_within_one", rater, (tr or {}).get("within_one"), reason)
        add("max_test_retest_mean_spread", rater, (tr or {}).get("mean_spread"), reason)
    for pair in result.cross_prompt:
        scope = f"{pair['rater_a']} vs {pair['rater_b']}"
        add("min_cross_prompt_alpha", scope, pair[level])
        add("max_cross_mean_abs_diff", scope, pair["mean_abs_diff"])
    for pair in result.cross_model:
        scope = f"{pair['rater_a']} vs {pair['rater_b']}"
        add("min_cross_model_alpha", scope, pair[level])
        add("max_cross_mean_abs_diff", scope, pair["mean_abs_diff"])
    if result.paper is not None:
        for rater in result.raters:
            got = result.paper["raters"].get(rater) or {}
            overall = got.get("overall")
            reason = got.get("reason") or result.paper.get("reason") or "no cells in common with the paper"
            add("min_paper_alpha", f"{rater} vs paper", (overall or {}).get(level), None if overall else reason)
            add("max_paper_mean_abs_diff", f"{rater} vs paper", (overall or {}).get("mean_abs_diff"),
                None if overall else reason)
    if result.reference is not None:
        for rater in result.raters:
            got = (result.reference.get("raters") or {}).get(rater)
            reason = None if got else (result.reference.get("reason") or "no labelled cell rated")
            overall = (got or {}).get("overall") or {}
            add("min_reference_exact", f"{rater} vs reference", overall.get("exact_agreement"), reason)
            add("min_reference_within_one", f"{rater} vs reference", overall.get("within_one"), reason)
            add("min_reference_kappa", f"{rater} vs reference", overall.get("kappa_quadratic"), reason)
            add("min_reference_alpha", f"{rater} vs reference", overall.get("alpha_ordinal"), reason)
            recall = ((got or {}).get("evidence_recall") or {}).get("shown")
            add("min_evidence_recall", f"{rater} vs reference", recall, reason)
    if result.metamorphic is not None and th.min_metamorphic_pass_rate is not None:
        raters = result.metamorphic.get("raters") or {}
        if not raters:
            add("min_metamorphic_pass_rate", "all", None, result.metamorphic.get("reason") or "no results")
        for rater, got in raters.items():
            rates = metamorphic_pass_rates(got)
            if not rates:
                add("min_metamorphic_pass_rate", rater, None, (got or {}).get("error") or "no pass rate reported")
            for name, rate in rates.items():
                add("min_metamorphic_pass_rate", f"{rater} {name}", rate,
                    None if rate is not None else "no judged case (all errors)")
    return checks


# --------------------------------------------------------------------------- diff of two store runs


def _find_run(store: Store, ref: str) -> dict:
    run = store.run(ref)
    if run:
        return run
    matches = [r for r in store.runs() if r["id"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InputError(f"run `{ref}` is ambiguous: {', '.join(r['id'] for r in matches[:5])}")
    recent = ", ".join(r["id"] for r in store.runs()[:5]) or "none yet"
    raise InputError(f"no run `{ref}` in {store.path} (recent runs: {recent})")


def diff_store_runs(
    run_a: str,
    run_b: str,
    *,
    store: Store | None = None,
    n_boot: int = stats.DEFAULT_N_BOOT,
    n_boot_slow: int = stats.DEFAULT_N_BOOT_SLOW,
    seed: int = 0,
) -> dict:
    """``filinglens eval diff``: which cells changed between two runs, by how much, and their agreement.

    A run id may be given by a unique prefix. Returns :func:`stats.diff_runs`
    output plus ``run_a``/``run_b`` (id, label, status, raters, n ratings),
    each cell's ``category`` and the same agreement per category.
    """
    store = store or Store()
    runs = [_find_run(store, ref) for ref in (run_a, run_b)]
    frames, info = [], []
    for run in runs:
        rows = store.ratings(run["id"])
        if not rows:
            raise InputError(f"run {run['id']} has no ratings")
        frames.append(frame_from_rows(rows))
        info.append({"id": run["id"], "label": run.get("label"), "status": run.get("status"),
                     "raters": sorted({rater_id(r["model_id"], r["prompt_version"]) for r in rows}),
                     "ratings": len(rows), "failed": sum(1 for r in rows if r["status"] != "ok")})
    label_a, label_b = "A", "B"
    out = stats.diff_runs(frames[0], frames[1], label_a=label_a, label_b=label_b,
                          n_boot=n_boot, n_boot_slow=n_boot_slow, seed=seed)
    for cell in out["cells"]:
        cell["category"] = stats.unit_category(cell["unit"])
    both = pd.concat([frames[0].assign(rater=label_a), frames[1].assign(rater=label_b)], ignore_index=True)
    both = both.groupby(["unit", "rater", "sample"], as_index=False, sort=False)["score"].mean()
    by_category = {}
    if out["agreement"] is not None:
        by_category = stats.pairwise_agreement_by(both, label_a, label_b, n_boot=n_boot,
                                                  n_boot_slow=n_boot_slow, seed=seed)
    out.update(run_a=info[0], run_b=info[1], by_category=by_category)
    return _jsonable(out)
