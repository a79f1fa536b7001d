"""Versioned prompt files: validation, inheritance, hashing, user directories, CLI."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from filinglens.cli import app
from filinglens.errors import ConfigError
from filinglens.prompts.loader import (
    BUILTIN_DIR,
    DEFAULT_RATING_VERSION,
    categories,
    default_version,
    diff_prompts,
    list_prompts,
    load_prompt,
)


def test_the_papers_four_categories_ship_with_three_methods_and_a_strict_variant():
    prompts = list_prompts()
    assert categories() == ["confidence", "environment", "innovation", "people"]
    for category in categories():
        methods = {p.version: p.method for p in prompts if p.category == category}
        assert methods["v1"] == "direct" and methods["v2"] == "yesno" and methods["v3"] == "cot"
        assert load_prompt(f"{category}@v4").strictness
    assert len({p.hash for p in prompts}) == len(prompts)


def test_extends_inherits_rubric_and_overrides_method():
    v1, v2 = load_prompt("environment@v1"), load_prompt("environment@v2")
    assert v2.rubric == v1.rubric and v2.retrieval == v1.retrieval
    assert v2.method == "yesno" and v2.questions is not None and len(v2.questions.level2) == 2
    assert "untrusted" in v1.system  # filing text is declared as data, not instructions
    assert load_prompt("environment").version == DEFAULT_RATING_VERSION  # a bare category: the default version


def test_hash_covers_the_template(tmp_path):
    user = tmp_path / "prompts"
    shutil.copytree(BUILTIN_DIR / "rating", user / "rating")
    assert load_prompt("people@v1", [user]).hash == load_prompt("people@v1").hash
    template = user / "rating" / "templates" / "direct.yaml"
    template.write_text(template.read_text().replace("careful equity analyst", "meticulous equity analyst"))
    assert load_prompt("people@v1", [user]).hash != load_prompt("people@v1").hash


def test_user_directory_adds_a_category(tmp_path, monkeypatch):
    folder = tmp_path / "mine" / "rating" / "governance"
    folder.mkdir(parents=True)
    (folder / "v1.yaml").write_text(
        "title: Governance\nmethod: direct\ndescription: Board independence and oversight.\n"
        "rubric: {0: none, 1: some, 2: strong}\nretrieval: {queries: [board of directors independence]}\n"
    )
    monkeypatch.setenv("FILINGLENS_PROMPTS", str(tmp_path / "mine"))
    prompt = load_prompt("governance@v1")
    assert prompt.category == "governance" and prompt.method == "direct"
    assert "governance" in categories()


GOVERNANCE_V1 = ("title: Governance\nmethod: direct\ndescription: Board independence and oversight.\n"
                 "rubric: {0: none, 1: some, 2: strong}\nretrieval: {queries: [board of directors independence]}\n")


def test_a_category_without_the_default_version_is_loaded_at_its_newest(tmp_path):
    folder = tmp_path / "rating" / "governance"
    folder.mkdir(parents=True)
    (folder / "v1.yaml").write_text(GOVERNANCE_V1)
    assert DEFAULT_RATING_VERSION != "v1"
    assert default_version("governance", [tmp_path]) == "v1"
    assert load_prompt("governance", [tmp_path]).version == "v1"
    (folder / "v3.yaml").write_text("extends: v1\nmethod: cot\n")
    (folder / "v10.yaml").write_text("extends: v1\nnote: newest\n")
    assert load_prompt("governance", [tmp_path]).version == "v10"  # newest by number, not by text
    # a category that has the default version keeps it, whatever its newest is
    assert default_version("people", [tmp_path]) == DEFAULT_RATING_VERSION
    with pytest.raises(ConfigError, match=f"no prompt governance@{DEFAULT_RATING_VERSION} \\(versions: v1, v10, v3\\)"):
        load_prompt(f"governance@{DEFAULT_RATING_VERSION}", [tmp_path])  # asked for explicitly: not replaced
    with pytest.raises(ConfigError, match="no prompt category 'nothing'"):
        default_version("nothing", [tmp_path])


@pytest.mark.parametrize(
    "body, message",
    [
        ("title: X\nmethod: direct\ndescription: d\nrubric: {0: a, 2: c}\nretrieval: {queries: [q]}\n", "rubric"),
        ("title: X\nmethod: yesno\ndescription: d\nrubric: {0: a, 1: b, 2: c}\nretrieval: {queries: [q]}\n", "questions"),
        ("title: X\nmethod: guess\ndescription: d\nrubric: {0: a, 1: b, 2: c}\nretrieval: {queries: [q]}\n", "method"),
        ("extends: v1\n", "loops"),
        ("- not a mapping\n", "mapping"),
        ("title: [unclosed\n", "YAML"),
    ],
)
def test_invalid_prompt_files_are_rejected_with_the_reason(tmp_path, body, message):
    folder = tmp_path / "rating" / "broken"
    folder.mkdir(parents=True)
    (folder / "v1.yaml").write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_prompt("broken@v1", [tmp_path])


def test_diff_shows_what_changed():
    text = diff_prompts("innovation@v1", "innovation@v4")
    assert "-strictness: ''" in text and "+strictness: Be a strict grader" in text


def test_prompts_cli():
    runner = CliRunner()
    listed = runner.invoke(app, ["prompts", "list", "--json"])
    assert listed.exit_code == 0 and "environment@v2" in listed.stdout
    shown = runner.invoke(app, ["prompts", "show", "people@v2"])
    assert shown.exit_code == 0 and "hash=" in shown.stdout and "level1" in shown.stdout
    missing = runner.invoke(app, ["prompts", "show", "people@v9"])
    assert missing.exit_code != 0 and "no prompt people@v9" in missing.output


def test_qa_prompt_version_with_path_traversal_is_refused(tmp_path):
    """A QA prompt version names a file in a prompts directory, never a path outside it."""
    from filinglens.prompts.loader import load_compare_prompt, load_qa_prompt

    (tmp_path / "prompts" / "qa").mkdir(parents=True)
    (tmp_path / "outside.yaml").write_text("system: s\nuser: '{evidence} {question}'\n")
    (tmp_path / "prompts" / "qa" / "mine.yaml").write_text("system: s\nuser: '{evidence} {question}'\n")
    assert load_qa_prompt("mine", [tmp_path / "prompts"]).ref == "qa@mine"
    for bad in ("../../outside", "../outside", ".hidden", "a/b", ""):
        with pytest.raises(ConfigError, match="invalid QA prompt version|no QA prompt"):
            load_qa_prompt(bad or "..", [tmp_path / "prompts"])
    with pytest.raises(ConfigError, match="no QA prompt v9 \\(versions: .*mine"):
        load_qa_prompt("v9", [tmp_path / "prompts"])
    with pytest.raises(ConfigError, match="invalid comparison prompt version"):
        load_compare_prompt("../x")


def test_prompts_list_marks_the_version_a_category_without_the_default_is_rated_with(tmp_path):
    folder = tmp_path / "rating" / "governance"
    folder.mkdir(parents=True)
    (folder / "v1.yaml").write_text(GOVERNANCE_V1)
    listed = CliRunner().invoke(app, ["prompts", "list", "--prompts-dir", str(tmp_path)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "governance@v1 (default)" in listed.stdout
    assert f"people@{DEFAULT_RATING_VERSION} (default)" in listed.stdout and "people@v1 (default)" not in listed.stdout
    shown = CliRunner().invoke(app, ["prompts", "show", "governance", "--prompts-dir", str(tmp_path)])
    assert shown.exit_code == 0 and "version: v1" in shown.stdout
