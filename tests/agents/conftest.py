"""Fixtures for the model-layer tests: a temporary data home, a clean
environment (no real keys leak into tests) and tiny loopback HTTP servers."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

MODEL_ENV = (
    "COHERE_API_KEY", "COHERE_BASE_URL", "CO_API_URL",
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST",
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty FILINGLENS_HOME."""
    path = tmp_path / "home"
    monkeypatch.setenv("FILINGLENS_HOME", str(path))
    monkeypatch.delenv("FILINGLENS_MODELS", raising=False)  # exercise the default location
    return path


@pytest.fixture
def clean_env(monkeypatch):
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Seen:
    """One request a fake server received."""

    method: str
    path: str
    headers: dict
    body: dict | None


@dataclass
class FakeServer:
    url: str
    requests: list[Seen] = field(default_factory=list)


Handler = Callable[[Seen], tuple[int, str, bytes | list[bytes]]]


@pytest.fixture
def http_server():
    """Start stdlib HTTP servers on 127.0.0.1: ``http_server(handle) -> FakeServer``.

    ``handle(seen)`` returns ``(status, content_type, body)``; a list body is
    sent chunk by chunk (SSE / NDJSON streaming).
    """
    servers = []

    def start(handle: Handler) -> FakeServer:
        state = FakeServer(url="")

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                state.requests.append(seen)
                status, ctype, payload = handle(seen)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if isinstance(payload, list):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for piece in payload:
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            do_GET = do_POST = _serve

        server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
