"""``cohere:MODEL`` (default ``command-r-plus``, the paper's model) via langchain-cohere.

The key comes only from ``COHERE_API_KEY``; a base URL (a proxy, or a fake
server in tests) from the ``base_url`` parameter, ``COHERE_BASE_URL`` or the
SDK's own ``CO_API_URL``.  The SDK appends ``/v2/chat`` to it.
"""

from __future__ import annotations

from typing import Any, Optional

from filinglens.agents.providers import CONCURRENT_REQUESTS, ModelParams, Provider, env, has_module, require
from filinglens.errors import ConfigError

PIP = "langchain-cohere"
KEY_VAR = "COHERE_API_KEY"

_cls: Any = None


def _chat_class() -> Any:
    """ChatCohere plus ``max_tokens``/``seed`` (sent in the v2 chat request body)."""
    global _cls
    if _cls is None:
        module = require("langchain_cohere", PIP, "cohere models")

        class FilingLensChatCohere(module.ChatCohere):
            max_tokens: Optional[int] = None
            seed: Optional[int] = None

            @property
            def _default_params(self) -> dict[str, Any]:
                params = dict(super()._default_params)
                if self.max_tokens is not None:
                    params["max_tokens"] = self.max_tokens
                if self.seed is not None:
                    params["seed"] = self.seed
                return params

        _cls = FilingLensChatCohere
    return _cls


def base_url(params: Optional[ModelParams] = None) -> Optional[str]:
    return (params.base_url if params else None) or env("COHERE_BASE_URL") or env("CO_API_URL")


def unavailable(name: str, params: Optional[ModelParams] = None) -> Optional[str]:
    if not has_module("langchain_cohere"):
        return f"pip install {PIP}"
    if not env(KEY_VAR):
        return f"set {KEY_VAR}"
    return None


def create(name: str, params: ModelParams) -> Any:
    cls = _chat_class()
    key = env(KEY_VAR)
    if not key:
        raise ConfigError(f"cohere models need an API key: set {KEY_VAR}")
    fields: dict[str, Any] = {
        "model": name,
        "temperature": params.temperature,
        "cohere_api_key": key,
        "max_tokens": params.max_tokens,
        "seed": params.seed,
        "base_url": base_url(params),
    }
    if params.timeout is not None:
        fields["timeout_seconds"] = params.timeout
    return cls(**fields)


provider = Provider(
    name="cohere",
    description="Cohere chat models via langchain-cohere (key: COHERE_API_KEY)",
    create=create,
    unavailable=unavailable,
    listed=(
        ("cohere:command-r-plus", "Cohere Command R+ (the paper's model); key from COHERE_API_KEY"),
        ("cohere:command-r", "Cohere Command R; key from COHERE_API_KEY"),
    ),
    default_name="command-r-plus",
    capabilities=frozenset({CONCURRENT_REQUESTS}),
)
