"""The application layer: what the CLI, the eval harness, the app and batch workers call.

It resolves filings (ingesting them on demand), builds the evidence gatherer
and runs rating batches with their lifecycle in the results store.  Nothing
here prints: progress goes through callbacks.

``resolve_targets`` turns paths or ticker/year into indexed filings (ingesting
them first: ingest is idempotent, so an indexed filing costs nothing);
``index_gatherer`` collects a rating prompt's evidence from one filing with
the hybrid searcher; ``run_ratings`` runs a batch through the rating chain,
saving each rating as it finishes so an interrupted batch resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.rating import Rating, RatingChain, Target, rate_many
from filinglens.errors import InputError
from filinglens.prompts.loader import RatingPrompt
from filinglens.retrieval.filing import parse_years
from filinglens.store import Store


def _target(record: dict) -> Target:
    return Target(
        filing_id=record["filing_id"],
        company=record.get("company") or None,
        ticker=record.get("ticker") or None,
        cik=record.get("cik") or None,
        fiscal_year=record.get("fiscal_year"),
        content_hash=record.get("source_hash") or record["filing_id"],
    )


def resolve_targets(
    paths: Sequence[Path] = (), ticker: str | None = None, year: str | None = None, progress=None
) -> list[Target]:
    """Indexed filings for ``paths`` (ingested if needed) or for ``ticker`` and ``year``."""
    from filinglens.retrieval.index import open_store
    from filinglens.retrieval.ingest import ingest

    years = parse_years(year)
    store = open_store()
    if paths:
        results = ingest(paths, ticker=ticker, store=store, progress=progress)
        failed = [r for r in results if r.status == "failed"]
        if failed and len(failed) == len(results):
            raise InputError(f"{failed[0].source}: {failed[0].error}")
        wanted = {r.filing_id for r in results if r.status != "failed"}
        records = [f for f in store.filings() if f["filing_id"] in wanted]
    elif ticker:
        def indexed():
            return [
                f for f in store.filings()
                if (f.get("ticker") or "").upper() == ticker.upper()
                and (years is None or f.get("fiscal_year") in years)
            ]

        records = indexed()
        if not records:  # fetch and index them (needs SEC_USER_AGENT)
            ingest(ticker=ticker, years=year, store=store, progress=progress)
            records = indexed()
    else:
        raise InputError("give a 10-K file or folder, or --ticker with --year")
    if not records:
        raise InputError(f"no indexed 10-K for {ticker or paths} {year or ''}".strip())
    return [_target(r) for r in sorted(records, key=lambda r: (r.get("ticker") or "", r.get("fiscal_year") or 0))]


def index_gatherer(agent=None) -> Callable[[RatingPrompt, Target], list[EvidenceItem]]:
    """Evidence for a rating prompt from one indexed filing, found by the retrieval agent
    with the prompt's own queries (its likely items first, then the whole filing)."""
    opened: list = [agent]  # opened on first use: the index may be built after this is made

    def gather(prompt: RatingPrompt, target: Target) -> list[EvidenceItem]:
        from filinglens.retrieval.agent import RetrievalAgent

        if opened[0] is None:
            opened[0] = RetrievalAgent()
        evidence = opened[0].retrieve(
            prompt.description, queries=prompt.retrieval.queries, items=prompt.retrieval.items,
            filing_id=target.filing_id, k=prompt.retrieval.evidence_chunks,
        )
        return [EvidenceItem.from_evidence(e) for e in evidence]

    return gather


def run_ratings(
    targets: Sequence[Target],
    categories: Sequence[str],
    *,
    model_id: str = "local",
    prompt_version: str = "v1",
    samples: int = 1,
    temperature: float = 0.0,
    evidence_chars: int | None = None,
    store: Store | None = None,
    run_id: str | None = None,
    label: str | None = None,
    gather=None,
    progress: Callable[[Rating], None] | None = None,
) -> tuple[str, list[Rating]]:
    """Rate every target × category × sample into a run of the results store; returns (run id, ratings)."""
    store = store or Store()
    config = {"model": model_id, "prompt_version": prompt_version, "samples": samples, "temperature": temperature,
              "categories": list(categories), "filings": [t.filing_id for t in targets]}
    run_id = store.start_run("rate", config, label=label, run_id=run_id)
    chain = RatingChain(store, model_id=model_id, temperature=temperature, run_id=run_id,
                        gather=gather or index_gatherer())
    if evidence_chars:
        chain.evidence_chars = evidence_chars
    try:
        ratings = rate_many(chain, targets, categories, prompt_version, samples, progress)
    except BaseException:
        store.finish_run(run_id, "interrupted")
        raise
    store.finish_run(run_id, "finished" if all(r.status == "ok" for r in ratings) else "finished-with-failures")
    return run_id, ratings


def rate(
    paths: Sequence[Path | str] = (),
    *,
    ticker: str | None = None,
    year: str | int | None = None,
    categories: Sequence[str] | None = None,
    model_id: str | None = None,
    prompt_version: str | None = None,
    samples: int = 1,
    progress: Callable[[Rating], None] | None = None,
) -> list[Rating]:
    """Rate 10-Ks (files/folders, or a ticker and years) on categories; ingests them first if needed.

    >>> ratings = rate(["aapl-10-k.html"], categories=["environment"], model_id="fake")
    """
    from filinglens.agents.models import DEFAULT_MODEL
    from filinglens.prompts.loader import DEFAULT_RATING_VERSION, categories as all_categories

    targets = resolve_targets([Path(p) for p in paths], ticker, None if year is None else str(year))
    _, ratings = run_ratings(
        targets, list(categories or all_categories()), model_id=model_id or DEFAULT_MODEL,
        prompt_version=prompt_version or DEFAULT_RATING_VERSION, samples=samples, progress=progress,
    )
    return ratings


def ask(
    question: str,
    *,
    ticker: str | None = None,
    year: int | None = None,
    model_id: str | None = None,
    k: int = 6,
    prompt_version: str | None = None,
):
    """Answer a question from the indexed 10-Ks with citations (an ``agents.qa.Answer``)."""
    from filinglens.agents.models import DEFAULT_MODEL
    from filinglens.agents.qa import answer_question
    from filinglens.retrieval.agent import RetrievalAgent

    evidence = RetrievalAgent().retrieve(question, ticker=ticker, year=year, k=k)
    return answer_question(question, evidence, store=Store(), model_id=model_id or DEFAULT_MODEL,
                           prompt_version=prompt_version)
