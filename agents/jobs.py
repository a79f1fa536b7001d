"""Glue between the index and the agents: which filings to rate or ask about, and their evidence.

``resolve_targets`` turns paths or ticker/year into indexed filings (ingesting
them first: ingest is idempotent, so an indexed filing costs nothing);
``index_gatherer`` collects a rating prompt's evidence from one filing with
the hybrid searcher (for the indicators method, each indicator's own queries,
merged in turn so every indicator's best passages are shown); ``index_facts``
reads an indexed filing's key figures from its source file (cached per
content hash); ``run_ratings`` runs a batch through the rating chain, saving
each rating as it finishes so an interrupted batch resumes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.rating import Rating, RatingChain, Target, rate_many
from filinglens.errors import InputError
from filinglens.prompts.loader import RatingPrompt
from filinglens.store import Store


def parse_year_range(text: str | None) -> tuple[int | None, int | None]:
    """``"2019-2022"`` -> (2019, 2022); ``"2023"`` -> (2023, 2023); None -> (None, None)."""
    if not text:
        return None, None
    m = re.fullmatch(r"\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?", str(text))
    if not m:
        raise InputError(f"year must be a year or a range like 2019-2022, not `{text}`")
    return int(m.group(1)), int(m.group(2) or m.group(1))


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

    year_from, year_to = parse_year_range(year)
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
                and (year_from is None or (f.get("fiscal_year") or 0) >= year_from)
                and (year_to is None or (f.get("fiscal_year") or 0) <= year_to)
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
        k = prompt.retrieval.evidence_chunks
        asked = [i for i in prompt.indicators if i.question and i.queries]
        if not asked:
            evidence = opened[0].retrieve(
                prompt.description, queries=prompt.retrieval.queries, items=prompt.retrieval.items,
                filing_id=target.filing_id, k=k,
            )
            return [EvidenceItem.from_evidence(e) for e in evidence]
        ranked = [opened[0].retrieve(i.question, queries=i.queries, items=prompt.retrieval.items,
                                     filing_id=target.filing_id, k=k) for i in asked]
        return [EvidenceItem.from_evidence(e) for e in interleave(ranked, k)]

    return gather


def interleave(ranked: Sequence[Sequence], k: int) -> list:
    """Merge ranked lists in turn (first of each, then second of each, ...), without repeats, up to ``k``."""
    out, seen = [], set()
    for depth in range(max((len(r) for r in ranked), default=0)):
        for items in ranked:
            if depth < len(items) and items[depth].chunk_id not in seen:
                seen.add(items[depth].chunk_id)
                out.append(items[depth])
                if len(out) >= k:
                    return out
    return out


def index_facts() -> Callable[[Target], object]:
    """The key figures (``filinglens.retrieval.facts.Financials``) of an indexed filing, read from its source
    file when that file is still there and unchanged (else None: the indicators fall back to questions)."""
    cache: dict[str, object] = {}

    def facts(target: Target):
        from filinglens.retrieval.facts import cached_financials
        from filinglens.retrieval.index import open_store
        from filinglens.settings import sha256_file

        content_hash = target.content_hash.split("#", 1)[0]  # metamorphic variants rate the same filing
        if content_hash not in cache:
            record = next((f for f in open_store().filings() if f["filing_id"] == target.filing_id), None)
            source = Path(record["source"]) if record and record.get("source") else None
            found = None
            if source is not None and source.is_file() and sha256_file(source) == content_hash:
                found = cached_financials(source, content_hash)
            cache[content_hash] = found
        return cache[content_hash]

    return facts


def run_ratings(
    targets: Sequence[Target],
    categories: Sequence[str],
    *,
    model_id: str = "local",
    prompt_version: str | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    evidence_chars: int | None = None,
    store: Store | None = None,
    run_id: str | None = None,
    label: str | None = None,
    gather=None,
    facts=None,
    progress: Callable[[Rating], None] | None = None,
) -> tuple[str, list[Rating]]:
    """Rate every target × category × sample into a run of the results store; returns (run id, ratings)."""
    from filinglens.prompts.loader import DEFAULT_RATING_VERSION

    prompt_version = prompt_version or DEFAULT_RATING_VERSION
    store = store or Store()
    config = {"model": model_id, "prompt_version": prompt_version, "samples": samples, "temperature": temperature,
              "categories": list(categories), "filings": [t.filing_id for t in targets]}
    run_id = store.start_run("rate", config, label=label, run_id=run_id)
    chain = RatingChain(store, model_id=model_id, temperature=temperature, run_id=run_id,
                        gather=gather or index_gatherer(), facts=facts if facts is not None else
                        (index_facts() if gather is None else None))
    if evidence_chars:
        chain.evidence_chars = evidence_chars
    try:
        ratings = rate_many(chain, targets, categories, prompt_version, samples, progress)
    except BaseException:
        store.finish_run(run_id, "interrupted")
        raise
    store.finish_run(run_id, "finished" if all(r.status == "ok" for r in ratings) else "finished-with-failures")
    return run_id, ratings
