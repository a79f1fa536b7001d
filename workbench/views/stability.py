"""Stability: the eval suites' results (results.json) — checks, α tables, agreement with reference labels
and the paper, metamorphic pass rates — a prompt-version diff, and running a suite in the background."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from filinglens import app
from filinglens.analysis.render import fmt_est, fmt_num, fmt_share
from filinglens.evals.results import metamorphic_pass_rates
from filinglens.prompts.loader import categories as all_categories, diff_prompts
from filinglens.settings import data_home
from filinglens.workbench.common import guarded, jobs_panel, model_problem, pick_model, prompt_versions

st.title("Stability")

tab_results, tab_diff, tab_run = st.tabs(["Eval results", "Prompt diff", "Run a suite"])


def _results_files() -> list[Path]:
    root = data_home() / "evals"
    files = list(root.glob("*/results.json")) if root.is_dir() else []
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def _pair_frame(pairs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "rater A": p.get("rater_a"), "rater B": p.get("rater_b"), "units": p.get("n_units"),
        "α interval": fmt_est(p.get("alpha_interval"), reason=False), "α ordinal": fmt_est(p.get("alpha_ordinal"), reason=False),
        "κ quadratic": fmt_est(p.get("kappa_quadratic"), reason=False), "ICC(2,1)": fmt_est(p.get("icc2"), reason=False),
        "mean |Δ|": fmt_est(p.get("mean_abs_diff"), reason=False), "changed": fmt_est(p.get("changed_share"), reason=False),
    } for p in pairs])


with tab_results:
    files = _results_files()
    if not files:
        st.info("No eval results in this data home yet: run a suite in the **Run a suite** tab, or "
                "`filinglens eval run demo`.")
    else:
        path = st.selectbox("Eval run", files, format_func=lambda p: p.parent.name, key="stab-file")
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            st.error(f"{path}: cannot be read ({exc})")
            st.stop()
        suite = result.get("suite") or {}
        ok = result.get("ok")
        st.markdown(f"**{suite.get('name')}** — {suite.get('description') or ''}  "
                    + (":green-badge[all thresholds met]" if ok else ":red-badge[thresholds failed]"))
        on_screen = set(st.session_state.get("selected_companies") or [])
        filings = pd.DataFrame(result.get("filings") or [])
        if not filings.empty:
            if on_screen:
                filings["on the Ratings page"] = filings["ticker"].isin(on_screen)
            st.dataframe(filings, hide_index=True, width="stretch")
        for failure in result.get("failures") or []:
            st.error(failure)
        checks = pd.DataFrame(result.get("checks") or [])
        if not checks.empty:
            st.markdown("**Checks**")
            st.dataframe(checks, hide_index=True, width="stretch")
        retest = result.get("test_retest") or {}
        if retest:
            st.markdown("**Test-retest (samples of the same rater)**")
            st.dataframe(pd.DataFrame([{
                "rater": rater, "units": v.get("n_units"), "α interval": fmt_est(v.get("alpha_interval"), reason=False),
                "α ordinal": fmt_est(v.get("alpha_ordinal"), reason=False),
                "exact": fmt_share(v.get("exact_agreement")), "within one": fmt_share(v.get("within_one")),
                "mean spread": fmt_num(v.get("mean_spread")),
            } for rater, v in retest.items() if isinstance(v, dict)]), hide_index=True, width="stretch")
        for key, title in (("cross_prompt", "Across prompt versions"), ("cross_model", "Across models")):
            if result.get(key):
                st.markdown(f"**{title}**")
                st.dataframe(_pair_frame(result[key]), hide_index=True, width="stretch")
                for pair in result[key]:
                    by_cat = pair.get("by_category") or {}
                    if by_cat:
                        with st.expander(f"{pair.get('rater_a')} vs {pair.get('rater_b')} by category"):
                            st.dataframe(_pair_frame([dict(v, rater_a=c, rater_b="") for c, v in by_cat.items()]),
                                         hide_index=True, width="stretch")
        for key, title in (("paper", "Agreement with the paper's Command-R+ ratings"),
                           ("reference", "Agreement with reference labels"), ("labels", "Agreement with labels")):
            block = result.get(key)
            if isinstance(block, dict) and block:
                st.markdown(f"**{title}**")
                rows = []
                for rater, v in block.items():
                    if isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()):
                        rows.append({"rater": rater, **{k: fmt_est(x, reason=False) if isinstance(x, dict) and
                                                        "estimate" in x else x for k, x in v.items()
                                                        if not isinstance(x, (dict, list)) or
                                                        (isinstance(x, dict) and "estimate" in x)}})
                if rows:
                    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
                else:
                    st.json(block, expanded=False)
        meta = result.get("metamorphic")
        if isinstance(meta, dict) and meta:
            st.markdown("**Metamorphic pass rates**")
            rates = {rater: metamorphic_pass_rates(v) for rater, v in meta.items() if isinstance(v, dict)}
            rates = {r: v for r, v in rates.items() if v}
            if rates:
                st.dataframe(pd.DataFrame(rates).map(fmt_share), width="stretch")
            else:
                st.json(meta, expanded=False)
        report = path.parent / "report.html"
        if report.is_file():
            st.download_button("Full report (HTML)", report.read_bytes(), f"{path.parent.name}.html", "text/html")

with tab_diff:
    versions = prompt_versions()
    left, mid, right = st.columns(3)
    category = left.selectbox("Category", all_categories(), key="diff-category")
    a = mid.selectbox("From", versions, index=0, key="diff-a")
    b = right.selectbox("To", versions, index=min(1, len(versions) - 1), key="diff-b")
    diff = guarded(diff_prompts, f"{category}@{a}", f"{category}@{b}")
    if diff is not None:
        st.code(diff or "(identical)", language="diff")

with tab_run:
    from filinglens.evals.suite import SUITES_DIR

    suites = sorted(p.stem for p in Path(SUITES_DIR).glob("*.yaml"))
    with st.form("eval-form"):
        suite = st.selectbox("Suite", suites, index=suites.index("smoke") if "smoke" in suites else 0)
        model = pick_model("eval", default="local")
        use_model = st.checkbox("Use this model instead of the suite's", value=False)
        submitted = st.form_submit_button("Run suite", type="primary")
    if submitted:
        problem = model_problem(model) if use_model else None
        if problem:
            st.error(f"model {model}: {problem}")
        else:
            request = {"suite": suite, "models": [model] if use_model else None}
            run_id = guarded(app.create_job, "eval", request, label=f"eval {suite}")
            if run_id:
                app.start_job(run_id)
                st.success(f"Started {run_id}.")
    jobs_panel(("eval",), title="Suite jobs", limit=4)
