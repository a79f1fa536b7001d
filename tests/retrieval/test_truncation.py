"""Truncated 10-Ks are detected (issue 8, defect 2); complete ones never are.

Cut-off copies of real shared filings are made in the test's tmp dir; the
complete shared filings (all 27 HTML, a sample of the PDFs chosen for their
quirks) must not be flagged.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from filinglens.cli import app
from filinglens.errors import TruncatedFilingError
from filinglens.retrieval.parse import parse_bytes, parse_filing

AAPL = "aapl-10-k-2024-11-01.html"
MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"
# PDFs with the quirks a detector could trip on: the largest last Item (Item 15 with the
# statements, 33% of the text), signatures early with statements after them (PepsiCo,
# Walmart, CVS), no "duly caused" sentence (Corning, Pfizer), Item 15 as last Item (3M 2015, AMD).
PDF_SAMPLE = ["NETFLIX_2015_10K.pdf", "PEPSICO_2022_10K.pdf", "CORNING_2022_10K.pdf", "PFIZER_2021_10K.pdf",
              "3M_2015_10K.pdf", "AMD_2015_10K.pdf", "WALMART_2018_10K.pdf", "CVSHEALTH_2018_10K.pdf"]


def _plain_text(filing) -> bytes:
    """A real filing rendered as an old-style hard-wrapped plain-text 10-K (no closing structure)."""
    lines = []
    for paragraph in filing.text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, 72) or [""])
        lines.append("")
    return "\n".join(lines).encode()


def test_no_complete_shared_html_10k_is_flagged_truncated(shared, parsed):
    names = sorted(p.name for p in (shared / "filings" / "html").glob("*.html"))
    assert len(names) == 27
    flagged = {n: parsed(f"html/{n}").warnings for n in names if parsed(f"html/{n}").truncated or parsed(f"html/{n}").warnings}
    assert flagged == {}


@pytest.mark.parametrize("name", PDF_SAMPLE)
def test_complete_shared_pdf_is_not_flagged_truncated(parsed, name):
    filing = parsed(f"pdf/{name}")
    assert not filing.truncated and filing.warnings == []


@pytest.mark.parametrize("name", [MEDICIS, "gainsco-10-k-fy2009-0001193125-10-073212.html",
                                  "commonwealth-fund-v-10-k-fy2015-0001376474-16-000635.html",
                                  "nflx-10-k-2025-01-27.html", "ibm-10-k-2025-02-25.html"])
def test_complete_plain_text_rendering_of_old_and_quirky_filings_is_not_flagged(parsed, name):
    """Without closing structure only the structure speaks: old numbering, statements after the
    signatures and items incorporated by reference must not look cut off."""
    filing = parse_bytes(_plain_text(parsed(f"html/{name}")), source=f"{name}.txt")
    assert filing.source_type == "text"
    assert not filing.truncated, filing.warnings


def test_first_30_percent_of_a_real_html_10k_is_flagged_truncated(shared, tmp_path):
    data = (shared / "filings" / "html" / AAPL).read_bytes()
    path = tmp_path / "aapl-cut.html"
    path.write_bytes(data[: len(data) * 3 // 10])
    filing = parse_filing(path)
    assert filing.truncated
    assert "ends without </body> or </html>" in filing.warnings[0]
    assert any("no SIGNATURES" in w for w in filing.warnings)
    assert filing.items["1"].status == "body" and filing.items["15"].status == "absent"


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7])
def test_truncated_plain_text_10k_is_flagged_by_its_structure(parsed, fraction):
    """No closing tags to miss: the missing signatures and Items (or the table of contents
    swallowing the text) give it away."""
    text = _plain_text(parsed(f"html/{AAPL}"))
    filing = parse_bytes(text[: int(len(text) * fraction)], source="aapl-cut.txt")
    assert filing.truncated, filing.warnings
    assert any("no SIGNATURES" in w for w in filing.warnings)


def test_truncated_plain_text_10k_names_the_items_absent_after_the_last_one_found(parsed):
    text = _plain_text(parsed(f"html/{MEDICIS}"))
    filing = parse_bytes(text[: int(len(text) * 0.3)], source="medicis-cut.txt")
    assert filing.truncated
    assert any("absent after the last Item found" in w for w in filing.warnings), filing.warnings


def test_truncated_full_submission_is_flagged_by_its_missing_document_end(shared, tmp_path):
    html = (shared / "filings" / "html" / MEDICIS).read_text(errors="replace")
    header = ("<SEC-DOCUMENT>0000950153-99-001234.txt : 19990928\n<SEC-HEADER>\nACCESSION NUMBER:\t0000950153-99-001234\n"
              "CONFORMED SUBMISSION TYPE:\t10-K\n</SEC-HEADER>\n<DOCUMENT>\n<TYPE>10-K\n<SEQUENCE>1\n<TEXT>\n")
    complete = header + html + "\n</TEXT>\n</DOCUMENT>\n</SEC-DOCUMENT>\n"
    assert not parse_bytes(complete.encode(), source="full.txt").truncated
    cut = (header + html)[: len(header) + len(html) * 2 // 3]
    filing = parse_bytes(cut.encode(), source="cut.txt")
    assert filing.truncated
    assert any("</DOCUMENT>" in w for w in filing.warnings)


def test_sections_shows_the_truncation_warning(shared, tmp_path):
    data = (shared / "filings" / "html" / AAPL).read_bytes()
    path = tmp_path / "aapl-cut.html"
    path.write_bytes(data[: len(data) * 3 // 10])
    table = CliRunner().invoke(app, ["sections", str(path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "looks truncated" in table.stdout and "</html>" in table.stdout
    as_json = CliRunner().invoke(app, ["sections", str(path), "--json"])
    meta = json.loads(as_json.stdout)["filing"]
    assert meta["truncated"] is True and any("no SIGNATURES" in w for w in meta["warnings"])


def test_ingest_refuses_a_truncated_filing_with_one_line_error(shared, tmp_path, monkeypatch):
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    data = (shared / "filings" / "html" / MEDICIS).read_bytes()
    path = tmp_path / "medicis-cut.html"
    path.write_bytes(data[: len(data) * 3 // 10])
    result = CliRunner().invoke(app, ["ingest", str(path), "--json"])
    assert result.exit_code == 1
    [row] = json.loads(result.stdout)
    assert row["status"] == "failed" and "looks truncated" in row["error"] and "--allow-truncated" in row["error"]
    assert "\n" not in row["error"] and "Traceback" not in result.output
    assert "1 file: 1 failed" in result.stderr

    from filinglens.retrieval.ingest import ingest_file
    from filinglens.retrieval.index import open_store

    with pytest.raises(TruncatedFilingError, match="looks truncated"):
        ingest_file(path)
    assert open_store().count() == 0  # nothing half-indexed


def test_ingest_allow_truncated_records_the_warning_in_chunk_and_manifest_metadata(shared, tmp_path, monkeypatch):
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    data = (shared / "filings" / "html" / MEDICIS).read_bytes()
    path = tmp_path / "medicis-cut.html"
    path.write_bytes(data[: len(data) * 3 // 10])
    result = CliRunner().invoke(app, ["ingest", str(path), "--allow-truncated", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert row["status"] == "indexed" and row["warnings"] and "warning" in result.stderr and "</html>" in result.stderr

    from filinglens.retrieval.index import open_store

    store = open_store()
    manifest = store.manifest(row["filing_id"])
    assert manifest["filing"]["truncated"] is True and manifest["filing"]["warnings"] == row["warnings"]
    metas = store.collection.get(where={"filing_id": row["filing_id"]}, include=["metadatas"])["metadatas"]
    assert metas and all(m["truncated"] is True and "</html>" in m["warnings"] for m in metas)

    again = CliRunner().invoke(app, ["ingest", str(path), "--json"])  # already indexed: unchanged, warning kept
    [row2] = json.loads(again.stdout)
    assert again.exit_code == 0 and row2["status"] == "unchanged" and row2["warnings"] == row["warnings"]
