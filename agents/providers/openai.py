"""``openai:MODEL`` via langchain-openai: OpenAI or any OpenAI-compatible server.

Key from ``OPENAI_API_KEY``; base URL from the ``base_url`` parameter or
``OPENAI_BASE_URL`` (e.g. ``python -m llama_cpp.server`` or vLLM on
loopback).  With a base URL and no key, a placeholder key is sent: local
servers ignore it.
"""

from __future__ import annotations

from typing import Any, Optional

from filinglens.agents.providers import CONCURRENT_REQUESTS, ModelParams, Provider, env, has_module, require
from filinglens.errors import ConfigError

PIP = "langchain-openai"
KEY_VAR = "OPENAI_API_KEY"
URL_VAR = "OPENAI_BASE_URL"
PLACEHOLDER_KEY = "not-needed"


def base_url(params: Optional[ModelParams] = None) -> Optional[str]:
    return (params.base_url if params else None) or env(URL_VAR)


def unavailable(name: str, params: Optional[ModelParams] = None) -> Optional[str]:
    if not has_module("langchain_openai"):
        return f"pip install {PIP}"
    if not env(KEY_VAR) and not base_url(params):
        return f"set {KEY_VAR}, or {URL_VAR} / base_url for an OpenAI-compatible server"
    return None


def create(name: str, params: ModelParams) -> Any:
    module = require("langchain_openai", PIP, "openai models")
    url = base_url(params)
    key = env(KEY_VAR) or (PLACEHOLDER_KEY if url else None)
    if key is None:
        raise ConfigError(f"openai models need {KEY_VAR} (or a base_url): set {KEY_VAR}")
    fields: dict[str, Any] = {
        "model": name,
        "temperature": params.temperature,
        "api_key": key,
        "base_url": url,
        "max_retries": 2,
    }
    if params.max_tokens is not None:
        fields["max_tokens"] = params.max_tokens
    if params.seed is not None:
        fields["seed"] = params.seed
    if params.timeout is not None:
        fields["timeout"] = params.timeout
    return module.ChatOpenAI(**fields)


provider = Provider(
    name="openai",
    description="OpenAI or any OpenAI-compatible server (openai:MODEL; OPENAI_BASE_URL)",
    create=create,
    unavailable=unavailable,
    listed=(
        ("openai:gpt-4o-mini", "OpenAI (key: OPENAI_API_KEY) or any OpenAI-compatible "
         "server via OPENAI_BASE_URL / base_url: openai:MODEL"),
    ),
    default_name="gpt-4o-mini",
    capabilities=frozenset({CONCURRENT_REQUESTS}),
)
