"""Criterion validity: reference labels (JSON/CSV), matching, evidence recall, the report and its gates."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.providers.fake import register_script
from filinglens.agents.rating import Target
from filinglens.evals.reference import (
    ReferenceError, load_reference, match_labels, normalize, quote_covered,
)
from filinglens.app import run_eval_suite
from filinglens.evals.suite import SuiteError, parse_suite
from filinglens.settings import sha256_file
from filinglens.store import Store

AAPL = "aapl-10-k-2024-11-01.html"


def test_dev_labels_load_with_quotes_and_files(shared):
    ref = load_reference(shared / "labels" / "ratings_dev.json")
    assert len(ref.labels) == 60 and sum(label.borderline for label in ref.labels) == 19
    assert ref.categories == ["confidence", "environment", "innovation", "people"]
    assert len(ref.files()) == 15 and all(p.parent.name == "html" for p in ref.files())
    apple = [label for label in ref.labels if label.filing == AAPL]
    assert [(label.category, label.score, label.borderline) for label in apple] == [
        ("confidence", 1, True), ("environment", 1, True), ("innovation", 2, False), ("people", 2, False)]
    assert all(2 <= len(label.quotes) <= 4 for label in ref.labels)


def test_csv_labels_by_file_name_or_ticker_and_year(tmp_path, shared):
    path = tmp_path / "mine.csv"
    path.write_text(f"filing,category,score,borderline\n{AAPL},people,2,no\nMSFT 2023,environment,1,yes\n"
                    "KO|2024,innovation,0,\n")
    ref = load_reference(path)
    assert [(label.category, label.score, label.borderline) for label in ref.labels] == [
        ("people", 2, False), ("environment", 1, True), ("innovation", 0, False)]
    assert ref.labels[0].path == (shared / "filings" / "html" / AAPL).resolve()
    assert (ref.labels[1].ticker, ref.labels[1].fiscal_year) == ("MSFT", 2023)
    assert (ref.labels[2].ticker, ref.labels[2].fiscal_year) == ("KO", 2024)

    apple = Target("f1", "Apple Inc.", "AAPL", "320193", 2024, sha256_file(ref.labels[0].path))
    msft = Target("f2", "Microsoft", "MSFT", "789019", 2023, "hash-msft")
    matched, unmatched = match_labels(ref, [apple, msft])
    assert matched == {0: apple, 1: msft} and [label.filing for label in unmatched] == ["KO|2024"]


@pytest.mark.parametrize("text, message", [
    ("filing,category,score\nAAPL 2024,people,3\n", "label 2 (AAPL 2024, people): score must be 0, 1 or 2, not '3'"),
    ("filing,category,score\nAAPL 2024,people,1.5\n", "score must be 0, 1 or 2"),
    ("filing,category,score\nAAPL 2024,,1\n", "label 2 (AAPL 2024): needs `category`"),
    ("filing,category,score,borderline\nAAPL 2024,people,1,maybe\n", "borderline must be true or false"),
    ("filing,score\nAAPL 2024,1\n", "missing ['category']"),
    ("filing,category,score\nAAPL 2024,people,1\nAAPL 2024,people,2\n", "label 3 (AAPL 2024, people) repeats label 2"),
    ("filing,category,score\n", "no labels"),
    ('{"labels": [{"file": "x.html", "category": "people"}]}', "label 1 (x.html, people): needs `score`"),
    ('{"labels": [', "not valid JSON"),
])
def test_bad_labels_get_one_line_errors(tmp_path, text, message):
    path = tmp_path / ("labels.json" if text.startswith("{") else "labels.csv")
    path.write_text(text)
    with pytest.raises(ReferenceError) as info:
        load_reference(path)
    assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)


def test_quote_coverage_rule():
    chunk_a = "Our people are central to our success. We offer training, benefits and a wellbeing program."
    chunk_b = "In fiscal 2024 we reduced Scope 1 and 2 emissions by 60% compared with 2015, and we plan"
    chunk_c = "to reach carbon neutrality across our supply chain by 2030 through renewable electricity."
    # a normalised substring of one chunk (case, curly quotes, punctuation do not matter)
    assert quote_covered("our People are central to our success", [chunk_a])
    assert quote_covered("We offer training benefits and a wellbeing program", [chunk_a])
    # a quote cut across two chunks: >= 80% of its words lie in 5-grams found in the chunks
    across = "compared with 2015, and we plan to reach carbon neutrality across our supply chain by 2030"
    assert not any(normalize(across) in normalize(c) for c in (chunk_b, chunk_c))
    assert quote_covered(across, [chunk_b, chunk_c])
    assert not quote_covered(across, [chunk_b])
    # short quotes must be substrings; unrelated text is not covered
    assert quote_covered("training", [chunk_a]) and not quote_covered("pay equity", [chunk_a])
    assert not quote_covered("We expect revenue growth to accelerate in fiscal 2025.", [chunk_a, chunk_b])
    assert not quote_covered("", [chunk_a])


# --------------------------------------------------------------------------- in a suite run

TARGETS = [
    Target("f-aapl-2019", "Apple Inc.", "AAPL", "320193", 2019, "hash-aapl-2019"),
    Target("f-aapl-2020", "Apple Inc.", "AAPL", "320193", 2020, "hash-aapl-2020"),
]
EVIDENCE = [
    EvidenceItem("c1", "We aim for carbon neutrality across our supply chain by 2030 and invest in R&D.", "1", "Item 1"),
    EvidenceItem("c2", "Our people are central to our success; we offer training and benefits.", "1", "Item 1"),
]
TEXTS = {e.chunk_id: e.text for e in EVIDENCE}


def gather(prompt, target):
    return list(EVIDENCE)


def _scripted(messages):
    """The fake model answers 2 for environment and people, 0 for innovation (direct JSON)."""
    text = " ".join(str(m.content) for m in messages).lower()
    score = 0 if "innovation" in text else 2
    return json.dumps({"score": score, "rationale": "scripted", "quotes": ["carbon neutrality"]})


LABELS = [
    {"file": "AAPL 2019", "category": "environment", "score": 2, "evidence": ["carbon neutrality across our supply chain"]},
    {"file": "AAPL 2019", "category": "people", "score": 2, "borderline": True,
     "evidence": ["Our people are central to our success", "We pay every employee a living wage in 40 countries."]},
    {"file": "AAPL 2019", "category": "innovation", "score": 2},
    {"file": "AAPL 2020", "category": "environment", "score": 1, "borderline": True},
    {"file": "AAPL 2020", "category": "people", "score": 2},
    {"file": "AAPL 2020", "category": "innovation", "score": 0},
    {"file": "NVDA 2023", "category": "people", "score": 2},
]


def _suite(tmp_path, **thresholds):
    (tmp_path / "labels.json").write_text(json.dumps({"labels": LABELS}))
    return parse_suite({"name": "ref", "filings": [{"ticker": "AAPL", "years": "2019-2020"}],
                        "categories": ["environment", "people", "innovation"], "models": ["fake:ref"],
                        "prompt_versions": ["v1"], "reference": str(tmp_path / "labels.json"),
                        "n_boot": 50, "n_boot_slow": 10, "thresholds": thresholds})


def test_suite_reports_agreement_with_reference_labels(tmp_path):
    register_script("ref", func=_scripted)
    suite = _suite(tmp_path, min_reference_exact=0.6, min_reference_kappa=0.0, min_evidence_recall=0.5)
    out = tmp_path / "report"
    result = run_eval_suite(suite, out, store=Store(tmp_path / "r.db"), gather=gather, targets=TARGETS,
                       chunk_text=lambda ids: {i: TEXTS[i] for i in ids})
    ref = result.reference
    assert (ref["labels"], ref["matched"], ref["borderline"]) == (7, 6, 2)
    assert ref["unmatched"] == ["NVDA 2023 · people"]
    got = ref["raters"]["fake:ref@v1"]
    # ratings: env 2, people 2, innovation 0 for both years; labels: 2,2,2 / 1,2,0 -> 4 of 6 exact
    assert got["overall"]["exact_agreement"]["estimate"] == pytest.approx(4 / 6)
    assert got["overall"]["within_one"]["estimate"] == pytest.approx(5 / 6)
    assert got["overall"]["kappa_quadratic"]["estimate"] is not None
    assert got["overall"]["exact_agreement"]["ci_low"] <= 4 / 6 <= got["overall"]["exact_agreement"]["ci_high"]
    assert got["confusion"] == [[1, 0, 0], [0, 0, 1], [1, 0, 3]]
    assert got["by_category"]["innovation"]["exact_agreement"]["estimate"] == pytest.approx(0.5)
    assert got["by_label"]["borderline"]["exact_agreement"]["estimate"] == pytest.approx(0.5)
    assert got["by_label"]["clear"]["exact_agreement"]["estimate"] == pytest.approx(0.75)
    # 3 quotes on the labelled cells; two are in the shown evidence, the living wage one is not
    recall = got["evidence_recall"]
    assert (recall["shown"]["covered"], recall["shown"]["quotes"]) == (2, 3)
    assert recall["cited"]["covered"] == 1  # the rating cited c1 ("carbon neutrality") only
    assert [c.name for c in result.checks if c.name.startswith(("min_reference", "min_evidence"))] == [
        "min_reference_exact", "min_reference_kappa", "min_evidence_recall"]
    assert result.ok
    md = (out / "report.md").read_text()
    assert "## Agreement with the reference labels" in md and "plots/confusion.png" in md
    assert "Labels with no rated cell (1): NVDA 2023 · people" in md
    assert (out / "plots" / "confusion.png").stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["reference"]["matched"] == 6


def test_reference_thresholds_gate_the_exit_code(tmp_path, monkeypatch):
    from filinglens.cli import app

    register_script("ref", func=_scripted)
    suite = _suite(tmp_path, min_reference_exact=0.9)
    result = run_eval_suite(suite, None, store=Store(tmp_path / "r.db"), gather=gather, targets=TARGETS, write=False,
                       chunk_text=lambda ids: {i: TEXTS[i] for i in ids})
    [check] = result.checks
    assert not check.passed and check.value == pytest.approx(4 / 6) and check.scope == "fake:ref@v1 vs reference"

    import filinglens.evals.run as run_mod

    monkeypatch.setattr(run_mod, "resolve_suite_targets", lambda suite, progress=None, **kw: list(TARGETS))
    monkeypatch.setattr("filinglens.app.index_gatherer", lambda agent=None: gather)
    monkeypatch.setattr("filinglens.evals.reference.index_chunk_text", lambda ids: {i: TEXTS[i] for i in ids})
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({**suite.model_dump(mode="json", exclude={"path"}), "name": "gate"}))
    got = CliRunner().invoke(app, ["eval", "run", str(path), "--out", str(tmp_path / "out")])
    assert got.exit_code == 1, got.output
    assert "min_reference_exact" in got.output


def test_evidence_recall_is_not_available_without_chunk_texts(tmp_path):
    register_script("ref", func=_scripted)

    def broken(ids):
        raise RuntimeError("index is gone")

    result = run_eval_suite(_suite(tmp_path), None, store=Store(tmp_path / "r.db"), gather=gather, targets=TARGETS,
                       write=False, chunk_text=broken)
    recall = result.reference["raters"]["fake:ref@v1"]["evidence_recall"]["shown"]
    assert recall["estimate"] is None and "index is gone" in recall["reason"]


def test_a_missing_or_bad_reference_fails_before_rating(tmp_path):
    suite = parse_suite({"name": "x", "filings": [{"ticker": "AAPL"}], "reference": str(tmp_path / "none.json")})
    with pytest.raises(SuiteError, match="reference: no file"):
        run_eval_suite(suite, None, store=Store(tmp_path / "r.db"), gather=gather, targets=TARGETS, write=False)
    (tmp_path / "bad.csv").write_text("filing,category,score\nAAPL 2019,people,7\n")
    suite = parse_suite({"name": "x", "filings": [{"ticker": "AAPL"}], "reference": str(tmp_path / "bad.csv")})
    with pytest.raises(ReferenceError, match="score must be 0, 1 or 2"):
        run_eval_suite(suite, None, store=Store(tmp_path / "r.db"), gather=gather, targets=TARGETS, write=False)


def test_suite_without_filings_rates_the_files_the_labels_name(tmp_path, shared):
    from filinglens.evals.run import resolve_suite_targets

    (tmp_path / "labels.csv").write_text(f"filing,category,score\n{AAPL},people,2\nnvda-10-k-fy2023.html,people,2\n")
    suite = parse_suite({"name": "x", "reference": str(tmp_path / "labels.csv")})
    seen = {}

    def resolve(paths=(), ticker=None, year=None, progress=None):
        seen["paths"] = list(paths)
        return [Target(f"f{i}", None, None, None, 2024, f"h{i}") for i, _ in enumerate(paths)]

    targets = resolve_suite_targets(suite, resolve=resolve)
    assert [p.name for p in seen["paths"]] == [AAPL, "nvda-10-k-fy2023.html"] and len(targets) == 2
