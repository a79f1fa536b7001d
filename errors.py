"""Every error a user can act on, in one module.  The CLI prints their message (no traceback) and exits non-zero.

Secrets never reach a message: :func:`redact_secrets` removes API keys (the
values of the key variables in the environment, and anything shaped like a
bearer token or ``api_key=...``), and every ``FilingLensError`` message goes
through it, as does every error text the results store records.
"""

from __future__ import annotations

import os
import re

#: Environment variables whose values are secrets, besides any ``*_KEY``/``*_TOKEN``/``*_SECRET``/``*PASSWORD``.
SECRET_ENV = ("COHERE_API_KEY", "CO_API_KEY", "OPENAI_API_KEY", "SEC_API_KEY", "HF_TOKEN")
_SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)
_SECRET_SHAPES = [
    # Authorization: Bearer abc..., "authorization": "Token abc", x-api-key: abc
    re.compile(r"(?i)\b(authorization|x-api-key|api[-_]?key|access[-_]?token|token|password)"
               r"(\s*[\"']?\s*[:=]\s*[\"']?\s*)(bearer\s+|token\s+|basic\s+)?([^\s\"',;}{]{6,})"),
    re.compile(r"(?i)\b(bearer)(\s+)()([A-Za-z0-9._~+/=-]{8,})"),
]
REDACTED = "[REDACTED]"


def _secret_values() -> list[str]:
    values = []
    for name, value in os.environ.items():
        if (name in SECRET_ENV or _SECRET_NAME.search(name)) and value and len(value.strip()) >= 6:
            values.append(value.strip())
    return sorted(set(values), key=len, reverse=True)


def redact_secrets(text: str) -> str:
    """``text`` with secret values and credential-shaped substrings replaced by ``[REDACTED]``."""
    if not text:
        return text
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    for shape in _SECRET_SHAPES:
        text = shape.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}"
                         if m.group(4) != REDACTED else m.group(0), text)
    return text


class FilingLensError(Exception):
    """Base class: a clear, user-facing problem with input, configuration or environment."""

    exit_code = 2

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_secrets(a) if isinstance(a, str) else a for a in args))


class InputError(FilingLensError):
    """The given file or argument cannot be used (empty, binary, not a 10-K, too large...)."""


class NotA10KError(InputError):
    """The document is a filing of another form (8-K, 10-Q, ...)."""


class TruncatedFilingError(InputError):
    """The document looks cut off (or has unreadable pages); ingest refuses it unless allowed."""


class FetchError(FilingLensError):
    """EDGAR could not be reached or answered with an error."""


class ConfigError(FilingLensError):
    """Missing setting, key or optional package; the message says how to fix it."""


class IndexStoreError(FilingLensError):
    """The chunk index cannot be used: corrupted, locked, server down, or built with another embedding model."""


class NoMatchError(InputError):
    """A search filter matches no indexed chunk (the message lists what is indexed)."""


class IndexDamagedError(IndexStoreError):
    """The chunk index is damaged or lost (its files unreadable, or chunks gone that the manifests list).

    ``filinglens ingest --repair`` moves a damaged index aside (never deleting
    it) and rebuilds it from the indexed filings' sources.
    """


class StoreError(FilingLensError):
    """The results database cannot be opened, is damaged, or stayed locked too long."""


class StoreDamagedError(StoreError):
    """The results database file is damaged (not a database, or malformed pages)."""


class StoreLockedError(StoreError):
    """Another process kept the results database locked longer than the busy timeout."""


class ModelCallError(FilingLensError):
    """A model call failed (timeout, HTTP error, bad request...); it is recorded in the store."""


class ModelOutputError(FilingLensError, ValueError):
    """A model's answer could not be validated (no JSON, a missing field, a score out of range...);
    the call helper asks again, then records the rating, answer or verdict as failed."""


class RatingOutputError(ModelOutputError):
    """The model's answer could not be validated into a rating."""


class VerdictError(ModelOutputError):
    """The model's answer to a pair could not be read as A, B or tie."""


class InvalidEdgarData(FetchError):
    """A value sent by EDGAR (or a mirror posing as it) that fails validation."""
