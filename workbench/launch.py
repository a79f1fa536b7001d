"""How the workbench is started: the ``streamlit run`` command line and its environment."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from filinglens.errors import InputError

MAIN = Path(__file__).resolve().with_name("main.py")

#: Streamlit settings: never phone home, never open a browser, no file watcher, uploads up to 200 MB
#: (so the app itself refuses files over the 10-K size limit with a readable message).
SETTINGS = {
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "global.developmentMode": "false",
    "server.maxUploadSize": "200",
    "client.toolbarMode": "minimal",
    "theme.base": "light",
}


def streamlit_command(port: int = 8501, host: str = "127.0.0.1", python: str | None = None) -> list[str]:
    """``python -m streamlit run workbench/main.py`` bound to ``host:port``, headless, without telemetry."""
    if not 1 <= int(port) <= 65535:
        raise InputError(f"--port must be 1-65535, not {port}")
    if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,253}", host or ""):
        raise InputError(f"--host must be an address or host name, not {host!r}")
    command = [python or sys.executable, "-m", "streamlit", "run", str(MAIN),
               "--server.port", str(int(port)), "--server.address", host]
    for key, value in SETTINGS.items():
        command += [f"--{key}", value]
    return command


LOCAL_PATHS_ENV = "FILINGLENS_WORKBENCH_LOCAL_PATHS"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def streamlit_env(extra: dict | None = None, host: str = "127.0.0.1") -> dict:
    """The environment for the app: ours, plus Streamlit's no-telemetry switch.

    Served beyond loopback, the Filings page does not read paths of this
    machine (uploads and tickers only): anyone who can reach the page could
    otherwise have any local file indexed.
    """
    env = dict(os.environ)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    env["STREAMLIT_SERVER_HEADLESS"] = "true"
    env[LOCAL_PATHS_ENV] = "1" if host in LOOPBACK else "0"
    env.update(extra or {})
    return env
