"""Eval suite files: schema, clear validation errors, path resolution, content hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from filinglens.evals.suite import SuiteError, list_suites, load_suite, parse_suite, parse_years


def write(tmp_path: Path, data, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


MINIMAL = {"filings": [{"ticker": "AAPL", "years": "2019-2020"}]}


def test_builtin_suites_load_and_resolve_on_shared_data(shared):
    names = {p.stem for p in list_suites()}
    assert {"smoke", "demo", "apple-microsoft", "validity"} <= names
    smoke = load_suite("smoke")
    assert smoke.name == "smoke" and smoke.raters == [("local", "v1"), ("local", "v2")]
    assert smoke.samples == 2 and smoke.temperature == 0.7
    [path] = smoke.resolve_paths(smoke.filings[0])
    assert path == (shared / "filings/html/aapl-10-k-2024-11-01.html").resolve()
    am = load_suite("apple-microsoft")
    assert am.paper.enabled and am.category_list == ["confidence", "environment", "innovation", "people"]
    apple, msft = (am.resolve_paths(spec) for spec in am.filings)
    assert [p.name for p in apple] == [f"APPLE_{y}_10K.pdf" for y in range(2015, 2023)]
    assert [p.name for p in msft] == [f"MICROSOFT_{y}_10K.pdf" for y in range(2020, 2024)]
    assert [spec.ticker for spec in am.filings] == ["AAPL", "MSFT"]
    demo = load_suite("demo")
    assert demo.samples == 2 and len(demo.prompt_versions) == 2
    validity = load_suite("validity")
    assert validity.metamorphic is not None and "injection" in validity.metamorphic.checks
    assert all(path.is_file() for spec in validity.filings for path in validity.resolve_paths(spec))
    labels = load_suite("labels-dev")
    assert not labels.filings and labels.reference_path() == (shared / "labels/ratings_dev.json").resolve()
    reference = labels.load_reference()
    assert len(reference.labels) == 60 and len(reference.files()) == 15
    assert all(path.is_file() for path in reference.files())


def test_defaults_and_name_from_file(tmp_path):
    suite = load_suite(write(tmp_path, MINIMAL, "my-suite.yaml"))
    assert suite.name == "my-suite"
    assert suite.models == ["local"] and suite.prompt_versions == ["v5"] and suite.samples == 1
    assert suite.category_list == ["confidence", "environment", "innovation", "people"]
    assert not suite.paper.enabled and suite.metamorphic is None
    assert suite.filings[0].years == [2019, 2020] and suite.filings[0].year_range == "2019-2020"


@pytest.mark.parametrize("text, years", [
    (2019, [2019]), ("2019", [2019]), ("2015-2017", [2015, 2016, 2017]), ("2019, 2021", [2019, 2021]),
    ([2021, "2018-2019"], [2018, 2019, 2021]),
])
def test_years(text, years):
    assert parse_years(text) == years


@pytest.mark.parametrize("data, message", [
    ({"filings": [{"ticker": "AAPL", "pathz": ["x"]}]}, "filings[0].pathz: unknown field"),
    ({"filings": [{}]}, "filings[0]: give `paths` or a `ticker`"),
    ({"filings": []}, "give `filings` (or `reference` labels that name the filings)"),
    ({}, "give `filings` (or `reference` labels that name the filings)"),
    ({"filings": [{"ticker": "AAPL", "years": "20x9"}]}, "filings[0].years: `20x9` is not a year"),
    ({"filings": [{"paths": ["APPLE_{year}_10K.pdf"]}]}, "a path with {year} needs `years`"),
    ({**MINIMAL, "categories": ["environment", "weather"]}, "unknown categories ['weather']"),
    ({**MINIMAL, "prompt_versions": ["v1", "v99"]}, "no prompt"),
    ({**MINIMAL, "samples": 0}, "samples: Input should be greater than or equal to 1"),
    ({**MINIMAL, "temperature": "hot"}, "temperature:"),
    ({**MINIMAL, "models": ["local", "local"]}, "models: listed twice: local"),
    ({**MINIMAL, "thresholds": {"min_alpha": 0.5}}, "thresholds.min_alpha: unknown field"),
    ({**MINIMAL, "thresholds": {"max_failed_share": 3}}, "thresholds.max_failed_share:"),
    ({**MINIMAL, "paper": {"prompt": "lenient"}}, "paper.prompt:"),
    ({**MINIMAL, "name": "has space"}, "name:"),
])
def test_validation_errors_name_the_file_and_field(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(write(tmp_path, "filings: [unclosed", "broken.yaml"))
    with pytest.raises(SuiteError, match="must be a YAML mapping"):
        load_suite(write(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(SuiteError, match="built-in suites: .*smoke"):
        load_suite("no-such-suite")
    with pytest.raises(SuiteError, match="not a file"):
        load_suite(tmp_path)


def test_paper_and_metamorphic_shorthands():
    suite = parse_suite({**MINIMAL, "name": "x", "paper": True, "metamorphic": ["shuffle", "rename"]})
    assert suite.paper.enabled and suite.paper.prompt == "normal"
    assert suite.metamorphic.checks == ["shuffle", "rename"]
    suite = parse_suite({**MINIMAL, "name": "x", "paper": {"prompt": "strict"}, "metamorphic": True})
    assert suite.paper.prompt == "strict" and suite.metamorphic.checks == []


def test_paths_relative_to_suite_repo_and_shared(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "pdf").mkdir(parents=True)
    for year in (2019, 2020, 2021):
        (data / "pdf" / f"ACME_{year}_10K.pdf").write_bytes(b"%PDF")
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "local.html").write_text("<html></html>")
    monkeypatch.setenv("FILINGLENS_SHARED", str(tmp_path))
    monkeypatch.setenv("MY_DIR", str(data))
    suite = load_suite(write(tmp_path / "suites", {
        "filings": [
            {"paths": ["local.html"]},                                             # beside the suite file
            {"paths": ["README.md"]},                                               # in the repository
            {"ticker": "acme", "years": "2019-2020", "paths": ["${FILINGLENS_SHARED}/data/pdf/ACME_{year}_10K.pdf"]},
            {"paths": ["${MY_DIR}/pdf/ACME_*_10K.pdf"]},                            # env var + glob
            {"paths": "${shared}/data/pdf/ACME_2021_10K.pdf"},                     # one path as a string
        ],
    }))
    got = [suite.resolve_paths(spec) for spec in suite.filings]
    assert got[0] == [(tmp_path / "suites" / "local.html").resolve()]
    assert got[1][0].name == "README.md" and got[1][0].parent == Path(__file__).resolve().parents[2]
    assert [p.name for p in got[2]] == ["ACME_2019_10K.pdf", "ACME_2020_10K.pdf"]
    assert suite.filings[2].ticker == "ACME"
    assert [p.name for p in got[3]] == ["ACME_2019_10K.pdf", "ACME_2020_10K.pdf", "ACME_2021_10K.pdf"]
    assert [p.name for p in got[4]] == ["ACME_2021_10K.pdf"]


def test_missing_files_and_unset_variables(tmp_path):
    suite = load_suite(write(tmp_path, {"filings": [{"paths": ["nope.html"]}, {"paths": ["${NOT_SET_ANYWHERE_X}/a"]}]}))
    with pytest.raises(SuiteError, match="no file matches `nope.html`"):
        suite.resolve_paths(suite.filings[0])
    with pytest.raises(SuiteError, match=r"NOT_SET_ANYWHERE_X\}` .* is not set"):
        suite.resolve_paths(suite.filings[1])


def test_content_hash_covers_ratings_not_thresholds():
    base = parse_suite({**MINIMAL, "name": "x", "samples": 2})
    same = parse_suite({**MINIMAL, "name": "x", "samples": 2, "thresholds": {"min_test_retest_alpha": 0.5},
                        "description": "other words", "n_boot": 10})
    other = parse_suite({**MINIMAL, "name": "x", "samples": 3})
    assert base.content_hash() == same.content_hash() != other.content_hash()


def test_cli_reports_a_bad_suite_in_one_line(tmp_path):
    from filinglens.cli import app

    path = write(tmp_path, {"filings": [{"ticker": "AAPL", "pathz": ["x"]}]})
    result = CliRunner().invoke(app, ["eval", "run", str(path)])
    assert result.exit_code == 2
    assert "filings[0].pathz: unknown field" in result.output and "Traceback" not in result.output


def test_overrides_replace_suite_keys_and_are_validated(shared):
    base = load_suite("apple-microsoft")
    narrowed = load_suite("apple-microsoft", {"prompt_versions": ["v2"], "categories": ["people"], "models": None})
    assert narrowed.raters == [("local", "v2")] and narrowed.category_list == ["people"]
    assert narrowed.filings == base.filings and narrowed.paper.enabled
    assert narrowed.content_hash() != base.content_hash()
    assert load_suite("apple-microsoft", {"samples": None, "categories": []}).content_hash() == base.content_hash()
    with pytest.raises(SuiteError, match="v99"):
        load_suite("smoke", {"prompt_versions": ["v99"]})
    with pytest.raises(SuiteError, match="cannot override `filings`"):
        load_suite("smoke", {"filings": []})


def test_cli_overrides_reach_the_suite(tmp_path):
    from filinglens.cli import app

    result = CliRunner().invoke(app, ["eval", "run", "smoke", "-p", "v1", "-p", "v77", "-c", "people"])
    assert result.exit_code == 2 and "v77" in result.output and "Traceback" not in result.output
