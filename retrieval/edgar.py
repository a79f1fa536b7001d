"""Fetch 10-K filings from SEC EDGAR into the data home.

``fetch_filings(ticker="AAPL", years="2019-2024")`` resolves the ticker to a
CIK, lists the company's annual reports, downloads each primary document and
stores it as::

    $FILINGLENS_HOME/filings/{CIK, 10 digits}/{accession}/{primaryDocument}
    $FILINGLENS_HOME/filings/{CIK, 10 digits}/{accession}/filing.json

Conventions (documented here because the rest of the project relies on them):

* **Forms.** Annual reports are ``10-K``, ``10-K405`` (until 2002), ``10-KT``
  and ``10-KT405`` (transition reports).  Amendments (``10-K/A`` ...) only
  with ``include_amendments=True``.  ``10-KSB`` (small businesses until 2009)
  is *not* included: it follows Regulation S-B, whose item numbering (Item 6
  = MD&A, Item 7 = financial statements) the 10-K section parser does not
  expect.  Any other form (8-K, 10-Q, ...) is never listed.
* **Fiscal year** of a filing = the calendar year of EDGAR's ``reportDate``
  (the period end).  For fiscal years ending in January/February this can
  differ from the company's own label (Home Depot's year ended 2025-02-02 is
  fiscal 2025 here, "fiscal 2024" in its report).  When EDGAR has no
  ``reportDate`` (some very old filings) the year is estimated from the
  filing date: filed January-June -> previous year, else the same year.
* **Already there** means ``filing.json`` exists and the document's sha256
  matches the one recorded in it.  The document is written first and the
  metadata last, both atomically, so an interrupted download is retried on
  the next run, never trusted.
* **Fair access** (https://www.sec.gov/os/accessing-edgar-data): every request
  carries the ``User-Agent`` from ``SEC_USER_AGENT``, a timeout, and goes
  through one process-wide rate limiter (at most 10 requests in any second).
  429 and 5xx answers, timeouts and broken transfers are retried with
  exponential backoff (``Retry-After`` is honoured up to the maximum backoff),
  a bounded number of times.
* **Deadlines.** Every attempt of every request (JSON look-ups and documents
  alike) has a whole-transfer deadline: connecting, the status line, the
  headers and the body must all arrive within it, so a server that trickles
  bytes just fast enough to dodge the per-read timeout is cut off.  A request
  therefore ends within about ``tries x (deadline + max backoff)``.
* **Nothing from the network is trusted.**  Before a value touches a path, a
  URL or the cache it is validated: accession numbers
  (``0000320193-24-000123``; the 18-digit form is normalised), CIKs (1-10
  digits), primary document names (a plain file name: no path separators, no
  ``..``, no control characters, at most 200 characters of ``A-Z a-z 0-9 .
  _ - ~ ( ) +``, extension ``.htm .html .xhtml .txt .xml .pdf``), forms and
  dates (ISO ``YYYY-MM-DD``), submissions page names.  A listed filing with an
  invalid value is not fetched; it is reported in ``FetchReport.failed`` with
  the reason.  JSON of the wrong shape (not an object, columns of unequal
  length or of the wrong type, malformed JSON) is a one-line ``FetchError``;
  bad rows of ``company_tickers.json`` are skipped and counted
  (``FetchReport.notes``), and only the validated table is cached.  The final
  path of every written file is checked to lie inside ``filings/``.

Configuration (environment):

``SEC_USER_AGENT``            required, e.g. ``"Jane Doe jane@example.com"``
``FILINGLENS_EDGAR_URL``      base of www.sec.gov (tickers, archives)
``FILINGLENS_EDGAR_DATA_URL`` base of data.sec.gov (submissions); defaults to
                              ``FILINGLENS_EDGAR_URL`` when only that is set
``FILINGLENS_EDGAR_TIMEOUT``  seconds for connecting and for each read (default 30)
``FILINGLENS_EDGAR_DEADLINE`` seconds for one whole transfer, headers and body
                              (default 10x the timeout, at least 300)
``FILINGLENS_EDGAR_TRIES``    attempts per request (default 5)
``FILINGLENS_EDGAR_BACKOFF``  first backoff delay in seconds (default 1, doubles)
``FILINGLENS_EDGAR_MAX_BACKOFF`` longest wait between tries, also caps
                              ``Retry-After`` (default 60)
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import random
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Optional

import httpcore
import httpx

from filinglens import settings
from filinglens.errors import ConfigError, FetchError, InputError, InvalidEdgarData
from filinglens.retrieval.structure import annual_forms
from filinglens.retrieval.filing import parse_years  # noqa: F401 - the one year parser, used here and re-exported

DEFAULT_WWW_URL = "https://www.sec.gov"
DEFAULT_DATA_URL = "https://data.sec.gov"

#: Annual-report forms fetched by default (see module docstring for 10-KSB).
ANNUAL_FORMS = annual_forms(fetched_only=True)  # from form10k.yaml
#: HTTP statuses worth retrying.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How long the cached ``company_tickers.json`` is trusted.
TICKERS_MAX_AGE = 24 * 3600

DEFAULT_TIMEOUT = 30.0
DEFAULT_TRIES = 5
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 60.0
#: Largest JSON answer accepted (company_tickers.json is about 1 MB, submissions a few MB).
MAX_JSON_BYTES = 64 << 20

USER_AGENT_HELP = (
    "SEC_USER_AGENT is not set. SEC EDGAR requires a declared User-Agent with a "
    'contact; set it, e.g.: export SEC_USER_AGENT="Your Name your@email.com"'
)


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """Thread-safe limiter: at most ``max_calls`` starts in any ``period`` seconds.

    Callers take turns under a lock: each waits for the next free slot and
    records the time it actually starts (not the planned slot, which a busy
    machine may overshoot).  Starts are spaced by ``period / max_calls`` and a
    sliding window keeps any ``max_calls + 1`` consecutive starts at least
    ``period + slack`` apart, so the limit holds for any window, also as seen
    by the server.
    """

    def __init__(self, max_calls: int = 10, period: float = 1.0, slack: float = 0.05):
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be >= 1 and period > 0")
        self.max_calls = max_calls
        self.period = period
        self.slack = slack
        self._interval = period / max_calls
        self._starts: deque[float] = deque(maxlen=max_calls)
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may start; return the seconds waited."""
        with self._lock:
            began = now = time.monotonic()
            slot = now
            if self._starts:
                slot = max(slot, self._starts[-1] + self._interval)
            if len(self._starts) == self.max_calls:
                slot = max(slot, self._starts[0] + self.period + self.slack)
            while now < slot:
                time.sleep(slot - now)
                now = time.monotonic()
            self._starts.append(now)
        return now - began


#: The process-wide limiter every ``EdgarClient`` uses unless given another.
RATE_LIMITER = RateLimiter(10, 1.0)


# --------------------------------------------------------------------------- data


@dataclass
class FilingRef:
    """One filing as listed by EDGAR's submissions API."""

    cik: str  # 10 digits
    company: str
    ticker: Optional[str]
    form: str
    accession: str  # 0000320193-24-000123
    filing_date: str  # ISO date
    report_date: Optional[str]  # ISO date of the period end
    fiscal_year: int
    primary_document: str
    url: str

    @property
    def is_amendment(self) -> bool:
        return self.form.endswith("/A")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FetchResult:
    """What happened to one filing: ``downloaded`` or ``skipped`` (already stored)."""

    filing: FilingRef
    status: str
    path: Path  # the stored primary document
    sha256: str
    bytes: int

    @property
    def metadata_path(self) -> Path:
        return self.path.parent / "filing.json"

    def to_dict(self) -> dict:
        return {**self.filing.to_dict(), "status": self.status, "path": str(self.path),
                "sha256": self.sha256, "bytes": self.bytes}


@dataclass
class FetchFailure:
    """A listed filing (or submissions page) that was not fetched, and why."""

    where: str  # e.g. "filings.recent[3]"
    accession: str  # as listed, shown safely
    form: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One readable line: where, what and why."""
        return f"{self.where}: {self.form} {self.accession}: {self.reason}"


@dataclass
class FetchReport:
    """The outcome of ``fetch_filings``: the company and one result per filing."""

    cik: str
    company: str
    ticker: Optional[str]
    years: Optional[list[int]]
    include_amendments: bool
    results: list[FetchResult] = field(default_factory=list)
    #: Listed filings not fetched because EDGAR's data about them failed validation.
    failed: list[FetchFailure] = field(default_factory=list)
    #: Other things worth saying (e.g. invalid rows skipped in company_tickers.json).
    notes: list[str] = field(default_factory=list)

    @property
    def downloaded(self) -> list[FetchResult]:
        return [r for r in self.results if r.status == "downloaded"]

    @property
    def skipped(self) -> list[FetchResult]:
        return [r for r in self.results if r.status == "skipped"]

    @property
    def paths(self) -> list[Path]:
        """Local paths of all requested filings, downloaded or already there."""
        return [r.path for r in self.results]

    def to_dict(self) -> dict:
        return {
            "cik": self.cik,
            "company": self.company,
            "ticker": self.ticker,
            "years": self.years,
            "include_amendments": self.include_amendments,
            "filings": [r.to_dict() for r in self.results],
            "failed": [f.to_dict() for f in self.failed],
            "notes": list(self.notes),
        }


@dataclass
class StoredFiling:
    """A filing in the data home (its ``filing.json`` plus where the document is)."""

    path: Path
    metadata: dict

    @property
    def fiscal_year(self) -> Optional[int]:
        return self.metadata.get("fiscal_year")

    @property
    def accession(self) -> Optional[str]:
        return self.metadata.get("accession")


# --------------------------------------------------------------------------- input parsing


def _cik_digits(value) -> Optional[str]:
    """``value`` as a 10-digit CIK string, or None when it is not 1-10 ASCII digits (and not 0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().upper()
        if text.startswith("CIK"):
            text = text[3:]
    else:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", text) or int(text) == 0:
        return None
    return text.zfill(10)


def normalize_cik(cik: str | int) -> str:
    """``320193``, ``"0000320193"`` or ``"CIK0000320193"`` -> ``"0000320193"``."""
    found = _cik_digits(cik)
    if found is None:
        raise InputError(f"bad CIK {cik!r}: a CIK is a number of up to 10 digits, e.g. 320193")
    return found


def normalize_ticker(ticker: str) -> str:
    """Upper case, with EDGAR's dash for share classes (``brk.b`` -> ``BRK-B``)."""
    text = ticker.strip().upper().replace(".", "-").replace("/", "-")
    if not text or not re.fullmatch(r"[A-Z0-9-]{1,12}", text):
        raise InputError(f"bad ticker {ticker!r}")
    return text


def _fiscal_year(report_date: Optional[str], filing_date: str) -> int:
    if report_date:
        return int(report_date[:4])
    filed = date.fromisoformat(filing_date)
    return filed.year - 1 if filed.month <= 6 else filed.year


# --------------------------------------------------------------------------- validating EDGAR values


ACCESSION_RE = re.compile(r"[0-9]{10}-[0-9]{2}-[0-9]{6}")
#: Extensions a primary document may have.
DOCUMENT_EXTENSIONS = (".htm", ".html", ".xhtml", ".txt", ".xml", ".pdf")
MAX_DOCUMENT_NAME = 200
_DOCUMENT_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~()+-]*")
_PAGE_NAME = re.compile(r"CIK([0-9]{10})-submissions-[0-9]{3,6}\.json")
_ISO_DATE = re.compile(r"([0-9]{4})-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _show(value, limit: int = 60) -> str:
    """A network value as short, safe text for messages: plain when harmless, else its repr."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,40}", value):
        return value
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clean_text(value, limit: int = 300) -> str:
    """Free text from EDGAR (a company name) without control characters, at most ``limit`` chars."""
    if not isinstance(value, str):
        return ""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def normalize_accession(value) -> str:
    """``"0000320193-24-000123"`` or ``"000032019324000123"`` -> ``"0000320193-24-000123"``.

    Anything else (a path, ``..``, other digits, not a string) raises ``InvalidEdgarData``.
    """
    if isinstance(value, str):
        text = value
        if ACCESSION_RE.fullmatch(text):
            return text
        if re.fullmatch(r"[0-9]{18}", text):
            return f"{text[:10]}-{text[10:12]}-{text[12:]}"
    raise InvalidEdgarData(f"accession number {_show(value)} is not of the form 0000000000-00-000000")


def check_document_name(value) -> str:
    """A primary document name, accepted only as a plain, sane file name; else ``InvalidEdgarData``.

    Rules: text of at most 200 characters from ``A-Z a-z 0-9 . _ - ~ ( ) +``,
    starting with a letter or digit; no ``/`` or ``\\``, no ``..``, no control
    characters; an extension from ``DOCUMENT_EXTENSIONS``.
    """
    if not isinstance(value, str):
        raise InvalidEdgarData(f"document name {_show(value)} is not text")
    name = value.strip(" ")
    shown = _show(value)
    if not name:
        raise InvalidEdgarData("document name is empty")
    if len(name) > MAX_DOCUMENT_NAME:
        raise InvalidEdgarData(f"document name {shown} is longer than {MAX_DOCUMENT_NAME} characters")
    if "/" in name or "\\" in name:
        raise InvalidEdgarData(f"document name {shown} has a path separator")
    if ".." in name:
        raise InvalidEdgarData(f"document name {shown} contains '..'")
    if _CONTROL.search(name):
        raise InvalidEdgarData(f"document name {shown} contains control characters")
    if not _DOCUMENT_CHARS.fullmatch(name):
        raise InvalidEdgarData(f"document name {shown} has characters outside A-Z a-z 0-9 . _ - ~ ( ) +"
                               " or does not start with a letter or digit")
    if not name.lower().endswith(DOCUMENT_EXTENSIONS):
        raise InvalidEdgarData(f"document name {shown} does not end in {' '.join(DOCUMENT_EXTENSIONS)}")
    return name


def _check_date(value, what: str, earliest: int) -> str:
    if isinstance(value, str):
        m = _ISO_DATE.fullmatch(value.strip())
        if m and earliest <= int(m.group(1)) <= 2100:
            try:
                return date.fromisoformat(m.group(0)).isoformat()
            except ValueError:
                pass
    raise InvalidEdgarData(f"{what} {_show(value)} is not a date YYYY-MM-DD between {earliest} and 2100")


def _check_page_name(value, cik: str) -> str:
    m = _PAGE_NAME.fullmatch(value) if isinstance(value, str) else None
    if not m or m.group(1) != cik:
        raise InvalidEdgarData(f"submissions page name {_show(value)} is not CIK{cik}-submissions-NNN.json")
    return value


def _inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``root`` (defence in depth), else ``FetchError``."""
    real_root, real = root.resolve(), path.resolve()
    if real != real_root and real_root not in real.parents:
        raise FetchError(f"refusing to write {path}: it is not inside {root}")
    return path


# --------------------------------------------------------------------------- HTTP client


class _NotFound(FetchError):
    """EDGAR answered 404."""


#: The monotonic time by which the current thread's transfer must be complete (None: no deadline).
_DEADLINE = threading.local()


def _clamp(timeout: Optional[float], error: type) -> Optional[float]:
    """``timeout`` cut to what is left before the thread's deadline; ``error`` once it has passed."""
    end = getattr(_DEADLINE, "at", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the whole-transfer deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read, write and TLS handshake ends by the thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout))
        )

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """Wraps httpcore's network backend so that connections honour the thread's deadline."""

    def __init__(self, backend: httpcore.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _clamp(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _install_deadline(client: httpx.Client) -> bool:
    """Put ``_DeadlineBackend`` under every transport of ``client``; False if httpx's layout changed.

    httpx has no public hook for the network backend, so this reaches into
    ``HTTPTransport._pool`` (httpx 0.2x); a test fails loudly if that changes.
    """
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    ok = True
    for transport in transports:
        if transport is None:
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None:
            ok = False
            continue
        if not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)
    return ok


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


class EdgarClient:
    """A polite EDGAR HTTP client: declared User-Agent, timeouts, rate limit, retries.

    ``base_url`` replaces ``https://www.sec.gov`` and ``data_url`` replaces
    ``https://data.sec.gov``; giving only ``base_url`` points both at it (a
    mirror or the test server).  Defaults come from the environment (see the
    module docstring).
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        data_url: Optional[str] = None,
        *,
        user_agent: Optional[str] = None,
        timeout: Optional[float] = None,
        max_tries: Optional[int] = None,
        backoff: Optional[float] = None,
        max_backoff: Optional[float] = None,
        limiter: Optional[RateLimiter] = None,
        deadline: Optional[float] = None,
    ):
        agent = user_agent if user_agent is not None else os.environ.get("SEC_USER_AGENT", "")
        if not agent.strip():
            raise ConfigError(USER_AGENT_HELP)
        env_www = os.environ.get("FILINGLENS_EDGAR_URL") or None
        env_data = os.environ.get("FILINGLENS_EDGAR_DATA_URL") or None
        if base_url:
            www, data = base_url, data_url or base_url
        else:
            www = env_www or DEFAULT_WWW_URL
            data = data_url or env_data or env_www or DEFAULT_DATA_URL
        for url in (www, data):
            if not re.match(r"https?://", url):
                raise ConfigError(f"EDGAR URL {url!r} must start with http:// or https://")
        self.www_url = www.rstrip("/")
        self.data_url = data.rstrip("/")
        self.timeout = timeout if timeout is not None else _env_float("FILINGLENS_EDGAR_TIMEOUT", DEFAULT_TIMEOUT)
        tries = max_tries if max_tries is not None else _env_float("FILINGLENS_EDGAR_TRIES", DEFAULT_TRIES)
        if not math.isfinite(tries):
            raise ConfigError(f"the number of EDGAR tries must be a whole number, not {tries:g}")
        self.max_tries = max(1, int(tries))
        self.backoff = backoff if backoff is not None else _env_float("FILINGLENS_EDGAR_BACKOFF", DEFAULT_BACKOFF)
        self.max_backoff = (max_backoff if max_backoff is not None
                            else _env_float("FILINGLENS_EDGAR_MAX_BACKOFF", MAX_BACKOFF))
        # A trickling server could dodge the per-read timeout: bound the whole transfer too.
        self.deadline = (deadline if deadline is not None
                         else _env_float("FILINGLENS_EDGAR_DEADLINE", max(10 * self.timeout, 300.0)))
        for name, value in (("timeout", self.timeout), ("deadline", self.deadline),
                            ("backoff", self.backoff), ("max backoff", self.max_backoff)):
            if not math.isfinite(value) or value < 0 or (value == 0 and name in ("timeout", "deadline")):
                raise ConfigError(f"the EDGAR {name} must be a positive number of seconds, not {value:g}")
        self.limiter = limiter or RATE_LIMITER
        self._http = httpx.Client(
            headers={"User-Agent": agent.strip(), "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,
        )
        #: False only if httpx's internals changed so that the deadline cannot be enforced.
        self.deadline_enforced = _install_deadline(self._http)

    @property
    def max_transfer(self) -> float:
        """The whole-transfer deadline in seconds (older name of ``deadline``)."""
        return self.deadline

    # -- URLs
    @property
    def tickers_url(self) -> str:
        return f"{self.www_url}/files/company_tickers.json"

    def submissions_url(self, cik: str) -> str:
        return f"{self.data_url}/submissions/CIK{normalize_cik(cik)}.json"

    def submissions_page_url(self, name: str) -> str:
        m = _PAGE_NAME.fullmatch(name) if isinstance(name, str) else None
        if not m:
            raise InvalidEdgarData(f"submissions page name {_show(name)} is not CIK##########-submissions-NNN.json")
        return f"{self.data_url}/submissions/{name}"

    def document_url(self, cik: str, accession: str, document: str) -> str:
        number = normalize_accession(accession).replace("-", "")
        return f"{self.www_url}/Archives/edgar/data/{int(normalize_cik(cik))}/{number}/{check_document_name(document)}"

    # -- lifecycle
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "EdgarClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests
    def _delay(self, attempt: int, response: Optional[httpx.Response]) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                seconds: Optional[float]
                try:
                    seconds = float(retry_after)
                except ValueError:
                    try:
                        when = email.utils.parsedate_to_datetime(retry_after)
                        seconds = (when - datetime.now(timezone.utc)).total_seconds()
                    except (TypeError, ValueError):
                        seconds = None
                if seconds is not None and not math.isnan(seconds):
                    return min(max(seconds, 0.0), self.max_backoff)
        base = self.backoff * (2 ** (attempt - 1))
        return min(base + random.uniform(0, base / 10), self.max_backoff)

    def request(self, url: str, consume: Callable[[httpx.Response], object]):
        """GET ``url`` with rate limit, deadline and retries; ``consume(response)`` reads the body.

        ``consume`` runs inside the streamed response, so a transfer that breaks
        half-way or misses the whole-transfer deadline is retried like a failed
        request.  Raises ``FetchError`` once the tries are used up, at once for
        4xx other than 429 and for answers that cannot be decoded.
        """
        problem = ""
        for attempt in range(1, self.max_tries + 1):
            self.limiter.acquire()
            response = None
            _DEADLINE.at = time.monotonic() + self.deadline
            try:
                with self._http.stream("GET", url) as response:
                    status = response.status_code
                    if status < 400:
                        return consume(response)
                    if status == 404:
                        raise _NotFound(f"EDGAR has nothing at {url} (HTTP 404)")
                    if status == 403:
                        raise FetchError(
                            f"EDGAR refused {url} (HTTP 403). SEC blocks clients without a "
                            "declared User-Agent or above 10 requests/s: check SEC_USER_AGENT"
                        )
                    if status not in RETRY_STATUSES:
                        raise FetchError(f"EDGAR answered HTTP {status} for {url}")
                    problem = f"HTTP {status}"
            except httpx.TimeoutException as exc:
                if time.monotonic() >= _DEADLINE.at - 0.01:
                    problem = (f"no complete answer within the whole-transfer deadline of {self.deadline:g} s "
                               "(FILINGLENS_EDGAR_DEADLINE)")
                else:
                    problem = f"timed out ({type(exc).__name__}, timeout {self.timeout:g} s): {exc}"
                response = None
            except (httpx.UnsupportedProtocol, httpx.TooManyRedirects, httpx.DecodingError, httpx.InvalidURL) as exc:
                raise FetchError(f"EDGAR answered unusably for {url}: {type(exc).__name__}: {exc}") from None
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                response = None
            finally:
                _DEADLINE.at = None
            if attempt < self.max_tries:
                time.sleep(self._delay(attempt, response))
        raise FetchError(f"EDGAR request failed after {self.max_tries} tries: {url} ({problem})")

    def get_bytes(self, url: str, limit: int = MAX_JSON_BYTES) -> bytes:
        """GET ``url`` and return the (decoded) body; ``FetchError`` past ``limit`` bytes."""

        def consume(response: httpx.Response) -> bytes:
            parts, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"EDGAR sent more than {limit:,} bytes for {url}; refusing it")
                parts.append(chunk)
            return b"".join(parts)

        return self.request(url, consume)

    def get_json(self, url: str):
        """GET ``url`` and parse it as JSON (not validated: callers check the shape)."""
        body = self.get_bytes(url)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError(f"EDGAR sent something that is not JSON from {url}") from None

    def download(
        self, url: str, dest: Path, progress: Optional[Callable[[int, Optional[int]], None]] = None
    ) -> tuple[str, int]:
        """Stream ``url`` into ``dest`` atomically; return ``(sha256, bytes)``.

        ``progress(downloaded, total)`` is called as raw bytes arrive (``total``
        from Content-Length, may be None).  A failed or cut-off transfer leaves
        no file behind.
        """

        def consume(response: httpx.Response) -> tuple[str, int]:
            total = response.headers.get("Content-Length")
            total_n = int(total) if total and total.isdigit() else None
            digest = hashlib.sha256()
            size = 0
            with settings.atomic_write(dest) as handle:
                for chunk in response.iter_bytes(64 * 1024):
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if progress:
                        progress(response.num_bytes_downloaded, total_n)
                if (
                    total_n is not None
                    and not response.headers.get("Content-Encoding")
                    and size != total_n
                ):
                    raise httpx.RemoteProtocolError(f"got {size} of {total_n} bytes")
                if size == 0:
                    raise FetchError(f"EDGAR sent an empty document for {url}")
            return digest.hexdigest(), size

        return self.request(url, consume)


def _client_or_new(client: Optional[EdgarClient], base_url: Optional[str] = None) -> tuple[EdgarClient, bool]:
    if client is not None:
        return client, False
    return EdgarClient(base_url), True


# --------------------------------------------------------------------------- tickers


def _tickers_cache_path(client: EdgarClient) -> Path:
    name = "company_tickers.json"
    if client.www_url != DEFAULT_WWW_URL:
        tag = hashlib.sha256(client.www_url.encode()).hexdigest()[:10]
        name = f"company_tickers-{tag}.json"
    return settings.subdir("edgar") / name


def _valid_tickers(data, source: str) -> tuple[list[tuple[str, str, str]], int]:
    """Rows ``(TICKER, cik10, title)`` of a company_tickers.json document and the number of bad rows.

    The document must be an object of row objects (``{"0": {"cik_str": 320193,
    "ticker": "AAPL", "title": "Apple Inc."}, ...}``); a row without a text
    ticker or a valid ``cik_str`` is skipped and counted.  ``FetchError`` when
    the document is not an object or has no usable row.
    """
    if not isinstance(data, dict):
        raise FetchError(f"unusable company_tickers.json from {source}: "
                         f"the top level is {type(data).__name__}, not an object")
    rows, bad = [], 0
    for row in data.values():
        if not isinstance(row, dict):
            bad += 1
            continue
        ticker, cik = row.get("ticker"), _cik_digits(row.get("cik_str"))
        if not isinstance(ticker, str) or not ticker.strip() or len(ticker) > 20 or cik is None:
            bad += 1
            continue
        rows.append((ticker.strip().upper(), cik, _clean_text(row.get("title"))))
    if not rows:
        raise FetchError(f"unusable company_tickers.json from {source}: none of its {len(data)} rows "
                         "has a ticker and a CIK")
    return rows, bad


def _load_tickers(client: EdgarClient, refresh: bool = False) -> tuple[list[tuple[str, str, str]], bool, int]:
    """Return (validated ticker rows, came_from_cache, bad rows skipped).

    Only a validated table is cached (atomically); a cache that no longer
    validates is refetched.
    """
    path = _tickers_cache_path(client)
    if not refresh and path.exists() and time.time() - path.stat().st_mtime < TICKERS_MAX_AGE:
        try:
            rows, bad = _valid_tickers(json.loads(path.read_bytes()), str(path))
            if not bad:
                return rows, True, 0
        except (OSError, ValueError, RecursionError, FetchError):
            pass  # a broken cache is just refetched
    rows, bad = _valid_tickers(client.get_json(client.tickers_url), client.tickers_url)
    table = {str(i): {"cik_str": int(cik), "ticker": ticker, "title": title}
             for i, (ticker, cik, title) in enumerate(rows)}
    with settings.atomic_write(path) as handle:
        handle.write(json.dumps(table).encode())
    return rows, False, bad


def _lookup(rows: list[tuple[str, str, str]], ticker: str) -> Optional[tuple[str, str]]:
    for symbol, cik, title in rows:
        if symbol == ticker:
            return cik, title
    return None


def _resolve(symbol: str, http: EdgarClient) -> tuple[str, str, list[str]]:
    """(CIK, title, notes about skipped rows) for a normalised ticker."""
    notes: list[str] = []
    rows, cached, bad = _load_tickers(http)
    found = _lookup(rows, symbol)
    if found is None and cached:
        rows, _, bad = _load_tickers(http, refresh=True)
        found = _lookup(rows, symbol)
    if bad:
        notes.append(f"company_tickers.json: skipped {bad} invalid row{'s' if bad != 1 else ''}")
    if found is None:
        raise FetchError(
            f"unknown ticker {symbol!r}: EDGAR's company_tickers.json does not list it "
            "(delisted or renamed companies are not there; use --cik instead)"
        )
    return found[0], found[1], notes


def resolve_cik(ticker: str, client: Optional[EdgarClient] = None) -> tuple[str, str]:
    """Ticker -> ``(CIK as 10 digits, company title)`` via EDGAR's company_tickers.json.

    The table is validated and cached in the data home for a day; an unknown
    ticker triggers one refresh before ``FetchError("unknown ticker ...")``.
    """
    symbol = normalize_ticker(ticker)
    http, own = _client_or_new(client)
    try:
        cik, title, _notes = _resolve(symbol, http)
    finally:
        if own:
            http.close()
    return cik, title


# --------------------------------------------------------------------------- listing


_COLUMNS = ("accessionNumber", "filingDate", "reportDate", "form", "primaryDocument")


def _rows(columns, where: str) -> list[tuple[str, dict]]:
    """``(where, row)`` for each filing of a column table (``filings.recent`` or an older page).

    Every needed column must be a list, all of the same length (otherwise rows
    cannot be matched up and the document is unusable: ``FetchError``);
    ``reportDate`` may be missing.  Values are checked later, row by row.
    """
    if not isinstance(columns, dict):
        raise FetchError(f"unusable EDGAR submissions data: {where} is {type(columns).__name__}, not an object")
    if not columns:
        return []
    arrays: dict[str, list] = {}
    for name in _COLUMNS:
        column = columns.get(name)
        if column is None and name == "reportDate":
            continue
        if not isinstance(column, list):
            what = "missing" if column is None else f"{type(column).__name__}, not a list"
            raise FetchError(f"unusable EDGAR submissions data: column {where}.{name} is {what}")
        arrays[name] = column
    lengths = {name: len(column) for name, column in arrays.items()}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise FetchError(f"unusable EDGAR submissions data: the columns of {where} differ in length ({sizes})")
    count = next(iter(lengths.values()))
    return [(f"{where}[{i}]", {name: arrays[name][i] if name in arrays else None for name in _COLUMNS})
            for i in range(count)]


def _wanted_form(form: str, include_amendments: bool) -> bool:
    form = form.strip().upper()
    if form.endswith("/A"):
        return include_amendments and form[:-2] in ANNUAL_FORMS
    return form in ANNUAL_FORMS


def _submissions(client: EdgarClient, cik: str) -> dict:
    try:
        data = client.get_json(client.submissions_url(cik))
    except _NotFound:
        raise FetchError(f"no EDGAR company with CIK {cik} (check the number, or use --ticker)") from None
    if not isinstance(data, dict) or not isinstance(data.get("filings"), dict):
        shape = type(data).__name__ if not isinstance(data, dict) else "an object without a 'filings' object"
        raise FetchError(f"unusable EDGAR submissions data for CIK {cik}: got {shape}")
    return data


class FilingList(list):
    """``list_filings``' answer: the valid ``FilingRef``s, plus ``invalid`` (``FetchFailure``s)."""

    def __init__(self, refs: Iterable[FilingRef] = (), invalid: Iterable[FetchFailure] = ()):
        super().__init__(refs)
        self.invalid: list[FetchFailure] = list(invalid)


def _pages_needed(recent_rows: list[dict], files: list[tuple[str, Optional[str]]],
                  years: Optional[list[int]]) -> list[str]:
    """Older submission pages (by name) that may hold filings for ``years``.

    A filing for fiscal year Y is filed on or after Y-01-01 (after its period
    end).  ``recent`` holds the newest filings, so when its oldest filing date
    is before min(years)-01-01 it covers everything asked for; otherwise pages
    whose ``filingTo`` reaches that date (or have none) are read.
    """
    if not files:
        return []
    if years is None:
        return [name for name, _ in files]
    since = f"{min(years):04d}-01-01"
    dates = [r["filingDate"] for r in recent_rows
             if isinstance(r["filingDate"], str) and _ISO_DATE.fullmatch(r["filingDate"])]
    if dates and min(dates) < since:
        return []
    return [name for name, until in files if not until or until >= since]


def _page_list(files, cik: str, failures: list[FetchFailure]) -> list[tuple[str, Optional[str]]]:
    """``(name, filingTo)`` of the valid ``filings.files`` entries; bad entries become failures."""
    if files is None:
        return []
    if not isinstance(files, list):
        raise FetchError(f"unusable EDGAR submissions data for CIK {cik}: filings.files is "
                         f"{type(files).__name__}, not a list")
    pages = []
    for i, entry in enumerate(files):
        where = f"filings.files[{i}]"
        try:
            if not isinstance(entry, dict):
                raise InvalidEdgarData(f"entry is {type(entry).__name__}, not an object")
            name = _check_page_name(entry.get("name"), cik)
        except InvalidEdgarData as exc:
            failures.append(FetchFailure(where, "-", "submissions page", f"{exc}; page not read"))
            continue
        until = entry.get("filingTo")
        try:
            until = _check_date(until, "filingTo", 1900) if until else None
        except InvalidEdgarData:
            until = None  # unknown range: read the page
        pages.append((name, until))
    return pages


def _ref(client: EdgarClient, cik: str, company: str, ticker: Optional[str], row: dict,
         wanted: Optional[set[int]], include_amendments: bool) -> Optional[FilingRef]:
    """The ``FilingRef`` of a wanted row, None for a row not asked for; ``InvalidEdgarData`` if bad."""
    form = row["form"]
    if not isinstance(form, str):
        raise InvalidEdgarData(f"form {_show(form)} is not text")
    if not _wanted_form(form, include_amendments):
        return None
    filing_date = _check_date(row["filingDate"], "filingDate", 1993)
    report = row["reportDate"]
    report_date = _check_date(report, "reportDate", 1900) if report not in (None, "") else None
    fy = _fiscal_year(report_date, filing_date)
    if wanted is not None and fy not in wanted:
        return None
    accession = normalize_accession(row["accessionNumber"])
    primary = row["primaryDocument"]
    document = check_document_name(primary) if primary not in (None, "") else f"{accession}.txt"
    return FilingRef(
        cik=cik,
        company=company,
        ticker=ticker,
        form=form.strip().upper(),
        accession=accession,
        filing_date=filing_date,
        report_date=report_date,
        fiscal_year=fy,
        primary_document=document,
        url=client.document_url(cik, accession, document),
    )


def _refs(client: EdgarClient, cik: str, data: dict, years: Optional[list[int]],
          include_amendments: bool, ticker: Optional[str]) -> FilingList:
    company = _clean_text(data.get("name"))
    if ticker is None:
        tickers = data.get("tickers")
        first = tickers[0] if isinstance(tickers, list) and tickers else None
        ticker = first.upper() if isinstance(first, str) and re.fullmatch(r"[A-Za-z0-9.-]{1,12}", first) else None
    filings = data["filings"]
    failures: list[FetchFailure] = []
    recent = _rows(filings.get("recent", {}), "filings.recent")
    rows = list(recent)
    pages = _page_list(filings.get("files"), cik, failures)
    for name in _pages_needed([row for _, row in recent], pages, years):
        rows.extend(_rows(client.get_json(client.submissions_page_url(name)), name))
    wanted = set(years) if years is not None else None
    refs: dict[str, FilingRef] = {}
    for where, row in rows:
        try:
            ref = _ref(client, cik, company, ticker, row, wanted, include_amendments)
        except InvalidEdgarData as exc:
            form = row["form"]
            failures.append(FetchFailure(where, _show(row["accessionNumber"]),
                                         form.strip().upper()[:20] if isinstance(form, str) else _show(form),
                                         str(exc)))
            continue
        if ref is not None:
            refs[ref.accession] = ref
    return FilingList(sorted(refs.values(), key=lambda r: (r.fiscal_year, r.filing_date, r.accession)), failures)


def list_filings(
    cik: str | int,
    years: str | Iterable[int] | None = None,
    include_amendments: bool = False,
    client: Optional[EdgarClient] = None,
) -> FilingList:
    """List a company's annual reports on EDGAR, oldest fiscal year first.

    Follows the older ``filings.files`` pages when ``years`` reach back
    further than ``filings.recent``.  ``years=None`` lists every year.  Rows
    with invalid values are left out and listed in the answer's ``invalid``.
    """
    cik = normalize_cik(cik)
    wanted = parse_years(years)
    http, own = _client_or_new(client)
    try:
        return _refs(http, cik, _submissions(http, cik), wanted, include_amendments, None)
    finally:
        if own:
            http.close()


# --------------------------------------------------------------------------- storage


def filing_dir(cik: str, accession: str) -> Path:
    """``filings/{cik}/{accession}`` in the data home (not created); both values are validated."""
    root = settings.data_home() / "filings"
    return _inside(root, root / normalize_cik(cik) / normalize_accession(accession))


def _document_path(ref: FilingRef) -> Path:
    """Where ``ref``'s primary document is stored: checked to lie inside its filing folder."""
    folder = filing_dir(ref.cik, ref.accession)
    return _inside(folder, folder / check_document_name(ref.primary_document))


def _stored(ref: FilingRef) -> Optional[dict]:
    """The metadata of ``ref`` if it is completely stored, else None."""
    document = _document_path(ref)
    meta_path = document.parent / "filing.json"
    if not meta_path.is_file() or not document.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("primary_document") != ref.primary_document or meta.get("sha256") != settings.sha256_file(document):
        return None
    return meta


ProgressHook = Callable[[FilingRef, int, Optional[int]], None]


def _download(client: EdgarClient, ref: FilingRef, progress: Optional[ProgressHook]) -> FetchResult:
    document = _document_path(ref)
    meta_path = document.parent / "filing.json"
    # A stale filing.json must never vouch for a document being replaced.
    meta_path.unlink(missing_ok=True)
    hook = (lambda done, total: progress(ref, done, total)) if progress else None
    sha, size = client.download(ref.url, document, hook)
    meta = {
        "ticker": ref.ticker,
        "cik": ref.cik,
        "company": ref.company,
        "form": ref.form,
        "filing_date": ref.filing_date,
        "report_date": ref.report_date,
        "fiscal_year": ref.fiscal_year,
        "accession": ref.accession,
        "primary_document": ref.primary_document,
        "url": ref.url,
        "sha256": sha,
        "bytes": size,
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with settings.atomic_write(meta_path, "w") as handle:
        json.dump(meta, handle, indent=2)
        handle.write("\n")
    return FetchResult(ref, "downloaded", document, sha, size)


def fetch_filings(
    ticker: Optional[str] = None,
    cik: str | int | None = None,
    years: str | Iterable[int] | None = None,
    include_amendments: bool = False,
    client: Optional[EdgarClient] = None,
    *,
    base_url: Optional[str] = None,
    progress: Optional[ProgressHook] = None,
) -> FetchReport:
    """Download a company's 10-Ks for ``years`` into the data home; skip stored ones.

    Give ``ticker`` or ``cik`` (``cik`` wins when both are given; the ticker
    then only labels the metadata).  ``years`` filters on the fiscal year
    (year of the period end); None means every year.  Returns a
    ``FetchReport`` whose results hold the local document paths; listed
    filings whose EDGAR data fails validation are not fetched but reported in
    ``report.failed``.
    """
    if not ticker and cik is None:
        raise InputError("give a --ticker or a --cik")
    wanted = parse_years(years)
    symbol = normalize_ticker(ticker) if ticker else None
    number = normalize_cik(cik) if cik is not None else None
    http, own = _client_or_new(client, base_url)
    try:
        notes: list[str] = []
        if number is None:
            number, _title, notes = _resolve(symbol, http)
        data = _submissions(http, number)
        refs = _refs(http, number, data, wanted, include_amendments, symbol)
        report = FetchReport(number, _clean_text(data.get("name")), refs[0].ticker if refs else symbol,
                             wanted, include_amendments, failed=list(refs.invalid), notes=notes)
        for ref in refs:
            meta = _stored(ref)
            if meta is not None:
                path = _document_path(ref)
                report.results.append(FetchResult(ref, "skipped", path, meta["sha256"], int(meta.get("bytes") or 0)))
                if progress:
                    progress(ref, -1, None)
                continue
            report.results.append(_download(http, ref, progress))
        return report
    finally:
        if own:
            http.close()




def fetch_ref(
    ref: FilingRef | dict,
    client: Optional[EdgarClient] = None,
    *,
    base_url: Optional[str] = None,
    progress: Optional[ProgressHook] = None,
) -> FetchResult:
    """Download one filing listed by :func:`list_filings` (e.g. in a batch worker), unless stored.

    The reference may have travelled (a dict from another process), so its
    CIK, accession number and document name are checked before they become
    a path.
    """
    if isinstance(ref, dict):
        ref = FilingRef(**ref)
    cik = normalize_cik(ref.cik)
    accession = normalize_accession(ref.accession)  # InvalidEdgarData (a FetchError) when malformed
    document = check_document_name(ref.primary_document)
    if document != ref.primary_document or cik != ref.cik or accession != ref.accession:
        ref = FilingRef(**{**ref.to_dict(), "cik": cik, "accession": accession, "primary_document": document})
    meta = _stored(ref)
    if meta is not None:
        path = filing_dir(ref.cik, ref.accession) / ref.primary_document
        return FetchResult(ref, "skipped", path, meta["sha256"], int(meta.get("bytes") or 0))
    http, own = _client_or_new(client, base_url)
    try:
        # the document URL is rebuilt from the checked parts and this client's host, never taken as given
        ref = FilingRef(**{**ref.to_dict(), "url": http.document_url(ref.cik, ref.accession, ref.primary_document)})
        return _download(http, ref, progress)
    finally:
        if own:
            http.close()


def stored_filings(
    cik: str | int | None = None,
    ticker: Optional[str] = None,
    years: str | Iterable[int] | None = None,
) -> list[StoredFiling]:
    """Filings completely stored in the data home (filing.json and document present).

    Optional filters: ``cik``, ``ticker``, ``years`` (fiscal years).  Sorted by
    CIK, fiscal year, filing date.  Does not re-hash documents.
    """
    root = settings.data_home() / "filings"
    if not root.is_dir():
        return []
    want_cik = normalize_cik(cik) if cik is not None else None
    want_ticker = normalize_ticker(ticker) if ticker else None
    want_years = set(parse_years(years) or []) or None
    found: list[StoredFiling] = []
    for meta_path in root.glob("*/*/filing.json"):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        try:
            document = meta_path.parent / check_document_name(meta.get("primary_document"))
        except InvalidEdgarData:
            continue
        if not document.is_file():
            continue
        if want_cik and meta.get("cik") != want_cik:
            continue
        if want_ticker and str(meta.get("ticker") or "").upper() != want_ticker:
            continue
        if want_years and meta.get("fiscal_year") not in want_years:
            continue
        found.append(StoredFiling(document, meta))
    found.sort(key=lambda s: (s.metadata.get("cik") or "", s.fiscal_year or 0, s.metadata.get("filing_date") or ""))
    return found


# --------------------------------------------------------------------------- CLI helpers
