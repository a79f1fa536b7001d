"""Errors a user can act on.  The CLI prints their message (no traceback) and exits non-zero."""


class FilingLensError(Exception):
    """Base class: a clear, user-facing problem with input, configuration or environment."""

    exit_code = 2


class InputError(FilingLensError):
    """The given file or argument cannot be used (empty, binary, not a 10-K, too large...)."""


class NotA10KError(InputError):
    """The document is a filing of another form (8-K, 10-Q, ...)."""


class FetchError(FilingLensError):
    """EDGAR could not be reached or answered with an error."""


class ConfigError(FilingLensError):
    """Missing setting, key or optional package; the message says how to fix it."""


class IndexStoreError(FilingLensError):
    """The chunk index cannot be used: corrupted, locked, server down, or built with another embedding model."""


class NoMatchError(InputError):
    """A search filter matches no indexed chunk (the message lists what is indexed)."""
