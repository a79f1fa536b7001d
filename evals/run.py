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
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from filinglens.agents.rating import Rating, Target
from filinglens.errors import FilingLensError, InputError
from filinglens.evals import stats
from filinglens.evals.results import (Check, MetamorphicSection, RaterMetamorphic, SuiteResult, jsonable,
                                      metamorphic_pass_rates)
from filinglens.evals.suite import Suite, SuiteError, Thresholds
from filinglens.evals.units import rater_id, row_unit, target_unit, unit_id
from filinglens.store import Store, json_hash

__all__ = ["Check", "SuiteResult", "SuiteProgress", "metamorphic_pass_rates", "rater_id", "row_unit", "run_suite",
           "target_unit", "unit_id"]  # the harness's names, wherever they are defined


# --------------------------------------------------------------------------- units and raters


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
    """The harness's progress events (all optional; ``display.RichSuiteProgress`` draws them in the CLI)."""

    ingest = None  # an ``IngestProgress`` for resolving filings, or None

    def stage(self, text: str) -> None:
        """A new stage began (``"statistics"``, ``"report"``, ...)."""

    def start(self, total: int) -> None:
        """Rating begins: ``total`` ratings to make."""

    def rated(self, rating: Rating, rater: str) -> None:
        """One rating finished (made or served from the cache)."""


# --------------------------------------------------------------------------- running


#: ``resolve(paths=(), ticker=None, year=None, progress=None) -> list[Target]``: indexed filings
#: (``filinglens.app.resolve_targets``).
Resolve = Callable[..., list[Target]]
#: ``rate(targets, categories, *, model_id, prompt_version, samples, temperature, evidence_chars, store, run_id,
#: label, gather, facts, progress) -> (run id, ratings)``: one rater's ratings in one results-store run
#: (``filinglens.app.run_ratings``).
RateCells = Callable[..., tuple[str, list[Rating]]]


def resolve_suite_targets(suite: Suite, progress: SuiteProgress | None = None, *, resolve: Resolve) -> list[Target]:
    """The suite's filings as indexed targets (``resolve`` ingests them when needed), filtered to ``years``."""
    resolve_targets = resolve
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
    rate: RateCells,
    gather: Callable,
    resolve: Resolve | None = None,
    store: Store | None = None,
    targets: Sequence[Target] | None = None,
    write: bool = True,
    chunk_text: Callable[[list[str]], dict[str, str]] | None = None,
    facts: Callable | None = None,
) -> SuiteResult:
    """Rate every cell of ``suite``, compute its statistics and checks, and write the report.

    The application layer supplies what the harness needs
    (:func:`filinglens.app.run_eval_suite` passes the index's): ``rate`` runs
    one rater's ratings, ``gather`` gives the evidence for a prompt and target,
    ``targets`` are the filings (else ``resolve`` finds them, see
    :func:`resolve_suite_targets`), ``chunk_text`` gives evidence texts by
    chunk id for evidence recall (default
    :func:`filinglens.evals.reference.index_chunk_text`) and ``facts`` a
    filing's key figures for the indicators method. The report goes to
    ``out_dir`` (default ``$FILINGLENS_HOME/evals/{suite}-{hash}``).
    """
    if targets is None and resolve is None:
        raise TypeError("run_suite needs `targets` or `resolve`")
    progress = progress or SuiteProgress()
    store = store or Store()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    reference = suite.load_reference()  # a bad label file fails before any rating

    progress.stage(f"suite {suite.name}: resolving filings")
    targets = list(targets) if targets is not None else resolve_suite_targets(suite, progress, resolve=resolve)
    if not targets:
        raise SuiteError(f"{suite.path or suite.name}: no filings to rate")
    timings["filings_s"] = round(time.perf_counter() - started, 2)
    categories = suite.category_list
    suite_hash = json_hash([suite.content_hash(), sorted(t.content_hash for t in targets)])[:12]

    t0 = time.perf_counter()
    progress.start(len(targets) * len(categories) * suite.samples * len(suite.raters))
    runs: dict[str, str] = {}
    ratings: list[Rating] = []
    for model_id, version in suite.raters:
        rater = rater_id(model_id, version)
        run_id, got = rate(
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


def run_metamorphic_checks(suite: Suite, targets: Sequence[Target], store: Store, gather,
                           facts=None) -> MetamorphicSection:
    """Per rater: ``filinglens.evals.metamorphic.run_metamorphic(...)`` (imported only when a suite asks)."""
    import inspect

    spec = suite.metamorphic
    try:
        from filinglens.evals.metamorphic import run_metamorphic
    except ImportError as exc:
        return MetamorphicSection(False, reason=f"metamorphic checks are not available ({exc})")
    try:
        accepted = inspect.signature(run_metamorphic).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    except (TypeError, ValueError):
        accepted, takes_any = {}, True
    out = MetamorphicSection(True, checks=list(spec.checks))
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
                out.raters[rater] = RaterMetamorphic(run_metamorphic(targets, categories, **kwargs))
            except FilingLensError as exc:
                out.raters[rater] = RaterMetamorphic(error=str(exc))
    return out


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
        raters = result.metamorphic.raters
        if not raters:
            add("min_metamorphic_pass_rate", "all", None, result.metamorphic.reason or "no results")
        for rater, got in raters.items():
            rates = got.pass_rates
            if not rates:
                add("min_metamorphic_pass_rate", rater, None, got.error or "no pass rate reported")
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
    return jsonable(out)
