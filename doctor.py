"""``filinglens doctor``: what this installation runs on, and whether its parts are healthy.

Reports the llama.cpp runtime (how it was built, which CPU features it uses),
the CPU (including whether the OS really enables AMX), the embedded models'
files and checksums, the chunk index and the results store.  With
``self_check`` it also loads the default model in a child process and
generates one token.  Returns plain data; the CLI renders it.
"""

from __future__ import annotations

import ctypes
import platform
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filinglens import settings

_WATCHED_FLAGS = ("avx", "avx2", "avx512f", "avx512_vnni", "avx512vnni", "avx512bw", "f16c", "fma",
                  "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve", "neon")


@dataclass
class Check:
    """One line of the report: a part, whether it is healthy, and what was found."""

    part: str
    ok: bool
    detail: str
    data: dict = field(default_factory=dict)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def os_enables_amx() -> bool | None:
    """Whether the kernel offers the AMX tile-data state to processes (x86-64 Linux); None if unknown.

    Asks ``arch_prctl(ARCH_GET_XCOMP_SUPP)`` for the supported extended
    features and tests bit 18 (XTILEDATA).  A VM can advertise ``amx_tile``
    in /proc/cpuinfo while this bit is clear: AMX code then dies with SIGILL.
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mask = ctypes.c_uint64(0)
        SYS_arch_prctl, ARCH_GET_XCOMP_SUPP = 158, 0x1021
        if libc.syscall(SYS_arch_prctl, ARCH_GET_XCOMP_SUPP, ctypes.byref(mask)) != 0:
            return False  # kernels without the call cannot run AMX
        return bool(mask.value & (1 << 18))
    except (OSError, AttributeError):
        return None


def check_cpu() -> Check:
    flags = _cpu_flags()
    shown = [f for f in _WATCHED_FLAGS if f in flags]
    amx_cpu = "amx_tile" in flags
    amx_os = os_enables_amx()
    detail = f"{platform.machine()}, {len(flags)} flags ({' '.join(shown) or 'none of note'})"
    if amx_cpu:
        detail += f"; AMX advertised, enabled by the OS: {'yes' if amx_os else 'no' if amx_os is False else 'unknown'}"
    return Check("cpu", True, detail, {"machine": platform.machine(), "flags": shown,
                                      "amx_advertised": amx_cpu, "amx_os_enabled": amx_os})


def check_runtime() -> Check:
    from filinglens.agents.providers import has_module
    from filinglens.agents.providers.local import runtime_build_info

    if not has_module("llama_cpp"):
        return Check("runtime", False, "llama-cpp-python is not installed: make install")
    import importlib.metadata as md

    version = md.version("llama_cpp_python")
    info = runtime_build_info()
    if not info:
        return Check("runtime", False,
                     f"llama-cpp-python {version}, built outside tools/build_llama.py: flags unknown "
                     "(rebuild with: rm -rf .venv && make install)", {"version": version})
    amx = "without AMX" if info.get("amx_disabled") else "native"
    return Check("runtime", True,
                 f"llama-cpp-python {version}, built {amx} ({info.get('cmake_args')}), key {info.get('key')}",
                 {"version": version, **info})


def check_models() -> list[Check]:
    from filinglens.agents.providers.local import SPECS, weights_verified, gguf_target, part_paths
    from filinglens.errors import ConfigError

    checks = []
    for s in SPECS.values():
        target = gguf_target(s)
        try:
            parts = part_paths(s)
        except ConfigError as exc:
            checks.append(Check(f"model {s.id}", False, str(exc)))
            continue
        if weights_verified(target, s):
            detail = f"{target} (sha256 {s.sha256[:12]}… verified)"
        elif target.is_file():
            detail = f"{target} present but not verified: it is re-checked on first use"
        else:
            detail = f"{len(parts)} part(s) installed; assembled and verified into {target.parent} on first use"
        checks.append(Check(f"model {s.id}", True, detail, {"path": str(target), "sha256": s.sha256,
                                                           "parts": len(parts)}))
    return checks


def check_store() -> Check:
    path = settings.data_home() / "results.db"
    if not path.exists():
        return Check("results store", True, f"{path} (not created yet)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = con.execute("PRAGMA quick_check").fetchone()[0]
            ratings = con.execute("SELECT count(*) FROM ratings").fetchone()[0] if verdict == "ok" else None
        finally:
            con.close()
    except sqlite3.Error as exc:
        from filinglens.store import damaged_message

        text = str(exc)
        if "locked" in text.lower() or "busy" in text.lower():
            return Check("results store", False, f"{path}: locked by another process ({text}); retry when it is done")
        return Check("results store", False, damaged_message(path, text))
    if verdict != "ok":
        from filinglens.store import damaged_message

        return Check("results store", False, damaged_message(path, f"integrity check failed: {verdict}"))
    return Check("results store", True, f"{path}: integrity ok, {ratings} ratings", {"ratings": ratings})


def check_index() -> Check:
    from filinglens.errors import FilingLensError
    from filinglens.retrieval.index import open_store

    try:
        store = open_store(create=False)
        report = store.verify(deep=True)
    except FilingLensError as exc:
        return Check("index", False, str(exc))
    return Check("index", report["ok"], report["detail"], report)


def diagnose(self_check: bool = False, model_id: str = "local", runtime_only: bool = False) -> list[Check]:
    """Every check (``runtime_only``: CPU, runtime and models, not the data home's index and store);
    with ``self_check`` also load ``model_id`` and generate one token."""
    checks = [check_cpu(), check_runtime(), *check_models()]
    if not runtime_only:
        checks += [check_index(), check_store()]
    if self_check:
        from filinglens.agents.providers.local import self_check as run_self_check

        result = run_self_check(model_id)
        checks.append(Check("self-check", bool(result.get("ok")), result.get("message", ""), result))
    return checks


def as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
