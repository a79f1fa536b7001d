"""The eval report: Markdown and HTML (plots embedded), ``results.json`` and ``ratings.parquet``.

The report is built once as a list of blocks (heading, paragraph, bullet
list, table, image) and rendered twice: ``report.md`` links the PNG files in
``plots/``, ``report.html`` embeds them (base64), so it can be mailed or
attached to CI as one file. Plots (matplotlib, Agg backend): a filing ×
category heatmap of mean scores per rater, the raters × raters agreement
matrix (Krippendorff's α, interval), and year trends per category for
tickers rated over several years. The terminal summary of ``eval run`` and the table of ``eval diff`` are in
:mod:`filinglens.display`; the rendering helpers in :mod:`filinglens.analysis.render`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from filinglens.analysis.render import (Block, figure_png, fmt_est, fmt_num, fmt_share, pyplot, render_html,
                                        render_markdown)
from filinglens.evals import stats
from filinglens.evals.results import MetamorphicSection, SuiteResult
from filinglens.settings import atomic_write
from filinglens.store import encode_rating_row


def _cells(result) -> pd.DataFrame:
    """Per rater × filing × category: mean, spread, samples, failed."""
    rows = []
    for r in result.ratings:
        rows.append({"rater": f"{r.model_id}@{r.prompt_version}", "filing": r.target.label,
                     "order": (r.target.ticker or r.target.company or "", r.target.fiscal_year or 0),
                     "category": r.category, "score": r.score if r.status == "ok" else np.nan,
                     "failed": r.status != "ok"})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.groupby(["rater", "filing", "category"], sort=False).agg(
        mean=("score", "mean"), low=("score", "min"), high=("score", "max"),
        n=("score", "count"), failed=("failed", "sum"), order=("order", "first"),
    ).reset_index()


def plot_heatmaps(result) -> bytes | None:
    """One panel per rater: filings (rows) × categories (columns), mean score over samples (0–2)."""
    cells = _cells(result)
    if cells.empty:
        return None
    plt = pyplot()
    raters = list(result.runs)
    filings = [t.label for t in result.targets]
    categories = result.suite.category_list
    cols = min(len(raters), 2)
    rows_n = math.ceil(len(raters) / cols)
    height = max(2.2, 0.38 * len(filings) + 1.4)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols + 1.6, height * rows_n + 0.4), squeeze=False,
                             layout="constrained")
    image = None
    for index, (ax, rater) in enumerate(zip(axes.flat, raters)):
        part = cells[cells["rater"] == rater].set_index(["filing", "category"])
        grid = np.full((len(filings), len(categories)), np.nan)
        for i, f in enumerate(filings):
            for j, c in enumerate(categories):
                if (f, c) in part.index:
                    grid[i, j] = part.loc[(f, c), "mean"]
        image = ax.imshow(grid, vmin=0, vmax=2, cmap="viridis", aspect="auto")
        for i, f in enumerate(filings):
            for j, c in enumerate(categories):
                if (f, c) not in part.index:
                    continue
                cell = part.loc[(f, c)]
                if cell["n"] == 0:
                    text = "fail"
                else:
                    text = f"{cell['mean']:.1f}"
                    if cell["high"] - cell["low"] > 1e-9:
                        text += f"\n±{(cell['high'] - cell['low']) / 2:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if (np.isnan(grid[i, j]) or grid[i, j] < 1.2) else "black")
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(filings)), filings if index % cols == 0 else [""] * len(filings), fontsize=8)
        ax.set_title(rater, fontsize=9)
    for ax in list(axes.flat)[len(raters):]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="mean score")
    return figure_png(fig)


def plot_matrix(result, stat: str = "alpha_interval") -> bytes | None:
    """Raters × raters agreement heatmap (α interval by default)."""
    matrix = result.matrix.get(stat)
    if matrix is None or matrix.empty:
        return None
    plt = pyplot()
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.3 * n + 2.5, 1.1 * n + 1.5))
    values = matrix.to_numpy(dtype=float)
    vmin, vmax, cmap = (-1, 1, "RdYlGn") if stat != "mad" else (0, 2, "RdYlGn_r")
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, "n/a" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}", ha="center", va="center",
                    fontsize=8)
    ax.set_xticks(range(n), matrix.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), matrix.index, fontsize=8)
    ax.set_title("Krippendorff's α (interval) between raters" if stat == "alpha_interval" else stat, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return figure_png(fig)


def plot_confusion(result) -> bytes | None:
    """One panel per rater: reference score (rows) × rating (columns), counts of cells."""
    raters = [(r, got) for r, got in ((result.reference or {}).get("raters") or {}).items() if got.get("confusion")]
    if not raters:
        return None
    plt = pyplot()
    cols = min(len(raters), 3)
    rows_n = math.ceil(len(raters) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.3 * cols, 3.0 * rows_n), squeeze=False, layout="constrained")
    for ax, (rater, got) in zip(axes.flat, raters):
        counts = np.array(got["confusion"], dtype=float)
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(1.0, counts.max()))
        for i in range(3):
            for j in range(3):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=10,
                        color="white" if counts[i, j] > counts.max() / 2 else "black")
        ax.set_xticks(range(3), ["0", "1", "2"])
        ax.set_yticks(range(3), ["0", "1", "2"])
        ax.set_xlabel("rating", fontsize=8)
        ax.set_ylabel("reference", fontsize=8)
        exact = got["overall"]["exact_agreement"].get("estimate")
        ax.set_title(f"{rater}\nexact {fmt_share(exact)}", fontsize=9)
    for ax in list(axes.flat)[len(raters):]:
        ax.axis("off")
    return figure_png(fig)


def trend_series(result) -> dict[str, pd.DataFrame]:
    """Per ticker rated in ≥ 2 fiscal years: rows (rater, category, year, score) — mean over samples."""
    frame = result.frame.copy()
    if frame.empty:
        return {}
    parts = frame["unit"].str.rsplit("|", n=2, expand=True)
    frame["ticker"], frame["year"], frame["category"] = parts[0], pd.to_numeric(parts[1], errors="coerce"), parts[2]
    if result.paper is not None and not result.paper.get("reason"):
        try:
            from filinglens.evals.paper import RATER_NORMAL, RATER_STRICT, paper_frame

            paper = paper_frame()
            wanted = RATER_NORMAL if result.suite.paper.prompt == "normal" else RATER_STRICT
            paper = paper[(paper["rater"] == wanted) & paper["unit"].isin(set(frame["unit"]))]
            if not paper.empty:
                p = paper["unit"].str.rsplit("|", n=2, expand=True)
                paper = paper.assign(ticker=p[0], year=pd.to_numeric(p[1], errors="coerce"), category=p[2])
                frame = pd.concat([frame, paper], ignore_index=True)
        except (FileNotFoundError, ValueError):
            pass
    out = {}
    for ticker, part in frame.dropna(subset=["year"]).groupby("ticker", sort=True):
        if part["year"].nunique() >= 2:
            out[str(ticker)] = (part.groupby(["rater", "category", "year"], as_index=False)["score"].mean()
                                .sort_values(["rater", "category", "year"]))
    return out


def plot_trends(ticker: str, series: pd.DataFrame, categories: Sequence[str]) -> bytes:
    """One panel per category: mean score by fiscal year, one line per rater (the paper dashed)."""
    plt = pyplot()
    cols = min(len(categories), 2)
    rows_n = math.ceil(len(categories) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.2 * cols, 2.8 * rows_n + 0.6), squeeze=False,
                             layout="constrained")
    for ax, category in zip(axes.flat, categories):
        part = series[series["category"] == category]
        for rater, line in part.groupby("rater", sort=False):
            style = "--" if rater.startswith("command-r-plus") else "-"
            ax.plot(line["year"], line["score"], style, marker="o", label=rater)
        ax.set_ylim(-0.15, 2.15)
        ax.set_yticks([0, 1, 2])
        ax.set_title(f"{ticker} · {category}", fontsize=9)
        ax.grid(alpha=0.3)
        years = sorted(series["year"].dropna().unique())
        if years:
            ax.set_xticks(years, [str(int(y)) for y in years], fontsize=7, rotation=45)
    for ax in list(axes.flat)[len(categories):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle(f"{ticker}: ratings by fiscal year", fontsize=10)
    return figure_png(fig)


# --------------------------------------------------------------------------- the report


def _pair_rows(pairs: Sequence[dict]) -> list[list[str]]:
    rows = []
    for p in pairs:
        rows.append([
            f"`{p['rater_a']}` vs `{p['rater_b']}`", str(p["n_units"]),
            fmt_est(p["alpha_interval"]), fmt_est(p["alpha_ordinal"]),
            fmt_est(p["kappa_linear"]), fmt_est(p["kappa_quadratic"]), fmt_est(p["icc2"]),
            fmt_est(p["mean_abs_diff"]), fmt_est(p["exact_agreement"]),
            *(fmt_est(p.get(m.name)) for m in extra_metrics()),
        ])
    return rows


PAIR_HEADER = ["raters", "cells", "α interval [95% CI]", "α ordinal", "κ linear", "κ quadratic", "ICC(2,1)",
               "mean |Δ|", "exact agreement"]
#: registered agreement metrics that PAIR_HEADER names already
_FIXED_METRICS = ("kappa_linear", "kappa_quadratic")


def extra_metrics() -> list[stats.AgreementMetric]:
    """Registered agreement metrics beyond the fixed columns: one more column each in the pair tables."""
    return [m for m in stats.AGREEMENT_METRICS.values() if m.name not in _FIXED_METRICS]


def pair_header() -> list[str]:
    """The pair table's header: the fixed columns, then one per extra registered metric."""
    return [*PAIR_HEADER, *(m.label for m in extra_metrics())]
CATEGORY_HEADER = ["category", "cells", "α interval", "κ quadratic", "ICC(2,1)", "mean |Δ|", "exact"]


def _category_rows(by_category: dict) -> list[list[str]]:
    return [[c, str(p["n_units"]), fmt_est(p["alpha_interval"], reason=False), fmt_est(p["kappa_quadratic"], reason=False),
             fmt_est(p["icc2"], reason=False), fmt_est(p["mean_abs_diff"]), fmt_est(p["exact_agreement"])]
            for c, p in by_category.items()]


REFERENCE_HEADER = ["rater", "cells", "exact [95% CI]", "within one", "κ quadratic [95% CI]", "α ordinal [95% CI]",
                    "evidence recall (shown)", "evidence recall (cited)"]


def _recall_text(recall: dict | None) -> str:
    if not recall or recall.get("estimate") is None:
        return f"n/a ({(recall or {}).get('reason') or 'not computed'})"
    return f"{fmt_share(recall['estimate'])} ({recall['covered']}/{recall['quotes']})"


def _reference_row(name: str, s: dict, recall: dict | None = None) -> list[str]:
    row = [name, str(s["n_units"]), fmt_est(s["exact_agreement"]), fmt_est(s["within_one"], reason=False),
           fmt_est(s["kappa_quadratic"]), fmt_est(s["alpha_ordinal"])]
    if recall is not None:
        row += [_recall_text(recall.get("shown")), _recall_text(recall.get("cited"))]
    return row


def reference_blocks(ref: dict, with_plot: bool) -> list[Block]:
    """The report section on agreement with reference labels (criterion validity)."""
    blocks = [Block("h2", "Agreement with the reference labels")]
    dist = ref.get("distribution") or {}
    blocks.append(Block("p", f"`{ref['path']}`: {ref['labels']} labels, {ref['matched']} matched to rated cells "
                             f"({ref.get('borderline', 0)} borderline; reference scores 0/1/2: "
                             f"{dist.get('0', 0)}/{dist.get('1', 0)}/{dist.get('2', 0)}). Each rater's mean over "
                             "samples per cell; 95% bootstrap intervals over cells; κ and the confusion matrix on "
                             "scores rounded to 0/1/2. Evidence recall: share of the reference quotes covered by "
                             "the evidence chunks the rating was shown (or cited) — normalised substring of one "
                             "chunk, or ≥ 80% of its words inside word 5-grams found in the chunks."))
    if ref.get("unmatched"):
        blocks.append(Block("p", f"Labels with no rated cell ({len(ref['unmatched'])}): "
                                 + ", ".join(ref["unmatched"][:20]) + (" …" if len(ref["unmatched"]) > 20 else "")))
    if ref.get("reason"):
        blocks.append(Block("p", f"Not computed: {ref['reason']}"))
        return blocks
    raters = ref.get("raters") or {}
    blocks.append(Block("table", [_reference_row(f"`{r}`", got["overall"], got.get("evidence_recall"))
                                  for r, got in raters.items()], REFERENCE_HEADER))
    rows = []
    for r, got in raters.items():
        recall_by = (got.get("evidence_recall") or {}).get("by_category") or {}
        for category, s in got["by_category"].items():
            rows.append(_reference_row(f"`{r}` {category}", s) + [_recall_text(recall_by.get(category))])
        for kind, s in got["by_label"].items():
            rows.append(_reference_row(f"`{r}` {kind} labels", s) + [""])
    if rows:
        blocks.append(Block("h3", "Per category and on clear vs borderline labels"))
        blocks.append(Block("table", rows, REFERENCE_HEADER[:6] + ["evidence recall (shown)"]))
    blocks.append(Block("h3", "Confusion matrices (rows: reference, columns: rating)"))
    if with_plot:
        blocks.append(Block("img", "confusion", "confusion matrix per rater"))
    for r, got in raters.items():
        m = got["confusion"]
        blocks.append(Block("table", [[f"reference {i}", *[str(v) for v in m[i]]] for i in range(3)],
                            [f"`{r}`", "rated 0", "rated 1", "rated 2"]))
    wrong = [(r, c) for r, got in raters.items() for c in got.get("cells", [])
             if c["rating"] is not None and abs(c["rating"] - c["reference"]) > 1e-9]
    if wrong:
        blocks.append(Block("p", f"Cells that disagree with the reference ({len(wrong)}):"))
        blocks.append(Block("table", [[f"`{r}`", c["unit"], str(c["reference"]) + (" (borderline)" if c["borderline"] else ""),
                                       fmt_num(c["rating"])] for r, c in wrong[:80]],
                            ["rater", "cell", "reference", "rating"]))
    return blocks


def _summary_blocks(result: SuiteResult) -> list[Block]:
    """Title, verdict, failed thresholds and what the suite ran."""
    suite = result.suite
    blocks: list[Block] = [Block("h1", f"Eval suite `{suite.name}`")]
    if suite.description:
        blocks.append(Block("p", suite.description.strip()))
    verdict = "**PASS**" if result.ok else "**FAIL**"
    n_checks = len(result.checks)
    blocks.append(Block("p", f"Verdict: {verdict} — {n_checks - len(result.failures)}/{n_checks} threshold checks met."))
    if result.failures:
        blocks.append(Block("ul", [c.describe() for c in result.failures]))
    t = result.timings
    blocks.append(Block("ul", [
        f"suite file: `{suite.path or '(in memory)'}` · content hash `{result.suite_hash}`",
        f"filings: {len(result.targets)} ({', '.join(x.label for x in result.targets[:12])}"
        + (", …" if len(result.targets) > 12 else "") + ")",
        f"categories: {', '.join(suite.category_list)}",
        f"raters (model@prompt version): {', '.join(f'`{r}`' for r in result.raters)}",
        f"samples per cell: {suite.samples} · temperature {suite.temperature}",
        f"ratings: {len(result.ratings)} ({result.failed_ratings} failed) · model calls: {result.calls_made} made, "
        f"{result.calls_cached} served from the cache",
        "time: " + ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f}s" for k, v in t.items()
                             if k.endswith("_s")),
    ]))
    return blocks


def _ratings_blocks(result: SuiteResult, images: dict[str, bytes]) -> list[Block]:
    """The ratings table (mean over samples, spread, failures) and failure reasons."""
    blocks: list[Block] = []
    blocks.append(Block("h2", "Ratings"))
    if "heatmap" in images:
        blocks.append(Block("img", "heatmap", "mean score per filing × category and rater"))
    cells = _cells(result)
    if not cells.empty:
        table = cells.pivot_table(index=["filing", "category"], columns="rater", values="mean", sort=False)
        spread = cells.assign(s=cells["high"] - cells["low"]).pivot_table(
            index=["filing", "category"], columns="rater", values="s", sort=False)
        failed = cells.pivot_table(index=["filing", "category"], columns="rater", values="failed", sort=False)
        rows = []
        for key in table.index:
            row = [key[0], key[1]]
            for rater in result.raters:
                value = table.loc[key].get(rater, np.nan)
                text = fmt_num(value, 2) if not pd.isna(value) else "failed"
                s = spread.loc[key].get(rater, np.nan)
                if not pd.isna(s) and s > 1e-9:
                    text += f" (spread {s:.0f})"
                f = failed.loc[key].get(rater, 0)
                if f and not pd.isna(value):
                    text += f" ({int(f)} failed)"
                row.append(text)
            rows.append(row)
        blocks.append(Block("p", "Mean score over samples (0–2); spread = max − min over samples."))
        blocks.append(Block("table", rows, ["filing", "category", *result.raters]))
    errors = sorted({(r.error or "")[:160] for r in result.ratings if r.status != "ok"})
    if errors:
        blocks.append(Block("p", "Failure reasons:"))
        blocks.append(Block("ul", errors[:10]))
    return blocks


def _test_retest_blocks(result: SuiteResult) -> list[Block]:
    """Test-retest: agreement of repeated samples, and the cells whose samples disagree."""
    blocks: list[Block] = []
    blocks.append(Block("h2", "Test-retest (same model and prompt, repeated samples)"))
    if result.test_retest:
        rows = []
        for rater, tr in result.test_retest.items():
            rows.append([f"`{rater}`", str(tr["n_units"]), fmt_est(tr["alpha_interval"]), fmt_est(tr["alpha_ordinal"]),
                         fmt_share(tr["exact_agreement"]), fmt_share(tr["within_one"]),
                         fmt_num(tr["mean_spread"]), fmt_num(tr["max_spread"])])
        blocks.append(Block("table", rows, ["rater", "cells", "α interval [95% CI]", "α ordinal [95% CI]",
                                            "exact agreement", "within one", "mean spread", "max spread"]))
        unstable = [(rater, unit, cell) for rater, tr in result.test_retest.items()
                    for unit, cell in tr["per_unit"].items() if (cell["spread"] or 0) > 1e-9]
        if unstable:
            blocks.append(Block("p", f"Cells whose samples disagree ({len(unstable)}):"))
            blocks.append(Block("table", [[f"`{r}`", u, str(c["n"]), fmt_num(c["mean"]), fmt_num(c["min"], 0),
                                           fmt_num(c["max"], 0), fmt_num(c["std"])]
                                          for r, u, c in unstable[:40]],
                                ["rater", "cell", "samples", "mean", "min", "max", "std"]))
        else:
            blocks.append(Block("p", "Every cell's samples agree exactly."))
    else:
        blocks.append(Block("p", "Not computed: the suite has one sample per cell."))
    return blocks


def _pair_blocks(result: SuiteResult, images: dict[str, bytes]) -> list[Block]:
    """Agreement across prompt versions and across models, and the agreement matrix."""
    blocks: list[Block] = []
    for title, pairs in (("Across prompt versions (same model)", result.cross_prompt),
                         ("Across models (same prompt version)", result.cross_model)):
        if not pairs:
            continue
        blocks.append(Block("h2", title))
        blocks.append(Block("p", "Each rater's mean over samples per cell; 95% bootstrap intervals over cells; "
                                 "κ on scores rounded to 0/1/2."))
        blocks.append(Block("table", _pair_rows(pairs), pair_header()))
        for p in pairs:
            if len(p.get("by_category") or {}) > 1:
                blocks.append(Block("h3", f"`{p['rater_a']}` vs `{p['rater_b']}` by category"))
                blocks.append(Block("table", _category_rows(p["by_category"]), CATEGORY_HEADER))

    if "matrix" in images:
        blocks.append(Block("h2", "Agreement matrix"))
        blocks.append(Block("img", "matrix", "agreement between raters"))
    return blocks


def _paper_blocks(result: SuiteResult) -> list[Block]:
    """Agreement with the paper's Command-R+ ratings."""
    blocks: list[Block] = []
    if result.paper is not None:
        blocks.append(Block("h2", f"Agreement with the paper (Command-R+, {result.suite.paper.prompt} prompt)"))
        if result.paper.get("reason"):
            blocks.append(Block("p", f"Not computed: {result.paper['reason']}"))
        rows, per_cat = [], []
        for rater, got in result.paper.get("raters", {}).items():
            overall = got.get("overall")
            if not overall:
                rows.append([f"`{rater}`", "0", f"n/a ({got.get('reason', 'no cells in common')})", "", "", "", "", "", ""])
                continue
            rows.extend(_pair_rows([overall]))
            for category, p in got.get("by_category", {}).items():
                per_cat.append([f"`{rater}`", *_category_rows({category: p})[0]])
        if rows:
            blocks.append(Block("p", "Only cells the paper rated count (AAPL 2014–2023, MSFT 2020–2023, …). "
                                     "A 1.5B local model is not expected to agree much; the point is the number."))
            blocks.append(Block("table", rows, pair_header()))
        if per_cat:
            blocks.append(Block("h3", "Per category"))
            blocks.append(Block("table", per_cat, ["rater", *CATEGORY_HEADER]))
    return blocks


def _metamorphic_blocks(result: SuiteResult) -> list[Block]:
    """Metamorphic checks: pass rates per rater and every check's outcome."""
    blocks: list[Block] = []
    if result.metamorphic is not None:
        blocks.append(Block("h2", "Metamorphic checks"))
        meta = result.metamorphic
        if not meta.available:
            blocks.append(Block("p", meta.reason or "not available"))
        rows = []
        for rater, got in meta.raters.items():
            rates = got.pass_rates
            if got.error:
                rows.append([f"`{rater}`", "error", got.error[:160]])
            for name, rate in rates.items():
                rows.append([f"`{rater}`", name, fmt_share(rate)])
            if not rates and not got.error:
                rows.append([f"`{rater}`", "(result)", "no pass rate reported"])
        if rows:
            blocks.append(Block("table", rows, ["rater", "check", "pass rate"]))
        cells = metamorphic_cells(meta)
        if cells:
            blocks.append(Block("p", "Every check: expected score E (0–2) of the baseline and of the variant; "
                                     "*unchanged* checks allow |ΔE| ≤ the tolerance and the same score, "
                                     "*not up* checks a score that does not rise."))
            blocks.append(Block("table", cells, ["rater", "filing", "category", "check", "expect", "outcome",
                                                 "score", "E baseline → variant", "went down"]))
    return blocks


def _closing_blocks(result: SuiteResult) -> list[Block]:
    """Thresholds, notes and the runs behind the report."""
    blocks: list[Block] = []
    blocks.append(Block("h2", "Thresholds"))
    if result.checks:
        blocks.append(Block("table", [["**PASS**" if c.passed else "**FAIL**", f"`{c.name}`", c.scope,
                                       fmt_num(c.value, 3), str(c.threshold), c.reason or ""]
                                      for c in result.checks],
                            ["", "threshold", "scope", "value", "limit", "note"]))
    else:
        blocks.append(Block("p", "The suite sets no thresholds."))
    if result.notes:
        blocks.append(Block("h2", "Notes"))
        blocks.append(Block("ul", result.notes))
    blocks.append(Block("h2", "Runs"))
    blocks.append(Block("table", [[f"`{r}`", f"`{run}`"] for r, run in result.runs.items()], ["rater", "run id"]))
    if len(result.runs) >= 2:
        a, b = list(result.runs.values())[:2]
        blocks.append(Block("p", f"Compare two runs cell by cell: `filinglens eval diff {a} {b}`"))
    return blocks


def build_blocks(result: SuiteResult, images: dict[str, bytes]) -> list[Block]:
    """The report's content (the plots must already be in ``images``)."""
    blocks = _summary_blocks(result) + _ratings_blocks(result, images) + _test_retest_blocks(result)
    blocks += _pair_blocks(result, images) + _paper_blocks(result)
    trends = [name for name in images if name.startswith("trend-")]
    if trends:
        blocks.append(Block("h2", "Year trends"))
        for name in trends:
            blocks.append(Block("img", name, f"{name.removeprefix('trend-')} ratings by fiscal year"))

    if result.reference is not None:
        blocks.extend(reference_blocks(result.reference, "confusion" in images))
    return blocks + _metamorphic_blocks(result) + _closing_blocks(result)


def make_plots(result: SuiteResult) -> dict[str, bytes]:
    images: dict[str, bytes] = {}
    heat = plot_heatmaps(result)
    if heat:
        images["heatmap"] = heat
    matrix = plot_matrix(result)
    if matrix:
        images["matrix"] = matrix
    conf = plot_confusion(result)
    if conf:
        images["confusion"] = conf
    for ticker, series in trend_series(result).items():
        images[f"trend-{ticker}"] = plot_trends(ticker, series, result.suite.category_list)
    return images


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


def write_report(result: SuiteResult, out_dir: str | Path) -> dict[str, str]:
    """Write ``report.md``, ``report.html``, ``results.json``, ``ratings.parquet`` and ``plots/*.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = make_plots(result)
    files: dict[str, str] = {}
    links: dict[str, str] = {}
    for name, data in images.items():
        path = out / "plots" / f"{name}.png"
        _write_bytes(path, data)
        links[name] = f"plots/{name}.png"
        files[f"plot:{name}"] = str(path)
    blocks = build_blocks(result, images)
    files["markdown"] = str(out / "report.md")
    files["html"] = str(out / "report.html")
    files["json"] = str(out / "results.json")
    files["parquet"] = str(out / "ratings.parquet")
    result.files = files
    _write_bytes(out / "report.md", render_markdown(blocks, links).encode("utf-8"))
    _write_bytes(out / "report.html", render_html(blocks, images, f"Eval suite {result.suite.name}").encode("utf-8"))
    frame = pd.DataFrame([encode_rating_row(row) for row in result.rating_rows()])
    with atomic_write(out / "ratings.parquet") as handle:
        frame.to_parquet(handle, index=False)
    payload = json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str)
    _write_bytes(out / "results.json", payload.encode("utf-8"))
    return files


# --------------------------------------------------------------------------- metamorphic rows


def metamorphic_cells(meta: MetamorphicSection) -> list[list[str]]:
    """One report row per metamorphic check result (every rater), for reading why a check failed."""
    rows = []
    for rater, got in meta.raters.items():
        for r in got.results:
            went = r.went_down
            rows.append([
                f"`{rater}`", str(r.filing or ""), str(r.category or ""), str(r.check or ""), str(r.expect or ""),
                f"**{r.outcome}**" if r.outcome == "fail" else str(r.outcome),
                f"{fmt_num(r.baseline_score, 0)} → {fmt_num(r.variant_score, 0)}",
                f"{fmt_num(r.baseline_expected)} → {fmt_num(r.variant_expected)}",
                "" if went is None else ("yes" if went else "no"),
            ])
    return rows
