"""Settings and the data home: the one place that reads FilingLens's environment variables.

:class:`Settings` (pydantic-settings) lists every variable the tool reads,
with its type, default and meaning; :func:`get` validates the environment
(a bad value is a one-line ``ConfigError``) and the README's configuration
table is generated from it (``python -m filinglens.settings``; a test checks
the README against it).

Everything the tool writes (fetched filings, model weights assembled from
packages, Chroma indexes, the SQLite results store) lives under the data home,
``$FILINGLENS_HOME`` or ``~/.filinglens``.  Other modules ask this module for
paths instead of building them.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def _no_prefix(name: str) -> dict:
    return {"validation_alias": AliasChoices(name)}


class Settings(BaseSettings):
    """Every environment variable FilingLens reads (prefix ``FILINGLENS_`` unless named otherwise)."""

    model_config = SettingsConfigDict(env_prefix="FILINGLENS_", extra="ignore", populate_by_name=False)

    home: Optional[Path] = Field(None, description="data home (default `~/.filinglens`)")
    models: Optional[Path] = Field(None, description="where GGUF weights are assembled (default `$FILINGLENS_HOME/models`)")
    shared: Optional[Path] = Field(None, description="the shared data folder (default `../shared` beside the repository)")
    prompts: Optional[str] = Field(None, description="extra prompt directories (`os.pathsep`-separated), searched first")
    threads: Optional[int] = Field(None, ge=1, description="CPU threads for the embedded model (default: all CPUs)")
    embed_threads: Optional[int] = Field(None, ge=1, description="CPU threads for the embedder (default: all CPUs)")
    embeddings: Optional[str] = Field(None, description="embedding model for the index (default `minilm-int8`)")
    chroma_url: Optional[str] = Field(None, description="use a Chroma server (`chroma run`) instead of the embedded store")
    collection: Optional[str] = Field(None, description="Chroma collection name (default `filinglens`)")
    lock_wait: Optional[float] = Field(None, gt=0, description="seconds an index writer waits for another writer (default 120)")
    db_timeout: Optional[float] = Field(None, gt=0, description="seconds a results-store writer waits for a lock (default 15)")
    model_attempts: Optional[int] = Field(None, ge=1, le=20, description="tries per model call whose answer is malformed, each a distinct recorded call (default 3)")
    edgar_url: Optional[str] = Field(None, description="EDGAR www base URL (a mirror or test server)")
    edgar_data_url: Optional[str] = Field(None, description="EDGAR data base URL (default: `FILINGLENS_EDGAR_URL` or data.sec.gov)")
    edgar_timeout: Optional[float] = Field(None, gt=0, description="EDGAR per-read timeout in seconds")
    edgar_tries: Optional[float] = Field(None, ge=1, description="EDGAR attempts per request")
    edgar_backoff: Optional[float] = Field(None, ge=0, description="EDGAR first retry delay in seconds (doubles)")
    edgar_max_backoff: Optional[float] = Field(None, ge=0, description="cap on EDGAR backoff and `Retry-After`, seconds")
    edgar_deadline: Optional[float] = Field(None, gt=0, description="EDGAR whole-transfer deadline per attempt, seconds")
    workbench_plugins: Optional[str] = Field(None, description="modules the workbench imports at start (comma-separated), e.g. to register models")
    workbench_local_paths: Optional[bool] = Field(None, description="whether the workbench accepts local paths (set by `filinglens app`: only when bound to loopback)")
    wheel_cache: Optional[Path] = Field(None, description="where `tools/build_llama.py` keeps llama.cpp wheels keyed by CPU and flags")
    sec_user_agent: Optional[str] = Field(None, description="required by `fetch`: \"Your Name you@example.com\"",
                                          **_no_prefix("SEC_USER_AGENT"))
    cohere_api_key: Optional[SecretStr] = Field(None, description="Cohere key (`cohere:command-r-plus`)",
                                                **_no_prefix("COHERE_API_KEY"))
    cohere_base_url: Optional[str] = Field(None, description="Cohere API base URL (or `CO_API_URL`)",
                                           validation_alias=AliasChoices("COHERE_BASE_URL", "CO_API_URL"))
    openai_api_key: Optional[SecretStr] = Field(None, description="key for `openai:MODEL`", **_no_prefix("OPENAI_API_KEY"))
    openai_base_url: Optional[str] = Field(None, description="any OpenAI-compatible server (vLLM, `llama_cpp.server`)",
                                           **_no_prefix("OPENAI_BASE_URL"))
    ollama_host: Optional[str] = Field(None, description="Ollama server for `ollama:MODEL`", **_no_prefix("OLLAMA_HOST"))
    ray_address: Optional[str] = Field(None, description="`filinglens batch --executor ray`: the Ray cluster to use "
                                                         "(default: a local runtime on loopback)",
                                       **_no_prefix("RAY_ADDRESS"))


def get() -> Settings:
    """The settings from the environment now (re-read on every call; a bad value is a ``ConfigError``)."""
    try:
        return Settings()
    except ValidationError as exc:
        from filinglens.errors import ConfigError

        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        raise ConfigError(f"{env_name(field)}: {first['msg']}") from None


def env_name(field: str) -> str:
    """The environment variable of a :class:`Settings` field."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"FILINGLENS_{field.upper()}"


def markdown_table() -> str:
    """The README's configuration table, generated from :class:`Settings`."""
    rows = ["| variable | meaning |", "|---|---|"]
    for name, info in Settings.model_fields.items():
        rows.append(f"| `{env_name(name)}` | {info.description} |")
    return "\n".join(rows)


#: Tries per model call whose answer is malformed (``FILINGLENS_MODEL_ATTEMPTS`` overrides).
DEFAULT_MODEL_ATTEMPTS = 3


def model_attempts() -> int:
    """How many times a malformed model answer is asked for again, first call included."""
    return get().model_attempts or DEFAULT_MODEL_ATTEMPTS


def data_home() -> Path:
    """Return the data home directory, creating it if needed."""
    home = (get().home or Path.home() / ".filinglens").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def subdir(name: str) -> Path:
    """Return ``data_home()/name``, created if missing (e.g. ``filings``, ``models``)."""
    path = data_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Where model weights assembled from packages live: ``$FILINGLENS_MODELS`` or ``data_home()/models``."""
    env = get().models
    path = env.expanduser() if env else data_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir() -> Path:
    """The shared test/benchmark data beside the repository (``FILINGLENS_SHARED`` overrides)."""
    env = get().shared
    if env:
        return env
    return Path(__file__).resolve().parent.parent / "shared"


@contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator:
    """Write ``path`` via a temporary file in the same folder and rename on success.

    A crash or exception leaves the old file (or nothing) in place, never a
    half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def sha256_file(path: Path, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks (multi-GB model weights too)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":  # python -m filinglens.settings: the README's configuration table
    print(markdown_table())


#: Third-party usage analytics, switched off (set in the environment of this process and of Ray workers):
#: Chroma (posthog), ragas, Ray. Streamlit's is off in the workbench's launch flags.
TELEMETRY_OFF = {"ANONYMIZED_TELEMETRY": "False", "RAGAS_DO_NOT_TRACK": "true", "RAY_USAGE_STATS_ENABLED": "0"}


def disable_telemetry() -> None:
    """Switch off the libraries' usage analytics in this process (called where those libraries are used)."""
    os.environ.update(TELEMETRY_OFF)

