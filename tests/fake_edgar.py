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
"""

from __future__ import annotations

import gzip
import html
import json
import re
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

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
    set), ``slow`` (wait ``delay`` seconds, then answer normally), ``truncate``
    (announce the full Content-Length, send ``fraction`` of the body, close).
    """

    kind: str
    status: int = 500
    retry_after: Optional[str] = None
    delay: float = 0.0
    fraction: float = 0.5


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

            def _serve(self, path: str, agent: str):
                if not agent.strip():
                    self._send(403, b"Your Request Originates from an Undeclared Automated Tool")
                    return
                failure = fake._next_failure(path)
                if failure and failure.kind == "status":
                    extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                    self._send(failure.status, f"fake failure {failure.status}".encode(), headers=extra)
                    return
                if failure and failure.kind == "slow":
                    time.sleep(failure.delay)
                found = fake.route(path)
                if found is None:
                    self._send(404, b"Not Found")
                    return
                body, ctype = found
                headers = {}
                if fake.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
                    body = gzip.compress(body, compresslevel=1)
                    headers["Content-Encoding"] = "gzip"
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
