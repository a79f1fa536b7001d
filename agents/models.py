"""The model registry: short ids -> LangChain chat models.

Ids are ``provider`` or ``provider:name``::

    local                   Qwen2.5-Coder-1.5B-Instruct (GGUF) in-process, the default
    local-small             SmolLM2-135M, for fast smoke runs
    cohere:command-r-plus   via langchain-cohere, key from COHERE_API_KEY
    openai:MODEL            via langchain-openai, OPENAI_API_KEY and/or a base URL
    ollama:MODEL            via langchain-ollama, server at OLLAMA_HOST
    fake                    deterministic scripted model for tests

Providers are found through the ``filinglens.providers`` entry-point group,
so another package can add one; the built-in table below is merged in so a
stale editable install (metadata from before a provider was added) still works.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any, Optional, Sequence

from filinglens.agents.providers import COMMON_PARAMS, TOKEN_PROBABILITIES, ModelParams, Provider, messages_payload
from filinglens.errors import ConfigError, ModelCallError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "local"
ENTRY_POINT_GROUP = "filinglens.providers"

#: Built-in providers: name -> "module:attribute" (same form as an entry point).
BUILTIN_PROVIDERS: dict[str, str] = {
    "local": "filinglens.agents.providers.local:provider",
    "local-small": "filinglens.agents.providers.local:small_provider",
    "cohere": "filinglens.agents.providers.cohere:provider",
    "openai": "filinglens.agents.providers.openai:provider",
    "ollama": "filinglens.agents.providers.ollama:provider",
    "fake": "filinglens.agents.providers.fake:provider",
}

_providers: Optional[dict[str, Provider]] = None


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``filinglens models``."""

    id: str
    provider: str
    description: str
    available: bool
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _load_ref(ref: str) -> Provider:
    module_name, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def providers(refresh: bool = False) -> dict[str, Provider]:
    """All providers by name: entry points first, built-ins for any missing."""
    global _providers
    if _providers is not None and not refresh:
        return _providers
    found: dict[str, Provider] = {}
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # pragma: no cover - broken metadata
        eps = ()
    for ep in eps:
        if ep.name in found:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break the rest
            log.warning("model provider %r (%s) failed to load: %s", ep.name, ep.value, exc)
    for name, ref in BUILTIN_PROVIDERS.items():
        if name not in found:
            found[name] = _load_ref(ref)
    # built-ins in their documented order, then plugins by name
    order = list(BUILTIN_PROVIDERS) + sorted(set(found) - set(BUILTIN_PROVIDERS))
    _providers = {name: found[name] for name in order}
    return _providers


def parse_model_id(model_id: str) -> tuple[str, str]:
    """Split ``"openai:gpt-4o"`` into ``("openai", "gpt-4o")``; ``"local"`` -> ``("local", "")``."""
    text = (model_id or "").strip()
    if not text:
        raise ConfigError("empty model id (try 'local' or see: filinglens models)")
    provider, _, name = text.partition(":")
    return provider.strip().lower(), name.strip()


def valid_ids() -> list[str]:
    """Example ids of every provider (what ``filinglens models`` lists)."""
    ids: list[str] = []
    for name, prov in providers().items():
        ids.extend(i for i, _ in prov.listed or ((name, prov.description),))
    return ids


def _resolve(model_id: str) -> tuple[Provider, str]:
    provider_name, name = parse_model_id(model_id)
    prov = providers().get(provider_name)
    if prov is None:
        raise ConfigError(
            f"unknown model '{model_id}'. Valid ids: {', '.join(valid_ids())} "
            "(and openai:MODEL, ollama:MODEL, cohere:MODEL)"
        )
    if not name:
        if prov.default_name is None:
            raise ConfigError(f"model '{model_id}' needs a name: {provider_name}:MODEL")
        name = prov.default_name
    if prov.names is not None and name not in prov.names:
        raise ConfigError(
            f"unknown model '{model_id}'. Valid ids: {', '.join(valid_ids())}"
        )
    return prov, name


def _params(prov: Provider, params: dict) -> ModelParams:
    common = {k: v for k, v in params.items() if k in COMMON_PARAMS and v is not None}
    extra = {k: v for k, v in params.items() if k not in COMMON_PARAMS}
    unknown = sorted(set(extra) - set(prov.extra_params))
    if unknown:
        valid = ", ".join(COMMON_PARAMS + tuple(prov.extra_params))
        raise ConfigError(
            f"model provider '{prov.name}' does not take {', '.join(unknown)} (valid: {valid})"
        )
    return ModelParams(**common, extra=extra)


def get_chat_model(model_id: str = DEFAULT_MODEL, **params: Any):
    """Build the LangChain chat model for ``model_id``.

    ``params``: ``temperature`` (default 0), ``max_tokens``, ``seed``,
    ``timeout`` (seconds), ``base_url``, plus provider-specific ones (``n_ctx``
    for local models, ``responses``/``func`` for ``fake``).  Raises
    ``ConfigError`` for an unknown id, a missing SDK or a missing key.
    """
    prov, name = _resolve(model_id)
    model_params = _params(prov, params)
    reason = prov.unavailable(name, model_params)
    if reason:
        raise ConfigError(f"model '{model_id}' is not available: {reason}")
    return prov.create(name, model_params)


def has_capability(model_id: str, capability: str) -> bool:
    """Whether ``model_id``'s provider declares ``capability`` (e.g. ``"token_probabilities"``);
    False for an unknown id."""
    try:
        prov, _ = _resolve(model_id)
    except ConfigError:
        return False
    return capability in prov.capabilities


def next_token_probs(model_id: str, messages: Any, candidates: Sequence[str] = ("yes", "no")) -> dict[str, float]:
    """Probability that ``model_id``'s reply to ``messages`` starts with each of ``candidates``, from
    its provider's ``token_probs``; ``ConfigError`` when the provider does not declare the capability."""
    prov, name = _resolve(model_id)
    if TOKEN_PROBABILITIES not in prov.capabilities or prov.token_probs is None:
        raise ConfigError(f"model '{model_id}' does not give token probabilities "
                          f"(its provider '{prov.name}' does not declare {TOKEN_PROBABILITIES})")
    probs = prov.token_probs(name, messages_payload(messages), list(candidates))
    try:
        values = {c: float(probs[c]) for c in candidates}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCallError(f"model '{model_id}' gave unusable token probabilities ({type(exc).__name__}: "
                             f"{exc}): {str(probs)[:120]}") from None
    if not all(0.0 <= v <= 1.0 for v in values.values()):  # NaN fails too
        raise ModelCallError(f"model '{model_id}' gave probabilities outside [0, 1]: {values}")
    return values


def list_models() -> list[ModelStatus]:
    """Every listed model id with whether it can be used here and, if not, why."""
    rows: list[ModelStatus] = []
    for pname, prov in providers().items():
        for model_id, description in prov.listed or ((pname, prov.description),):
            _, name = parse_model_id(model_id)
            name = name or prov.default_name or ""
            try:
                reason = prov.unavailable(name, ModelParams())
            except Exception as exc:  # availability checks must never crash the listing
                reason = f"check failed: {exc}"
            if reason:
                rows.append(ModelStatus(model_id, pname, description, False, reason))
            else:
                note = prov.note(name) if prov.note else ""
                rows.append(ModelStatus(model_id, pname, description, True, note))
    return rows
