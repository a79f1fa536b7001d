"""Form 10-K structure (Part -> Item -> titles), loaded from ``form10k.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml


@dataclass(frozen=True)
class ItemSpec:
    """One Item of Form 10-K: its id, Part, canonical title and known title variants."""

    item: str
    part: str
    titles: tuple[str, ...]

    @property
    def title(self) -> str:
        return self.titles[0]


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[ItemSpec, ...], tuple[str, ...]]:
    data = yaml.safe_load((Path(__file__).with_name("form10k.yaml")).read_text())
    specs = tuple(
        ItemSpec(item=str(entry["item"]), part=part["part"], titles=tuple(entry["titles"]))
        for part in data["parts"]
        for entry in part["items"]
    )
    return specs, tuple(data.get("continuations", ()))


def item_specs() -> tuple[ItemSpec, ...]:
    """All 10-K items in canonical order."""
    return _load()[0]


def item_ids() -> list[str]:
    """Item ids in canonical order: ``["1", "1A", ..., "16"]``."""
    return [spec.item for spec in item_specs()]


def continuation_ids() -> tuple[str, ...]:
    """Sub-item headings whose text belongs to the preceding item (``4A``, ``9A(T)``)."""
    return _load()[1]


def spec_for(item: str) -> ItemSpec:
    """The spec of one item id (``"7A"``); KeyError if it is not a 10-K item."""
    for spec in item_specs():
        if spec.item == item:
            return spec
    raise KeyError(item)
