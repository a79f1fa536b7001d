"""Prompt tokens per category rating: FilingLens (retrieved evidence) vs stuffing whole Items (the paper).

The paper (arXiv 2409.17581) fed the narrative text of whole filings to the
model, one prompt per category. Here, for each filing and category, we build
the exact messages our rating chain sends (prompt v1 direct: one call; v2
yes/no: one call per question) from the evidence our retrieval gathers, and
count their tokens with the embedded model's own tokenizer; the baseline is
the same prompt with the narrative of Items 1, 1A, 7 and 7A in place of the
evidence. Goal: at most one tenth.

    .venv/bin/python bench/rating_tokens.py [--filings 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

STUFFED_ITEMS = ("1", "1A", "7", "7A")
FILINGS = ("aapl-10-k-2024-11-01.html", "ko-10-k-2025-02-20.html", "nvda-10-k-2025-02-26.html",
           "wfc-10-k-2025-02-25.html", "medicis-10-k-fy1999-0000950153-99-001234.html", "ma-10-k-2025-02-12.html")
OUT = Path(__file__).parent / "results" / "rating_tokens.json"


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--filings", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("FILINGLENS_HOME", tempfile.mkdtemp(prefix="fl-bench-"))

    import llama_cpp

    from filinglens.agents.evidence import render_evidence
    from filinglens.app import index_gatherer, resolve_targets
    from filinglens.agents.providers.local import model_path
    from filinglens.agents.rating import DEFAULT_EVIDENCE_CHARS, build_messages
    from filinglens.prompts.loader import categories, load_prompt
    from filinglens.retrieval.parse import parse_filing
    from filinglens.settings import shared_dir

    vocab = llama_cpp.Llama(str(model_path("local")), vocab_only=True, verbose=False)

    def tokens(messages) -> int:
        return sum(len(vocab.tokenize(text.encode(), add_bos=False)) for _, text in messages)

    gather = index_gatherer()
    rows = []
    for name in FILINGS[: args.filings]:
        path = shared_dir() / "data" / "filings" / "html" / name
        [target] = resolve_targets([path])
        filing = parse_filing(path)
        stuffed_text = "\n\n".join(filing.items[i].narrative for i in STUFFED_ITEMS if filing.items[i].status != "absent")
        for category in categories():
            direct, yesno = load_prompt(f"{category}@v1"), load_prompt(f"{category}@v2")
            evidence_text, _ = render_evidence(gather(direct, target), DEFAULT_EVIDENCE_CHARS)
            ours_direct = tokens(build_messages(direct, target, evidence_text))
            questions = [yesno.questions.level1, *yesno.questions.level2]
            calls = [build_messages(yesno, target, evidence_text, q) for q in questions]
            ours_yesno = sum(tokens(m) for m in calls)
            # llama.cpp keeps the KV cache of a shared prefix: only the differing tail is processed again
            seqs = [vocab.tokenize("".join(t for _, t in m).encode(), add_bos=False) for m in calls]
            processed = len(seqs[0]) + sum(len(s) - _common_prefix(seqs[0], s) for s in seqs[1:])
            stuffed = tokens(build_messages(direct, target, stuffed_text))
            rows.append({"filing": name, "category": category, "stuffed_items": stuffed,
                         "ours_v1_direct": ours_direct, "ours_v2_yesno_sum": ours_yesno,
                         "ours_v2_yesno_processed": processed})
    table = Table(title=f"Prompt tokens per category rating ({len(rows)} filing x category cells, Qwen tokenizer)")
    for col in ("", "median tokens", "ratio to stuffing Items 1/1A/7/7A"):
        table.add_column(col)
    keys = ("ours_v1_direct", "ours_v2_yesno_sum", "ours_v2_yesno_processed")
    med = {k: statistics.median(r[k] for r in rows) for k in ("stuffed_items", *keys)}
    ratios = {k: statistics.median(r[k] / r["stuffed_items"] for r in rows) for k in keys}
    table.add_row("paper: whole Items 1, 1A, 7, 7A narrative", f"{med['stuffed_items']:,.0f}", "1")
    table.add_row("FilingLens v1 (direct, one call)", f"{med['ours_v1_direct']:,.0f}", f"{ratios['ours_v1_direct']:.3f}")
    table.add_row("FilingLens v2 (yes/no, sent over 3 calls)", f"{med['ours_v2_yesno_sum']:,.0f}", f"{ratios['ours_v2_yesno_sum']:.3f}")
    table.add_row("FilingLens v2 (yes/no, processed with prefix cache)", f"{med['ours_v2_yesno_processed']:,.0f}",
                  f"{ratios['ours_v2_yesno_processed']:.3f}")
    Console().print(table)
    for key in keys:
        worst = max(rows, key=lambda r: r[key] / r["stuffed_items"])
        Console().print(f"worst cell {key}: {worst[key] / worst['stuffed_items']:.3f} ({worst['filing']}, {worst['category']})")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"median": med, "median_ratio": ratios, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
