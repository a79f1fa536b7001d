"""The one model-call path: cached and recorded calls, retries with parsing, token probabilities.

Every call the rating chain, the QA agent or the pairwise judge makes goes
through this module:

* :func:`invoke_cached` makes one call: it is looked up by its cache key
  (model, parameters, prompt hash, input hash, sample index, attempt) and, if
  absent, made, timed, and recorded with its token counts — or recorded with
  its error, then raised as ``ModelCallError``. Nothing fails silently.
* :func:`call_parsed` asks until the answer parses: each try is a distinct,
  recorded call (the attempt number is part of the cache key; retries at
  temperature 0 are made at 0.3 with a seed of their own), at most
  ``settings.model_attempts()`` tries (``FILINGLENS_MODEL_ATTEMPTS``, default
  3), then ``ModelOutputError`` — never a default value.
* :func:`next_token_probs_cached` asks a model whose provider declares the
  ``token_probabilities`` capability for next-token probabilities, through
  the registry.
* :func:`extract_json` is the one JSON extractor for model answers.

``input_only_key=True`` leaves the prompt hash out of the key (it is still
recorded): the messages alone decide the answer, so a prompt edit that does
not change them (the indicators method's weights and fitted cut-offs) reuses
every cached call.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from filinglens import settings
from filinglens.agents.providers import messages_payload
from filinglens.errors import FilingLensError, ModelCallError, ModelOutputError
from filinglens.store import Store, call_cache_key, json_hash

T = TypeVar("T")


@dataclass
class CallResult:
    """One call's answer and cost (``cached``: served from the results store)."""

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
    attempt: int = 0,
) -> CallResult:
    """Call ``model_id`` with ``messages`` unless the same call (same ``attempt`` too) is already in the store."""
    payload = messages_payload(messages)
    input_hash = json_hash(payload)
    key = call_cache_key(model_id, params, None if input_only_key else prompt_hash, input_hash, sample_index,
                         attempt=attempt)
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
    """Next-token probabilities of ``candidates`` from a model whose provider declares the
    ``token_probabilities`` capability (asked through the registry), cached like any call."""
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
        from filinglens.agents.models import next_token_probs

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


# ----------------------------------------------------------------------------- retries and parsing


def retry_params(params: dict, attempt: int, sample_index: int = 0) -> dict:
    """The generation parameters of try ``attempt`` (0: ``params`` as given): a retry gets its own seed
    and, when the first try was greedy (temperature 0), temperature 0.3, so it can answer differently."""
    if not attempt:
        return dict(params)
    out = {**params, "seed": 1000 * attempt + sample_index}
    if not out.get("temperature"):
        out["temperature"] = 0.3
    return out


def call_parsed(
    store: Store,
    model_id: str,
    messages: Sequence[Any],
    parse: Callable[[str], T],
    *,
    params: dict | None = None,
    sample_index: int = 0,
    attempts: int | None = None,
    what: str = "output",
    prompt_ref: str | None = None,
    prompt_hash: str | None = None,
    run_id: str | None = None,
    model: Any = None,
    connection: dict | None = None,
    input_only_key: bool = False,
    on_call: Callable[[CallResult], None] | None = None,
) -> T:
    """Call the model until ``parse(answer)`` succeeds and return what it returns.

    ``parse`` raises ``ModelOutputError`` (or any ``ValueError``) for an answer it cannot use; the call is
    then made again with :func:`retry_params`, each try a distinct cached and recorded call (the attempt
    number is part of its cache key), at most ``attempts`` tries (default ``settings.model_attempts()``),
    then ``ModelOutputError("malformed {what} after N tries: ...")``. ``on_call`` sees every call's
    result (tokens, latency, cached), ``model`` is a ready chat model (tests), ``connection`` (e.g.
    ``{"base_url": ...}``) reaches the model but not the cache key. A failed call raises ``ModelCallError``.
    """
    attempts = attempts or settings.model_attempts()
    problems: list[str] = []
    for attempt in range(attempts):
        call_params = retry_params(params or {}, attempt, sample_index)
        chat = model
        if chat is None:
            from filinglens.agents.models import get_chat_model

            chat = get_chat_model(model_id, **{**call_params, **(connection or {})})
        result = invoke_cached(store, model_id, call_params, messages, prompt_ref=prompt_ref,
                               prompt_hash=prompt_hash, sample_index=sample_index, run_id=run_id, model=chat,
                               input_only_key=input_only_key, attempt=attempt)
        if on_call is not None:
            on_call(result)
        try:
            return parse(result.text)
        except ValueError as exc:  # ModelOutputError, json.JSONDecodeError, a parser's own ValueError
            problems.append(str(exc))
    raise ModelOutputError(f"malformed {what} after {attempts} tries: {problems[-1]}")


_FENCE = re.compile(r"^```(?:json)?|```$", re.M)
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


def extract_json(text: str) -> dict:
    """The JSON object in a model's answer (code fences and text around it ignored);
    ``ModelOutputError`` when there is none or it does not decode."""
    cleaned = _FENCE.sub("", (text or "").strip()).strip()
    match = _JSON_OBJECT.search(cleaned)
    if not match:
        raise ModelOutputError(f"no JSON object in the answer: {(text or '')[:120]!r}")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise ModelOutputError(f"invalid JSON ({exc.msg}): {match.group(0)[:120]!r}") from exc
    if not isinstance(data, dict):
        raise ModelOutputError(f"the answer is not a JSON object: {match.group(0)[:120]!r}")
    return data
