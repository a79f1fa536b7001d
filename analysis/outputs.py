"""Plots and files of the analyses, for scripts and notebooks: PNG, self-contained HTML, JSON and CSV.

``write_trends`` and ``write_comparison`` write into one folder (atomic
writes). The HTML embeds its PNG (base64) and its tables, so it opens offline
and can be mailed as one file. Plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from filinglens.analysis.render import Block, figure_png, fmt_num, jsonable, pyplot, render_html
from filinglens.settings import atomic_write

_LINESTYLES = ["-", "--", ":", "-."]


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


def table_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready records of a frame (NaN/NA → None, numpy scalars → Python)."""
    return [jsonable(r) for r in frame.astype(object).where(frame.notna(), None).to_dict(orient="records")]


# --------------------------------------------------------------------------- trends


def plot_trends(trends: pd.DataFrame, categories: Sequence[str] | None = None) -> bytes | None:
    """One panel per category: expected score by fiscal year, a line per company and rater, its band shaded.

    Companies are told apart by colour, raters by line style (two raters side by side).
    """
    data = trends.dropna(subset=["expected", "fiscal_year"])
    if data.empty:
        return None
    plt = pyplot()
    categories = list(categories or sorted(data["category"].unique()))
    companies = sorted(data["company"].unique())
    raters = sorted(data["rater"].unique())
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(companies)}
    styles = {r: _LINESTYLES[i % len(_LINESTYLES)] for i, r in enumerate(raters)}
    cols = min(len(categories), 2)
    rows_n = math.ceil(len(categories) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5.4 * cols, 3.0 * rows_n + 0.7), squeeze=False,
                             layout="constrained")
    years = sorted(int(y) for y in data["fiscal_year"].unique())
    for ax, category in zip(axes.flat, categories):
        part = data[data["category"] == category]
        for (company, rater), line in part.groupby(["company", "rater"], sort=True):
            line = line.sort_values("fiscal_year")
            x = line["fiscal_year"].astype(int).to_numpy()
            ax.plot(x, line["expected"], styles[rater], marker="o", color=colours[company],
                    label=f"{company} · {rater}")
            ax.fill_between(x, line["low"].astype(float), line["high"].astype(float), color=colours[company],
                            alpha=0.15, linewidth=0)
        ax.set_ylim(-0.1, 2.1)
        ax.set_yticks([0, 1, 2])
        ax.set_title(category, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xticks(years, [str(y) for y in years], fontsize=7, rotation=45 if len(years) > 6 else 0)
        if len(years) == 1:
            ax.set_xlim(years[0] - 1, years[0] + 1)
    for ax in list(axes.flat)[len(categories):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), fontsize=8)
    fig.suptitle("Expected score by fiscal year (band: ±1 SD over samples or yes/no answers)", fontsize=10)
    return figure_png(fig)


def trend_blocks(trends: pd.DataFrame, avgs: pd.DataFrame, title: str, has_plot: bool) -> list[Block]:
    blocks = [Block("h1", title)]
    if trends.empty:
        return blocks + [Block("p", "No ratings in the store match this selection.")]
    blocks.append(Block("p", "Expected score per company, fiscal year, category and rater (model@prompt version); "
                             "band = ±1 SD across samples (`samples`), or of the score implied by the yes/no "
                             "probabilities (`yes/no`), or none for a single direct rating."))
    if has_plot:
        blocks.append(Block("img", "trends", "trends"))
    blocks.append(Block("h2", "Averages over fiscal years"))
    blocks.append(Block("table", [[r["company"], r["category"], r["rater"], str(r["years"]), fmt_num(r["mean"]),
                                   f"{fmt_num(r['min'])}–{fmt_num(r['max'])}"] for r in table_records(avgs)],
                        ["company", "category", "rater", "years", "mean", "range"]))
    blocks.append(Block("h2", "Cells"))
    rows = []
    for r in table_records(trends):
        rows.append([r["company"], str(r["fiscal_year"]), r["category"], r["rater"], fmt_num(r["expected"]),
                     f"{fmt_num(r['low'])}–{fmt_num(r['high'])}", r["band"], str(r["n"]), str(r["failed"])])
    blocks.append(Block("table", rows, ["company", "year", "category", "rater", "expected", "band", "band from",
                                        "samples", "failed"]))
    return blocks


def write_trends(trends: pd.DataFrame, avgs: pd.DataFrame, out_dir: str | Path, *, title: str = "Trends",
                 selection: dict | None = None) -> dict[str, str]:
    """Write ``trends.png``, ``trends.html``, ``trends.json`` and ``trends.csv``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    png = plot_trends(trends)
    if png:
        _write(out / "trends.png", png)
        files["png"] = str(out / "trends.png")
    html = render_html(trend_blocks(trends, avgs, title, bool(png)), {"trends": png} if png else {}, title)
    _write(out / "trends.html", html.encode("utf-8"))
    files["html"] = str(out / "trends.html")
    with atomic_write(out / "trends.csv", "w") as handle:
        trends.to_csv(handle, index=False)
    files["csv"] = str(out / "trends.csv")
    payload = {"selection": selection or {}, "cells": table_records(trends), "averages": table_records(avgs)}
    _write(out / "trends.json", json.dumps(payload, indent=2, ensure_ascii=False).encode("utf-8"))
    files["json"] = str(out / "trends.json")
    return files


# --------------------------------------------------------------------------- comparison


def plot_comparison(result: dict) -> bytes | None:
    """Left: Bradley–Terry strengths with 95% bootstrap intervals; right: the win matrix."""
    ranking = result.get("ranking") or []
    if not ranking:
        return None
    plt = pyplot()
    companies = result["companies"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 0.45 * len(companies) + 2.4), layout="constrained")
    names = [r["company"] for r in ranking][::-1]
    values = [r["strength"] for r in ranking][::-1]
    lows = [r["strength_ci"][0] if r["strength_ci"][0] is not None else r["strength"] for r in ranking][::-1]
    highs = [r["strength_ci"][1] if r["strength_ci"][1] is not None else r["strength"] for r in ranking][::-1]
    y = np.arange(len(names))
    left.errorbar(values, y, xerr=[np.subtract(values, lows), np.subtract(highs, values)], fmt="o", capsize=4)
    left.axvline(0, color="grey", lw=0.8, ls=":")
    left.set_yticks(y, names, fontsize=8)
    left.set_xlabel("Bradley–Terry log-strength (95% bootstrap interval)", fontsize=8)
    left.set_title(f"{result.get('category', '')} · FY{result.get('year', '')}: ranking", fontsize=9)
    grid = np.array([[result["win_matrix"][a][b] for b in companies] for a in companies], dtype=float)
    image = right.imshow(grid, cmap="Blues")
    for i in range(len(companies)):
        for j in range(len(companies)):
            if i != j:
                right.text(j, i, f"{grid[i, j]:g}", ha="center", va="center", fontsize=8,
                           color="white" if grid[i, j] > grid.max() / 2 else "black")
    right.set_xticks(range(len(companies)), companies, rotation=30, ha="right", fontsize=8)
    right.set_yticks(range(len(companies)), companies, fontsize=8)
    right.set_title("wins of row over column (ties ½)", fontsize=9)
    fig.colorbar(image, ax=right, shrink=0.8)
    return figure_png(fig)


def comparison_blocks(result: dict, has_plot: bool) -> list[Block]:
    bias = result["position_bias"]
    title = f"Comparison: {result.get('category')} · FY{result.get('year')}"
    blocks = [Block("h1", title),
              Block("p", f"Model `{result.get('model')}`, rating prompt {result.get('prompt_version')} "
                         f"(evidence and rubric), comparison prompt {result.get('compare_prompt')}; every pair "
                         f"judged in both orders × {result.get('samples', 1)} sample(s).")]
    if has_plot:
        blocks.append(Block("img", "compare", "ranking and win matrix"))
    blocks.append(Block("h2", "Ranking (Bradley–Terry)"))
    rows = []
    for r in result["ranking"]:
        ci = r["strength_ci"]
        rows.append([str(r["rank"]), r["company"], f"{r['strength']:.2f}",
                     f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]", f"{r['rank_ci'][0]}–{r['rank_ci'][1]}"
                     if r["rank_ci"][0] is not None else "n/a", f"{r['p_beats_average']:.2f}",
                     f"{r['wins']}/{r['losses']}/{r['ties']}"])
    blocks.append(Block("table", rows, ["rank", "company", "strength", "95% CI", "rank 95%", "P(beats average)",
                                        "won/lost/tied"]))
    blocks.append(Block("h2", "Position bias"))
    p, ci = bias["p_first_wins"], bias["p_first_wins_ci"]
    flip = bias["flip_rate"]
    blocks.append(Block("ul", [
        f"P(first shown wins) = {fmt_num(p)} [95% CI {fmt_num(ci[0])}, {fmt_num(ci[1])}] over {bias['decided']} "
        f"decided judgments (0.5 = no position bias)",
        f"verdict flips with the order in {bias['flipped']} of {bias['pairs_both_orders']} pairs "
        f"({'n/a' if flip is None else f'{100 * flip:.0f}%'}): a one-order design would have decided those by "
        "position alone",
        f"{bias['ties']} ties, {bias['failed']} failed judgments of {bias['judgments']}",
    ]))
    blocks.append(Block("h2", "Judgments"))
    blocks.append(Block("table", [[j["first"], j["second"], str(j["sample_index"]), j["verdict"] or "failed",
                                   j["winner"] or "", (j["rationale"] or j["error"] or "")[:200]]
                                  for j in result["judgments"]],
                        ["A (first)", "B (second)", "sample", "verdict", "winner", "rationale / error"]))
    return blocks


def write_comparison(result: dict, out_dir: str | Path) -> dict[str, str]:
    """Write ``compare.png``, ``compare.html``, ``compare.json``, ``ranking.csv``, ``judgments.csv``, ``win_matrix.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    png = plot_comparison(result)
    if png:
        _write(out / "compare.png", png)
        files["png"] = str(out / "compare.png")
    title = f"Comparison: {result.get('category')} FY{result.get('year')}"
    _write(out / "compare.html", render_html(comparison_blocks(result, bool(png)), {"compare": png} if png else {},
                                             title).encode("utf-8"))
    files["html"] = str(out / "compare.html")
    ranking = pd.DataFrame([{**{k: v for k, v in r.items() if not k.endswith("_ci")},
                             "strength_low": r["strength_ci"][0], "strength_high": r["strength_ci"][1],
                             "rank_low": r["rank_ci"][0], "rank_high": r["rank_ci"][1]} for r in result["ranking"]])
    judgments = pd.DataFrame([{k: v for k, v in j.items() if not k.startswith("evidence_")}
                              for j in result["judgments"]])
    matrix = pd.DataFrame(result["win_matrix"]).T.reindex(index=result["companies"], columns=result["companies"])
    for name, frame, index in (("ranking.csv", ranking, False), ("judgments.csv", judgments, False),
                               ("win_matrix.csv", matrix, True)):
        with atomic_write(out / name, "w") as handle:
            frame.to_csv(handle, index=index)
        files[name.removesuffix(".csv")] = str(out / name)
    files["json"] = str(out / "compare.json")
    payload = dict(result, files=files)
    _write(out / "compare.json", json.dumps(jsonable(payload), indent=2, ensure_ascii=False).encode("utf-8"))
    return files
