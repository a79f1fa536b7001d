"""Bad input found by the probe of issue 8: corrupted PDFs, batches with bad files, chunk sizes, Ctrl-C.

Corrupted files are made from real shared filings inside each test's tmp dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from filinglens.cli import app
from filinglens.errors import InputError
from filinglens.retrieval.parse import parse_filing

SMALL_PDF = "NETFLIX_2015_10K.pdf"  # the smallest shared PDF (0.6 MB, 72 pages)
MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"  # the smallest shared HTML 10-K


def _flipped(data: bytes, start: int, length: int = 4000) -> bytes:
    out = bytearray(data)
    for i in range(start, start + length):
        out[i] ^= 0xFF
    return bytes(out)


@pytest.fixture
def pdf_bytes(shared) -> bytes:
    return (shared / "filings" / "pdf" / SMALL_PDF).read_bytes()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- corrupted PDFs (defect 1)


def test_pdf_with_bytes_flipped_mid_file_reports_the_damaged_page(pdf_bytes, tmp_path):
    """pdfium cannot load one page: the rest is read and the filing says what is missing."""
    path = tmp_path / "flipped.pdf"
    path.write_bytes(_flipped(pdf_bytes, len(pdf_bytes) // 2 - 2000))
    filing = parse_filing(path)
    assert filing.truncated
    assert filing.warnings == ["damaged PDF: 1 of 72 pages could not be read (page 17); their text is missing"]
    assert filing.items["1A"].status == "body"


def test_truncated_pdf_is_a_clear_error(pdf_bytes, tmp_path):
    path = tmp_path / "cut.pdf"
    path.write_bytes(pdf_bytes[: len(pdf_bytes) * 3 // 10])
    with pytest.raises(InputError, match=r"not a readable PDF .*no %%EOF end marker"):
        parse_filing(path)


def test_pdf_header_followed_by_junk_is_a_clear_error(tmp_path):
    import random

    rng = random.Random(8)
    path = tmp_path / "junk.pdf"
    path.write_bytes(b"%PDF-1.4\n" + bytes(rng.getrandbits(8) for _ in range(50_000)))
    with pytest.raises(InputError, match="not a readable PDF"):
        parse_filing(path)


def test_pdf_whose_pages_are_all_unreadable_is_a_clear_error(pdf_bytes, tmp_path, monkeypatch):
    import pypdfium2 as pdfium

    def broken(self, index):
        raise pdfium.PdfiumError("Failed to load page.")

    monkeypatch.setattr(pdfium.PdfDocument, "__getitem__", broken)
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf_bytes)
    with pytest.raises(InputError, match="none of its 72 pages can be read"):
        parse_filing(path)


@pytest.mark.parametrize("case", ["truncated", "junk"])
def test_sections_on_a_corrupted_pdf_prints_one_line_and_exits_nonzero(pdf_bytes, tmp_path, case):
    path = tmp_path / f"{case}.pdf"
    path.write_bytes(pdf_bytes[: len(pdf_bytes) // 3] if case == "truncated" else b"%PDF-1.7\n" + b"\x8f junk" * 5000)
    result = CliRunner().invoke(app, ["sections", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    [line] = _lines(result.stderr)
    assert line.startswith("error:") and "not a readable PDF" in line


def test_one_bad_file_never_stops_a_batch(shared, pdf_bytes, tmp_path, monkeypatch):
    """Bad files sorted before a good one: every file gets a result, the good one is indexed."""
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a-flipped.pdf").write_bytes(_flipped(pdf_bytes, len(pdf_bytes) // 2 - 2000))
    (folder / "b-truncated.pdf").write_bytes(pdf_bytes[: len(pdf_bytes) * 3 // 10])
    (folder / "c-junk.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(20_000))
    (folder / "d-binary.html").write_bytes(bytes(range(256)) * 100)
    (folder / "e-empty.html").write_bytes(b"")
    good = (shared / "filings" / "html" / MEDICIS).read_bytes()
    (folder / "f-reader-bug.html").write_bytes(good)
    (folder / "z-medicis.html").write_bytes(good.replace(b"</BODY>", b"<!-- copy --></BODY>"))

    import filinglens.retrieval.parse as parse_module

    real_parse = parse_module.parse_filing

    def parse_with_a_bug(path, **kwargs):
        if str(path).endswith("f-reader-bug.html"):
            raise RuntimeError("a reader bug")
        return real_parse(path, **kwargs)

    monkeypatch.setattr(parse_module, "parse_filing", parse_with_a_bug)
    result = CliRunner().invoke(app, ["ingest", str(folder), "--json"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    rows = {os.path.basename(r["source"]): r for r in json.loads(result.stdout)}
    assert list(rows) == ["a-flipped.pdf", "b-truncated.pdf", "c-junk.pdf", "d-binary.html", "e-empty.html",
                          "f-reader-bug.html", "z-medicis.html"]
    assert rows["z-medicis.html"]["status"] == "indexed" and rows["z-medicis.html"]["chunks"] > 0
    failed = {name: r["error"] for name, r in rows.items() if r["status"] == "failed"}
    assert set(failed) == set(rows) - {"z-medicis.html"}
    assert all(error and "\n" not in error for error in failed.values())
    assert "damaged PDF" in failed["a-flipped.pdf"] and "--allow-truncated" in failed["a-flipped.pdf"]
    assert "%%EOF" in failed["b-truncated.pdf"]
    assert "binary" in failed["d-binary.html"] and "empty" in failed["e-empty.html"]
    assert "RuntimeError: a reader bug" in failed["f-reader-bug.html"]
    assert _lines(result.stderr)[-1] == "7 files: 1 indexed, 6 failed"


def test_ingest_table_ends_with_a_summary_line(shared, tmp_path, monkeypatch):
    monkeypatch.delenv("FILINGLENS_CHROMA_URL", raising=False)
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    result = CliRunner().invoke(app, ["ingest", str(empty)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert _lines(result.stdout)[-1] == "1 file: 1 failed"


# --------------------------------------------------------------------------- --chunk-chars (defect 3)


@pytest.mark.parametrize("value", ["50", "0", "199", "6001", "1000000", "-5"])
def test_ingest_chunk_chars_out_of_range_is_a_clear_error(shared, tmp_path, value):
    result = CliRunner().invoke(app, ["ingest", str(shared / "filings" / "html" / MEDICIS), "--chunk-chars", value])
    assert result.exit_code == 2, result.output
    [line] = _lines(result.stderr)
    assert "--chunk-chars must be between 200 and 6,000 characters" in line and value in line
    assert "Traceback" not in result.output
    home = os.environ["FILINGLENS_HOME"]
    assert not any(files for _, _, files in os.walk(home))  # refused before anything was opened or written


def test_ingest_chunk_chars_0_is_an_error_not_the_default(shared):
    from filinglens.retrieval.ingest import ingest

    with pytest.raises(InputError, match="not 0"):
        ingest([shared / "filings" / "html" / MEDICIS], chunk_chars=0)


@pytest.mark.parametrize("value", [200, 6000])
def test_ingest_chunk_chars_at_the_limits_is_accepted(value):
    from filinglens.retrieval.ingest import check_chunk_chars

    assert check_chunk_chars(value) == value


# --------------------------------------------------------------------------- Ctrl-C (defect 5)


@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0, 2.0])
def test_ctrl_c_during_ingest_prints_one_line_and_exits_130(shared, tmp_path, delay):
    """SIGINT while imports load or the filing is parsed/embedded: no traceback, exit 130 ("interrupted")."""
    env = dict(os.environ, FILINGLENS_HOME=str(tmp_path / "home"))
    env.pop("FILINGLENS_CHROMA_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "filinglens.cli", "ingest", str(shared / "filings" / "html" / MEDICIS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in err + out, err
    assert proc.returncode in (130, 0), (proc.returncode, err)
    if proc.returncode == 130:
        assert _lines(err)[-1] == "interrupted", err
        assert err.count("interrupted") == 1
