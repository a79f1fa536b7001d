"""Chat-model providers and the small contract they share.

A provider is a :class:`Provider` object exported by a module and declared as
an entry point in the ``filinglens.providers`` group, e.g.::

    [project.entry-points."filinglens.providers"]
    local = "filinglens.agents.providers.local:provider"

Provider modules import nothing heavy at import time: the optional SDK
(``langchain_cohere``, ``llama_cpp``...) is imported inside ``create`` through
:func:`require`, which turns a missing package into a one-line fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from filinglens.errors import ConfigError

#: Parameters every provider understands (others are provider-specific).
COMMON_PARAMS = ("temperature", "max_tokens", "seed", "timeout", "base_url")

#: Capability: the provider gives next-token probabilities (``next_token_probs``).
TOKEN_PROBABILITIES = "token_probabilities"
#: Capability: the provider serves several requests at once (a hosted API), so callers may run them in
#: parallel with short timeouts; without it a model is served one request at a time (an embedded model).
CONCURRENT_REQUESTS = "concurrent_requests"


@dataclass(frozen=True)
class ModelParams:
    """Generation settings shared by all providers (temperature 0 by default)."""

    temperature: float = 0.0
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    timeout: Optional[float] = None
    base_url: Optional[str] = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Provider:
    """What the registry needs to know about one provider.

    ``create(name, params)`` builds the LangChain chat model (``name`` is the
    part after ``provider:``, or ``default_name``); ``unavailable(name, params)``
    returns ``None`` when the provider can be used or a one-line reason/fix
    when it cannot; ``listed`` are ``(model id, description)`` rows shown by
    ``filinglens models``.  ``note(name)`` is an optional remark shown for an
    available model (e.g. "needs a running server at ...").  ``capabilities``
    names what the provider's models can do beyond chat, e.g.
    ``"token_probabilities"`` (next-token probabilities, used by the yes/no and
    indicator rating methods); ask :func:`filinglens.agents.models.has_capability`.
    A provider declaring ``token_probabilities`` gives ``token_probs(name, messages, candidates)``:
    the probability that the reply starts with each candidate (``messages`` as ``{"role", "content"}``
    dicts); the registry calls it (:func:`filinglens.agents.models.next_token_probs`).
    """

    name: str
    description: str
    create: Callable[[str, ModelParams], Any]
    unavailable: Callable[[str, ModelParams], Optional[str]]
    listed: tuple[tuple[str, str], ...] = ()
    default_name: Optional[str] = None
    names: Optional[tuple[str, ...]] = None  # closed set of valid names, if any
    extra_params: tuple[str, ...] = ()
    note: Optional[Callable[[str], str]] = None
    capabilities: frozenset[str] = frozenset()
    token_probs: Optional[Callable[[str, list[dict], Sequence[str]], dict[str, float]]] = None

    def __post_init__(self) -> None:
        if TOKEN_PROBABILITIES in self.capabilities and self.token_probs is None:
            raise ConfigError(f"model provider '{self.name}' declares {TOKEN_PROBABILITIES} "
                              "but gives no token_probs function")


def messages_payload(messages: Any) -> list[dict]:
    """``[{"role", "content"}]`` for LangChain messages, ``(role, content)`` pairs or role dicts
    (roles normalised: ``human`` -> ``user``, ``ai`` -> ``assistant``)."""
    roles = {"human": "user", "ai": "assistant"}
    out = []
    for m in messages:
        if isinstance(m, (tuple, list)):
            role, content = m[0], m[1]
        elif isinstance(m, dict):
            role, content = m["role"], m["content"]
        else:  # a LangChain BaseMessage
            role, content = m.type, m.content
        out.append({"role": roles.get(role, role), "content": content})
    return out


def has_module(module: str) -> bool:
    """True when ``module`` can be imported, checked without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, pip_name: str, purpose: str) -> Any:
    """Import an optional SDK or raise ``ConfigError`` with the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{purpose} needs the '{pip_name}' package: pip install {pip_name}"
        ) from exc


def env(name: str) -> Optional[str]:
    """An environment variable, ``None`` when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None
