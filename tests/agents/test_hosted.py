"""Hosted providers over real HTTP on loopback.

* openai: ``python -m llama_cpp.server`` serving SmolLM2 (the real OpenAI API);
* cohere: a stdlib fake speaking the Cohere v2 chat wire format;
* ollama: a stdlib fake speaking /api/chat (NDJSON streaming and plain JSON).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from filinglens.agents.models import get_chat_model
from filinglens.agents.providers import local

from .conftest import free_port

SECRET = "co-test-key-0123456789"


# ----------------------------------------------------------------------- cohere


def cohere_handler(seen):
    assert seen.method == "POST" and seen.path == "/v2/chat", seen.path
    usage = {
        "billed_units": {"input_tokens": 7, "output_tokens": 3},
        "tokens": {"input_tokens": 21, "output_tokens": 3},
    }
    if seen.body.get("stream"):
        events = [
            {"type": "message-start", "id": "fake-1",
             "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "",
                                   "tool_calls": [], "citations": []}}},
            {"type": "content-start", "index": 0,
             "delta": {"message": {"content": {"type": "text", "text": ""}}}},
            *({"type": "content-delta", "index": 0,
               "delta": {"message": {"content": {"text": piece}}}} for piece in ("Hello ", "from ", "Cohere")),
            {"type": "content-end", "index": 0},
            {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}},
        ]
        chunks = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
        return 200, "text/event-stream", chunks
    body = {
        "id": "fake-1",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello from Cohere"}]},
        "usage": usage,
    }
    return 200, "application/json", json.dumps(body).encode()


def test_cohere_over_http(http_server, clean_env, monkeypatch):
    server = http_server(cohere_handler)
    monkeypatch.setenv("COHERE_API_KEY", SECRET)
    monkeypatch.setenv("COHERE_BASE_URL", server.url)
    chat = get_chat_model("cohere:command-r-plus", max_tokens=20, seed=7)
    out = chat.invoke([("system", "Be brief."), ("human", "Say hello.")])
    assert out.content == "Hello from Cohere"
    assert out.usage_metadata["input_tokens"] == 21 and out.usage_metadata["output_tokens"] == 3

    seen = server.requests[-1]
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    body = seen.body
    assert body["model"] == "command-r-plus"
    assert body["temperature"] == 0 and body["max_tokens"] == 20 and body["seed"] == 7
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1]["role"] == "user"
    assert SECRET not in json.dumps(body)

    streamed = "".join(chunk.content for chunk in chat.stream("Say hello."))
    assert streamed == "Hello from Cohere"
    assert server.requests[-1].body["stream"] is True


def test_cohere_base_url_param_wins(http_server, clean_env, monkeypatch):
    server = http_server(cohere_handler)
    monkeypatch.setenv("COHERE_API_KEY", SECRET)
    monkeypatch.setenv("COHERE_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    chat = get_chat_model("cohere:command-r", base_url=server.url)
    assert chat.invoke("hi").content == "Hello from Cohere"
    assert server.requests[-1].body["model"] == "command-r"


# ----------------------------------------------------------------------- ollama


def ollama_handler(seen):
    assert seen.method == "POST" and seen.path == "/api/chat", seen.path
    model = seen.body["model"]
    done = {
        "model": model, "created_at": "2026-11-01T00:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": True, "done_reason": "stop",
        "total_duration": 1000, "load_duration": 10, "prompt_eval_count": 9,
        "prompt_eval_duration": 100, "eval_count": 3, "eval_duration": 100,
    }
    pieces = ["Hello ", "from ", "Ollama"]
    if seen.body.get("stream", True):
        lines = [
            json.dumps({"model": model, "created_at": "2026-11-01T00:00:00Z",
                        "message": {"role": "assistant", "content": p}, "done": False}) + "\n"
            for p in pieces
        ] + [json.dumps(done) + "\n"]
        return 200, "application/x-ndjson", [line.encode() for line in lines]
    done["message"]["content"] = "".join(pieces)
    return 200, "application/json", json.dumps(done).encode()


def test_ollama_over_http(http_server, clean_env, monkeypatch):
    server = http_server(ollama_handler)
    monkeypatch.setenv("OLLAMA_HOST", server.url)
    chat = get_chat_model("ollama:qwen2.5:1.5b", max_tokens=12, seed=3)
    out = chat.invoke([("system", "Be brief."), ("human", "Say hello.")])
    assert out.content == "Hello from Ollama"
    assert out.usage_metadata["input_tokens"] == 9 and out.usage_metadata["output_tokens"] == 3
    body = server.requests[-1].body
    assert body["model"] == "qwen2.5:1.5b"
    assert body["options"]["temperature"] == 0 and body["options"]["num_predict"] == 12
    assert body["options"]["seed"] == 3
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


# ------------------------------------------------------------ openai (llama.cpp)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("uvicorn", reason="pip install 'llama-cpp-python[server]' extras (.[dev])")
    pytest.importorskip("sse_starlette")
    pytest.importorskip("starlette_context")
    home = tmp_path_factory.mktemp("server-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("FILINGLENS_HOME", str(home))
    model = local.model_path("local-small")
    mp.undo()
    port = free_port()
    log = open(home / "server.log", "w+b")  # a file, not a pipe: llama.cpp logs a lot
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
         "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "2"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {log.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start in 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.model
def test_openai_provider_against_llama_cpp_server(llama_server, clean_env):
    chat = get_chat_model("openai:smollm2", base_url=llama_server, max_tokens=16, timeout=120)
    out = chat.invoke([("system", "You are a helpful assistant."), ("human", "Say hello.")])
    assert isinstance(out.content, str) and out.content.strip()
    assert out.usage_metadata["output_tokens"] >= 1
    streamed = "".join(c.content for c in chat.stream("Count to three."))
    assert streamed.strip()


@pytest.mark.model
def test_openai_base_url_from_env(llama_server, clean_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server)
    out = get_chat_model("openai:smollm2", max_tokens=4, timeout=120).invoke("Hi")
    assert isinstance(out.content, str)
