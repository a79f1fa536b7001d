"""Extension points, each in one place: a new rating category from one prompt directory, and a new model
provider from one entry point declaring its capabilities (see README, Layout)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import filinglens
from filinglens.agents import models
from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.providers import TOKEN_PROBABILITIES
from filinglens.agents.providers.fake import register_script
from filinglens.agents.rating import RatingChain, Target, score_from_expected
from filinglens.prompts.loader import DEFAULT_RATING_VERSION, categories, load_prompt
from filinglens.retrieval.embeddings import HashEmbedder
from filinglens.store import Store

ROOT = Path(__file__).resolve().parents[2]
MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"  # a small real 10-K (Item 1 about 90k characters)

# --------------------------------------------------------------------------- a category from one prompt directory

GOVERNANCE_V1 = """\
title: Board governance
method: direct
description: How independent and active the board of directors is in overseeing management.
rubric:
  0: Nothing about the board beyond names.
  1: Board committees or independence are described.
  2: Independent oversight with concrete practices (committee charters, independent chair, evaluations).
retrieval:
  items: ["10", "1"]
  queries: [board of directors independence, audit committee oversight]
"""


def _analyst(messages) -> str:
    """Scripted model: JSON for the governance (direct) prompt, yes to the built-in categories' questions."""
    if "Category: Board governance" in messages[-1].content:
        return '{"score": 1, "rationale": "Committees are described.", "quotes": []}'
    return "yes"


def test_a_category_with_only_v1_is_rated_beside_the_others(shared, tmp_path, monkeypatch):
    """One folder with one v1.yaml under FILINGLENS_PROMPTS adds a category: `rate` (default v5) rates it with
    its v1, the built-in categories keep their default version and prompt hash."""
    monkeypatch.setenv("FILINGLENS_EMBEDDINGS", HashEmbedder.name)  # the test is about categories, not retrieval
    builtin = {c: load_prompt(c) for c in categories()}
    assert {p.version for p in builtin.values()} == {DEFAULT_RATING_VERSION}

    folder = tmp_path / "my-prompts" / "rating" / "governance"  # the one place to extend
    folder.mkdir(parents=True)
    (folder / "v1.yaml").write_text(GOVERNANCE_V1)
    monkeypatch.setenv("FILINGLENS_PROMPTS", str(tmp_path / "my-prompts"))

    register_script("ext", func=_analyst)
    path = shared / "filings" / "html" / MEDICIS
    ratings = filinglens.rate([path], model_id="fake:ext")  # every category, the default prompt version
    by_category = {r.category: r for r in ratings}
    assert sorted(by_category) == sorted([*builtin, "governance"])
    assert all(r.status == "ok" for r in ratings), [(r.category, r.error) for r in ratings]
    gov = by_category["governance"]
    assert (gov.prompt_version, gov.method, gov.score) == ("v1", "direct", 1)
    assert gov.evidence and all(e["chunk_id"] for e in gov.evidence)  # rated from the real filing's chunks
    for category, prompt in builtin.items():  # the others are unaffected
        r = by_category[category]
        assert (r.prompt_version, r.prompt_hash, r.method) == (DEFAULT_RATING_VERSION, prompt.hash, prompt.method)
        # every question answered yes (this old filing has no iXBRL facts): E = bias + the questions' weights
        expected = min(2.0, max(0.0, prompt.bias + sum(i.weight for i in prompt.indicators
                                                       if i.question and not i.gate)))
        assert r.expected_score == pytest.approx(expected) and r.score == score_from_expected(expected, prompt.cutoffs)

    # the command line too: `filinglens rate` is not stopped by the category that lacks v2
    from filinglens.cli import app

    result = CliRunner().invoke(app, ["rate", str(path), "--model", "fake:ext", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["category"]: r for r in json.loads(result.stdout)["ratings"]}
    assert rows["governance"]["prompt_version"] == "v1" and rows["governance"]["score"] == 1
    assert rows["people"]["prompt_version"] == DEFAULT_RATING_VERSION
    assert all(r["cached_calls"] == r["model_calls"] for r in rows.values())  # same cells: served from the cache


# --------------------------------------------------------------------------- a provider from one entry point

PLUGIN = '''
"""A third-party provider package: two providers, one declaring token probabilities."""
from filinglens.agents.providers import TOKEN_PROBABILITIES, Provider
from filinglens.agents.providers.fake import FakeChatModel

ASKED = []


def _token_probs(name, messages, candidates):
    ASKED.append((name, len(messages)))
    return {"yes": 0.8, "no": 0.2}


def _chat(name, params):
    return FakeChatModel(model_name=f"acmeplain:{name}", func=lambda messages: "No.")


probs = Provider(name="acmeprobs", description="plugin with next-token probabilities",
                 create=_chat, unavailable=lambda name, params: None, default_name="p1",
                 capabilities=frozenset({TOKEN_PROBABILITIES}), token_probs=_token_probs)
plain = Provider(name="acmeplain", description="plugin that only chats",
                 create=_chat, unavailable=lambda name, params: None, default_name="c1")
'''

ENTRY_POINTS = """\
[filinglens.providers]
acmeprobs = acme_filinglens_plugin:probs
acmeplain = acme_filinglens_plugin:plain
"""

TARGET = Target("f1", "Example Corp", "EXM", "0000000001", 2024, "hash-f1")
EVIDENCE = [EvidenceItem("c1", "We aim to reach net zero emissions by 2040 and invested $2 billion in renewable "
                               "energy in 2024.", "1", "EXM 10-K FY2024, Item 1")]


@pytest.fixture
def plugin_site(tmp_path):
    """An installed-looking distribution (dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    dist = site / "acme_filinglens_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-filinglens-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "acme_filinglens_plugin.py").write_text(PLUGIN)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    models.providers(refresh=True)
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("acme_filinglens_plugin", None)
        importlib.invalidate_caches()
        assert "acmeprobs" not in models.providers(refresh=True)


def test_a_provider_from_one_entry_point_is_used_by_its_declared_capability(plugin_site, tmp_path):
    found = models.providers()
    assert {"acmeprobs", "acmeplain"} <= set(found)
    assert models.has_capability("acmeprobs", TOKEN_PROBABILITIES)
    assert not models.has_capability("acmeplain", TOKEN_PROBABILITIES)
    assert {"acmeprobs", "acmeplain"} <= {row.id for row in models.list_models() if row.available}
    plugin = sys.modules["acme_filinglens_plugin"]
    prompt = load_prompt("environment@v2")  # yes/no: one question per rubric level
    questions = 1 + len(prompt.questions.level2)

    # declares token probabilities: every question is one probability call through the registry, no chat
    store = Store(tmp_path / "r.db")
    rating = RatingChain(store, model_id="acmeprobs", gather=lambda p, t: list(EVIDENCE)).rate(TARGET, "environment",
                                                                                               "v2")
    assert rating.status == "ok", rating.error
    assert plugin.ASKED == [("p1", 2)] * questions
    assert [json.loads(c["params"]) for c in store.calls()] == [{"method": "next_token_probs"}] * questions
    expected = 0.8 * (1 + 0.8)
    assert rating.expected_score == pytest.approx(expected, abs=1e-4)
    assert rating.score == score_from_expected(expected, prompt.cutoffs)

    # declares nothing: the same questions are asked as chat, each answer read as yes or no
    plain_store = Store(tmp_path / "plain.db")
    plain = RatingChain(plain_store, model_id="acmeplain", gather=lambda p, t: list(EVIDENCE)).rate(
        TARGET, "environment", "v2")
    assert plain.status == "ok", plain.error
    assert (plain.expected_score, plain.score) == (0.0, 0)  # every answer "No."
    assert len(plugin.ASKED) == questions  # no probability call for the plain provider
    assert [json.loads(c["params"]) for c in plain_store.calls()] == [{"temperature": 0.0}] * questions


def test_readme_documents_the_provider_entry_point_group():
    readme = (ROOT / "README.md").read_text()
    assert f"`{models.ENTRY_POINT_GROUP}`" in readme and "token_probs" in readme


def test_a_category_with_only_v1_is_planned_by_batch_and_compare_without_a_version(tmp_path, monkeypatch):
    """`batch` and `compare` without -p use each category's default version too (v1 for a v1-only one)."""
    from filinglens.agents.compare import PairJudge
    from filinglens.batch import BatchSpec

    folder = tmp_path / "my-prompts" / "rating" / "governance"
    folder.mkdir(parents=True)
    (folder / "v1.yaml").write_text(GOVERNANCE_V1)
    monkeypatch.setenv("FILINGLENS_PROMPTS", str(tmp_path / "my-prompts"))
    versions = {c.category: c.prompt_version for c in BatchSpec(models=["fake"]).cells()}
    assert versions["governance"] == "v1"
    assert {v for c, v in versions.items() if c != "governance"} == {DEFAULT_RATING_VERSION}
    assert PairJudge(Store(":memory:"), "governance", model_id="fake").rating_prompt.version == "v1"
