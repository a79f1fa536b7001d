"""Retrieval quality, indexing throughput and query latency on FinanceBench questions.

Usage (from the repository root)::

    .venv/bin/python bench/retrieval_financebench.py                 # chunk size 1000, everything
    .venv/bin/python bench/retrieval_financebench.py --sizes 600,1000,1500
    .venv/bin/python bench/retrieval_financebench.py --questions OTHER.jsonl --pdfs DIR

What it does:

1. Ingests every 10-K PDF the questions reference (``doc_name`` and every
   ``evidence[].doc_name``) into one shared index per chunk size, under
   ``bench/results/home`` (re-runs reuse it: unchanged PDFs are skipped).
   Company and fiscal year come from ``documents.jsonl``.
2. For every question and retrieval method, retrieves the top 10 chunks, once
   over the whole index ("no filter": a shared store of all documents) and
   once filtered to the question's company and fiscal year ("filter").
3. Scores recall@5 and recall@10 with the **match rule**: a retrieved chunk
   *hits* an evidence item when it comes from the evidence document (same
   company and fiscal year) and its source page equals the evidence page
   (``evidence_page_num``, 0-based PDF page; chunks never cross pages).  A
   question's recall@k is the fraction of its distinct evidence pages hit by
   at least one of the top-k chunks; the table averages over questions.
   ``hit@k`` (at least one evidence page found) is in the JSON output.
   ``recall@6000chars``: the same within the leading chunks (of the top 10)
   whose texts fit in 6,000 characters, the rating chain's default evidence
   budget -- the fair way to compare chunk sizes, since k small chunks carry
   less text than k large ones.
4. Times ingestion (parse, embedding + writes; chunks/s, seconds per 10-K) and
   every query (p50/p95 per method), in the same run.

5. Splits the questions once, for good (``split_of``): within each question
   type (metrics-generated / domain-relevant / novel-generated) the questions
   are ordered by the sha256 of their ``financebench_id`` and the first half
   (rounded up) is the **tuning** half, the rest **held-out** (28 / 26 of the 54
   dev questions).  Anything tuned (weights, rewrite rules, k, chunking) is
   chosen on the tuning half; recall@10 is reported per half and per type.

Methods: ``dense`` (Chroma only), ``bm25`` (bm25s only, raw question),
``hybrid`` (RRF of both, raw question), ``hybrid+rewrite`` (BM25 gets the
keyword rewrite of the question), ``hybrid+rewrite+mmr`` (the same with MMR:
the search default before page-aware ranking, also ``search-nopages``),
``search`` (the default of ``filinglens search`` now: rewrite, page-level
BM25, one chunk per page, the asked financial statements' pages, MMR),
``search-nostatements`` (the same without statement routing), ``agent`` (the
retrieval agent with the current searcher: planner, several queries, fusion,
statement pages, MMR; without filter it detects company and year from the
question text), ``agent-nostatements``, ``agent-before`` (the agent over the
searcher without page-aware ranking or statements), ``agent-nommr``.
``--indexed-only`` scores only questions whose PDFs are already indexed
(the subset is recorded in the JSON).

Results: ``bench/results/retrieval_financebench.json`` and a markdown table
on stdout (copied into ``bench/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from filinglens import settings  # noqa: E402
from filinglens.errors import FilingLensError  # noqa: E402
from filinglens.evals.financebench import SPLITS, evidence_pages, hit_pages, load_jsonl, split_of  # noqa: E402
from filinglens.retrieval.index import ChunkStore  # noqa: E402
from filinglens.retrieval.ingest import _apply, chunker_tag, sidecar_metadata  # noqa: E402
from filinglens.retrieval.search import DEFAULT_MMR_LAMBDA, HybridSearcher, SearchFilters  # noqa: E402

KS = (5, 10)
#: the rating chain's default evidence budget: recall within the top chunks that fit it
BUDGET_CHARS = 6000


#: question types of FinanceBench, in report order
QUESTION_TYPES = ("metrics-generated", "domain-relevant", "novel-generated")


def within_budget(hits: list, budget: int = BUDGET_CHARS) -> list:
    """The leading hits whose texts fit in ``budget`` characters (at least one)."""
    out, used = [], 0
    for h in hits:
        size = len(h.text) if hasattr(h, "text") else h.get("_chars", 0)
        if out and used + size > budget:
            break
        out.append(h)
        used += size
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


# --------------------------------------------------------------------------- ingest


def ingest_docs(store: ChunkStore, pdfs: list[Path], size: int, log) -> dict:
    from filinglens.retrieval.parse import parse_filing
    from filinglens.retrieval.ingest import ingest_filing

    per_doc = []
    for n, pdf in enumerate(pdfs, 1):
        overrides = sidecar_metadata(pdf)
        t0 = time.perf_counter()
        if store.find_unchanged(settings.sha256_file(pdf), chunker_tag(size), overrides):
            per_doc.append({"doc": pdf.stem, "status": "unchanged", "seconds": time.perf_counter() - t0})
            log(f"  [{n}/{len(pdfs)}] {pdf.stem}: unchanged")
            continue
        try:
            filing = _apply(parse_filing(pdf), overrides)
        except FilingLensError as exc:
            per_doc.append({"doc": pdf.stem, "status": "failed", "error": str(exc)})
            log(f"  [{n}/{len(pdfs)}] {pdf.stem}: FAILED {exc}")
            continue
        t1 = time.perf_counter()
        result = ingest_filing(filing, store=store, chunk_chars=size)
        t2 = time.perf_counter()
        per_doc.append({
            "doc": pdf.stem, "status": result.status, "chunks": result.chunks, "embedded": result.embedded,
            "parse_seconds": t1 - t0, "index_seconds": t2 - t1, "seconds": t2 - t0,
        })
        log(f"  [{n}/{len(pdfs)}] {pdf.stem}: {result.chunks} chunks, {result.embedded} embedded, "
            f"parse {t1 - t0:.1f}s, index {t2 - t1:.1f}s")
    # throughput only from documents indexed from scratch in this run
    fresh = [d for d in per_doc if d.get("embedded") and d.get("embedded") == d.get("chunks")]
    summary = {"docs": len(pdfs), "fresh_docs": len(fresh), "per_doc": per_doc}
    if fresh:
        embedded = sum(d["embedded"] for d in fresh)
        index_s = sum(d["index_seconds"] for d in fresh)
        total_s = sum(d["seconds"] for d in fresh)
        summary.update({
            "chunks_embedded": embedded,
            "chunks_per_second_index": embedded / index_s,
            "chunks_per_second_end_to_end": embedded / total_s,
            "seconds_per_10k_mean": total_s / len(fresh),
            "seconds_per_10k_median": statistics.median(d["seconds"] for d in fresh),
            "parse_seconds_per_10k_mean": sum(d["parse_seconds"] for d in fresh) / len(fresh),
            "chunks_per_10k_mean": embedded / len(fresh),
        })
    return summary


# --------------------------------------------------------------------------- evaluation


def run_method(method: str, searcher: HybridSearcher, agent, q: dict, filters: SearchFilters | None, doc: dict,
               before: HybridSearcher | None = None, before_agent=None, nostat: HybridSearcher | None = None,
               nostat_agent=None):
    from filinglens.retrieval.agent import keyword_rewrite

    text = q["question"]
    k = max(KS)
    if method == "search":  # the default of `filinglens search` / HybridSearcher.search now
        return searcher.search(text, k=k, filters=filters)
    if method == "search-nostatements":  # the default before statement routing
        return nostat.search(text, k=k, filters=filters)
    if method == "agent-nostatements":
        agent = nostat_agent
        method = "agent"
    if method == "search-nopages":  # the default without the page-level BM25 and the per-page cap
        return before.search(text, k=k, filters=filters)
    if method == "agent-before":  # the retrieval agent before page-aware search
        before_agent.mmr_lambda = DEFAULT_MMR_LAMBDA
        if filters is not None:
            ev = before_agent.retrieve(text, company=doc["company"], year=int(doc["doc_period"]), k=k)
        else:
            ev = before_agent.retrieve(text, k=k)
        return [{**e.metadata_dict(), "_chars": len(e.text)} for e in ev]
    searcher = before  # the baselines below are measured as they were (no pages)
    if method == "dense":
        return searcher.search(text, k=k, filters=filters, mode="dense", mmr_lambda=1.0)
    if method == "bm25":
        return searcher.search(text, k=k, filters=filters, mode="bm25", mmr_lambda=1.0, rewrite=False)
    if method == "hybrid":
        return searcher.search(text, k=k, filters=filters, mode="hybrid", mmr_lambda=1.0, rewrite=False)
    if method == "hybrid+rewrite":
        return searcher.search(text, k=k, filters=filters, lexical_query=keyword_rewrite(text), mmr_lambda=1.0)
    if method == "hybrid+rewrite+mmr":
        return searcher.search(text, k=k, filters=filters, lexical_query=keyword_rewrite(text),
                               mmr_lambda=DEFAULT_MMR_LAMBDA)
    if method in ("agent", "agent-nommr"):
        agent.mmr_lambda = 1.0 if method == "agent-nommr" else DEFAULT_MMR_LAMBDA
        if filters is not None:
            ev = agent.retrieve(text, company=doc["company"], year=int(doc["doc_period"]), k=k)
        else:
            ev = agent.retrieve(text, k=k)
        return [{**e.metadata_dict(), "_chars": len(e.text)} for e in ev]
    raise ValueError(method)


def latency(store: ChunkStore, questions: list[dict], docs: dict, log) -> dict:
    """Query latency of the default search (hybrid, keyword rewrite for BM25, pages, MMR, k=10, company+year filter).

    ``cold``: a new process state, no BM25 cache on disk (each filter's BM25
    index is built on first use); ``warm``: the same queries again.
    """
    import shutil

    shutil.rmtree(store.root / "bm25", ignore_errors=True)
    searcher = HybridSearcher(store)
    out = {}
    for phase in ("cold", "warm"):
        times = []
        for q in questions:
            doc = docs[q["doc_name"]]
            filters = SearchFilters(company=doc["company"], year=int(doc["doc_period"]))
            t0 = time.perf_counter()
            searcher.search(q["question"], k=10, filters=filters)
            times.append(time.perf_counter() - t0)
        out[phase] = {"p50_ms": 1000 * percentile(times, 0.5), "p95_ms": 1000 * percentile(times, 0.95),
                      "mean_ms": 1000 * sum(times) / len(times)}
        log(f"  latency {phase}: p50 {out[phase]['p50_ms']:.0f} ms, p95 {out[phase]['p95_ms']:.0f} ms")
    return out


def evaluate(store: ChunkStore, questions: list[dict], docs: dict, methods: list[str], log,
             scopes: tuple = ("filter", "no filter")) -> dict:
    from filinglens.retrieval.agent import RetrievalAgent

    searcher = HybridSearcher(store)
    agent = RetrievalAgent(searcher=searcher)
    # search as it was before page-aware ranking (and before statement routing)
    before = HybridSearcher(store, page_weight=0, per_page=0, statement_weight=0)
    before_agent = RetrievalAgent(searcher=before, statement_weight=0)
    nostat = HybridSearcher(store, statement_weight=0)  # the default without statement routing
    nostat_agent = RetrievalAgent(searcher=nostat, statement_weight=0)
    results: dict = {}
    for scope in scopes:
        for method in methods:
            recalls = {k: [] for k in KS}
            hits_any = {k: [] for k in KS}
            budget_recall = []
            latencies = []
            for q in questions:
                doc = docs[q["doc_name"]]
                filters = (SearchFilters(company=doc["company"], year=int(doc["doc_period"]))
                           if scope == "filter" else None)
                t0 = time.perf_counter()
                hits = run_method(method, searcher, agent, q, filters, doc, before, before_agent, nostat, nostat_agent)
                latencies.append(time.perf_counter() - t0)
                pages = evidence_pages(q, docs)
                for k in KS:
                    found = hit_pages(hits[:k], pages)
                    recalls[k].append(len(found) / len(pages))
                    hits_any[k].append(1.0 if found else 0.0)
                budget_recall.append(len(hit_pages(within_budget(hits[: max(KS)]), pages)) / len(pages))
            row = {f"recall@{k}": sum(v) / len(v) for k, v in recalls.items()}
            row["by_split"] = by_split(questions, recalls[max(KS)])
            row.update({f"hit@{k}": sum(v) / len(v) for k, v in hits_any.items()})
            row[f"recall@{BUDGET_CHARS}chars"] = sum(budget_recall) / len(budget_recall)
            row.update({"latency_p50_ms": 1000 * percentile(latencies, 0.5),
                        "latency_p95_ms": 1000 * percentile(latencies, 0.95), "questions": len(questions)})
            results[f"{method} | {scope}"] = row
            log(f"  {method:20s} {scope:9s} R@5 {row['recall@5']:.3f} R@10 {row['recall@10']:.3f} "
                f"R@{BUDGET_CHARS}ch {row[f'recall@{BUDGET_CHARS}chars']:.3f} "
                f"p50 {row['latency_p50_ms']:.0f} ms p95 {row['latency_p95_ms']:.0f} ms")
    return results


def by_split(questions: list[dict], values: list[float]) -> dict:
    """Mean of ``values`` (one per question) per split, and per split and question type: {key: [mean, n]}."""
    split = split_of(questions)
    groups: dict[str, list[float]] = {}
    for q, v in zip(questions, values):
        s = split[q["financebench_id"]]
        for key in (s, f"{s}/{q.get('question_type') or 'other'}"):
            groups.setdefault(key, []).append(v)
    return {key: [sum(v) / len(v), len(v)] for key, v in sorted(groups.items())}


def split_markdown(report: dict) -> str:
    """recall@10 per split and question type: the table that cannot flatter itself."""
    cols = [f"{s}/{t}" for s in SPLITS for t in QUESTION_TYPES]
    lines = ["| method | scope | tune | held-out | " + " | ".join(c.replace("-generated", "").replace("-relevant", "")
                                                                for c in cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for size, data in report["sizes"].items():
        for key, row in data.get("eval", {}).items():
            bs = row.get("by_split")
            if not bs:
                continue
            cell = lambda c: f"{bs[c][0]:.2f} ({bs[c][1]})" if c in bs else "–"  # noqa: E731
            method, scope = key.split(" | ")
            lines.append(f"| {method} | {scope} | {cell('tune')} | {cell('held-out')} | "
                         + " | ".join(cell(c) for c in cols) + " |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    lines = []
    for size, data in report["sizes"].items():
        ing = data["ingest"]
        lines.append(f"### chunk target {size} chars")
        if ing.get("chunks_embedded"):
            lines.append(
                f"Indexing ({ing['fresh_docs']} PDFs): {ing['chunks_per_10k_mean']:.0f} chunks per 10-K, "
                f"{ing['chunks_per_second_index']:.1f} chunks/s embedding+writes, "
                f"{ing['chunks_per_second_end_to_end']:.1f} chunks/s with parsing, "
                f"{ing['seconds_per_10k_mean']:.1f} s per 10-K (median {ing['seconds_per_10k_median']:.1f} s, "
                f"parse {ing['parse_seconds_per_10k_mean']:.1f} s)."
            )
        lat = data.get("latency")
        if lat:
            lines.append(
                f"Default search latency (hybrid + rewrite + MMR, k=10, company+year filter): cold p50 "
                f"{lat['cold']['p50_ms']:.0f} ms / p95 {lat['cold']['p95_ms']:.0f} ms (BM25 built per filter on "
                f"first use), warm p50 {lat['warm']['p50_ms']:.0f} ms / p95 {lat['warm']['p95_ms']:.0f} ms."
            )
        lines.append("")
        lines.append("| method | scope | recall@5 | recall@10 | hit@5 | hit@10 | p50 ms | p95 ms |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for key, row in data["eval"].items():
            method, scope = key.split(" | ")
            lines.append(
                f"| {method} | {scope} | {row['recall@5']:.2f} | {row['recall@10']:.2f} | {row['hit@5']:.2f} | "
                f"{row['hit@10']:.2f} | {row['latency_p50_ms']:.0f} | {row['latency_p95_ms']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    shared = settings.shared_dir() / "data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=Path, default=shared / "financebench" / "questions_dev.jsonl")
    ap.add_argument("--documents", type=Path, default=shared / "financebench" / "documents.jsonl")
    ap.add_argument("--pdfs", type=Path, default=shared / "filings" / "pdf")
    ap.add_argument("--sizes", default="1000", help="comma-separated chunk targets in characters")
    ap.add_argument("--methods", default="dense,bm25,hybrid,hybrid+rewrite,hybrid+rewrite+mmr,agent")
    ap.add_argument("--home", type=Path, default=ROOT / "bench" / "results" / "home")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "retrieval_financebench.json")
    ap.add_argument("--phase", choices=("all", "ingest", "eval"), default="all")
    ap.add_argument("--no-latency", action="store_true", help="skip the cold/warm latency pass")
    ap.add_argument("--scopes", default="filter,no filter", help="comma-separated: filter, no filter")
    ap.add_argument("--indexed-only", action="store_true",
                    help="evaluate only the questions whose documents are already indexed (a stated subset)")
    ap.add_argument("--throughput-docs", type=int, default=3,
                    help="if fewer PDFs than this were indexed from scratch, time this many in a fresh index")
    args = ap.parse_args(argv)

    os.environ["FILINGLENS_HOME"] = str(args.home)
    os.environ.pop("FILINGLENS_CHROMA_URL", None)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    questions = load_jsonl(args.questions)
    docs = {d["doc_name"]: d for d in load_jsonl(args.documents)}
    names = sorted({q["doc_name"] for q in questions} | {e["doc_name"] for q in questions for e in q["evidence"]})
    missing = [n for n in names if not (args.pdfs / f"{n}.pdf").exists() or n not in docs]
    if missing:
        log(f"skipping questions on missing documents: {missing}")
        questions = [q for q in questions if q["doc_name"] not in missing
                     and all(e["doc_name"] not in missing for e in q["evidence"])]
        names = [n for n in names if n not in missing]
    pdfs = [args.pdfs / f"{n}.pdf" for n in names]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    report = {"questions": len(questions), "documents": len(pdfs), "match_rule": "same company+fiscal year, chunk page == evidence_page_num",
              "sizes": previous.get("sizes", {})}
    for size in [int(s) for s in args.sizes.split(",")]:
        log(f"== chunk target {size}")
        store = ChunkStore(args.home / f"size{size}", collection=f"financebench_{size}")
        entry = report["sizes"].setdefault(str(size), {})
        if args.phase in ("all", "ingest"):
            ingest = ingest_docs(store, pdfs, size, log)
            if ingest.get("fresh_docs", 0) < args.throughput_docs:
                # the shared index was (partly) reused: time a few 10-Ks indexed from scratch, now
                import tempfile

                with tempfile.TemporaryDirectory(prefix="fb-throughput-") as tmp:
                    log(f"  timing {args.throughput_docs} 10-Ks indexed from scratch")
                    sample = ingest_docs(ChunkStore(Path(tmp), collection="throughput"),
                                         pdfs[: args.throughput_docs], size, log)
                ingest.update({k: v for k, v in sample.items() if k not in ("docs", "per_doc")})
                ingest["throughput_sample"] = sample["per_doc"]
            entry["ingest"] = ingest
            entry["index_chunks"] = store.count()
        if args.phase in ("all", "eval"):
            subset = questions
            if args.indexed_only:
                have = {(f.get("company"), f.get("fiscal_year")) for f in store.filings()}
                subset = [q for q in questions
                          if all((docs[n]["company"], int(docs[n]["doc_period"])) in have
                                 for n in [q["doc_name"]] + [e["doc_name"] for e in q["evidence"]])]
                entry["subset"] = sorted({q["doc_name"] for q in subset})
                log(f"  indexed-only: {len(subset)} of {len(questions)} questions ({len(entry['subset'])} documents)")
            if not args.no_latency:
                entry["latency"] = latency(store, subset, docs, log)
            scopes = tuple(x.strip() for x in args.scopes.split(",") if x.strip())
            entry["eval"] = {**entry.get("eval", {}), **evaluate(store, subset, docs, methods, log, scopes)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with settings.atomic_write(args.out, "w") as handle:
            json.dump(report, handle, indent=1)
    if any("eval" in v for v in report["sizes"].values()):
        print(markdown({"sizes": {k: v for k, v in report["sizes"].items() if "eval" in v and "ingest" in v}}))
        print()
        print(split_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
