"""Score item segmentation against item-boundary gold (``shared/data/gold/items_gold.json``).

A body item is right when the gold ``start`` snippet appears within the first
300 characters of our item text and the gold ``end`` snippet within the last
300 (after whitespace collapsing and straight quotes; the ``loose`` variant
compares lower-cased letters and digits only).  An item we report where gold
says ``absent`` is an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from filinglens.retrieval.filing import Filing

WINDOW = 300


def _strict(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip()


def _loose(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass
class GoldScore:
    """Counts for one filing (or a sum of filings)."""

    body_total: int = 0
    body_right: int = 0
    absent_total: int = 0
    absent_reported: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: "GoldScore") -> None:
        self.body_total += other.body_total
        self.body_right += other.body_right
        self.absent_total += other.absent_total
        self.absent_reported += other.absent_reported
        self.misses.extend(other.misses)

    @property
    def accuracy(self) -> float:
        return self.body_right / self.body_total if self.body_total else 1.0


def load_gold(path: Path) -> dict:
    """The gold file as a dict keyed by file name."""
    return json.loads(Path(path).read_text())


def body_item_right(text: str, start: str, end: str, loose: bool = True) -> bool:
    """The scoring rule for one body item."""
    norm = _loose if loose else _strict
    head, tail = norm(text[: WINDOW * 3]), norm(text[-WINDOW * 3 :])
    s, e = norm(start), norm(end)
    if loose:
        # the window is measured in characters of the normalised text
        return s in head[: len(_loose(text[:WINDOW])) + len(s)] and e in tail[-(len(_loose(text[-WINDOW:])) + len(e)) :]
    return s in norm(text[: WINDOW + len(start)]) and e in norm(text[-(WINDOW + len(end)) :])


def score_filing(filing: Filing, gold: dict, name: str = "", loose: bool = True) -> GoldScore:
    """Score one parsed filing against its gold entry."""
    score = GoldScore()
    for g in gold["items"]:
        ours = filing.items.get(g["item"])
        if g["status"] == "body":
            score.body_total += 1
            if ours is not None and ours.status != "absent" and body_item_right(ours.text, g["start"], g["end"], loose):
                score.body_right += 1
            else:
                got = "absent" if ours is None or ours.status == "absent" else f"{len(ours.text)} chars"
                score.misses.append(f"{name} item {g['item']}: {got} (gold {g.get('chars')} chars)")
        elif g["status"] == "absent":
            score.absent_total += 1
            if ours is not None and ours.status != "absent":
                score.absent_reported += 1
                score.misses.append(f"{name} item {g['item']}: reported but gold says absent")
    return score
