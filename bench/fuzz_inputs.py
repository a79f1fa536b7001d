"""Fuzz ``parse_filing`` with mutated real 10-Ks and hostile files; count what happens.

Every input must end in a ``Filing`` or a ``FilingLensError`` -- never another
exception, never a hang, never unbounded memory.  Inputs come from a seeded
generator over real shared filings (the smallest HTML 10-K, its plain-text
rendering, the smallest PDF): byte flips, truncations at random points,
deleted and duplicated tag runs, line edits, random bytes, an empty file, a
100 MB sparse file, binary data named ``.html``, deep nesting, a long line
and thousands of item headings.

Each input is parsed in a worker process (this file with ``--worker``; peak
RSS reset per input through ``/proc/self/clear_refs``); a worker that does
not answer within the time bound is killed and the input counted as a hang,
one that dies is restarted and the input counted as a crash.

    .venv/bin/python bench/fuzz_inputs.py            # 500 inputs, seed 8
    .venv/bin/python bench/fuzz_inputs.py -n 200 --seed 1 --timeout 30

``tests/retrieval/test_fuzz_inputs.py`` runs the same generator on fewer inputs.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

SEED = 8
HTML_SEED = "medicis-10-k-fy1999-0000950153-99-001234.html"  # the smallest shared HTML 10-K (0.2 MB)
PDF_SEED = "NETFLIX_2015_10K.pdf"  # the smallest shared PDF (0.6 MB)
HUGE_BYTES = 100 * 2**20
OUT = Path(__file__).parent / "results" / "fuzz_inputs.json"

# (kind, weight): how often each mutation is drawn
KINDS = [
    ("html-flip", 10), ("html-truncate", 10), ("html-delete-tags", 8), ("html-duplicate-tags", 8),
    ("html-shuffle-lines", 3), ("text-flip", 5), ("text-truncate", 5), ("text-edit-lines", 5),
    ("pdf-flip", 3), ("pdf-truncate", 2), ("pdf-delete-range", 2), ("pdf-header-junk", 2),
    ("random-bytes", 3), ("random-text", 3), ("tag-soup", 4), ("empty", 1), ("huge-sparse", 1),
    ("binary-as-html", 2), ("deep-nesting", 1), ("long-line", 1), ("many-headings", 2),
]


@dataclass
class Case:
    """One generated input: what it is and where it was written."""

    n: int
    kind: str
    path: Path


@dataclass
class Outcome:
    """What parsing one input did."""

    case: Case
    result: str  # "ok", "error" (a FilingLensError), "other" (any other exception), "hang", "crash"
    seconds: float
    rss_mb: float | None = None
    detail: str = ""


@dataclass
class Summary:
    """Counts over all outcomes."""

    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    @property
    def bad(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result not in ("ok", "error")]

    def row(self) -> dict:
        seconds = [o.seconds for o in self.outcomes if o.result != "hang"]
        rss = [o.rss_mb for o in self.outcomes if o.rss_mb is not None]
        return {
            "inputs tried": len(self.outcomes),
            "parsed ok": self.count("ok"),
            "of which flagged truncated": sum(1 for o in self.outcomes if o.result == "ok" and "(truncated)" in o.detail),
            "clean errors": self.count("error"),
            "other exceptions": self.count("other") + self.count("crash"),
            "hangs": self.count("hang"),
            "max seconds": round(max(seconds, default=0.0), 2),
            "max RSS MB": round(max(rss, default=0.0)),
        }


# --------------------------------------------------------------------------- the generator


def seed_documents(shared: Path) -> dict[str, bytes]:
    """The real filings the mutations start from: HTML, its plain-text rendering, PDF."""
    from filinglens.retrieval.parse import parse_filing

    html_path = shared / "filings" / "html" / HTML_SEED
    lines = []
    for paragraph in parse_filing(html_path).text.split("\n"):
        lines.extend(textwrap.wrap(paragraph, 72) or [""])
        lines.append("")
    return {
        "html": html_path.read_bytes(),
        "text": "\n".join(lines).encode(),
        "pdf": (shared / "filings" / "pdf" / PDF_SEED).read_bytes(),
    }


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    if rng.random() < 0.5:  # scattered single bytes
        for _ in range(rng.randint(1, 200)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    else:  # one run of inverted bytes
        start, length = rng.randrange(len(out)), rng.randint(16, 20_000)
        for i in range(start, min(len(out), start + length)):
            out[i] ^= 0xFF
    return bytes(out)


def _tag_spans(data: bytes) -> list[int]:
    return [i for i in range(len(data)) if data[i] == 0x3C]  # "<"


def _delete_tags(rng: random.Random, data: bytes, starts: list[int]) -> bytes:
    for _ in range(rng.randint(1, 8)):
        a = rng.randrange(len(starts))
        b = min(len(starts) - 1, a + rng.randint(1, 300))
        lo, hi = starts[a], starts[b]
        data = data[:lo] + data[hi:]
        starts = [s if s < lo else s - (hi - lo) for s in starts if not lo <= s < hi]
        if len(starts) < 2:
            break
    return data


def _duplicate_tags(rng: random.Random, data: bytes, starts: list[int]) -> bytes:
    a = rng.randrange(len(starts))
    b = min(len(starts) - 1, a + rng.randint(1, 400))
    run = data[starts[a] : starts[b]]
    at = starts[rng.randrange(len(starts))]
    return data[:at] + run * rng.randint(2, 30) + data[at:]


def _edit_lines(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 40)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.4:
            del lines[i : i + rng.randint(1, 200)]
        elif op < 0.8:
            lines[i:i] = lines[i : i + rng.randint(1, 50)] * rng.randint(2, 10)
        else:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        if not lines:
            lines = [b""]
    return b"\n".join(lines)


_SOUP = [b"<p>", b"</p>", b"<div>", b"</div>", b"<table>", b"<tr>", b"<td>", b"</td>", b"</tr>", b"</table>",
         b"<br>", b"<b>", b"</b>", b"<font size=2>", b"<!-- PAGEBREAK -->", b"<span style='display:none'>",
         b"</span>", b"<ix:header>", b"</ix:header>", b"PART II", b"Item 7.", b"ITEM 1A. RISK FACTORS",
         b"Item 8. Financial Statements", b"SIGNATURES", b"FORM 10-K", b"None.", b"Not applicable.",
         b"incorporated by reference", b"&nbsp;", b"&#160;", b"<html>", b"</html>", b"<body>", b"</body>",
         "caf\u00e9 \u2014 \u201cquoted\u201d".encode(), b"\xff\xfe", b"\x00", b" ", b"\n"]


def generate(shared: Path, n: int, out_dir: Path, seed: int = SEED) -> Iterator[Case]:
    """``n`` inputs written under ``out_dir``, the same for the same seed."""
    rng = random.Random(seed)
    docs = seed_documents(shared)
    html_tags = _tag_spans(docs["html"])
    kinds, weights = zip(*KINDS)
    forced = ["empty", "huge-sparse", "binary-as-html", "random-bytes", "pdf-flip", "deep-nesting",
              "long-line", "many-headings"]  # every run has at least one of these
    for i in range(n):
        kind = forced[i] if i < len(forced) else rng.choices(kinds, weights)[0]
        suffix = ".pdf" if kind.startswith("pdf") else ".txt" if kind.startswith("text") else ".html"
        path = out_dir / f"{i:04d}-{kind}{suffix}"
        if kind == "huge-sparse":
            with open(path, "wb") as handle:
                handle.truncate(HUGE_BYTES)
            yield Case(i, kind, path)
            continue
        html, text, pdf = docs["html"], docs["text"], docs["pdf"]
        if kind == "html-flip":
            data = _flip(rng, html)
        elif kind == "html-truncate":
            data = html[: rng.randrange(len(html))]
        elif kind == "html-delete-tags":
            data = _delete_tags(rng, html, html_tags)
        elif kind == "html-duplicate-tags":
            data = _duplicate_tags(rng, html, html_tags)
        elif kind == "html-shuffle-lines":
            data = _edit_lines(rng, html)
        elif kind == "text-flip":
            data = _flip(rng, text)
        elif kind == "text-truncate":
            data = text[: rng.randrange(len(text))]
        elif kind == "text-edit-lines":
            data = _edit_lines(rng, text)
        elif kind == "pdf-flip":
            data = _flip(rng, pdf)
        elif kind == "pdf-truncate":
            data = pdf[: rng.randrange(len(pdf))]
        elif kind == "pdf-delete-range":
            a = rng.randrange(len(pdf))
            data = pdf[:a] + pdf[a + rng.randint(1, 50_000) :]
        elif kind == "pdf-header-junk":
            data = b"%PDF-1." + bytes([rng.randrange(48, 58)]) + rng.randbytes(rng.randint(0, 200_000))
        elif kind == "random-bytes":
            data = rng.randbytes(rng.randint(1, 300_000))
        elif kind == "random-text":
            alphabet = "abcdefghijklmnopqrstuvwxyz ITEM.0123456789\n<>/&;"
            data = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 100_000))).encode()
        elif kind == "tag-soup":
            data = b"".join(rng.choice(_SOUP) for _ in range(rng.randint(1, 20_000)))
        elif kind == "empty":
            data = b""
        elif kind == "binary-as-html":
            import gzip

            data = gzip.compress(html, mtime=0) if rng.random() < 0.5 else pdf[-200_000:]
        elif kind == "deep-nesting":
            depth = rng.randint(10_000, 200_000)
            data = (b"<html><body>" + b"<div><table><tr><td>" * (depth // 4) + b"Item 1. Business text."
                    + b"</td></tr></table></div>" * (depth // 4) + b"</body></html>")
        elif kind == "long-line":
            data = b"<html><body><p>Item 1. Business " + b"a" * rng.randint(1_000_000, 8_000_000) + b"</p></body></html>"
        elif kind == "many-headings":
            heads = b"".join(b"<p>Item %d. Heading</p><p>Item 1A. Risk Factors text.</p>" % rng.randint(1, 16)
                             for _ in range(rng.randint(2_000, 20_000)))
            data = b"<html><body><p>FORM 10-K</p>" + heads + b"</body></html>"
        else:  # pragma: no cover
            raise ValueError(kind)
        path.write_bytes(data)
        yield Case(i, kind, path)


# --------------------------------------------------------------------------- the runner


def worker() -> None:  # pragma: no cover - runs in the child
    """The worker loop: a path per stdin line in, one JSON line per input out."""

    from filinglens.errors import FilingLensError
    from filinglens.retrieval.parse import parse_filing

    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (Linux)
        except OSError:
            pass
        t0 = time.perf_counter()
        try:
            filing = parse_filing(path)
            result, detail = "ok", f"{len(filing.present_items())} items" + (" (truncated)" if filing.truncated else "")
        except FilingLensError as exc:
            result, detail = "error", f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # noqa: BLE001 - counting them is the point
            result, detail = "other", f"{type(exc).__name__}: {exc} | " + traceback.format_exc(limit=-3).replace("\n", " ")
        seconds = time.perf_counter() - t0
        sys.stdout.write(json.dumps([result, seconds, _peak_rss_mb(), detail[:800]]) + "\n")
        sys.stdout.flush()


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Runner:
    """Parses inputs one at a time in a worker process, replaced when it hangs or dies."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._fresh = False

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        self._fresh = True

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self._proc = None

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, case: Case) -> Outcome:
        import select

        if self._proc is None or self._proc.poll() is not None:
            self._start()
        t0 = time.perf_counter()
        try:
            self._proc.stdin.write(f"{case.path}\n")
            self._proc.stdin.flush()
        except OSError:
            self._stop()
            return Outcome(case, "crash", 0.0, detail="worker gone")
        wait = self.timeout + 30 if self._fresh else self.timeout  # a new worker first imports the parser
        self._fresh = False
        ready, _, _ = select.select([self._proc.stdout], [], [], wait)
        if not ready:
            self._stop()
            return Outcome(case, "hang", time.perf_counter() - t0, detail=f"no answer within {self.timeout:.0f} s")
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait(10)
            self._stop()
            return Outcome(case, "crash", time.perf_counter() - t0, detail=f"worker died (exit code {code})")
        result, seconds, rss, detail = json.loads(line)
        return Outcome(case, result, seconds, rss, detail)


def fuzz(shared: Path, n: int, *, seed: int = SEED, timeout: float = 20.0, progress=None) -> Summary:
    """Generate ``n`` inputs and parse each; the summary of their outcomes."""
    summary = Summary()
    with tempfile.TemporaryDirectory(prefix="filinglens-fuzz-") as tmp, Runner(timeout) as runner:
        for case in generate(shared, n, Path(tmp), seed):
            outcome = runner.run(case)
            summary.outcomes.append(outcome)
            case.path.unlink(missing_ok=True)
            if progress:
                progress(outcome)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=500, help="inputs to try (default 500)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one input may take before it is a hang")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    from rich.console import Console
    from rich.table import Table

    from filinglens.settings import shared_dir

    console = Console(stderr=True)
    t0 = time.perf_counter()

    def show(o: Outcome) -> None:
        if o.result not in ("ok", "error"):
            console.print(f"[red]{o.result}[/] {o.case.path.name}: {o.detail}", highlight=False, soft_wrap=True)

    summary = fuzz(shared_dir() / "data", args.n, seed=args.seed, timeout=args.timeout, progress=show)
    elapsed = time.perf_counter() - t0
    table = Table(title=f"parse_filing fuzz: seed {args.seed}, {elapsed:.0f} s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    row = summary.row()
    for key, value in row.items():
        table.add_row(key, str(value))
    by_kind = Table(title="by kind")
    for col in ("kind", "inputs", "ok", "flagged truncated", "errors", "other", "hangs", "max s"):
        by_kind.add_column(col, justify="right" if col != "kind" else "left")
    for kind, _ in KINDS:
        rows = [o for o in summary.outcomes if o.case.kind == kind]
        if rows:
            by_kind.add_row(kind, str(len(rows)), str(sum(o.result == "ok" for o in rows)),
                            str(sum(o.result == "ok" and "(truncated)" in o.detail for o in rows)),
                            str(sum(o.result == "error" for o in rows)),
                            str(sum(o.result in ("other", "crash") for o in rows)), str(sum(o.result == "hang" for o in rows)),
                            f"{max(o.seconds for o in rows):.2f}")
    out = Console(width=max(100, Console().width))
    out.print(table)
    out.print(by_kind)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "seed": args.seed, "inputs": args.n, "timeout_s": args.timeout, "seconds": round(elapsed, 1), "summary": row,
        "bad": [{"input": o.case.path.name, "result": o.result, "detail": o.detail} for o in summary.bad],
    }, indent=2))


if __name__ == "__main__":
    main()
