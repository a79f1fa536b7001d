"""Filings: choose 10-Ks (tickers and years, local paths, or uploads), a model, a prompt version and Items
to leave out; rate them in the background with live progress per filing and category."""

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from filinglens import app
from filinglens.errors import FilingLensError, InputError
from filinglens.prompts.loader import DEFAULT_RATING_VERSION, categories as all_categories
from filinglens.workbench.launch import LOCAL_PATHS_ENV
from filinglens.workbench.common import (
    ITEMS, batch_panel, guarded, indexed_filings, jobs_panel, model_problem, parse_tickers, pick_model, prompt_versions,
)

st.title("Filings")
st.caption("Rate 10-K filings on the rating categories. Work runs in the background: you can leave or "
           "reload this page, and cancel a job; its progress and results are kept in the results store.")

filings = indexed_filings()
with st.expander(f"Indexed filings ({len(filings)})", expanded=False):
    if filings:
        st.dataframe(pd.DataFrame(filings)[["ticker", "company", "fiscal_year", "form", "source"]], hide_index=True,
                     width="stretch")
    else:
        st.caption("None yet: give tickers, files or uploads below.")

versions = prompt_versions()
with st.form("rate-form"):
    left, right = st.columns(2)
    with left:
        tickers_text = st.text_input("Tickers", placeholder="AAPL, MSFT", key="tickers",
                                     help="Indexed 10-Ks are used as they are; others are fetched from EDGAR "
                                          "when SEC_USER_AGENT is set.")
        years = st.text_input("Fiscal years", placeholder="2019-2024", key="years")
        paths_text = ""
        if os.environ.get(LOCAL_PATHS_ENV, "1") == "1":
            paths_text = st.text_area("Local files or folders (one per line)", key="paths", height=80)
        uploads = st.file_uploader("…or upload 10-K documents (HTML, text or PDF)", accept_multiple_files=True,
                                   key="uploads")
    with right:
        model = pick_model("rate", default="local")
        version = st.selectbox("Prompt version", versions, index=versions.index(DEFAULT_RATING_VERSION) if DEFAULT_RATING_VERSION in versions else 0,
                               key="version", help="v1 direct, v2 yes/no, v3 chain of thought, v4 strict, v5 indicators (the default)")
        cats = st.multiselect("Categories", all_categories(), default=all_categories(), key="categories")
        samples = st.number_input("Samples per cell", min_value=1, max_value=10, value=1, key="samples")
        exclude = st.multiselect("Items to leave out of the evidence", ITEMS, key="exclude")
    submitted = st.form_submit_button("Rate", type="primary")


def _request() -> dict | None:
    """Validate the form into a job request; every problem is shown in the page."""
    problems = []
    try:
        tickers = parse_tickers(tickers_text)
    except InputError as exc:
        problems.append(str(exc))
        tickers = []
    try:
        app.parse_years(years)
    except InputError as exc:
        problems.append(str(exc))
    paths = []
    for line in (paths_text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        path = Path(line).expanduser()
        if not path.exists():
            problems.append(f"{line}: no such file or folder")
        else:
            paths.append(str(path.resolve()))
    for upload in uploads or []:
        try:
            paths.append(str(app.save_upload(upload.name, upload.getvalue())))
        except FilingLensError as exc:
            problems.append(f"upload refused: {exc}")
    if not cats:
        problems.append("choose at least one category")
    reason = model_problem(model)
    if reason:
        problems.append(f"model {model}: {reason}")
    indexed = {(f.get("ticker") or "").upper() for f in filings}
    missing = [t for t in tickers if t not in indexed]
    if missing and not os.environ.get("SEC_USER_AGENT"):
        problems.append(f"{', '.join(missing)}: no indexed 10-K here, and fetching from EDGAR needs "
                        "SEC_USER_AGENT=\"Your Name you@example.com\" in the app's environment")
    if not tickers and not paths and not problems:
        problems.append("give tickers, local files or uploads")
    for problem in problems:
        st.error(problem, icon=":material/error:")
    if problems:
        return None
    return {"tickers": tickers, "years": years or None, "paths": paths, "categories": list(cats),
            "model": model, "prompt_version": version, "samples": int(samples), "exclude_items": list(exclude)}


if submitted:
    request = _request()
    if request is not None:
        what = ", ".join(request["tickers"] + [Path(p).name for p in request["paths"]])
        run_id = guarded(app.create_job, "rate", request, label=f"rate {what[:60]}")
        if run_id:
            app.start_job(run_id)
            st.success(f"Started {run_id}: progress below.", icon=":material/play_arrow:")

jobs_panel(("rate",), title="Rating jobs")
batch_panel()
