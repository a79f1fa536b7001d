"""The workbench's entry point (``streamlit run``): page set-up and navigation."""

import streamlit as st

from filinglens.workbench.common import load_plugins

load_plugins()
st.set_page_config(page_title="FilingLens workbench", page_icon=":material/query_stats:", layout="wide")

pages = [
    st.Page("views/filings.py", title="Filings", icon=":material/description:", default=True),
    st.Page("views/ratings.py", title="Ratings", icon=":material/grid_on:"),
    st.Page("views/evidence.py", title="Evidence", icon=":material/format_quote:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("views/stability.py", title="Stability", icon=":material/balance:"),
    st.Page("views/ask.py", title="Ask", icon=":material/help:"),
]
st.navigation(pages).run()
