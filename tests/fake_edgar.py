"""A fake SEC EDGAR server on loopback, built from the shared 10-K filings.

It serves the same paths and JSON shapes as the real hosts (one server plays
both ``www.sec.gov`` and ``data.sec.gov``)::

    /files/company_tickers.json
    /submissions/CIK##########.json            (filings.recent + filings.files)
    /submissions/CIK##########-submissions-NNN.json
    /Archives/edgar/data/{int cik}/{accession without dashes}/{primaryDocument}

Companies come from ``shared/data/filings/html/*.html``: ticker and filing
date from the file name, CIK / name / period end from the iXBRL ``dei:``
facts (files without them, the pre-iXBRL ones, are left out).  Apple gets a
synthetic history around its real FY2024 10-K: older 10-Ks (in paginated
``files`` pages), a 10-K405, 10-K/A amendments, 8-Ks and a 10-Q, so filtering
and pagination can be tested.  Synthetic documents are small HTML pages.

Tests can inject failures per path (``fail``), read a per-path request count
(``hits``) and the arrival time of every request (``log``).

Usage::

    with FakeEdgar() as edgar:
        client = EdgarClient(edgar.url)

**Fault modes** (for tests and the reliability benchmark).  ``FAULT_MODES``
names every hostile or broken behaviour the fetch layer must survive;
``edgar.inject(mode)`` arms one against a target (default: Apple's FY2024
10-K, its submissions JSON and the ticker table) and returns its
``FaultMode``, whose ``expect`` says what a correct client does:

* ``"ok"``      the fetch succeeds (retries, Retry-After, normalisation);
* ``"error"``   one clear ``FetchError`` (CLI: one ``error:`` line, exit != 0);
* ``"invalid"`` the fetch completes but the target filing is not written and
  is reported in ``FetchReport.failed`` (CLI: a ``not fetched:`` line, exit 1).

In every mode nothing may be written outside the data home (``outside``:
paths the hostile values point at) and nothing may hang: time-based modes
assume a client with small limits, e.g. ``FILINGLENS_EDGAR_TIMEOUT=0.5``,
``FILINGLENS_EDGAR_DEADLINE=1``, ``FILINGLENS_EDGAR_TRIES=3``,
``FILINGLENS_EDGAR_MAX_BACKOFF=0.3`` (``CLIENT_LIMITS``).

``check_fault(mode, workdir)`` runs one in-process fetch (AAPL FY2024) against
an armed fake under ``CLIENT_LIMITS`` and classifies what happened; a
reliability benchmark is::

    with FakeEdgar() as edgar:
        for mode in FAULT_MODES:
            outcome = check_fault(mode, Path(tempfile.mkdtemp()), edgar)
            print(outcome.mode, outcome.expect, outcome.got, f"{outcome.seconds:.1f}s", outcome.passed)
"""

from __future__ import annotations

import gzip
import html
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional

FORM_COLUMNS = (
    "accessionNumber", "filingDate", "reportDate", "acceptanceDateTime", "act", "form",
    "fileNumber", "filmNumber", "items", "size", "isXBRL", "isInlineXBRL",
    "primaryDocument", "primaryDocDescription",
)


@dataclass
class FakeFiling:
    accession: str
    form: str
    filing_date: str
    report_date: str
    primary_document: str
    source: Optional[Path] = None  # a real shared filing, else ``body``
    body: bytes = b""

    def content(self) -> bytes:
        return self.source.read_bytes() if self.source else self.body


@dataclass
class FakeCompany:
    cik: int
    name: str
    tickers: list[str]
    filings: list[FakeFiling] = field(default_factory=list)
    recent_limit: int = 1000  # how many newest filings ``recent`` holds
    page_size: int = 1000

    @property
    def cik10(self) -> str:
        return f"{self.cik:010d}"

    def ordered(self) -> list[FakeFiling]:
        return sorted(self.filings, key=lambda f: (f.filing_date, f.accession), reverse=True)

    def pages(self) -> tuple[list[FakeFiling], list[list[FakeFiling]]]:
        ordered = self.ordered()
        recent, older = ordered[: self.recent_limit], ordered[self.recent_limit :]
        return recent, [older[i : i + self.page_size] for i in range(0, len(older), self.page_size)]

    def page_name(self, number: int) -> str:
        return f"CIK{self.cik10}-submissions-{number:03d}.json"


def _columns(filings: list[FakeFiling]) -> dict:
    cols: dict[str, list] = {name: [] for name in FORM_COLUMNS}
    for f in filings:
        size = len(f.body) if not f.source else f.source.stat().st_size
        ixbrl = f.source is not None
        values = {
            "accessionNumber": f.accession, "filingDate": f.filing_date, "reportDate": f.report_date,
            "acceptanceDateTime": f"{f.filing_date}T16:30:00.000Z", "act": "34", "form": f.form,
            "fileNumber": "001-00000", "filmNumber": "00000000", "items": "", "size": size,
            "isXBRL": int(ixbrl), "isInlineXBRL": int(ixbrl), "primaryDocument": f.primary_document,
            "primaryDocDescription": f.form,
        }
        for name in FORM_COLUMNS:
            cols[name].append(values[name])
    return cols


# --------------------------------------------------------------------------- building from shared/


def _dei(text: str, name: str) -> Optional[tuple[str, str]]:
    """(contextRef, text) of the first ``ix:nonNumeric name="dei:{name}"``."""
    for m in re.finditer(r"<ix:nonNumeric\b([^>]*)>(.*?)</ix:nonNumeric>", text, re.I | re.S):
        attrs = m.group(1)
        if re.search(r'\bname="dei:%s"' % name, attrs):
            ctx = re.search(r'contextRef="([^"]+)"', attrs)
            value = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", m.group(2))).split())
            return (ctx.group(1) if ctx else ""), value
    return None


def _period_end(text: str) -> Optional[str]:
    found = _dei(text, "DocumentPeriodEndDate")
    if not found:
        return None
    m = re.search(
        r'<(?:xbrli:)?context\b[^>]*\bid="%s".*?<(?:xbrli:)?endDate>([^<]+)<' % re.escape(found[0]), text, re.S
    )
    return m.group(1).strip() if m else None


def _synthetic(company: str, form: str, fiscal_year: str) -> bytes:
    return (
        f"<html><head><title>{html.escape(company)} {form}</title></head><body>"
        f"<p>FORM {form}</p><p>{html.escape(company)}: synthetic {form} for the period {fiscal_year}, "
        f"served by the FilingLens fake EDGAR.</p></body></html>"
    ).encode()


def build_companies(shared_dir: Path) -> dict[int, FakeCompany]:
    """Companies (by CIK) from the shared iXBRL filings, plus Apple's synthetic history."""
    companies: dict[int, FakeCompany] = {}
    counters: Counter = Counter()
    for path in sorted((shared_dir / "data" / "filings" / "html").glob("*.html")):
        m = re.match(r"([a-z0-9.]+)-10-k-(?:(\d{4}-\d{2}-\d{2})|fy(\d{4}))\.html$", path.name)
        if not m:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cik_fact, name_fact, period = _dei(text, "EntityCentralIndexKey"), _dei(text, "EntityRegistrantName"), _period_end(text)
        if not (cik_fact and cik_fact[1].isdigit() and period):
            continue
        ticker = m.group(1).upper()
        cik = int(cik_fact[1])
        filed = m.group(2) or (date.fromisoformat(period) + timedelta(days=30)).isoformat()
        company = companies.setdefault(cik, FakeCompany(cik, name_fact[1] if name_fact else ticker, [ticker]))
        counters[cik] += 1
        accession = f"{cik:010d}-{filed[2:4]}-{counters[cik]:06d}"
        if ticker == "AAPL":
            accession = "0000320193-24-000123"
        company.filings.append(
            FakeFiling(accession, "10-K", filed, period, f"{ticker.lower()}-{period.replace('-', '')}.htm", source=path)
        )
    apple = companies.get(320193)
    if apple:
        history = [  # form, filed, report date
            ("8-K", "2025-01-30", "2025-01-30"),
            ("10-K/A", "2025-01-15", "2024-09-28"),
            ("8-K", "2024-08-01", "2024-08-01"),
            ("10-Q", "2024-08-02", "2024-06-29"),
            ("10-K", "2023-11-03", "2023-09-30"),
            ("10-K", "2022-10-28", "2022-09-24"),
            ("10-K/A", "2022-01-14", "2021-09-25"),
            ("10-K", "2021-10-29", "2021-09-25"),
            ("10-K", "2020-10-30", "2020-09-26"),
            ("10-K", "2019-10-31", "2019-09-28"),
            ("10-K", "2018-11-05", "2018-09-29"),
            ("10-KSB", "2002-12-19", "2002-09-28"),  # never filed by Apple: tests the exclusion
            ("10-K405", "2001-12-21", "2001-09-29"),
        ]
        for n, (form, filed, period) in enumerate(history, start=1):
            accession = f"0000320193-{filed[2:4]}-{900000 + n:06d}"
            document = f"aapl-{period.replace('-', '')}{'x8k' if form == '8-K' else ''}.htm"
            apple.filings.append(
                FakeFiling(accession, form, filed, period, document, body=_synthetic(apple.name, form, period))
            )
        # recent: the newest 5 (8-K, 10-K/A, 8-K(08-01)... see ordering), older ones in pages of 4
        apple.recent_limit = 5
        apple.page_size = 4
    return companies


# --------------------------------------------------------------------------- failures


@dataclass
class Failure:
    """One injected misbehaviour for one request.

    kind: ``status`` (answer ``status``, with ``Retry-After: retry_after`` if
    set, and ``headers``), ``slow`` (wait ``delay`` seconds, then answer
    normally), ``truncate`` (announce the full Content-Length, send
    ``fraction`` of the body, close), ``trickle`` (send ``chunk`` bytes every
    ``interval`` seconds: of the body after normal headers with
    ``stage="body"``, of the headers themselves with ``stage="headers"``),
    ``body`` (answer 200 with ``body`` and ``headers`` instead of the real
    content), ``json`` (answer the real JSON passed through ``transform``).
    """

    kind: str
    status: int = 500
    retry_after: Optional[str] = None
    delay: float = 0.0
    fraction: float = 0.5
    interval: float = 0.1
    chunk: int = 1
    stage: str = "body"
    body: bytes = b""
    headers: Optional[dict] = None
    transform: Optional[Callable[[object], object]] = None


# --------------------------------------------------------------------------- named fault modes


@dataclass(frozen=True)
class FaultMode:
    """A named fault: what it does and what a correct client makes of it (``ok``/``error``/``invalid``)."""

    name: str
    expect: str
    description: str
    outside: tuple = ()  # paths hostile values point at (filled in by ``inject``)


_MODES = [
    ("429-retry-after", "ok", "the document answers 429 with Retry-After: 1 once, then the filing"),
    ("429-forever", "error", "submissions answer 429 with Retry-After: 3600 forever (bounded by the max backoff)"),
    ("retry-after-nan", "ok", "the document answers 429 with Retry-After: nan once"),
    ("500-then-ok", "ok", "submissions answer 500 twice, then normally"),
    ("500-forever", "error", "submissions answer 500 forever"),
    ("read-timeout", "error", "submissions accept the request and answer only after 10 s"),
    ("trickle-json", "error", "company_tickers.json trickles one byte every 0.1 s"),
    ("trickle-headers", "error", "submissions send their headers one byte every 0.1 s"),
    ("trickle-document", "error", "the document trickles one byte every 0.1 s"),
    ("truncated-document", "error", "the document is cut off half-way, every time"),
    ("bad-gzip", "error", "submissions claim gzip but send garbage"),
    ("redirect-loop", "error", "submissions redirect to themselves"),
    ("malformed-json-tickers", "error", "company_tickers.json is not JSON"),
    ("malformed-json-submissions", "error", "the submissions JSON is cut off"),
    ("deeply-nested-json", "error", "the submissions JSON nests 100,000 arrays"),
    ("tickers-not-object", "error", "company_tickers.json is a list"),
    ("tickers-bad-rows", "ok", "company_tickers.json has rows that are strings, lack cik_str or have a bad CIK"),
    ("tickers-no-usable-row", "error", "no company_tickers.json row has a ticker and a CIK"),
    ("submissions-not-object", "error", "the submissions JSON is a list"),
    ("recent-not-object", "error", "filings.recent is a string"),
    ("recent-unequal-columns", "error", "filings.recent.primaryDocument is one entry short"),
    ("recent-column-not-list", "error", "filings.recent.form is a string, not a list"),
    ("files-not-list", "error", "filings.files is an object"),
    ("accession-not-text", "invalid", "the target's accessionNumber is a number"),
    ("accession-path-traversal", "invalid", "the target's accessionNumber is ../../../escaped-accession"),
    ("accession-absolute", "invalid", "the target's accessionNumber is an absolute path"),
    ("accession-18-digits", "ok", "the target's accessionNumber has no dashes (normalised)"),
    ("document-path-traversal", "invalid", "the target's primaryDocument is ../../../escaped.htm"),
    ("document-absolute", "invalid", "the target's primaryDocument is an absolute path"),
    ("document-nul", "invalid", "the target's primaryDocument contains a NUL byte"),
    ("document-bad-extension", "invalid", "the target's primaryDocument is run.sh"),
    ("bad-report-date", "invalid", "the target's reportDate is 20x4-09-28"),
    ("bad-filing-date", "invalid", "the target's filingDate is 2024-13-45"),
    ("markup-in-values", "invalid", "the company name and the target's document name contain rich markup [/]"),
]
#: Every fault mode by name (see the module docstring).
FAULT_MODES: dict[str, FaultMode] = {name: FaultMode(name, expect, text) for name, expect, text in _MODES}

#: Client limits (environment) under which every fault mode ends within seconds.
CLIENT_LIMITS = {
    "FILINGLENS_EDGAR_TIMEOUT": "0.5",
    "FILINGLENS_EDGAR_DEADLINE": "1.0",
    "FILINGLENS_EDGAR_TRIES": "3",
    "FILINGLENS_EDGAR_BACKOFF": "0.01",
    "FILINGLENS_EDGAR_MAX_BACKOFF": "0.3",
}


def _recent_index(data: dict, accession: str) -> int:
    return data["filings"]["recent"]["accessionNumber"].index(accession)


def _set_recent(accession: str, column: str, value) -> Callable[[object], object]:
    """A ``json`` transform setting ``column`` of the row of ``accession`` in ``filings.recent``."""

    def transform(data):
        data["filings"]["recent"][column][_recent_index(data, accession)] = value
        return data

    return transform


def _edit(change: Callable[[dict], None]) -> Callable[[object], object]:
    def transform(data):
        change(data)
        return data

    return transform


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # clients hanging up are expected
        pass


class FakeEdgar:
    """The fake EDGAR: ``start()``/``stop()`` or use as a context manager; ``url`` is its base."""

    def __init__(self, shared_dir: Optional[Path] = None, companies: Optional[dict[int, FakeCompany]] = None):
        if companies is None:
            if shared_dir is None:
                from filinglens.settings import shared_dir as default_shared

                shared_dir = default_shared()
            companies = build_companies(Path(shared_dir))
        self.companies = companies
        self.hits: Counter = Counter()
        self.log: list[tuple[float, str]] = []  # (time.monotonic() at arrival, path)
        self.user_agents: list[str] = []
        self.gzip = True  # gzip bodies when the client accepts it, like EDGAR
        self.catch_all: Optional[bytes] = None  # a hostile mirror: answer any unknown path with this
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle
    def start(self) -> "FakeEdgar":
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeEdgar":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test helpers
    def reset(self) -> None:
        """Forget counts, log and pending failures."""
        with self._lock:
            self.hits.clear()
            self.log.clear()
            self.user_agents.clear()
            self._failures.clear()
            self.catch_all = None

    def fail(self, path: str, *failures: Failure, forever: bool = False) -> None:
        """Queue ``failures`` for the next requests to ``path`` (``forever``: repeat the last)."""
        with self._lock:
            queue = self._failures.setdefault(path, deque())
            queue.extend(failures)
            if forever:
                queue.append("forever")

    def _next_failure(self, path: str) -> Optional[Failure]:
        with self._lock:
            queue = self._failures.get(path)
            if not queue:
                return None
            item = queue.popleft()
            if queue and queue[0] == "forever":
                queue.appendleft(item)
            return item

    def inject(self, mode: str, ticker: str = "AAPL", fiscal_year: int = 2024,
               outside: Optional[Path] = None) -> FaultMode:
        """Arm the fault ``mode`` (a key of ``FAULT_MODES``) against ``ticker``'s 10-K for ``fiscal_year``.

        ``outside`` is a folder outside the data home that absolute hostile
        paths point into (default: a fresh name in the system temp folder);
        the returned ``FaultMode.outside`` lists what must not appear.
        """
        if mode not in FAULT_MODES:
            raise KeyError(f"unknown fault mode {mode!r}; known: {', '.join(FAULT_MODES)}")
        company = self.company(ticker)
        filing = next(f for f in company.filings if f.form == "10-K" and f.report_date.startswith(str(fiscal_year)))
        tickers, submissions = "/files/company_tickers.json", f"/submissions/CIK{company.cik10}.json"
        document = self.document_path(company.cik, filing)
        if outside is None:
            outside = Path(tempfile.gettempdir()) / f"filinglens-fake-edgar-{id(self):x}-{time.monotonic_ns()}"
        acc, fail = filing.accession, self.fail
        hostile: list[Path] = []
        if mode == "429-retry-after":
            fail(document, Failure("status", status=429, retry_after="1"))
        elif mode == "429-forever":
            fail(submissions, Failure("status", status=429, retry_after="3600"), forever=True)
        elif mode == "retry-after-nan":
            fail(document, Failure("status", status=429, retry_after="nan"))
        elif mode == "500-then-ok":
            fail(submissions, Failure("status", status=500), Failure("status", status=500))
        elif mode == "500-forever":
            fail(submissions, Failure("status", status=500), forever=True)
        elif mode == "read-timeout":
            fail(submissions, Failure("slow", delay=10.0), forever=True)
        elif mode == "trickle-json":
            fail(tickers, Failure("trickle", stage="body"), forever=True)
        elif mode == "trickle-headers":
            fail(submissions, Failure("trickle", stage="headers"), forever=True)
        elif mode == "trickle-document":
            fail(document, Failure("trickle", stage="body"), forever=True)
        elif mode == "truncated-document":
            fail(document, Failure("truncate", fraction=0.5), forever=True)
        elif mode == "bad-gzip":
            fail(submissions, Failure("body", body=b"\x1f\x8bnot really gzip" * 10,
                                      headers={"Content-Encoding": "gzip"}), forever=True)
        elif mode == "redirect-loop":
            fail(submissions, Failure("status", status=302, headers={"Location": submissions}), forever=True)
        elif mode == "malformed-json-tickers":
            fail(tickers, Failure("body", body=b"<html>Rate limited</html>"), forever=True)
        elif mode == "malformed-json-submissions":
            fail(submissions, Failure("body", body=b'{"cik": "320193", "filings": {"recent": {'), forever=True)
        elif mode == "deeply-nested-json":
            fail(submissions, Failure("body", body=b"[" * 100_000 + b"]" * 100_000), forever=True)
        elif mode == "tickers-not-object":
            fail(tickers, Failure("json", transform=lambda data: list(data.values())), forever=True)
        elif mode == "tickers-bad-rows":
            def bad_rows(data):
                rows = {"0": "AAPL", "1": {"ticker": ticker}, "2": {"ticker": ticker, "cik_str": "../../x"},
                        "3": {"ticker": 7, "cik_str": company.cik}, "4": None}
                return {**rows, **{str(int(k) + 5): v for k, v in data.items()}}

            fail(tickers, Failure("json", transform=bad_rows), forever=True)
        elif mode == "tickers-no-usable-row":
            fail(tickers, Failure("json", transform=lambda data: {k: {"ticker": v["ticker"]} for k, v in data.items()}),
                 forever=True)
        elif mode == "submissions-not-object":
            fail(submissions, Failure("json", transform=lambda data: [data]), forever=True)
        elif mode == "recent-not-object":
            fail(submissions, Failure("json", transform=_edit(lambda d: d["filings"].update(recent="oops"))),
                 forever=True)
        elif mode == "recent-unequal-columns":
            fail(submissions, Failure("json", transform=_edit(
                lambda d: d["filings"]["recent"]["primaryDocument"].pop())), forever=True)
        elif mode == "recent-column-not-list":
            fail(submissions, Failure("json", transform=_edit(
                lambda d: d["filings"]["recent"].update(form="10-K"))), forever=True)
        elif mode == "files-not-list":
            fail(submissions, Failure("json", transform=_edit(lambda d: d["filings"].update(files={"name": "x"}))),
                 forever=True)
        elif mode == "accession-not-text":
            fail(submissions, Failure("json", transform=_set_recent(acc, "accessionNumber", 32019324000123)),
                 forever=True)
        elif mode == "accession-path-traversal":
            self.catch_all = b"<html><body>hostile mirror</body></html>"
            fail(submissions, Failure("json", transform=_set_recent(acc, "accessionNumber", "../../../escaped-accession")),
                 forever=True)
        elif mode == "accession-absolute":
            self.catch_all = b"<html><body>hostile mirror</body></html>"
            hostile.append(outside / "escaped-accession")
            fail(submissions, Failure("json", transform=_set_recent(acc, "accessionNumber", str(hostile[-1]))),
                 forever=True)
        elif mode == "accession-18-digits":
            fail(submissions, Failure("json", transform=_set_recent(acc, "accessionNumber", acc.replace("-", ""))),
                 forever=True)
        elif mode == "document-path-traversal":
            self.catch_all = b"<html><body>hostile mirror</body></html>"
            fail(submissions, Failure("json", transform=_set_recent(acc, "primaryDocument", "../../../escaped.htm")),
                 forever=True)
        elif mode == "document-absolute":
            self.catch_all = b"<html><body>hostile mirror</body></html>"
            hostile.append(outside / "escaped.htm")
            fail(submissions, Failure("json", transform=_set_recent(acc, "primaryDocument", str(hostile[-1]))),
                 forever=True)
        elif mode == "document-nul":
            fail(submissions, Failure("json", transform=_set_recent(acc, "primaryDocument", "aapl\x00.htm")),
                 forever=True)
        elif mode == "document-bad-extension":
            fail(submissions, Failure("json", transform=_set_recent(acc, "primaryDocument", "run.sh")), forever=True)
        elif mode == "bad-report-date":
            fail(submissions, Failure("json", transform=_set_recent(acc, "reportDate", "20x4-09-28")), forever=True)
        elif mode == "bad-filing-date":
            fail(submissions, Failure("json", transform=_set_recent(acc, "filingDate", "2024-13-45")), forever=True)
        elif mode == "markup-in-values":
            def markup(data):
                data["name"] = "[/][bold]Evil[/bold] \x1b[31mCorp"
                data["filings"]["recent"]["primaryDocument"][_recent_index(data, acc)] = "[/]x.htm"
                return data

            fail(submissions, Failure("json", transform=markup), forever=True)
        m = FAULT_MODES[mode]
        return FaultMode(m.name, m.expect, m.description, tuple(hostile))

    def company(self, ticker: str) -> FakeCompany:
        for company in self.companies.values():
            if ticker.upper() in company.tickers:
                return company
        raise KeyError(ticker)

    def document_path(self, cik: int, filing: FakeFiling) -> str:
        return f"/Archives/edgar/data/{cik}/{filing.accession.replace('-', '')}/{filing.primary_document}"

    def document_hits(self) -> int:
        return sum(n for path, n in self.hits.items() if path.startswith("/Archives/"))

    # -- content
    def route(self, path: str) -> Optional[tuple[bytes, str]]:
        """(body, content type) for ``path``, or None for 404."""
        if path == "/files/company_tickers.json":
            table, i = {}, 0
            for company in sorted(self.companies.values(), key=lambda c: c.cik):
                for ticker in company.tickers:
                    table[str(i)] = {"cik_str": company.cik, "ticker": ticker, "title": company.name}
                    i += 1
            return json.dumps(table).encode(), "application/json"
        m = re.fullmatch(r"/submissions/CIK(\d{10})(?:-submissions-(\d{3}))?\.json", path)
        if m:
            company = self.companies.get(int(m.group(1)))
            if company is None:
                return None
            recent, pages = company.pages()
            if m.group(2):
                number = int(m.group(2))
                if not 1 <= number <= len(pages):
                    return None
                return json.dumps(_columns(pages[number - 1])).encode(), "application/json"
            data = {
                "cik": str(company.cik), "entityType": "operating", "sic": "0000", "sicDescription": "",
                "name": company.name, "tickers": company.tickers, "exchanges": ["Nasdaq"] * len(company.tickers),
                "fiscalYearEnd": "1231", "formerNames": [],
                "filings": {
                    "recent": _columns(recent),
                    "files": [
                        {"name": company.page_name(n), "filingCount": len(page),
                         "filingFrom": page[-1].filing_date, "filingTo": page[0].filing_date}
                        for n, page in enumerate(pages, start=1)
                    ],
                },
            }
            return json.dumps(data).encode(), "application/json"
        m = re.fullmatch(r"/Archives/edgar/data/(\d+)/(\d{18})/([^/]+)", path)
        if m:
            company = self.companies.get(int(m.group(1)))
            for filing in company.filings if company else []:
                if filing.accession.replace("-", "") == m.group(2) and filing.primary_document == m.group(3):
                    return filing.content(), "text/html"
        return None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "FakeEDGAR/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                arrived = time.monotonic()
                path = self.path.split("?", 1)[0]
                agent = self.headers.get("User-Agent", "")
                with fake._lock:
                    fake.hits[path] += 1
                    fake.log.append((arrived, path))
                    fake.user_agents.append(agent)
                try:
                    self._serve(path, agent)
                except (BrokenPipeError, ConnectionResetError, socket.timeout):
                    self.close_connection = True

            def _send(self, status: int, body: bytes, ctype: str = "text/plain", headers: Optional[dict] = None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _trickle(self, failure: Failure, body: bytes, ctype: str, headers: dict):
                """Send the answer ``failure.chunk`` bytes at a time (headers or body), then close."""
                head = ["HTTP/1.1 200 OK", f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                        *(f"{k}: {v}" for k, v in headers.items())]
                if failure.stage == "headers":
                    slow, fast = ("\r\n".join(head) + "\r\nX-Padding: " + "x" * 4096 + "\r\n\r\n").encode(), body
                    self.wfile.write(slow[:20])  # the status line begins at once
                    slow = slow[20:]
                else:
                    self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode())
                    slow, fast = body, b""
                self.wfile.flush()
                for i in range(0, len(slow), failure.chunk):
                    time.sleep(failure.interval)
                    self.wfile.write(slow[i : i + failure.chunk])
                    self.wfile.flush()
                self.wfile.write(fast)
                self.close_connection = True

            def _serve(self, path: str, agent: str):
                if not agent.strip():
                    self._send(403, b"Your Request Originates from an Undeclared Automated Tool")
                    return
                failure = fake._next_failure(path)
                if failure and failure.kind == "status":
                    extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                    extra.update(failure.headers or {})
                    self._send(failure.status, f"fake failure {failure.status}".encode(), headers=extra)
                    return
                if failure and failure.kind == "slow":
                    time.sleep(failure.delay)
                if failure and failure.kind == "body":
                    self._send(200, failure.body, "application/json", failure.headers)
                    return
                found = fake.route(path)
                if found is None and fake.catch_all is not None:
                    found = fake.catch_all, "text/html"
                if found is None:
                    self._send(404, b"Not Found")
                    return
                body, ctype = found
                if failure and failure.kind == "json":
                    body = json.dumps(failure.transform(json.loads(body))).encode()
                headers = {}
                if fake.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
                    body = gzip.compress(body, compresslevel=1)
                    headers["Content-Encoding"] = "gzip"
                if failure and failure.kind == "trickle":
                    self._trickle(failure, body, ctype, headers)
                    return
                if failure and failure.kind == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body[: int(len(body) * failure.fraction)])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                self._send(200, body, ctype, headers)

        return Handler


# --------------------------------------------------------------------------- benchmark helper


@dataclass
class FaultOutcome:
    """What one fetch made of a fault: ``got`` is ``ok``, ``error``, ``invalid`` or ``crash``."""

    mode: str
    expect: str
    got: str
    seconds: float
    message: str  # the error, or the first "not fetched" line
    escaped: list[str]  # paths written outside the data home (must be empty)

    @property
    def passed(self) -> bool:
        """The client did what the mode expects and wrote nothing outside the data home."""
        return self.got == self.expect and not self.escaped


def check_fault(mode: str, workdir: Path, edgar: Optional[FakeEdgar] = None,
                ticker: str = "AAPL", fiscal_year: int = 2024) -> FaultOutcome:
    """Fetch ``ticker``'s 10-K for ``fiscal_year`` from a fake armed with ``mode`` and classify it.

    ``workdir`` must be an empty folder: the data home is ``workdir/home``, and
    anything else appearing in ``workdir`` (or at the fault's ``outside``
    paths) counts as escaped.  Runs under ``CLIENT_LIMITS`` (the environment
    is restored afterwards); ``edgar`` is reused (and reset) when given.
    """
    from filinglens.errors import FilingLensError
    from filinglens.retrieval import edgar as fetch_layer

    own = edgar is None
    server = FakeEdgar().start() if own else edgar
    server.reset()
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {**CLIENT_LIMITS, "FILINGLENS_HOME": str(workdir / "home"),
                "SEC_USER_AGENT": os.environ.get("SEC_USER_AGENT") or "FilingLens fault check fault@example.com"}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    fault = server.inject(mode, ticker=ticker, fiscal_year=fiscal_year, outside=workdir / "outside")
    started = time.monotonic()
    try:
        report = fetch_layer.fetch_filings(ticker=ticker, years=fiscal_year, base_url=server.url)
        failed = getattr(report, "failed", [])  # older versions of the fetch layer have no ``failed``
        got = "invalid" if failed else "ok"
        message = failed[0].line() if failed else ""
    except FilingLensError as exc:
        got, message = "error", str(exc)
    except Exception as exc:  # what the fault suite exists to catch
        got, message = "crash", f"{type(exc).__name__}: {exc}"
    finally:
        seconds = time.monotonic() - started
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.reset()
        if own:
            server.stop()
    escaped = [str(p) for p in workdir.iterdir() if p.name != "home"]
    escaped += [str(p) for p in fault.outside if p.exists() and str(p) not in escaped]
    return FaultOutcome(mode, fault.expect, got, seconds, message, escaped)
