"""Helpers shared by the workbench pages: plugins, the store, choices, errors, the jobs panel."""

from __future__ import annotations

import html
import importlib
import os
import re
from typing import Callable

import streamlit as st

from filinglens.errors import FilingLensError
from filinglens.retrieval.structure import item_ids

PLUGINS_ENV = "FILINGLENS_WORKBENCH_PLUGINS"
TICKER = re.compile(r"[A-Za-z][A-Za-z0-9.\-]{0,9}")
ITEMS = item_ids()  # the 10-K Items in order (retrieval/form10k.yaml)
ACTIVE = ("queued", "running")


def load_plugins() -> None:
    """Import the modules named in ``FILINGLENS_WORKBENCH_PLUGINS`` (comma-separated), e.g. to register models."""
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(name)


def store():
    """The results store of the data home (a connection per script run)."""
    from filinglens.store import Store

    return Store()


def guarded(func: Callable, *args, **kwargs):
    """Call ``func``; a ``FilingLensError`` is shown as one readable line in the page and gives None."""
    try:
        return func(*args, **kwargs)
    except FilingLensError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def parse_tickers(text: str) -> list[str]:
    """Tickers from ``"aapl, msft"``; raises ``InputError`` naming a malformed one."""
    from filinglens.errors import InputError

    out = []
    for raw in re.split(r"[\s,;]+", text or ""):
        if not raw:
            continue
        if not TICKER.fullmatch(raw):
            raise InputError(f"`{raw[:30]}` is not a ticker (letters, digits, dots or dashes, up to 10)")
        if raw.upper() not in out:
            out.append(raw.upper())
    return out


def indexed_filings() -> list[dict]:
    """Indexed filings (ticker, company, fiscal year, source); empty when there is no index yet."""
    from filinglens.retrieval.index import open_store

    try:
        return open_store().filings()
    except FilingLensError as exc:
        st.warning(f"index: {exc}")
        return []


def model_choices() -> tuple[list[str], dict[str, str]]:
    """Listed model ids (available first) and, for unavailable ones, the reason."""
    from filinglens.agents.models import list_models

    rows = list_models()
    available = [r.id for r in rows if r.available and r.id != "fake"]
    reasons = {r.id: r.reason for r in rows if not r.available}
    return available + [r.id for r in rows if not r.available], reasons


def model_problem(model_id: str) -> str | None:
    """Why ``model_id`` cannot be used here (None when it can)."""
    from filinglens.agents import models
    from filinglens.agents.providers import ModelParams

    try:
        provider, name = models._resolve(model_id)
        return provider.unavailable(name, ModelParams()) or None
    except FilingLensError as exc:
        return str(exc)


def pick_model(key: str, default: str = "local") -> str:
    """A model selectbox plus an optional free id (``openai:…``, ``ollama:…``); returns the chosen id."""
    ids, reasons = model_choices()
    index = ids.index(default) if default in ids else 0
    chosen = st.selectbox("Model", ids, index=index, key=f"{key}-model",
                          format_func=lambda i: i + ("" if i not in reasons else " (not available)"))
    other = st.text_input("…or another model id", key=f"{key}-model-other", placeholder="openai:gpt-4o-mini")
    return other.strip() or chosen


def prompt_versions() -> list[str]:
    """Rating prompt versions present for every category."""
    from filinglens.prompts.loader import version_key, list_prompts

    by_category: dict[str, set[str]] = {}
    for p in list_prompts():
        by_category.setdefault(p.category, set()).add(p.version)
    common = set.intersection(*by_category.values()) if by_category else set()
    return sorted(common, key=version_key)


def status_badge(status: str) -> str:
    colour = {"finished": "green", "finished-with-failures": "orange", "failed": "red", "cancelled": "gray",
              "interrupted": "red", "running": "blue", "queued": "blue"}.get(status, "gray")
    return f":{colour}-badge[{status}]"


def esc(text) -> str:
    return html.escape(str(text if text is not None else ""))


def jobs_panel(kinds: tuple[str, ...], title: str = "Jobs", limit: int = 8, on_finished: Callable | None = None) -> None:
    """Background jobs of these kinds, newest first, with live progress (polled from the store), cancel and resume."""
    from filinglens import app

    s = store()
    runs = [r for r in s.runs() if r["kind"] in kinds and '"job"' in (r.get("config") or "")][:limit]
    views = [app.job_view(r, s) for r in runs]
    active = any(v["status"] in ACTIVE for v in views)

    @st.fragment(run_every=1.0 if active else None)
    def panel() -> None:
        fresh = store()
        current = [app.job_view(fresh.run(v["run_id"]), fresh) for v in views]
        if not current:
            st.caption("No jobs yet.")
        for v in current:
            _job_box(v)
        if active and not any(v["status"] in ACTIVE for v in current):
            if on_finished:
                on_finished()
            st.rerun()

    st.subheader(title)
    panel()


def _job_box(v: dict) -> None:
    from filinglens import app

    with st.container(border=True):
        head, buttons = st.columns([5, 1])
        config = v["config"]
        what = ", ".join(config.get("tickers") or []) or ", ".join(
            os.path.basename(p) for p in config.get("paths") or []) or ""
        head.markdown(f"{status_badge(v['status'])} **{esc(v['label'] or v['run_id'])}** "
                      f"<span style='color:grey'>{esc(v['run_id'])}</span>", unsafe_allow_html=True)
        head.caption(f"{what} · model {config.get('model')} · prompt {config.get('prompt_version')}"
                     + (f" · leaving out Items {', '.join(config['exclude_items'])}" if config.get("exclude_items")
                        else ""))
        if v["status"] in ACTIVE:
            if buttons.button("Cancel", key=f"cancel-{v['run_id']}", disabled=v["cancel_requested"]):
                app.request_cancel(v["run_id"])
                st.toast("Cancel requested: the job stops after its current step.")
        elif v["status"] == "interrupted":
            if buttons.button("Resume", key=f"resume-{v['run_id']}"):
                app.start_job(v["run_id"])
                st.rerun()
        total = v.get("total") or 0
        done = v["done"] + (v["failed"] if v["kind"] == "rate" else 0)
        if total:
            st.progress(min(done / total, 1.0), text=f"{done}/{total} · {v.get('message') or v.get('phase') or ''}")
        elif v.get("message"):
            st.caption(v["message"])
        if v.get("error"):
            st.error(v["error"], icon=":material/error:")
        if v["failed"]:
            st.warning(f"{v['failed']} of {total or v['failed'] + v['done']} ratings failed: no score was "
                       "recorded for them (errors below); run the job again to retry them.",
                       icon=":material/warning:")
        for err in v.get("errors") or []:
            st.warning(err, icon=":material/warning:")
        for note in v.get("notices") or []:
            st.info(note, icon=":material/build:")
        for f in v.get("ingest") or []:
            if f.get("status") == "failed":
                st.warning(f"{f['source']}: {f.get('error')}", icon=":material/warning:")
        if v["cells"]:
            import pandas as pd

            cells = pd.DataFrame(v["cells"])
            cells["shown"] = cells.apply(
                lambda c: "…" if c["status"] == "pending" else (f"{c['score']:.0f}" if c["status"] == "ok"
                                                               else "failed"), axis=1)
            grid = cells[cells["sample"] == 0].pivot(index="filing", columns="category", values="shown")
            st.dataframe(grid, width="stretch")
            failed = cells[cells["status"] == "failed"]
            for _, c in failed.head(5).iterrows():
                st.caption(f"✗ {c['filing']} · {c['category']}: {c['error']}")


def batch_panel(limit: int = 5) -> None:
    """Batch runs (``filinglens batch``, any executor), newest first: filings done / failed / cached of the
    total, throughput and ETA as their driver saves them (polled while one runs), failed filings with errors."""
    from filinglens import app

    runs = store().runs("batch")[:limit]
    if not runs:
        return
    active = any(r["status"] == "running" for r in runs)

    @st.fragment(run_every=2.0 if active else None)
    def panel() -> None:
        fresh = store()
        for run in runs:
            _batch_box(app.batch_view(fresh.run(run["id"]) or run, fresh))

    st.subheader("Batch runs")
    st.caption("Started with `filinglens batch` (here or on a Ray cluster); the app shows their progress.")
    panel()


def _batch_box(v: dict) -> None:
    p = v["progress"] or {}
    total = int(p.get("total") or 0)
    finished = int(p.get("finished") or 0)
    with st.container(border=True):
        st.markdown(f"{status_badge(v['status'])} **{esc(v['label'] or v['run_id'])}** "
                    f"<span style='color:grey'>{esc(v['run_id'])} · {esc(v.get('executor') or '')}</span>",
                    unsafe_allow_html=True)
        parts = [f"{int(p.get('done') or 0)} done", f"{int(p.get('failed') or 0)} failed",
                 f"{int(p.get('cached') or 0)} cached", f"of {total} filings"]
        if p.get("per_hour"):
            parts.append(f"{p['per_hour']:.0f} filings/h")
        if p.get("eta_s") and v["status"] == "running":
            parts.append(f"ETA {p['eta_s'] / 60:.0f} min")
        if total:
            st.progress(min(finished / total, 1.0), text=" · ".join(parts))
        else:
            st.caption(" · ".join(parts))
        if v["status"] == "interrupted":
            st.warning("Its driver is gone: run the same `filinglens batch` command again to resume from the store.",
                       icon=":material/warning:")
        if v["failed"]:
            import pandas as pd

            st.dataframe(pd.DataFrame(v["failed"]), width="stretch", hide_index=True)
