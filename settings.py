"""Where FilingLens keeps its data: the one place that knows ``FILINGLENS_HOME``.

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
from typing import Iterator


def data_home() -> Path:
    """Return the data home directory, creating it if needed."""
    home = Path(os.environ.get("FILINGLENS_HOME") or Path.home() / ".filinglens").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def subdir(name: str) -> Path:
    """Return ``data_home()/name``, created if missing (e.g. ``filings``, ``models``)."""
    path = data_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Where model weights assembled from packages live: ``$FILINGLENS_MODELS`` or ``data_home()/models``."""
    env = os.environ.get("FILINGLENS_MODELS")
    path = Path(env).expanduser() if env else data_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_dir() -> Path:
    """The shared test/benchmark data beside the repository (``FILINGLENS_SHARED`` overrides)."""
    env = os.environ.get("FILINGLENS_SHARED")
    if env:
        return Path(env)
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
