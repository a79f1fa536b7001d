#!/usr/bin/env python3
"""Build and install llama-cpp-python so that it runs on *this* machine.

Why not plain ``pip install``: PyPI has only the sdist, which compiles with
``-march=native``.  On x86-64 CPUs that advertise AMX while the (virtual)
machine does not enable the AMX tile state, that build dies with "Illegal
instruction" at the first model call (``../shared/STACK-NOTES.md``, the AMX
trap).  And pip's wheel cache ignores ``CMAKE_ARGS``: a wheel built with other
flags, or on another CPU, would be reused silently.

So this script:

* picks the flags: native speed, minus AMX on x86-64 (the ``-mno-amx-*``
  flags are passed only there, since other architectures reject them), plus
  the user's own ``CMAKE_ARGS`` when set;
* keys the wheel by (package version, Python, machine, CPU flags, cmake
  flags) and keeps it under ``~/.cache/filinglens/wheels/<key>/``; pip's own
  cache is never used (``--no-cache-dir``);
* installs that wheel into the given Python and writes
  ``<prefix>/filinglens-runtime.json`` (what it was built with), which
  ``filinglens doctor`` reports.

Standard library only: it runs before the project is installed.

    python3 tools/build_llama.py --python .venv/bin/python
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
X86 = {"x86_64", "amd64", "i686", "i386"}


def cpu_flags() -> list[str]:
    """CPU feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return sorted(set(value.split()))
    return []


def cmake_args(machine: str, user_args: str) -> str:
    """The cmake arguments for this machine: the user's, plus no-AMX on x86-64."""
    args = shlex.split(user_args)
    if not any(a.startswith("-DLLAVA_BUILD") for a in args):
        args.append("-DLLAVA_BUILD=OFF")
    if machine.lower() in X86:
        for var in ("CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS"):
            prefix = f"-D{var}="
            existing = [a for a in args if a.startswith(prefix)]
            args = [a for a in args if not a.startswith(prefix)]
            current = existing[-1][len(prefix):] if existing else ""
            args.append(prefix + " ".join(x for x in (current, NO_AMX) if x))
    return shlex.join(args)


def build_key(machine: str, flags: list[str], args: str, python: str) -> str:
    """Wheel cache key: a wheel is reused only by the same version, Python, CPU and flags."""
    payload = json.dumps([VERSION, python, machine, flags, args], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def python_tag(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys,sysconfig;print(sys.version.split()[0], sysconfig.get_platform())"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def installed_version(python: str) -> str | None:
    out = subprocess.run(
        [python, "-c", "import importlib.metadata as m;print(m.version('llama_cpp_python'))"],
        capture_output=True, text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the Python to install into (a venv's)")
    parser.add_argument("--cache", default=os.environ.get("FILINGLENS_WHEEL_CACHE")
                        or str(Path.home() / ".cache" / "filinglens" / "wheels"))
    parser.add_argument("--print-args", action="store_true", help="print the cmake arguments and exit")
    opts = parser.parse_args(argv)

    machine = platform.machine()
    flags = cpu_flags()
    args = cmake_args(machine, os.environ.get("CMAKE_ARGS", ""))
    if opts.print_args:
        print(args)
        return 0
    python = opts.python
    key = build_key(machine, flags, args, python_tag(python))
    prefix = Path(subprocess.run([python, "-c", "import sys;print(sys.prefix)"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    info_path = prefix / "filinglens-runtime.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        info = {}
    if info.get("key") == key and installed_version(python) == VERSION:
        print(f"build_llama: {PACKAGE}=={VERSION} already built for this CPU and flags ({key})")
        return 0

    wheel_dir = Path(opts.cache) / key
    wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
    env = dict(os.environ, CMAKE_ARGS=args)
    started = time.monotonic()
    built = False
    if not wheels:
        print(f"build_llama: compiling {PACKAGE}=={VERSION} (a few minutes on 2 cores) with CMAKE_ARGS={args}",
              flush=True)
        tmp = wheel_dir.with_name(wheel_dir.name + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        tmp.mkdir(parents=True)
        result = subprocess.run(
            [python, "-m", "pip", "wheel", "--quiet", "--no-cache-dir", "--no-deps",
             "--no-binary", PACKAGE, f"{PACKAGE}=={VERSION}", "-w", str(tmp)],
            env=env,
        )
        if result.returncode != 0:
            print(f"build_llama: compiling {PACKAGE} failed (exit {result.returncode}); "
                  "it needs gcc/g++ and cmake-compatible build tools (apt-get install build-essential)",
                  file=sys.stderr)
            return 1
        os.replace(tmp, wheel_dir)
        wheels = sorted(wheel_dir.glob("llama_cpp_python-*.whl"))
        built = True
    result = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-cache-dir",
                             "--force-reinstall", "--no-deps", str(wheels[-1])])
    if result.returncode != 0:
        return result.returncode
    info = {
        "package": f"{PACKAGE}=={VERSION}",
        "key": key,
        "machine": machine,
        "cmake_args": args,
        "amx_disabled": machine.lower() in X86,
        "cpu_flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest(),
        "wheel": str(wheels[-1]),
        "built_here": built,
        "seconds": round(time.monotonic() - started, 1),
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"build_llama: installed {wheels[-1].name} ({'built' if built else 'cached wheel'}, key {key})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
