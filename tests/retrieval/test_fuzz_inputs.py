"""Fuzz ``parse_filing`` (issue 8): mutated real 10-Ks and hostile files end in a ``Filing`` or a
``FilingLensError`` -- never another exception, never a hang, never unbounded memory.

The generator and the worker-process runner are ``bench/fuzz_inputs.py`` (which runs the
same thing on more inputs and prints a table).  Below it, regression tests for what the
fuzzing found.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import time
from pathlib import Path

import pytest

from filinglens.retrieval.parse import parse_bytes

N_INPUTS = 80  # ~20-40 s on a busy 2-core machine
TIME_BOUND_S = 30.0  # per input; a worker that takes longer is killed and counted as a hang
MAX_RSS_MB = 1500  # peak resident memory of the worker for any one input


def _fuzz_module():
    path = Path(__file__).resolve().parents[2] / "bench" / "fuzz_inputs.py"
    spec = importlib.util.spec_from_file_location("filinglens_bench_fuzz_inputs", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
def test_parse_filing_on_mutated_and_hostile_inputs_returns_a_filing_or_a_clean_error(shared):
    fz = _fuzz_module()
    t0 = time.perf_counter()
    summary = fz.fuzz(shared, N_INPUTS, seed=fz.SEED, timeout=TIME_BOUND_S)
    row = summary.row()
    message = (f"{row['inputs tried']} inputs tried (seed {fz.SEED}, {time.perf_counter() - t0:.0f} s): {row}; "
               f"failures: {[(o.case.path.name, o.result, o.detail) for o in summary.bad]}")
    assert row["inputs tried"] == N_INPUTS, message
    assert summary.bad == [], message
    assert row["max RSS MB"] < MAX_RSS_MB, message
    kinds = {o.case.kind for o in summary.outcomes}
    assert {"empty", "huge-sparse", "binary-as-html", "random-bytes", "pdf-flip", "html-flip", "html-truncate",
            "many-headings"} <= kinds, message
    assert row["parsed ok"] > 0 and row["clean errors"] > 0, message
    huge = [o for o in summary.outcomes if o.case.kind == "huge-sparse"]
    assert all(o.result == "error" and "larger than" in o.detail and o.seconds < 1 for o in huge), message


def test_fuzz_generator_is_deterministic(shared, tmp_path):
    fz = _fuzz_module()

    def run(folder: Path) -> list[tuple[str, bytes]]:
        folder.mkdir()
        return [(c.kind, b"" if c.kind == "huge-sparse" else c.path.read_bytes()) for c in fz.generate(shared, 12, folder)]

    assert run(tmp_path / "a") == run(tmp_path / "b")


# --------------------------------------------------------------------------- what fuzzing found


def test_thousands_of_heading_lines_are_not_quadratic():
    """40,000 "Item N." paragraphs: choosing headings was O(n^2) (a hang of minutes); now linear."""
    heads = b"".join(b"<p>Item %d. Heading</p><p>Item 1A. Risk Factors text.</p>" % (1 + n % 16) for n in range(20_000))
    data = b"<html><body><p>FORM 10-K</p>" + heads + b"</body></html>"
    t0 = time.perf_counter()
    filing = parse_bytes(data, source="many-headings.html")
    assert time.perf_counter() - t0 < TIME_BOUND_S
    assert filing.items["1"].status != "absent"


def test_utf8_filing_with_one_damaged_byte_stays_utf8(parsed):
    """One bad byte used to switch the whole document to Windows-1252: every dash and curly
    quote garbled ("â€”"), or the file refused as undecodable.  Now the byte alone is replaced."""
    filing = parsed("html/medicis-10-k-fy1999-0000950153-99-001234.html")
    lines = []
    for paragraph in filing.text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, 72) or [""])
        lines.append("")
    data = bytearray("\n".join(lines).encode())
    assert "—".encode() in data
    data[len(data) // 2] = 0xFF
    damaged = parse_bytes(bytes(data), source="medicis.txt")
    assert "—" in damaged.text and "â€" not in damaged.text
    assert damaged.warnings == ["1 undecodable byte replaced by \ufffd (a damaged file?)"]
    assert not damaged.truncated
