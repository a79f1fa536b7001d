"""A data home with real (shortened) 10-Ks indexed and rated by the scripted ``fake:analyst`` model.

Built once per session: Apple and Microsoft FY2021–2022 and 3M FY2022 (the
shared FinanceBench PDFs), each reduced to the first ~12,000 characters of
Item 1 (offsets stay exact), indexed, then rated on innovation and
environment with prompt v1 (direct, quotes) and v2 (yes/no). Tests get a
private copy (``wb_home``), so what one test writes never leaks into another.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

_FAKE = Path(__file__).resolve().parents[1] / "fake_analyst.py"
TESTS_DIR = _FAKE.parent


def load_fake_analyst():
    """Import tests/fake_analyst.py (registers fake:analyst, fake:first, fake:boom)."""
    if "fake_analyst" in sys.modules:
        return sys.modules["fake_analyst"]
    spec = importlib.util.spec_from_file_location("fake_analyst", _FAKE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_analyst"] = module
    spec.loader.exec_module(module)
    return module


FILINGS = [("AAPL", "APPLE_2021_10K.pdf"), ("AAPL", "APPLE_2022_10K.pdf"), ("MSFT", "MICROSOFT_2021_10K.pdf"),
           ("MSFT", "MICROSOFT_2022_10K.pdf"), ("MMM", "3M_2022_10K.pdf")]
CATEGORIES = ["innovation", "environment"]
ITEM_CHARS = 12000


def shorten(filing, ticker: str, chars: int = ITEM_CHARS):
    """The filing reduced to the first whole blocks of Item 1 up to ``chars`` (exact offsets kept)."""
    import copy

    item = copy.deepcopy(filing.items["1"])
    blocks = [b for b in item.blocks if b.end <= chars] or item.blocks[:1]
    cut = blocks[-1].end
    item.text, item.blocks, item.start, item.end = item.text[:cut], blocks, 0, cut
    return dataclasses.replace(filing, text=item.text, items={"1": item}, page_starts=[], ticker=ticker)


@pytest.fixture(scope="session")
def wb_base(tmp_path_factory, shared, _models_dir):
    """The session's rated data home (read-only: copy it with ``wb_home``)."""
    from filinglens.app import resolve_targets, run_ratings
    from filinglens.retrieval.ingest import ingest_filing
    from filinglens.retrieval.parse import parse_filing
    from filinglens.store import Store

    load_fake_analyst()
    home = tmp_path_factory.mktemp("wb-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILINGLENS_HOME", str(home))
        mp.setenv("FILINGLENS_MODELS", str(_models_dir))
        for ticker, name in FILINGS:
            filing = shorten(parse_filing(shared / "filings" / "pdf" / name), ticker)
            result = ingest_filing(filing)
            assert result.status == "indexed", result
        store = Store()
        targets = []
        for ticker in ("AAPL", "MSFT", "MMM"):
            targets += resolve_targets((), ticker, "2021-2022")
        assert len(targets) == 5
        for version in ("v1", "v2"):
            _, ratings = run_ratings(targets, CATEGORIES, model_id="fake:analyst", prompt_version=version,
                                     store=store, label=f"fixture {version}")
            assert all(r.status == "ok" for r in ratings), [r.error for r in ratings if r.status != "ok"]
        store.close()
    return home


@pytest.fixture
def wb_home(wb_base, tmp_path, monkeypatch):
    """A private copy of the rated data home, set as FILINGLENS_HOME."""
    home = tmp_path / "home"
    shutil.copytree(wb_base, home)
    monkeypatch.setenv("FILINGLENS_HOME", str(home))
    load_fake_analyst()
    return home
