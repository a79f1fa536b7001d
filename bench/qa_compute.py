"""Answers that compute vs plain answers on FinanceBench questions, on the same evidence.

Usage (from the repository root)::

    .venv/bin/python bench/qa_compute.py --minutes 20            # dev metric questions, local model
    .venv/bin/python bench/qa_compute.py --type all --limit 5 --model fake

What it does:

1. Indexes the 10-K PDFs of the chosen questions under
   ``bench/results/qa-compute-home`` with a hash embedder, and retrieves with
   BM25 alone (dense weight 0): indexing the 20-odd metric-question 10-Ks with
   MiniLM takes over half an hour on two shared cores, the budget of the whole
   measurement.  Retrieval is therefore weaker than ``eval qa``'s (read the
   evidence recall it prints); both answer methods see the same evidence.
2. For each question, in file order, retrieves k = 6 chunks with the
   retrieval agent (company and fiscal-year filter, like ``eval qa``) and
   answers twice: **plain** (``compute=False``: QA prompt v2, the answer as
   the model writes it) and **compute** (the default routing: metric
   questions get ``qa/compute-v1``, figures checked and the expression
   evaluated by the code).
3. Scores both with ``eval qa``'s accuracy rule (``score_answer``) and
   ``Answer.numbers()`` (numbers traced to verified quotes or the shown
   calculation); stops starting questions after ``--minutes``.

Results: ``bench/results/qa_compute.json`` and a summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


from filinglens.evals.financebench import (  # noqa: E402
    default_pdf_dir,
    default_questions_path,
    evidence_pages,
    hit_pages,
    load_documents,
    load_jsonl,
)
from filinglens.evals.qa_eval import score_answer, wilson  # noqa: E402
from filinglens.retrieval.embeddings import HashEmbedder  # noqa: E402




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=Path, default=None)
    parser.add_argument("--type", default="metrics-generated", help="question_type to keep, or 'all'")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=20.0, help="start no question after this many minutes")
    parser.add_argument("--model", default="local")
    parser.add_argument("--home", type=Path, default=ROOT / "bench" / "results" / "qa-compute-home")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "qa_compute.json")
    args = parser.parse_args(argv)

    os.environ["FILINGLENS_HOME"] = str(args.home)
    from filinglens.agents.qa import answer_question
    from filinglens.retrieval.agent import RetrievalAgent
    from filinglens.retrieval.index import ChunkStore
    from filinglens.retrieval.ingest import ingest_file
    from filinglens.retrieval.search import HybridSearcher
    from filinglens.store import Store

    qpath = args.questions or default_questions_path()
    docs = load_documents(qpath.parent / "documents.jsonl")
    questions = [q for q in load_jsonl(qpath) if args.type == "all" or q["question_type"] == args.type]
    questions = questions[: args.limit] if args.limit else questions
    index = ChunkStore(args.home / "index", embedder=HashEmbedder.name)
    t0 = time.perf_counter()
    for name in dict.fromkeys(q["doc_name"] for q in questions):
        doc = docs[name]
        ingest_file(default_pdf_dir() / f"{name}.pdf", store=index,
                    metadata={"company": doc["company"], "fiscal_year": int(doc["doc_period"])})
    print(f"indexed {len(set(q['doc_name'] for q in questions))} 10-Ks in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    agent = RetrievalAgent(HybridSearcher(index, dense_weight=0.0))
    store = Store(args.home / "results.db")
    rows = []
    start = time.perf_counter()
    for n, q in enumerate(questions, 1):
        if time.perf_counter() - start > args.minutes * 60:
            break
        doc = docs[q["doc_name"]]
        year = int(doc["doc_period"])
        evidence = agent.retrieve(q["question"], company=doc["company"], year=year, k=6)
        pages = evidence_pages(q, docs)
        found = hit_pages([e.metadata_dict() for e in evidence], pages)
        row = {"id": q["financebench_id"], "type": q["question_type"], "reference": q["answer"],
               "evidence_recall": len(found) / len(pages) if pages else 0.0}
        for method, compute in (("plain", False), ("compute", None)):
            t = time.perf_counter()
            ans = answer_question(q["question"], evidence, store=store, model_id=args.model, compute=compute)
            answered = ans.sufficient and not ans.error
            match = score_answer(q["answer"], ans.answer, q["question"], answered=answered)
            row[method] = {"prompt": ans.prompt, "answer": ans.answer, "error": ans.error, "refusal": ans.refusal,
                           "correct": bool(match["correct"]) and not ans.error, "match": match,
                           "numbers": ans.numbers(), "calculation": ans.calculation,
                           "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        print(f"{n:2d} {row['id']} recall {row['evidence_recall']:.2f} | plain {row['plain']['correct']!s:5} "
              f"{row['plain']['seconds']:5.0f}s | compute {row['compute']['correct']!s:5} "
              f"{row['compute']['seconds']:5.0f}s {(row['compute']['refusal'] or row['compute']['answer'])[:90]!r}",
              file=sys.stderr, flush=True)
    summary = {"questions": len(rows), "model": args.model, "type": args.type,
               "minutes": round((time.perf_counter() - start) / 60, 1),
               "evidence_recall": sum(r["evidence_recall"] for r in rows) / len(rows) if rows else None}
    for method in ("plain", "compute"):
        k = sum(r[method]["correct"] for r in rows)
        with_numbers = [r for r in rows if r[method]["numbers"]["numbers"]]
        traced = sum(1 for r in with_numbers if r[method]["numbers"]["all_traced"])
        summary[method] = {
            "correct": k, "accuracy": k / len(rows) if rows else None, "accuracy_ci95": wilson(k, len(rows)),
            "refusals": sum(1 for r in rows if r[method]["refusal"] or (not r[method]["error"]
                                                                        and "do not contain" in r[method]["answer"])),
            "errors": sum(1 for r in rows if r[method]["error"]),
            "answers_with_numbers": len(with_numbers), "answers_traced": traced,
            "seconds_p50": sorted(r[method]["seconds"] for r in rows)[len(rows) // 2] if rows else None,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "questions": rows}, indent=1, ensure_ascii=False))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
