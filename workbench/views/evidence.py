"""Evidence: what decided one rating — rationale, the yes/no answers or rubric level, cited facts, and each
quote highlighted inside its Item's text with filing, Item and character span."""

import pandas as pd
import streamlit as st

from filinglens.analysis.evidence import cell_evidence
from filinglens.workbench.common import esc, guarded, store

st.title("Evidence")
rows = store().ratings()
if not rows:
    st.info("No ratings yet: rate filings on the **Filings** page.")
    st.stop()

by_id = {int(r["id"]): r for r in rows}
wanted = st.query_params.get("rating")
try:
    wanted = int(wanted) if wanted is not None else None
except ValueError:
    st.error(f"`rating={wanted}` in the address is not a rating id")
    wanted = None
if wanted is not None and wanted not in by_id:
    st.error(f"no rating {wanted} in the results store")
    wanted = None


def label(rid: int) -> str:
    r = by_id[rid]
    shown = "failed" if r["status"] != "ok" else f"{r['score']:.0f}" + (
        f" (E={r['expected_score']:.2f})" if r.get("expected_score") is not None else "")
    who = r.get("ticker") or r.get("company") or "?"
    sample = f" #{r['sample_index']}" if r.get("sample_index") else ""
    return f"{who} FY{r.get('fiscal_year')} · {r['category']} · {r['model_id']}@{r['prompt_version']}{sample} → {shown}"


ids = sorted(by_id, key=lambda i: (by_id[i].get("ticker") or "", by_id[i].get("fiscal_year") or 0,
                                   by_id[i]["category"], by_id[i]["model_id"], by_id[i]["prompt_version"], -i))
chosen = st.selectbox("Rating", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=label,
                      key="evidence-rating")
if chosen != wanted:
    st.query_params["rating"] = str(chosen)

row = by_id[chosen]
cell = guarded(cell_evidence, row)
if cell is None:
    st.stop()

a, b, c, d = st.columns(4)
a.metric("score", "failed" if row["status"] != "ok" else f"{row['score']:.0f}")
b.metric("expected score", "n/a" if row.get("expected_score") is None else f"{row['expected_score']:.2f}")
c.metric("method", row["method"])
d.metric("rater", f"{row['model_id']}@{row['prompt_version']}")
st.caption(f"run {row['run_id']} · {row['model_calls']} model calls ({row['cached_calls']} from cache) · "
           f"{row['tokens_in']:,} prompt tokens · prompt hash {row['prompt_hash']}")
if row["status"] != "ok":
    st.error(f"This rating failed: {row.get('error')}", icon=":material/error:")
if cell.prompt_note:
    st.warning(cell.prompt_note)

st.subheader("Rationale")
st.write(cell.rationale or "—")

st.subheader("What decided it")
if cell.indicators:
    frame = pd.DataFrame(cell.indicators)
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"p_yes": st.column_config.ProgressColumn("P(yes)", min_value=0, max_value=1,
                                                                         format="%.2f")})
    if cell.cutoffs:
        st.caption(f"E = P(level 1) · (1 + mean P(level 2)); score 0 below {cell.cutoffs[0]}, 2 from "
                   f"{cell.cutoffs[1]}.")
    if row.get("interval"):
        low, high = row["interval"]
        st.caption(f"E = gate · (bias + Σ weight · value) = {row.get('expected_score'):.2f} "
                   f"(interval {low:.2f}–{high:.2f})" + (" · **borderline**: near a cut-off" if row.get("borderline")
                                                           else ""))
elif cell.rubric_level:
    st.markdown(f"Rubric level **{cell.rubric_level['score']}**: {cell.rubric_level['text']}")
else:
    st.caption("No indicator answers or rubric level recorded.")

if cell.facts:
    st.subheader("Cited facts")
    st.dataframe(pd.DataFrame(cell.facts), hide_index=True, width="stretch")

st.subheader(f"Quotes ({len(cell.quotes)})")
st.markdown("""<style>
div.quote-context {font-family: Georgia, serif; line-height: 1.5; background: #fafafa; padding: 0.6rem 0.9rem;
  border-left: 3px solid #ccc; white-space: pre-wrap}
div.quote-context mark {background: #ffe066; padding: 0 2px}
div.item-text {max-height: 420px; overflow-y: auto}
</style>""", unsafe_allow_html=True)
if not cell.quotes:
    st.caption("This rating has no quotes.")
for n, q in enumerate(cell.quotes, start=1):
    with st.container(border=True):
        flag = ":green-badge[verified in the filing]" if q.verified else ":red-badge[not found in the evidence]"
        if q.located:
            st.markdown(f"{flag} **{esc(q.filing)}, Item {esc(q.item)}** ({esc(q.item_title)}), characters "
                        f"{q.start:,}–{q.end:,} of the Item")
            st.markdown(f"<div class='quote-context' id='quote-{n}'>…{esc(q.before)}<mark>{esc(q.match)}</mark>"
                        f"{esc(q.after)}…</div>", unsafe_allow_html=True)
            with st.expander("The whole Item, quote highlighted"):
                text = q.item_text
                st.markdown(f"<div class='quote-context item-text'>{esc(text[:q.start])}<mark>"
                            f"{esc(text[q.start:q.end])}</mark>{esc(text[q.end:])}</div>", unsafe_allow_html=True)
        else:
            st.markdown(f"{flag} “{esc(q.text)}”")
            st.caption("Not located in an indexed Item (the quote is not verbatim, or the filing is no longer "
                       "indexed).")

st.subheader(f"Evidence shown to the model ({len(cell.evidence)} excerpts)")
for n, e in enumerate(cell.evidence, start=1):
    with st.expander(f"E{n} · {e['citation']}"):
        st.write(e["text"] if e["in_index"] else "(no longer in the index)")
