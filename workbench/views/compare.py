"""Compare: rank several companies on one category in one fiscal year from pairwise judgments in both
orders (Bradley–Terry with bootstrap intervals), with the position bias measured and the win matrix."""

import json
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from filinglens import app
from filinglens.prompts.loader import DEFAULT_RATING_VERSION, categories as all_categories
from filinglens.workbench.common import (
    ITEMS, guarded, indexed_filings, jobs_panel, model_problem, parse_tickers, pick_model, prompt_versions, store,
)

st.title("Compare")
st.caption("The model judges each pair of companies from each one's own evidence, in both orders (A/B, then "
           "B/A), so the position bias is measured instead of hidden; the judgments are aggregated by a "
           "Bradley–Terry fit with bootstrap intervals.")

filings = indexed_filings()
by_year: dict[int, list[str]] = {}
for f in filings:
    if f.get("ticker") and f.get("fiscal_year"):
        by_year.setdefault(int(f["fiscal_year"]), [])
        if f["ticker"] not in by_year[int(f["fiscal_year"])]:
            by_year[int(f["fiscal_year"])].append(f["ticker"])
years = sorted(by_year, reverse=True) or [2024]
versions = prompt_versions()

year = st.selectbox("Fiscal year", years, key="cmp-year",
                    format_func=lambda y: f"{y} ({len(by_year.get(y, []))} companies indexed)")
with st.form("compare-form"):
    left, right = st.columns(2)
    with left:
        indexed = sorted(by_year.get(year, []))
        companies = st.multiselect("Companies", indexed, default=indexed[:3], key="cmp-companies")
        more = st.text_input("…and tickers to fetch", key="cmp-more", placeholder="NVDA, GOOGL")
        category = st.selectbox("Category", all_categories(), key="cmp-category",
                                index=all_categories().index("innovation") if "innovation" in all_categories() else 0)
        item = st.selectbox("On", ["the whole filing", *ITEMS], key="cmp-item",
                            format_func=lambda i: i if i == "the whole filing" else f"Item {i} alone",
                            help="Compare section by section: the judge sees that Item of each 10-K only.")
    with right:
        model = pick_model("cmp", default="local")
        version = st.selectbox("Rating prompt (rubric and evidence)", versions,
                               index=versions.index(DEFAULT_RATING_VERSION) if DEFAULT_RATING_VERSION in versions else 0, key="cmp-version")
        samples = st.number_input("Judgments per ordered pair", 1, 5, 1, key="cmp-samples")
    submitted = st.form_submit_button("Compare", type="primary")

if submitted:
    extra = guarded(parse_tickers, more) or []
    tickers = list(dict.fromkeys([*companies, *extra]))
    problem = model_problem(model)
    if problem:
        st.error(f"model {model}: {problem}", icon=":material/error:")
    elif len(tickers) < 2:
        st.error("choose at least two companies", icon=":material/error:")
    else:
        on_item = None if item == "the whole filing" else item
        request = {"tickers": tickers, "year": int(year), "category": category, "model": model,
                   "prompt_version": version, "samples": int(samples), "item": on_item}
        what = f"{category}, Item {on_item}" if on_item else category
        run_id = guarded(app.create_job, "compare", request, label=f"compare {what} FY{year}: {' '.join(tickers)}")
        if run_id:
            app.start_job(run_id)
            st.success(f"Started {run_id}.", icon=":material/play_arrow:")

jobs_panel(("compare",), title="Comparison jobs", limit=4)

st.subheader("Results")
runs = [r for r in store().runs("compare") if r["status"] in ("finished", "finished-with-failures")]
results = [(r, app.load_comparison(r)) for r in runs]
results = [(r, res) for r, res in results if res]
if not results:
    st.info("No finished comparison yet.")
    st.stop()
labels = {r["id"]: f"{res['category']}{' · Item ' + res['item'] if res.get('item') else ''} · FY{res['year']} · {', '.join(res['companies'])} · {res['model']} "
                   f"({r['id']})" for r, res in results}
chosen = st.selectbox("Comparison", list(labels), format_func=labels.get, key="cmp-result")
result = next(res for r, res in results if r["id"] == chosen)

bias = result["position_bias"]
a, b, c, d = st.columns(4)
a.metric("judgments", f"{bias['judgments']}", help="every ordered pair × samples")
p = bias["p_first_wins"]
ci = bias["p_first_wins_ci"]
b.metric("P(first shown wins)", "n/a" if p is None else f"{p:.2f}",
         help=f"95% CI {ci[0]}–{ci[1]}; 0.5 means no position bias")
flip = bias["flip_rate"]
c.metric("verdicts flipped by order", "n/a" if flip is None else f"{100 * flip:.0f}%",
         help=f"{bias['flipped']} of {bias['pairs_both_orders']} pairs: what a one-order design would get "
              "wrong by position alone")
d.metric("ties / failed", f"{bias['ties']} / {bias['failed']}")
if bias["failed"]:
    st.warning(f"{bias['failed']} judgments failed (see the table below); the ranking uses the others.")

ranking = pd.DataFrame(result["ranking"])
ranking["low"] = ranking["strength_ci"].map(lambda v: v[0])
ranking["high"] = ranking["strength_ci"].map(lambda v: v[1])
ranking["rank 95%"] = ranking["rank_ci"].map(lambda v: f"{v[0]}–{v[1]}" if v[0] is not None else "n/a")
left, right = st.columns(2)
with left:
    st.markdown("**Ranking (Bradley–Terry log-strength, 95% bootstrap interval)**")
    base = alt.Chart(ranking).encode(y=alt.Y("company:N", sort=list(ranking["company"]), title=None))
    chart = base.mark_rule().encode(x=alt.X("low:Q", title="strength"), x2="high:Q") + base.mark_point(
        filled=True, size=80).encode(x="strength:Q", tooltip=["company", "strength", "low", "high", "rank 95%"])
    st.altair_chart(chart.properties(height=40 * len(ranking) + 40), width="stretch")
    st.dataframe(ranking[["rank", "company", "strength", "low", "high", "rank 95%", "p_beats_average", "wins",
                          "losses", "ties"]], hide_index=True, width="stretch")
with right:
    st.markdown("**Win matrix** (wins of the row company over the column company; ties count ½)")
    matrix = pd.DataFrame(result["win_matrix"]).T.reindex(index=result["companies"], columns=result["companies"])
    st.dataframe(matrix.style.background_gradient(cmap="Blues", axis=None).format("{:g}"), width="stretch")

st.markdown("**Judgments**")
judgments = pd.DataFrame(result["judgments"])[["first", "second", "sample_index", "verdict", "winner", "rationale",
                                               "error", "cached_calls"]]
st.dataframe(judgments, hide_index=True, width="stretch")
files = result.get("files") or {}
if files.get("json") and Path(files["json"]).is_file():
    st.download_button("compare.json", Path(files["json"]).read_bytes(), "compare.json", "application/json")
if files.get("html") and Path(files["html"]).is_file():
    st.download_button("Report (HTML)", Path(files["html"]).read_bytes(), "compare.html", "text/html")
st.caption(json.dumps({"model": result["model"], "rating prompt": result["prompt_version"],
                       "comparison prompt": result["compare_prompt"], "run": result["run_id"]}))
