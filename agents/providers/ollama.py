"""``ollama:MODEL`` via langchain-ollama; server at the ``base_url`` parameter or ``OLLAMA_HOST``."""

from __future__ import annotations

from typing import Any, Optional

from filinglens.agents.providers import ModelParams, Provider, env, has_module, require

PIP = "langchain-ollama"
HOST_VAR = "OLLAMA_HOST"
DEFAULT_HOST = "http://127.0.0.1:11434"


def host(params: Optional[ModelParams] = None) -> str:
    url = (params.base_url if params else None) or env(HOST_VAR) or DEFAULT_HOST
    if "://" not in url:
        url = "http://" + url
    return url


def unavailable(name: str, params: Optional[ModelParams] = None) -> Optional[str]:
    if not has_module("langchain_ollama"):
        return f"pip install {PIP}"
    return None


def note(name: str) -> str:
    return f"needs a running Ollama server at {host()} ({HOST_VAR}) with the model pulled"


def create(name: str, params: ModelParams) -> Any:
    module = require("langchain_ollama", PIP, "ollama models")
    fields: dict[str, Any] = {
        "model": name,
        "temperature": params.temperature,
        "base_url": host(params),
    }
    if params.max_tokens is not None:
        fields["num_predict"] = params.max_tokens
    if params.seed is not None:
        fields["seed"] = params.seed
    if params.timeout is not None:
        fields["client_kwargs"] = {"timeout": params.timeout}
    return module.ChatOllama(**fields)


provider = Provider(
    name="ollama",
    description="models served by Ollama (ollama:MODEL; OLLAMA_HOST)",
    create=create,
    unavailable=unavailable,
    listed=(("ollama:llama3.2", "a model served by Ollama: ollama:MODEL (server at OLLAMA_HOST)"),),
    default_name=None,
    note=note,
)
