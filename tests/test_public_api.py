"""The public API from the package root, as the README's example uses it."""

from __future__ import annotations

import filinglens
from filinglens.agents.providers.fake import register_script


def test_public_api_parse_ingest_search_rate(shared):
    path = shared / "filings" / "html" / "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html"
    filing = filinglens.parse(path)
    assert filing.form.startswith("10-K") and "1" in filing.items
    results = filinglens.ingest([path])
    assert results[0].status in ("indexed", "updated", "unchanged")
    hits = filinglens.search("risk factors", k=3)
    assert hits and all(h.text for h in hits)
    register_script("api", func=lambda messages: '{"score": 1, "rationale": "r", "quotes": []}')
    ratings = filinglens.rate([path], categories=["people"], model_id="fake:api", prompt_version="v1")
    assert [(r.category, r.status, r.score) for r in ratings] == [("people", "ok", 1)]


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        filinglens.no_such_thing  # noqa: B018
