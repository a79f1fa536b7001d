"""The one model-call path: retries with parsing, the attempt in the cache key, one JSON extractor,
the retry budget from settings, and token probabilities through the registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from filinglens.agents import models
from filinglens.agents.calls import call_parsed, extract_json, next_token_probs_cached, retry_params
from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.models import get_chat_model
from filinglens.agents.providers import TOKEN_PROBABILITIES, Provider
from filinglens.agents.qa import answer_question
from filinglens.agents.rating import RatingChain, Target
from filinglens.errors import ConfigError, ModelOutputError
from filinglens.store import Store, call_cache_key

ROOT = Path(__file__).resolve().parents[2]
TARGET = Target("f1", "Example Corp", "EXM", "0000000001", 2024, "hash-f1")
EVIDENCE = [EvidenceItem("c1", "We aim to reach net zero emissions by 2040.", "1", "EXM 10-K FY2024, Item 1")]
MESSAGES = [("system", "Answer JSON."), ("user", "Rate it.")]


def _chain(tmp_path, replies, **kw):
    model = get_chat_model("fake", responses=replies)
    return RatingChain(Store(tmp_path / "r.db"), model_id="fake", gather=lambda p, t: list(EVIDENCE), model=model,
                       **kw), model


def test_retry_attempt_is_part_of_the_cache_key_not_a_model_parameter(tmp_path):
    rc, model = _chain(tmp_path, ["not json", '{"score": 1, "rationale": "r", "quotes": []}'])
    rating = rc.rate(TARGET, "people", "v1")
    assert rating.status == "ok" and rating.score == 1 and rating.model_calls == 2
    calls = rc.store.calls()
    params = [json.loads(c["params"]) for c in calls]
    assert all("attempt" not in p for p in params)  # nothing smuggled into the model's parameters
    assert params[0] == {"temperature": 0.0}
    assert params[1] == {"temperature": 0.3, "seed": 1000}  # a retry answers warmer, with its own seed
    assert calls[0]["cache_key"] != calls[1]["cache_key"]
    # the first try's key is what it was before attempts were numbered (existing caches stay valid)
    assert call_cache_key("m", {"t": 0}, "p", "i", 0) == call_cache_key("m", {"t": 0}, "p", "i", 0, attempt=0)
    assert call_cache_key("m", {"t": 0}, "p", "i", 0) != call_cache_key("m", {"t": 0}, "p", "i", 0, attempt=1)
    # a re-run replays both tries from the cache: the malformed first answer, then the good retry
    again = rc.rate(TARGET, "people", "v1")
    assert again.score == 1 and again.model_calls == 2 and again.cached_calls == 2
    assert len(model.calls) == 2


def test_retry_params_keep_a_sampled_temperature():
    assert retry_params({"temperature": 0.0}, 0, 3) == {"temperature": 0.0}
    assert retry_params({"temperature": 0.0}, 2, 3) == {"temperature": 0.3, "seed": 2003}
    assert retry_params({"temperature": 0.7, "seed": 3}, 1, 3) == {"temperature": 0.7, "seed": 1003}


def test_call_parsed_records_every_try_then_fails_never_a_default(tmp_path):
    store = Store(tmp_path / "r.db")
    seen = []
    model = get_chat_model("fake", responses=["nope", "still nope"])
    with pytest.raises(ModelOutputError, match="malformed verdict after 2 tries: no JSON object"):
        call_parsed(store, "fake", MESSAGES, extract_json, attempts=2, what="verdict", model=model,
                    on_call=seen.append)
    assert len(seen) == 2 and len(store.calls()) == 2


def test_model_attempts_come_from_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FILINGLENS_MODEL_ATTEMPTS", "2")
    rc, model = _chain(tmp_path, ["garbage"])
    rating = rc.rate(TARGET, "people", "v1")
    assert rating.status == "failed" and "malformed output after 2 tries" in rating.error
    assert len(model.calls) == 2
    # QA and the pairwise judge use the same budget (same helper)
    qa_model = get_chat_model("fake", responses=["garbage"])
    answer = answer_question("How many employees?", EVIDENCE, store=rc.store, model_id="fake", model=qa_model)
    assert "malformed answer after 2 tries" in answer.error and len(qa_model.calls) == 2
    monkeypatch.setenv("FILINGLENS_MODEL_ATTEMPTS", "0")
    with pytest.raises(ConfigError, match="FILINGLENS_MODEL_ATTEMPTS"):
        rc.rate(TARGET, "people", "v1")


def test_qa_retry_is_a_distinct_cached_call(tmp_path):
    store = Store(tmp_path / "r.db")
    good = json.dumps({"answer": "net zero by 2040", "sufficient": True,
                       "citations": [{"evidence": "E1", "quote": "net zero emissions by 2040"}]})
    model = get_chat_model("fake", responses=["I cannot say", good])
    answer = answer_question("What is the emissions target?", EVIDENCE, store=store, model_id="fake", model=model)
    assert answer.error is None and answer.sufficient and answer.citations[0].verified
    keys = [c["cache_key"] for c in store.calls()]
    assert len(set(keys)) == 2 and all("attempt" not in json.loads(c["params"]) for c in store.calls())
    again = answer_question("What is the emissions target?", EVIDENCE, store=store, model_id="fake", model=model)
    assert again.cached and again.answer == answer.answer and len(model.calls) == 2


@pytest.mark.parametrize("text, expected", [
    ('{"score": 2}', {"score": 2}),
    ('```json\n{"score": 1, "quotes": ["a"]}\n```', {"score": 1, "quotes": ["a"]}),
    ('Sure! Here it is: {"answer": "x"} Hope this helps.', {"answer": "x"}),
])
def test_extract_json_finds_the_object(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize("text, message", [
    ("no braces at all", "no JSON object"),
    ("{not: json}", "invalid JSON"),
    ("", "no JSON object"),
])
def test_extract_json_refuses_what_is_not_an_object(text, message):
    with pytest.raises(ModelOutputError, match=message):
        extract_json(text)


def test_one_json_extractor_and_one_retry_loop_in_agents():
    """No module of the model layer finds JSON or loops over attempts on its own."""
    for path in (ROOT / "agents").rglob("*.py"):
        text = path.read_text()
        if path.name != "calls.py":
            assert not re.search(r"re\.(?:search|compile)\(r[\"']\\\{\.\*\\\}", text), path
            assert "range(MAX_ATTEMPTS)" not in text and "MAX_ATTEMPTS" not in text, path
        assert '"attempt"' not in text and "attempt=attempt, seed" not in text, path


def test_no_capability_is_decided_by_a_model_name():
    """Capabilities come from the providers; no list of names, no direct import of the local provider."""
    for path in (ROOT / "agents").rglob("*.py"):
        if path.parent.name == "providers":
            continue
        text = path.read_text()
        assert "PROB_MODELS" not in text, path
        assert "providers.local import" not in text and "providers import local" not in text, path


def test_a_provider_declaring_token_probabilities_must_give_them():
    with pytest.raises(ConfigError, match="declares token_probabilities but gives no token_probs"):
        Provider(name="half", description="d", create=lambda n, p: None, unavailable=lambda n, p: None,
                 capabilities=frozenset({TOKEN_PROBABILITIES}))


def test_token_probabilities_are_asked_through_the_registry(tmp_path, monkeypatch):
    seen = []

    def token_probs(name, messages, candidates):
        seen.append((name, messages[-1]["role"], list(candidates)))
        return {"yes": 0.6, "no": 0.2}

    prov = Provider(name="probe", description="d", create=lambda n, p: None, unavailable=lambda n, p: None,
                    default_name="one", capabilities=frozenset({TOKEN_PROBABILITIES}), token_probs=token_probs)
    monkeypatch.setitem(models.providers(), "probe", prov)
    store = Store(tmp_path / "r.db")
    probs, result = next_token_probs_cached(store, "probe", MESSAGES)
    assert probs == {"yes": 0.6, "no": 0.2} and not result.cached
    assert seen == [("one", "user", ["yes", "no"])]
    again, cached = next_token_probs_cached(store, "probe", MESSAGES)
    assert again == probs and cached.cached and len(seen) == 1
    with pytest.raises(ConfigError, match="does not give token probabilities"):
        models.next_token_probs("fake", MESSAGES)


@pytest.mark.parametrize("answer", [{"yes": 0.5}, {"yes": "high", "no": 0.1}, {"yes": float("nan"), "no": 0.1},
                                    {"yes": 1.5, "no": 0.0}, None])
def test_invalid_token_probabilities_are_a_recorded_model_error(tmp_path, monkeypatch, answer):
    """A plugin's probabilities are checked at the registry: a rating fails with the reason, no traceback."""
    prov = Provider(name="odd", description="d", create=lambda n, p: None, unavailable=lambda n, p: None,
                    default_name="", capabilities=frozenset({TOKEN_PROBABILITIES}),
                    token_probs=lambda name, messages, candidates: answer)
    monkeypatch.setitem(models.providers(), "odd", prov)
    rc = RatingChain(Store(tmp_path / "r.db"), model_id="odd", gather=lambda p, t: list(EVIDENCE))
    rating = rc.rate(TARGET, "environment", "v2")
    assert rating.status == "failed" and rating.score is None and "model 'odd' gave" in rating.error
    [call] = rc.store.calls()
    assert call["error"] and "gave" in call["error"]


def test_the_local_providers_declare_token_probabilities_and_answer_them_through_the_registry(monkeypatch):
    """Wiring only (no weights loaded): the registry hands the call to the local provider's own function."""
    from filinglens.agents.providers import local

    seen = []
    monkeypatch.setattr(local, "next_token_probs",
                        lambda model_id, messages, candidates: seen.append((model_id, messages)) or {"yes": 0.7,
                                                                                                     "no": 0.3})
    for model_id in ("local", "local-small"):
        assert models.has_capability(model_id, TOKEN_PROBABILITIES)
        assert models.next_token_probs(model_id, MESSAGES) == {"yes": 0.7, "no": 0.3}
    assert [m for m, _ in seen] == ["local", "local-small"]
    assert seen[0][1] == [{"role": "system", "content": "Answer JSON."}, {"role": "user", "content": "Rate it."}]
    for model_id in ("fake", "cohere:command-r-plus", "openai:gpt-4o-mini", "ollama:llama3.2"):
        assert not models.has_capability(model_id, TOKEN_PROBABILITIES)
