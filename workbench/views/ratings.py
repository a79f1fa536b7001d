"""Ratings: the panel (company × fiscal year × category) per rater, as a table whose every number opens its
evidence and as a heatmap; trends with uncertainty bands, two raters side by side; averages; downloads."""

import io

import altair as alt
import pandas as pd
import streamlit as st

from filinglens import app
from filinglens.analysis.panel import averages, filter_panel, trend_table
from filinglens.workbench.common import esc, store

st.title("Ratings")
frame = app.ratings_panel(store())
if frame.empty:
    st.info("No ratings yet: rate filings on the **Filings** page (or with `filinglens rate`).")
    st.stop()

companies = sorted(frame["company"].unique())
years_all = sorted(int(y) for y in frame["fiscal_year"].dropna().unique())
raters_all = sorted(frame["rater"].unique())
with st.sidebar:
    st.header("Selection")
    chosen_companies = st.multiselect("Companies", companies, default=companies, key="companies")
    if len(years_all) > 1:
        lo, hi = st.slider("Fiscal years", years_all[0], years_all[-1], (years_all[0], years_all[-1]), key="years")
    else:
        lo = hi = years_all[0] if years_all else None
    chosen_categories = st.multiselect("Categories", sorted(frame["category"].unique()),
                                       default=sorted(frame["category"].unique()), key="categories")
    chosen_raters = st.multiselect("Raters (model@prompt)", raters_all, default=raters_all[:2], key="raters",
                                   help="Two raters are shown side by side (e.g. prompt v2 vs the strict v4).")
st.session_state["selected_companies"] = chosen_companies

panel = filter_panel(frame, chosen_companies, (lo, hi), chosen_categories, chosen_raters)
if panel.empty:
    st.warning("Nothing rated matches this selection.")
    st.stop()
table = trend_table(panel)
categories = sorted(panel["category"].unique())

# the rating that opens when a cell is clicked: sample 0 (or the first), a successful one when there is one
first = (panel.assign(bad=panel["status"] != "ok").sort_values(["bad", "sample_index", "rating_id"])
         .drop_duplicates(["company", "fiscal_year", "category", "rater"]))
cell_ids = {(r.company, int(r.fiscal_year) if pd.notna(r.fiscal_year) else None, r.category, r.rater): int(r.rating_id)
            for r in first.itertuples()}


def _cell(row) -> str:
    key = (row["company"], int(row["fiscal_year"]) if pd.notna(row["fiscal_year"]) else None, row["category"],
           row["rater"])
    rid = cell_ids.get(key)
    if row["n"] == 0:
        text = "<span class='fail'>failed</span>"
    else:
        text = f"<b>{row['expected']:.2f}</b>"
        if row["band"] != "none":
            text += f" <span class='band'>[{row['low']:.2f}–{row['high']:.2f}]</span>"
    return f"<a href='./evidence?rating={rid}' target='_self' class='cell' id='cell-{rid}'>{text}</a>"


def panel_html(rater: str) -> str:
    part = table[table["rater"] == rater]
    head = "".join(f"<th>{esc(c)}</th>" for c in categories)
    body = []
    for (company, year), rows in part.groupby(["company", "fiscal_year"], sort=True):
        by_cat = {r["category"]: r for _, r in rows.iterrows()}
        cells = "".join(f"<td>{_cell(by_cat[c]) if c in by_cat else ''}</td>" for c in categories)
        body.append(f"<tr><th>{esc(company)} FY{esc(year)}</th>{cells}</tr>")
    return (f"<table class='panel'><thead><tr><th>{esc(rater)}</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


st.markdown("""<style>
table.panel {border-collapse: collapse; margin-bottom: 0.5rem}
table.panel th, table.panel td {border: 1px solid #ddd; padding: 4px 10px; text-align: center}
table.panel a.cell {text-decoration: none}
table.panel .band {color: #777; font-size: 0.8em}
table.panel .fail {color: #c00}
</style>""", unsafe_allow_html=True)

tab_panel, tab_heat, tab_trends, tab_avg, tab_download = st.tabs(
    ["Panel", "Heatmap", "Trends", "Averages", "Download"])

with tab_panel:
    st.caption("Expected score (0–2) with its band; click a number to open its evidence. Band: ±1 SD over "
               "samples, or of the score implied by the yes/no probabilities.")
    shown = [r for r in chosen_raters if r in set(table["rater"])]
    for start in range(0, len(shown), 2):
        columns = st.columns(min(2, len(shown) - start))
        for column, rater in zip(columns, shown[start:start + 2]):
            column.markdown(panel_html(rater), unsafe_allow_html=True)

with tab_heat:
    heat = table.dropna(subset=["expected"]).assign(
        filing=lambda d: d["company"] + " FY" + d["fiscal_year"].astype(str),
        label=lambda d: d["expected"].map(lambda v: f"{v:.1f}"))
    base = alt.Chart(heat).encode(x=alt.X("category:N", title=None, axis=alt.Axis(labelAngle=-30)),
                                  y=alt.Y("filing:N", title=None))
    rects = base.mark_rect().encode(
        color=alt.Color("expected:Q", scale=alt.Scale(domain=[0, 2], scheme="viridis"), title="score"),
        tooltip=["filing", "category", "rater", alt.Tooltip("expected:Q", format=".2f"), "low", "high", "band", "n"])
    text = base.mark_text(fontSize=11).encode(text="label:N", color=alt.condition(
        alt.datum.expected > 1.2, alt.value("black"), alt.value("white")))
    size = {"width": max(180, 80 * len(categories)), "height": max(120, 30 * heat["filing"].nunique())}
    st.altair_chart((rects + text).properties(**size).facet(column=alt.Column("rater:N", title=None)),
                    width="content")

with tab_trends:
    years_rated = table["fiscal_year"].dropna().nunique()
    if years_rated < 2:
        st.info("Trends need two or more fiscal years of one company: rate more years on the Filings page.")
    data = table.dropna(subset=["expected"]).astype({"fiscal_year": int})
    columns = st.columns(2)
    for n, category in enumerate(categories):
        part = data[data["category"] == category]
        base = alt.Chart(part).encode(x=alt.X("fiscal_year:O", title="fiscal year"))
        colour = alt.Scale(scheme="category10", domain=companies)
        band = base.mark_area(opacity=0.15).encode(
            y=alt.Y("low:Q", scale=alt.Scale(domain=[0, 2]), title="expected score"), y2="high:Q",
            color=alt.Color("company:N", scale=colour, legend=alt.Legend(symbolOpacity=1)), detail="rater:N")
        line = base.mark_line(point=True).encode(
            y="expected:Q", color=alt.Color("company:N", scale=colour, legend=alt.Legend(symbolOpacity=1)),
            strokeDash=alt.StrokeDash("rater:N", title="rater"),
            tooltip=["company", "fiscal_year", "rater", alt.Tooltip("expected:Q", format=".2f"), "low", "high", "n"])
        columns[n % 2].altair_chart((band + line).properties(title=category, height=300), width="stretch")

with tab_avg:
    st.caption("Mean expected score over the selected fiscal years.")
    avg = averages(table)
    wide = avg.pivot_table(index=["company", "rater"], columns="category", values="mean").round(2)
    st.dataframe(wide, width="stretch")

with tab_download:
    export = panel.drop(columns=["cell_key"])
    st.download_button("Ratings (CSV)", export.to_csv(index=False).encode(), "ratings.csv", "text/csv")
    buffer = io.BytesIO()
    export.to_parquet(buffer, index=False)
    st.download_button("Ratings (Parquet)", buffer.getvalue(), "ratings.parquet", "application/octet-stream")
    st.download_button("Panel with bands (CSV)", table.to_csv(index=False).encode(), "panel.csv", "text/csv")
