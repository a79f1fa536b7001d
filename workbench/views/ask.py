"""Ask: a question answered from the indexed filings with checked citations (as ``filinglens ask``)."""

import streamlit as st

from filinglens.workbench.common import esc, guarded, indexed_filings, model_problem, pick_model

st.title("Ask")
st.caption("Answers come only from retrieved excerpts of the indexed 10-Ks; each quote is checked against the "
           "filing, and the answer says so when the evidence is insufficient.")

filings = indexed_filings()
tickers = sorted({f["ticker"] for f in filings if f.get("ticker")})
with st.form("ask-form"):
    question = st.text_area("Question", key="ask-question",
                            placeholder="How many full-time equivalent employees did Apple have?")
    left, mid, right = st.columns(3)
    ticker = left.selectbox("Company", ["any"] + tickers, key="ask-ticker")
    year = mid.number_input("Fiscal year (0 = any)", min_value=0, max_value=2100, value=0, key="ask-year")
    k = right.number_input("Excerpts", min_value=1, max_value=20, value=6, key="ask-k")
    model = pick_model("ask", default="local")
    submitted = st.form_submit_button("Ask", type="primary")


def answer(question: str):
    from filinglens.app import ask
    from filinglens.errors import InputError

    if not question.strip():
        raise InputError("the question is empty")
    return ask(question, ticker=None if ticker == "any" else ticker, year=int(year) or None, model_id=model,
               k=int(k))


if submitted:
    problem = model_problem(model)
    if problem:
        st.error(f"model {model}: {problem}")
    else:
        with st.spinner("retrieving and answering…"):
            result = guarded(answer, question)
        if result is not None:
            if result.error:
                st.error(result.error)
            (st.success if result.sufficient else st.warning)(result.answer)
            for c in result.citations:
                mark = ":green-badge[verified]" if c.verified else ":red-badge[quote NOT found in the filing]"
                st.markdown(f"{mark} **[E{c.n}]** {esc(c.citation)}  \n“{esc(c.quote)}”", unsafe_allow_html=True)
            st.caption(f"{result.model_id} · {result.prompt} · {result.tokens_in:,} tokens in"
                       + (" · cached" if result.cached else ""))
            with st.expander(f"Evidence ({len(result.evidence)} excerpts)"):
                for e in result.evidence:
                    st.markdown(f"**E{e['n']}** {esc(e['citation'])}")
