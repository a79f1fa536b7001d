"""One model call, cached and recorded in the results store.

Every call the rating chain or the QA agent makes goes through
``invoke_cached``: the call is looked up by its cache key (model, parameters,
prompt hash, input hash, sample index) and, if absent, made, timed, and
recorded with its token counts — or recorded with its error, then raised as
``ModelCallError``. Nothing fails silently.

``input_only_key=True`` leaves the prompt hash out of the key (it is still
recorded): the messages alone decide the answer, so a prompt edit that does
not change them (the indicators method's weights and fitted cut-offs) reuses
every cached call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from filinglens.agents.providers import messages_payload  # noqa: F401 - re-exported
from filinglens.errors import FilingLensError, ModelCallError
from filinglens.store import Store, call_cache_key, json_hash


@dataclass
class CallResult:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    cached: bool


def _usage(message: Any, messages: list[dict], text: str) -> tuple[int, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    tokens_in = usage.get("input_tokens")
    tokens_out = usage.get("output_tokens")
    if tokens_in is None:  # providers that report nothing: estimate ~4 chars per token
        tokens_in = sum(len(m["content"]) for m in messages) // 4
    if tokens_out is None:
        tokens_out = len(text) // 4
    return int(tokens_in), int(tokens_out)


def invoke_cached(
    store: Store,
    model_id: str,
    params: dict,
    messages: Sequence[Any],
    *,
    prompt_ref: str | None = None,
    prompt_hash: str | None = None,
    sample_index: int = 0,
    run_id: str | None = None,
    model: Any = None,
    input_only_key: bool = False,
) -> CallResult:
    """Call ``model_id`` with ``messages`` unless the same call is already in the store."""
    payload = messages_payload(messages)
    input_hash = json_hash(payload)
    key = call_cache_key(model_id, params, None if input_only_key else prompt_hash, input_hash, sample_index)
    hit = store.cached_call(key)
    if hit is not None:
        return CallResult(hit.response, hit.tokens_in, hit.tokens_out, hit.latency_ms, cached=True)
    record = dict(cache_key=key, model_id=model_id, params=params, input_hash=input_hash, sample_index=sample_index,
                  prompt_ref=prompt_ref, prompt_hash=prompt_hash, run_id=run_id)
    start = time.perf_counter()
    try:
        if model is None:
            from filinglens.agents.models import get_chat_model

            model = get_chat_model(model_id, **params)
        message = model.invoke(payload)
    except FilingLensError as exc:
        store.record_call(**record, error=str(exc), latency_ms=(time.perf_counter() - start) * 1000)
        raise
    except Exception as exc:  # provider/network errors: record, then a clear error
        error = f"{type(exc).__name__}: {exc}"
        store.record_call(**record, error=error, latency_ms=(time.perf_counter() - start) * 1000)
        raise ModelCallError(f"model {model_id} failed: {error}") from exc
    latency = (time.perf_counter() - start) * 1000
    text = message.content if isinstance(message.content, str) else str(message.content)
    tokens_in, tokens_out = _usage(message, payload, text)
    store.record_call(**record, response=text, tokens_in=tokens_in, tokens_out=tokens_out, latency_ms=latency)
    return CallResult(text, tokens_in, tokens_out, latency, cached=False)


def next_token_probs_cached(
    store: Store,
    model_id: str,
    messages: Sequence[Any],
    candidates: Sequence[str] = ("yes", "no"),
    *,
    prompt_ref: str | None = None,
    prompt_hash: str | None = None,
    run_id: str | None = None,
    input_only_key: bool = False,
) -> tuple[dict[str, float], CallResult]:
    """Next-token probabilities of ``candidates`` from a local model, cached like any call."""
    import json

    payload = messages_payload(messages)
    input_hash = json_hash([payload, list(candidates)])
    params = {"method": "next_token_probs"}
    key = call_cache_key(model_id, params, None if input_only_key else prompt_hash, input_hash, 0)
    hit = store.cached_call(key)
    if hit is not None:
        return json.loads(hit.response), CallResult(hit.response, hit.tokens_in, 1, hit.latency_ms, cached=True)
    record = dict(cache_key=key, model_id=model_id, params=params, input_hash=input_hash, sample_index=0,
                  prompt_ref=prompt_ref, prompt_hash=prompt_hash, run_id=run_id)
    start = time.perf_counter()
    try:
        from filinglens.agents.providers.local import next_token_probs

        probs = next_token_probs(model_id, payload, list(candidates))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        store.record_call(**record, error=error, latency_ms=(time.perf_counter() - start) * 1000)
        if isinstance(exc, FilingLensError):
            raise
        raise ModelCallError(f"model {model_id} failed: {error}") from exc
    latency = (time.perf_counter() - start) * 1000
    text = json.dumps(probs)
    tokens_in = sum(len(m["content"]) for m in payload) // 4
    store.record_call(**record, response=text, tokens_in=tokens_in, tokens_out=1, latency_ms=latency)
    return probs, CallResult(text, tokens_in, 1, latency, cached=False)
