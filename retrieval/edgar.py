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
  exponential backoff (``Retry-After`` is honoured), a bounded number of times.

Configuration (environment):

``SEC_USER_AGENT``            required, e.g. ``"Jane Doe jane@example.com"``
``FILINGLENS_EDGAR_URL``      base of www.sec.gov (tickers, archives)
``FILINGLENS_EDGAR_DATA_URL`` base of data.sec.gov (submissions); defaults to
                              ``FILINGLENS_EDGAR_URL`` when only that is set
``FILINGLENS_EDGAR_TIMEOUT``  seconds for connecting and for each read (default 30);
                              a whole transfer is bounded at 10x that (>= 300 s)
``FILINGLENS_EDGAR_TRIES``    attempts per request (default 5)
``FILINGLENS_EDGAR_BACKOFF``  first backoff delay in seconds (default 1, doubles)
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import httpx

from filinglens import settings
from filinglens.errors import ConfigError, FetchError, InputError

DEFAULT_WWW_URL = "https://www.sec.gov"
DEFAULT_DATA_URL = "https://data.sec.gov"

#: Annual-report forms fetched by default (see module docstring for 10-KSB).
ANNUAL_FORMS = ("10-K", "10-K405", "10-KT", "10-KT405")
#: HTTP statuses worth retrying.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How long the cached ``company_tickers.json`` is trusted.
TICKERS_MAX_AGE = 24 * 3600

DEFAULT_TIMEOUT = 30.0
DEFAULT_TRIES = 5
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 60.0

USER_AGENT_HELP = (
    "SEC_USER_AGENT is not set. SEC EDGAR requires a declared User-Agent with a "
    'contact; set it, e.g.: export SEC_USER_AGENT="Your Name your@email.com"'
)


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """Thread-safe limiter: at most ``max_calls`` starts in any ``period`` seconds.

    Each caller reserves the next free slot under a lock and then sleeps until
    it.  Slots are spaced by ``period / max_calls`` and a sliding window keeps
    any ``max_calls + 1`` consecutive starts at least ``period + slack`` apart,
    so the limit holds for any window, also as seen by the server.
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
            now = time.monotonic()
            slot = now
            if self._starts:
                slot = max(slot, self._starts[-1] + self._interval)
            if len(self._starts) == self.max_calls:
                slot = max(slot, self._starts[0] + self.period + self.slack)
            self._starts.append(slot)
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
        return max(wait, 0.0)


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
class FetchReport:
    """The outcome of ``fetch_filings``: the company and one result per filing."""

    cik: str
    company: str
    ticker: Optional[str]
    years: Optional[list[int]]
    include_amendments: bool
    results: list[FetchResult] = field(default_factory=list)

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


def parse_years(years: str | int | Iterable[int] | None) -> Optional[list[int]]:
    """``"2019-2024"``, ``"2023"``, ``"2019,2021-2022"`` or ints -> sorted years (None = all)."""
    if years is None:
        return None
    if isinstance(years, int):
        values = {years}
    elif isinstance(years, str):
        text = years.strip()
        if not text:
            return None
        values = set()
        for part in text.split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d{4})\s*(?:-|\.\.|–)\s*(\d{4})", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if lo > hi:
                    raise InputError(f"bad --years range {part!r}: {lo} is after {hi}")
                values.update(range(lo, hi + 1))
            elif re.fullmatch(r"\d{4}", part):
                values.add(int(part))
            else:
                raise InputError(
                    f"bad --years {years!r}: use a year (2023), a range (2019-2024) or a list (2019,2021)"
                )
    else:
        values = {int(y) for y in years}
    for y in values:
        if not 1993 <= y <= 2100:
            raise InputError(f"bad fiscal year {y}: EDGAR filings start in 1993")
    return sorted(values)


def normalize_cik(cik: str | int) -> str:
    """``320193``, ``"0000320193"`` or ``"CIK0000320193"`` -> ``"0000320193"``."""
    text = str(cik).strip().upper()
    if text.startswith("CIK"):
        text = text[3:]
    if not text.isdigit() or len(text) > 10 or int(text) == 0:
        raise InputError(f"bad CIK {cik!r}: a CIK is a number of up to 10 digits, e.g. 320193")
    return text.zfill(10)


def normalize_ticker(ticker: str) -> str:
    """Upper case, with EDGAR's dash for share classes (``brk.b`` -> ``BRK-B``)."""
    text = ticker.strip().upper().replace(".", "-").replace("/", "-")
    if not text or not re.fullmatch(r"[A-Z0-9-]{1,12}", text):
        raise InputError(f"bad ticker {ticker!r}")
    return text


def _fiscal_year(report_date: str, filing_date: str) -> int:
    if report_date:
        return int(report_date[:4])
    filed = date.fromisoformat(filing_date)
    return filed.year - 1 if filed.month <= 6 else filed.year


def _safe_name(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in {".", ".."} or base == "filing.json" or base.startswith("."):
        raise FetchError(f"EDGAR listed an unusable document name {name!r}")
    return base


# --------------------------------------------------------------------------- HTTP client


class _NotFound(FetchError):
    """EDGAR answered 404."""


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
        max_backoff: float = MAX_BACKOFF,
        limiter: Optional[RateLimiter] = None,
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
        if self.timeout <= 0:
            raise ConfigError(f"the EDGAR timeout must be positive, not {self.timeout:g}")
        self.max_tries = max(1, int(max_tries if max_tries is not None else _env_float("FILINGLENS_EDGAR_TRIES", DEFAULT_TRIES)))
        self.backoff = backoff if backoff is not None else _env_float("FILINGLENS_EDGAR_BACKOFF", DEFAULT_BACKOFF)
        self.max_backoff = max_backoff
        # A trickling server could dodge the per-read timeout: bound the whole transfer too.
        self.max_transfer = max(10 * self.timeout, 300.0)
        self.limiter = limiter or RATE_LIMITER
        self._http = httpx.Client(
            headers={"User-Agent": agent.strip(), "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,
        )

    # -- URLs
    @property
    def tickers_url(self) -> str:
        return f"{self.www_url}/files/company_tickers.json"

    def submissions_url(self, cik: str) -> str:
        return f"{self.data_url}/submissions/CIK{normalize_cik(cik)}.json"

    def submissions_page_url(self, name: str) -> str:
        return f"{self.data_url}/submissions/{_safe_name(name)}"

    def document_url(self, cik: str, accession: str, document: str) -> str:
        return f"{self.www_url}/Archives/edgar/data/{int(cik)}/{accession.replace('-', '')}/{document}"

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
                if seconds is not None:
                    return min(max(seconds, 0.0), self.max_backoff)
        base = self.backoff * (2 ** (attempt - 1))
        return min(base + random.uniform(0, base / 10), self.max_backoff)

    def request(self, url: str, consume: Callable[[httpx.Response], object]):
        """GET ``url`` with rate limit and retries; ``consume(response)`` reads the body.

        ``consume`` runs inside the streamed response, so a transfer that breaks
        half-way is retried like a failed request.  Raises ``FetchError`` once
        the tries are used up, at once for 4xx other than 429.
        """
        problem = ""
        for attempt in range(1, self.max_tries + 1):
            self.limiter.acquire()
            response = None
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
                problem = f"timed out ({type(exc).__name__}, timeout {self.timeout:g} s): {exc}"
                response = None
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                response = None
            if attempt < self.max_tries:
                time.sleep(self._delay(attempt, response))
        raise FetchError(f"EDGAR request failed after {self.max_tries} tries: {url} ({problem})")

    def get_bytes(self, url: str) -> bytes:
        """GET ``url`` and return the (decoded) body."""
        return self.request(url, lambda r: r.read())

    def get_json(self, url: str):
        """GET ``url`` and parse it as JSON."""
        body = self.get_bytes(url)
        try:
            return json.loads(body)
        except ValueError:
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
            started = time.monotonic()
            with settings.atomic_write(dest) as handle:
                for chunk in response.iter_bytes(64 * 1024):
                    if time.monotonic() - started > self.max_transfer:
                        raise httpx.ReadTimeout(f"transfer took over {self.max_transfer:g} s")
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


def _load_tickers(client: EdgarClient, refresh: bool = False) -> tuple[dict, bool]:
    """Return (tickers table, came_from_cache)."""
    path = _tickers_cache_path(client)
    if not refresh and path.exists() and time.time() - path.stat().st_mtime < TICKERS_MAX_AGE:
        try:
            return json.loads(path.read_bytes()), True
        except ValueError:
            pass  # a broken cache is just refetched
    data = client.get_json(client.tickers_url)
    if not isinstance(data, dict):
        raise FetchError(f"unexpected company_tickers.json shape from {client.tickers_url}")
    with settings.atomic_write(path) as handle:
        handle.write(json.dumps(data).encode())
    return data, False


def _lookup(table: dict, ticker: str) -> Optional[tuple[str, str]]:
    for row in table.values():
        if str(row.get("ticker", "")).upper() == ticker:
            return normalize_cik(row["cik_str"]), str(row.get("title") or "")
    return None


def resolve_cik(ticker: str, client: Optional[EdgarClient] = None) -> tuple[str, str]:
    """Ticker -> ``(CIK as 10 digits, company title)`` via EDGAR's company_tickers.json.

    The table is cached in the data home for a day; an unknown ticker triggers
    one refresh before ``FetchError("unknown ticker ...")``.
    """
    symbol = normalize_ticker(ticker)
    http, own = _client_or_new(client)
    try:
        table, cached = _load_tickers(http)
        found = _lookup(table, symbol)
        if found is None and cached:
            table, _ = _load_tickers(http, refresh=True)
            found = _lookup(table, symbol)
    finally:
        if own:
            http.close()
    if found is None:
        raise FetchError(
            f"unknown ticker {symbol!r}: EDGAR's company_tickers.json does not list it "
            "(delisted or renamed companies are not there; use --cik instead)"
        )
    return found


# --------------------------------------------------------------------------- listing


_COLUMNS = ("accessionNumber", "filingDate", "reportDate", "form", "primaryDocument")


def _rows(columns: dict) -> Iterator[dict]:
    arrays = [columns.get(name) or [] for name in _COLUMNS]
    count = len(arrays[0])
    for i in range(count):
        yield {name: (arr[i] if i < len(arr) else "") or "" for name, arr in zip(_COLUMNS, arrays)}


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
    if not isinstance(data, dict) or "filings" not in data:
        raise FetchError(f"unexpected submissions shape for CIK {cik}")
    return data


def _pages_needed(recent_rows: list[dict], files: list[dict], years: Optional[list[int]]) -> list[dict]:
    """Older submission pages that may hold filings for ``years``.

    A filing for fiscal year Y is filed on or after Y-01-01 (after its period
    end).  ``recent`` holds the newest filings, so when its oldest filing date
    is before min(years)-01-01 it covers everything asked for; otherwise pages
    whose ``filingTo`` reaches that date are read.
    """
    if not files:
        return []
    if years is None:
        return list(files)
    since = f"{min(years):04d}-01-01"
    dates = [r["filingDate"] for r in recent_rows if r["filingDate"]]
    if dates and min(dates) < since:
        return []
    return [f for f in files if not f.get("filingTo") or f["filingTo"] >= since]


def _refs(client: EdgarClient, cik: str, data: dict, years: Optional[list[int]],
          include_amendments: bool, ticker: Optional[str]) -> list[FilingRef]:
    company = str(data.get("name") or "")
    if ticker is None:
        tickers = data.get("tickers") or []
        ticker = tickers[0] if tickers else None
    filings = data.get("filings") or {}
    recent = list(_rows(filings.get("recent") or {}))
    rows = list(recent)
    for page in _pages_needed(recent, filings.get("files") or [], years):
        rows.extend(_rows(client.get_json(client.submissions_page_url(page["name"]))))
    wanted = set(years) if years is not None else None
    refs: dict[str, FilingRef] = {}
    for row in rows:
        if not _wanted_form(row["form"], include_amendments) or not row["filingDate"]:
            continue
        fy = _fiscal_year(row["reportDate"], row["filingDate"])
        if wanted is not None and fy not in wanted:
            continue
        accession = row["accessionNumber"]
        document = _safe_name(row["primaryDocument"] or f"{accession}.txt")
        refs[accession] = FilingRef(
            cik=cik,
            company=company,
            ticker=ticker,
            form=row["form"].strip().upper(),
            accession=accession,
            filing_date=row["filingDate"],
            report_date=row["reportDate"] or None,
            fiscal_year=fy,
            primary_document=document,
            url=client.document_url(cik, accession, document),
        )
    return sorted(refs.values(), key=lambda r: (r.fiscal_year, r.filing_date, r.accession))


def list_filings(
    cik: str | int,
    years: str | Iterable[int] | None = None,
    include_amendments: bool = False,
    client: Optional[EdgarClient] = None,
) -> list[FilingRef]:
    """List a company's annual reports on EDGAR, oldest fiscal year first.

    Follows the older ``filings.files`` pages when ``years`` reach back
    further than ``filings.recent``.  ``years=None`` lists every year.
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
    """``filings/{cik}/{accession}`` in the data home (not created)."""
    return settings.data_home() / "filings" / normalize_cik(cik) / accession


def _stored(ref: FilingRef) -> Optional[dict]:
    """The metadata of ``ref`` if it is completely stored, else None."""
    folder = filing_dir(ref.cik, ref.accession)
    meta_path = folder / "filing.json"
    document = folder / ref.primary_document
    if not meta_path.is_file() or not document.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("primary_document") != ref.primary_document or meta.get("sha256") != settings.sha256_file(document):
        return None
    return meta


ProgressHook = Callable[[FilingRef, int, Optional[int]], None]


def _download(client: EdgarClient, ref: FilingRef, progress: Optional[ProgressHook]) -> FetchResult:
    folder = filing_dir(ref.cik, ref.accession)
    meta_path = folder / "filing.json"
    document = folder / ref.primary_document
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
    ``FetchReport`` whose results hold the local document paths.
    """
    if not ticker and cik is None:
        raise InputError("give a --ticker or a --cik")
    wanted = parse_years(years)
    symbol = normalize_ticker(ticker) if ticker else None
    number = normalize_cik(cik) if cik is not None else None
    http, own = _client_or_new(client, base_url)
    try:
        if number is None:
            number, _title = resolve_cik(symbol, http)
        data = _submissions(http, number)
        refs = _refs(http, number, data, wanted, include_amendments, symbol)
        report = FetchReport(number, str(data.get("name") or ""), refs[0].ticker if refs else symbol,
                             wanted, include_amendments)
        for ref in refs:
            meta = _stored(ref)
            if meta is not None:
                path = filing_dir(ref.cik, ref.accession) / ref.primary_document
                report.results.append(FetchResult(ref, "skipped", path, meta["sha256"], int(meta.get("bytes") or 0)))
                if progress:
                    progress(ref, -1, None)
                continue
            report.results.append(_download(http, ref, progress))
        return report
    finally:
        if own:
            http.close()


_ACCESSION = re.compile(r"\d{10}-\d{2}-\d{6}")


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
    if not _ACCESSION.fullmatch(str(ref.accession)):
        raise FetchError(f"bad accession number {ref.accession!r} (expected e.g. 0000320193-24-000123)")
    document = _safe_name(str(ref.primary_document))
    if document != ref.primary_document or cik != ref.cik:
        ref = FilingRef(**{**ref.to_dict(), "cik": cik, "primary_document": document})
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
        document = meta_path.parent / str(meta.get("primary_document") or "")
        if not meta.get("primary_document") or not document.is_file():
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


def fetch_table(report: FetchReport):
    """A rich table of a ``FetchReport`` (fiscal year, form, filed, accession, status, document).

    The caption gives the folder; documents are at ``{folder}/{accession}/{document}``.
    """
    from rich import box
    from rich.table import Table

    who = report.ticker or report.cik
    folder = settings.data_home() / "filings" / report.cik
    table = Table(
        title=f"{report.company or who} (CIK {report.cik}): {len(report.downloaded)} downloaded, "
        f"{len(report.skipped)} already stored",
        caption=f"stored as {folder}/<accession>/<document>",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("FY", "form", "filed", "accession", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("document", overflow="fold")
    for result in report.results:
        ref = result.filing
        style = "green" if result.status == "downloaded" else "dim"
        table.add_row(str(ref.fiscal_year), ref.form, ref.filing_date, ref.accession,
                      f"[{style}]{result.status}[/]", result.path.name)
    return table


class RichProgress:
    """A ``progress`` hook for ``fetch_filings`` that draws a rich progress bar per download."""

    def __init__(self, console=None):
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=console, transient=False,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "RichProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def __call__(self, ref: FilingRef, done: int, total: Optional[int]) -> None:
        if done < 0:  # already stored
            return
        key = ref.accession
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(f"FY{ref.fiscal_year} {ref.form} {ref.accession}", total=total)
        self._progress.update(self._tasks[key], completed=done, total=total)
