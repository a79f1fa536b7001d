"""Secrets never reach the store, an error message or --json output, even when a server echoes them."""

from __future__ import annotations

import json

from filinglens.agents.models import get_chat_model
from filinglens.agents.rating import RatingChain
from filinglens.errors import ConfigError, redact_secrets
from filinglens.store import Store

from .test_rating import TARGET, gather

SECRET = "co-live-key-9f8e7d6c5b4a3210"


def echo_401(seen):
    """A hostile or careless server: 401 with the request's Authorization header in the body."""
    body = {"message": f"invalid api token; you sent Authorization: {seen.headers.get('authorization')}",
            "headers": {"authorization": seen.headers.get("authorization")}}
    return 401, "application/json", json.dumps(body).encode()


def test_provider_error_echoing_the_api_key_is_redacted_everywhere(http_server, clean_env, monkeypatch, tmp_path):
    server = http_server(echo_401)
    monkeypatch.setenv("COHERE_API_KEY", SECRET)
    monkeypatch.setenv("COHERE_BASE_URL", server.url)
    store = Store(tmp_path / "results.db")
    model = get_chat_model("cohere:command-r-plus")
    rating = RatingChain(store, model_id="cohere:command-r-plus", gather=gather, model=model).rate(
        TARGET, "environment", "v1")
    assert server.requests and server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert rating.status == "failed" and "401" in rating.error
    assert SECRET not in rating.error and SECRET not in json.dumps(rating.to_dict())
    store.close()
    for path in tmp_path.iterdir():  # the database and its WAL
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_redaction_of_credential_shapes_without_the_environment(monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    text = 'HTTP 401: {"Authorization": "Bearer sk-AbCdEf0123456789"} x-api-key: zz-998877665544 api_key=abc123def456'
    out = redact_secrets(text)
    for secret in ("sk-AbCdEf0123456789", "zz-998877665544", "abc123def456"):
        assert secret not in out
    assert "see Item 7A: token of thanks" == redact_secrets("see Item 7A: token of thanks")


def test_filinglens_errors_redact_their_message(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-0123456789abcdef")
    assert "sk-proj-0123456789abcdef" not in str(ConfigError("bad key sk-proj-0123456789abcdef"))
