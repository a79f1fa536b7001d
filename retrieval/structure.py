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
def _data() -> dict:
    return yaml.safe_load((Path(__file__).with_name("form10k.yaml")).read_text())


@lru_cache(maxsize=1)
def item_specs() -> tuple[ItemSpec, ...]:
    """All 10-K items in canonical order."""
    return tuple(
        ItemSpec(item=str(entry["item"]), part=part["part"], titles=tuple(entry["titles"]))
        for part in _data()["parts"]
        for entry in part["items"]
    )


def item_ids() -> list[str]:
    """Item ids in canonical order: ``["1", "1A", ..., "16"]``."""
    return [spec.item for spec in item_specs()]


def annual_forms(fetched_only: bool = False) -> tuple[str, ...]:
    """The annual-report form types (``fetched_only``: those ``fetch`` downloads by default)."""
    return tuple(_data()["forms"]["fetched" if fetched_only else "annual"])


def is_annual_form(form: str, amendments: bool = True) -> bool:
    """Whether an EDGAR form type (``"10-K/A"``, ``"10-KSB"``) is an annual report of Form 10-K's family."""
    form = form.strip().upper().replace(" ", "")
    if form.endswith("/A"):
        return amendments and form[:-2] in annual_forms()
    return form in annual_forms()
