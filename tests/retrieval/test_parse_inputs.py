"""Input formats (SGML full submission, plain text) and bad input: clear errors, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from filinglens.cli import app
from filinglens.errors import InputError, NotA10KError
from filinglens.retrieval.parse import parse_filing

MEDICIS = "medicis-10-k-fy1999-0000950153-99-001234.html"
HEADER = """<SEC-DOCUMENT>0000950153-99-001234.txt : 19990928
<SEC-HEADER>0000950153-99-001234.hdr.sgml : 19990928
ACCESSION NUMBER:\t\t0000950153-99-001234
CONFORMED SUBMISSION TYPE:\t10-K
PUBLIC DOCUMENT COUNT:\t\t2
CONFORMED PERIOD OF REPORT:\t19990630
FILED AS OF DATE:\t\t19990928

FILER:

\tCOMPANY DATA:
\t\tCOMPANY CONFORMED NAME:\t\t\tMEDICIS PHARMACEUTICAL CORP
\t\tCENTRAL INDEX KEY:\t\t\t0000859368
</SEC-HEADER>
"""


def _submission(body: str, doc_type: str = "10-K") -> str:
    return (
        HEADER
        + f"<DOCUMENT>\n<TYPE>{doc_type}\n<SEQUENCE>1\n<FILENAME>doc.txt\n<TEXT>\n{body}\n</TEXT>\n</DOCUMENT>\n"
        + "<DOCUMENT>\n<TYPE>EX-27\n<SEQUENCE>2\n<TEXT>\nfinancial data schedule\n</TEXT>\n</DOCUMENT>\n</SEC-DOCUMENT>\n"
    )


def test_full_submission_wrapping_html_uses_header_metadata(shared, tmp_path):
    html = (shared / "filings" / "html" / MEDICIS).read_text(errors="replace")
    path = tmp_path / "0000950153-99-001234.txt"
    path.write_text(_submission(html))
    filing = parse_filing(path)
    direct = parse_filing(shared / "filings" / "html" / MEDICIS)
    assert filing.cik == "0000859368"
    assert filing.accession == "0000950153-99-001234"
    assert filing.period_end == "1999-06-30"
    assert {k: i.status for k, i in filing.items.items()} == {k: i.status for k, i in direct.items.items()}


def test_plain_text_10k_hard_wrapped_like_1990s_filings(shared, tmp_path):
    """Render a real filing as an old-style plain-text 10-K and parse it back."""
    direct = parse_filing(shared / "filings" / "html" / MEDICIS)
    lines = []
    for paragraph in direct.text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, 72) or [""])
        lines.append("")
    path = tmp_path / "medicis.txt"
    path.write_text(_submission("\n".join(lines)))
    filing = parse_filing(path)
    assert filing.source_type == "text"
    for key, item in direct.items.items():
        assert filing.items[key].status == item.status, key
        if item.status == "body":
            assert filing.items[key].text[:200] == item.text[:200]


def test_full_submission_without_a_10k_document_is_refused(tmp_path):
    path = tmp_path / "8k.txt"
    path.write_text(_submission("<html><body><p>Item 2.02 Results of Operations</p></body></html>", doc_type="8-K"))
    with pytest.raises(NotA10KError, match="8-K"):
        parse_filing(path)


def test_an_8k_html_is_refused_as_not_a_10k(tmp_path):
    path = tmp_path / "8k.html"
    path.write_text(
        "<html><body><p>UNITED STATES SECURITIES AND EXCHANGE COMMISSION</p><p>FORM 8-K</p>"
        "<p>CURRENT REPORT</p><p>Item 2.02 Results of Operations and Financial Condition.</p></body></html>"
    )
    with pytest.raises(NotA10KError, match="8-K"):
        parse_filing(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.html", b"", "empty"),
        ("junk.bin", bytes(range(256)) * 400, "binary"),
        ("latin.html", ("<html><body>" + "caf\xe9 " * 10).encode("utf-16"), "binary"),
        ("truncated.html", b"<html><body><div><p>UNITED STATES SECURITIES AND EXCH", "no 10-K items"),
        ("notes.html", b"<html><body><p>Hello world</p></body></html>", "no 10-K items"),
    ],
)
def test_bad_input_gets_a_specific_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        parse_filing(path)


def test_truncated_real_filing_keeps_what_is_there(shared, tmp_path):
    data = (shared / "filings" / "html" / "aapl-10-k-2024-11-01.html").read_bytes()
    path = tmp_path / "aapl-cut.html"
    path.write_bytes(data[: len(data) // 3])
    filing = parse_filing(path)
    assert filing.items["1"].status == "body"
    assert filing.items["15"].status == "absent"


def test_undecodable_bytes_are_an_error(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(("ITEM 1. BUSINESS ".encode() + bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 2000))
    with pytest.raises(InputError, match="undecodable"):
        parse_filing(path)


def test_a_100_mb_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.html"
    with open(path, "wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    with pytest.raises(InputError, match="larger than"):
        parse_filing(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        parse_filing(tmp_path / "nope.html")
    with pytest.raises(InputError, match="directory"):
        parse_filing(tmp_path)


# ----------------------------------------------------------------------------- CLI


def test_sections_json_has_metadata_and_items(shared):
    result = CliRunner().invoke(app, ["sections", str(shared / "filings" / "html" / "nvda-10-k-2025-02-26.html"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["filing"]["cik"] == "0001045810"
    assert data["filing"]["fiscal_year"] == 2025
    assert data["items"]["1A"]["status"] == "body"
    assert data["items"]["1A"]["title"].upper() == "RISK FACTORS"
    assert len(data["items"]["1A"]["text"]) > 50000


def test_sections_table(shared):
    result = CliRunner().invoke(app, ["sections", str(shared / "filings" / "html" / "ko-10-k-2025-02-20.html")])
    assert result.exit_code == 0, result.output
    assert "1A" in result.stdout and "body" in result.stdout and "tokens" in result.stdout


def test_cli_bad_input_exits_nonzero_without_traceback(tmp_path):
    home = tmp_path / "home"
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    env = dict(os.environ, FILINGLENS_HOME=str(home))
    proc = subprocess.run(
        [sys.executable, "-m", "filinglens.cli", "sections", str(empty)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0
    assert "empty" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not home.exists() or not any(p.is_file() for p in home.rglob("*"))
