"""One settings object: every variable the code reads is declared, validated and in the README."""

from __future__ import annotations

import os

import re
from pathlib import Path

import pytest

from filinglens import settings
from filinglens.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ("agents", "retrieval", "evals", "prompts", "analysis", "workbench")


def _source_files():
    yield from ROOT.glob("*.py")
    for d in PACKAGE_DIRS:
        yield from (ROOT / d).rglob("*.py")


def test_readme_configuration_table_is_generated_from_settings():
    readme = (ROOT / "README.md").read_text()
    assert settings.markdown_table() in readme, "regenerate it: python -m filinglens.settings"


def test_every_filinglens_variable_in_the_code_is_declared():
    declared = {settings.env_name(f) for f in settings.Settings.model_fields}
    used = set()
    for path in _source_files():
        used |= set(re.findall(r"[\"'](FILINGLENS_[A-Z_]+)[\"']", path.read_text()))
    assert used <= declared, f"undeclared: {sorted(used - declared)}"


def test_a_bad_value_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("FILINGLENS_THREADS", "many")
    with pytest.raises(ConfigError, match="FILINGLENS_THREADS"):
        settings.get()
    monkeypatch.setenv("FILINGLENS_THREADS", "0")
    with pytest.raises(ConfigError, match="FILINGLENS_THREADS"):
        settings.get()


def test_keys_are_secret_strings(monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", "co-secret-123456")
    s = settings.get()
    assert "co-secret-123456" not in repr(s) and s.cohere_api_key.get_secret_value() == "co-secret-123456"


def test_data_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FILINGLENS_HOME", str(tmp_path / "h"))
    assert settings.data_home() == tmp_path / "h" and (tmp_path / "h").is_dir()


def test_telemetry_is_switched_off_in_one_place(monkeypatch):
    """Usage analytics of Chroma, ragas and Ray are switched off by ``settings.disable_telemetry`` alone (no
    import side effects elsewhere), and Ray workers get the same environment."""
    import re
    from pathlib import Path

    from filinglens import settings
    from filinglens.batch import ray_env

    root = Path(settings.__file__).resolve().parent
    names = "|".join(settings.TELEMETRY_OFF)
    setters = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if p.parts[len(root.parts)] not in ("tests", "bench", ".venv", "build")
               and re.search(rf"""["']({names})["']""", p.read_text())]
    assert setters == ["settings.py"], setters
    for name in settings.TELEMETRY_OFF:
        monkeypatch.delenv(name, raising=False)
    settings.disable_telemetry()
    assert all(os.environ[k] == v for k, v in settings.TELEMETRY_OFF.items())
    assert settings.TELEMETRY_OFF.items() <= ray_env().items()
