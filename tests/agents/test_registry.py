"""The registry: ids, providers from entry points, errors with one-line fixes."""

from __future__ import annotations

import importlib
import importlib.util
from importlib import metadata

import pytest
from langchain_core.language_models.chat_models import BaseChatModel

from filinglens.agents import models
from filinglens.agents.providers import ModelParams, Provider
from filinglens.errors import ConfigError

BUILTINS = {"local", "local-small", "cohere", "openai", "ollama", "fake"}


@pytest.fixture(autouse=True)
def fresh_registry():
    models.providers(refresh=True)
    yield
    models.providers(refresh=True)


def test_parse_model_id():
    assert models.parse_model_id("openai:gpt-4o") == ("openai", "gpt-4o")
    assert models.parse_model_id("local") == ("local", "")
    assert models.parse_model_id(" Cohere:command-r-plus ") == ("cohere", "command-r-plus")
    assert models.parse_model_id("ollama:qwen2.5:1.5b") == ("ollama", "qwen2.5:1.5b")
    with pytest.raises(ConfigError):
        models.parse_model_id("")


def test_builtin_providers_and_ids():
    assert BUILTINS <= set(models.providers())
    ids = models.valid_ids()
    for expected in ("local", "local-small", "cohere:command-r-plus", "fake"):
        assert expected in ids


def test_entry_points_are_declared_and_resolve():
    eps = {ep.name: ep for ep in metadata.entry_points(group=models.ENTRY_POINT_GROUP)}
    if not BUILTINS <= set(eps):
        pytest.skip("installed metadata predates the entry points (pip install -e . refreshes it)")
    for name in BUILTINS:
        prov = eps[name].load()
        assert isinstance(prov, Provider) and prov.name == name
        assert models.BUILTIN_PROVIDERS[name] == eps[name].value


def test_third_party_provider_via_entry_point(monkeypatch):
    """A provider declared by another package's entry point is picked up."""
    plugin = Provider(
        name="acme",
        description="test plugin",
        create=lambda name, params: ("acme", name, params.temperature),
        unavailable=lambda name, params: None,
        listed=(("acme:rocket", "a plugin model"),),
        default_name="rocket",
    )
    import sys, types

    module = types.ModuleType("acme_plugin")
    module.provider = plugin
    monkeypatch.setitem(sys.modules, "acme_plugin", module)
    ep = metadata.EntryPoint(name="acme", value="acme_plugin:provider", group=models.ENTRY_POINT_GROUP)
    real = metadata.entry_points

    def fake_entry_points(**kw):
        found = list(real(**kw))
        return found + [ep] if kw.get("group") == models.ENTRY_POINT_GROUP else found

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    models.providers(refresh=True)
    assert models.get_chat_model("acme") == ("acme", "rocket", 0.0)
    assert models.get_chat_model("acme:x", temperature=0.5) == ("acme", "x", 0.5)
    assert "acme:rocket" in [row.id for row in models.list_models()]


def test_stale_metadata_falls_back_to_builtins(monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [])
    assert BUILTINS <= set(models.providers(refresh=True))
    assert isinstance(models.get_chat_model("fake"), BaseChatModel)


def test_broken_plugin_does_not_break_registry(monkeypatch):
    ep = metadata.EntryPoint(name="broken", value="no_such_module_xyz:provider",
                             group=models.ENTRY_POINT_GROUP)
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [ep])
    found = models.providers(refresh=True)
    assert "broken" not in found and BUILTINS <= set(found)


def test_unknown_id_lists_valid_ids():
    with pytest.raises(ConfigError) as err:
        models.get_chat_model("gpt5-turbo-max")
    message = str(err.value)
    assert "unknown model 'gpt5-turbo-max'" in message
    assert "local-small" in message and "cohere:command-r-plus" in message
    with pytest.raises(ConfigError, match="unknown model 'local:huge'"):
        models.get_chat_model("local:huge")


def test_unknown_param_is_rejected():
    with pytest.raises(ConfigError, match="does not take top_k"):
        models.get_chat_model("fake", top_k=3)


def test_ollama_needs_a_model_name():
    with pytest.raises(ConfigError, match="ollama:MODEL"):
        models.get_chat_model("ollama")


def test_missing_key_gives_the_fix(clean_env):
    with pytest.raises(ConfigError) as err:
        models.get_chat_model("cohere:command-r-plus")
    assert "set COHERE_API_KEY" in str(err.value)
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        models.get_chat_model("openai:gpt-4o-mini")


def _hide(monkeypatch, hidden: str):
    """Make ``hidden`` (and its submodules) look uninstalled."""
    real_find_spec = importlib.util.find_spec
    real_import = importlib.import_module

    def find_spec(name, *args, **kw):
        if name == hidden or name.startswith(hidden + "."):
            return None
        return real_find_spec(name, *args, **kw)

    def import_module(name, *args, **kw):
        if name == hidden or name.startswith(hidden + "."):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib, "import_module", import_module)


def test_missing_sdk_gives_pip_hint(clean_env, monkeypatch):
    from filinglens.agents.providers import cohere as cohere_provider

    monkeypatch.setenv("COHERE_API_KEY", "test-key-not-real")
    monkeypatch.setattr(cohere_provider, "_cls", None)
    _hide(monkeypatch, "langchain_cohere")
    row = next(r for r in models.list_models() if r.id == "cohere:command-r-plus")
    assert not row.available and row.reason == "pip install langchain-cohere"
    with pytest.raises(ConfigError, match="pip install langchain-cohere"):
        models.get_chat_model("cohere:command-r-plus")
    # create() itself imports lazily and turns the ImportError into the same fix
    with pytest.raises(ConfigError, match="pip install langchain-cohere"):
        cohere_provider.create("command-r-plus", ModelParams())


def test_missing_llama_cpp_gives_pip_hint(monkeypatch):
    _hide(monkeypatch, "llama_cpp")
    row = next(r for r in models.list_models() if r.id == "local-small")
    assert not row.available and "pip install llama-cpp-python" in row.reason


def test_list_models_statuses(clean_env):
    rows = {row.id: row for row in models.list_models()}
    assert rows["fake"].available
    assert not rows["cohere:command-r-plus"].available
    assert rows["cohere:command-r-plus"].reason == "set COHERE_API_KEY"
    assert not rows["openai:gpt-4o-mini"].available
    assert rows["ollama:llama3.2"].available
    assert "OLLAMA_HOST" in rows["ollama:llama3.2"].reason
    assert rows["local-small"].available, rows["local-small"].reason
    assert rows["local"].available, rows["local"].reason
    for row in rows.values():
        assert set(row.to_dict()) == {"id", "provider", "description", "available", "reason"}


def test_keys_are_never_shown(clean_env, monkeypatch):
    secret = "sk-test-SECRET-1234567890"
    monkeypatch.setenv("COHERE_API_KEY", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    rows = models.list_models()
    assert secret not in repr(rows)
    assert next(r for r in rows if r.id == "cohere:command-r-plus").available
    chat = models.get_chat_model("openai:gpt-4o-mini")
    assert secret not in repr(chat) and secret not in str(chat.model_dump())
    chat = models.get_chat_model("cohere:command-r-plus")
    assert secret not in repr(chat)


def test_openai_base_url_needs_no_key(clean_env):
    chat = models.get_chat_model("openai:whatever", base_url="http://127.0.0.1:9/v1", max_tokens=5, seed=1)
    assert isinstance(chat, BaseChatModel)
    assert chat.openai_api_base == "http://127.0.0.1:9/v1"
    assert chat.max_tokens == 5 and chat.seed == 1 and chat.temperature == 0


def test_cli_models_json(clean_env):
    import json

    from typer.testing import CliRunner

    from filinglens.cli import app

    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = {row["id"]: row for row in json.loads(result.stdout)}
    assert data["fake"]["available"] is True
    assert data["cohere:command-r-plus"]["reason"] == "set COHERE_API_KEY"
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0 and "local-small" in table.stdout
