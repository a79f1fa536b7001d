"""The embedded-model runtime: build flags per machine, the install self-check and `filinglens doctor`."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from filinglens.agents.providers import local
from filinglens.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _build_llama():
    spec = importlib.util.spec_from_file_location("build_llama", ROOT / "tools" / "build_llama.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_x86_build_disables_amx_and_keeps_user_flags():
    b = _build_llama()
    args = b.cmake_args("x86_64", "-DGGML_BLAS=OFF -DCMAKE_C_FLAGS=-O3")
    assert "-DGGML_BLAS=OFF" in args and "-DLLAVA_BUILD=OFF" in args
    assert "-DCMAKE_C_FLAGS=-O3 -mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in args
    assert "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in args


def test_other_architectures_get_no_x86_flags():
    b = _build_llama()
    for machine in ("aarch64", "arm64", "ppc64le"):
        assert "amx" not in b.cmake_args(machine, "")


def test_wheel_key_changes_with_cpu_flags_and_cmake_args():
    b = _build_llama()
    base = b.build_key("x86_64", ["avx2", "avx512f"], "-DA=1", "3.11.7 linux-x86_64")
    assert base == b.build_key("x86_64", ["avx2", "avx512f"], "-DA=1", "3.11.7 linux-x86_64")
    assert base != b.build_key("x86_64", ["avx2"], "-DA=1", "3.11.7 linux-x86_64")  # another CPU
    assert base != b.build_key("x86_64", ["avx2", "avx512f"], "-DA=2", "3.11.7 linux-x86_64")  # other flags


def test_this_environment_was_built_by_the_build_script():
    """`make install` records how llama.cpp was built; on x86-64 it must be without AMX."""
    info = local.runtime_build_info()
    assert info, "llama-cpp-python was not installed through tools/build_llama.py (see the Makefile)"
    if info["machine"] == "x86_64":
        assert info["amx_disabled"] and "-mno-amx-tile" in info["cmake_args"]


def test_self_check_turns_an_illegal_instruction_into_a_fix(monkeypatch):
    """A child that dies with SIGILL (what an AMX build does on a VM without AMX) gives a readable fix."""
    real_run = subprocess.run

    def run(cmd, **kw):
        return real_run([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGILL)})"], **kw)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(local, "model_path", lambda model_id: Path("unused"))
    result = local.self_check("local")
    assert not result["ok"]
    assert "SIGILL" in result["message"] and "make install" in result["message"]


def test_doctor_reports_every_part_as_json():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    parts = {c["part"]: c for c in json.loads(result.output)}
    assert {"cpu", "runtime", "model local", "model local-small", "index", "results store"} <= set(parts)
    assert parts["runtime"]["ok"] and parts["runtime"]["data"]["version"] == "0.3.36"
    assert parts["index"]["data"]["chunks"] == 0


def test_doctor_flags_a_damaged_results_store(tmp_path, monkeypatch):
    home = Path(__import__("os").environ["FILINGLENS_HOME"])
    (home / "results.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 8192)
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    store = next(c for c in json.loads(result.output) if c["part"] == "results store")
    assert not store["ok"] and "results.db" in store["detail"]
