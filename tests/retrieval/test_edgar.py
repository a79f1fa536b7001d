"""EDGAR fetch layer against a fake EDGAR server on 127.0.0.1 (real HTTP, no internet)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from filinglens import settings
from filinglens.errors import ConfigError, FetchError, InputError
from filinglens.retrieval import edgar as E

_FAKE_PATH = Path(__file__).resolve().parents[1] / "fake_edgar.py"
_spec = importlib.util.spec_from_file_location("filinglens_tests_fake_edgar", _FAKE_PATH)
fake_edgar = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fake_edgar
_spec.loader.exec_module(fake_edgar)
Failure = fake_edgar.Failure

SHARED_HTML = settings.shared_dir() / "data" / "filings" / "html"

AGENT = "FilingLens tests tests@example.com"


@pytest.fixture(scope="module")
def edgar():
    with fake_edgar.FakeEdgar() as server:
        yield server


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path, request):
    home = tmp_path / "home"
    monkeypatch.setenv("FILINGLENS_HOME", str(home))
    monkeypatch.setenv("SEC_USER_AGENT", AGENT)
    monkeypatch.setenv("FILINGLENS_EDGAR_BACKOFF", "0.01")
    for name in ("FILINGLENS_EDGAR_URL", "FILINGLENS_EDGAR_DATA_URL", "FILINGLENS_EDGAR_TIMEOUT", "FILINGLENS_EDGAR_TRIES"):
        monkeypatch.delenv(name, raising=False)
    if "edgar" in request.fixturenames:
        request.getfixturevalue("edgar").reset()
    return home


@pytest.fixture
def client(edgar):
    with E.EdgarClient(edgar.url, timeout=2, max_tries=3, backoff=0.01) as c:
        yield c


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _doc_path(edgar, ticker: str, fiscal_year: int, form: str = "10-K") -> str:
    company = edgar.company(ticker)
    filing = next(f for f in company.filings if f.form == form and f.report_date.startswith(str(fiscal_year)))
    return edgar.document_path(company.cik, filing)


# --------------------------------------------------------------------------- input and config


def test_parse_years():
    assert E.parse_years("2019-2024") == [2019, 2020, 2021, 2022, 2023, 2024]
    assert E.parse_years("2023") == [2023]
    assert E.parse_years(" 2019, 2021-2022 ") == [2019, 2021, 2022]
    assert E.parse_years([2020, 2019]) == [2019, 2020]
    assert E.parse_years(None) is None
    for bad in ("2024-2019", "19-24", "last", "1800"):
        with pytest.raises(InputError):
            E.parse_years(bad)


def test_normalize_cik():
    assert E.normalize_cik(320193) == "0000320193"
    assert E.normalize_cik("CIK0000320193") == "0000320193"
    with pytest.raises(InputError):
        E.normalize_cik("apple")


def test_missing_user_agent_is_a_config_error(monkeypatch):
    monkeypatch.delenv("SEC_USER_AGENT", raising=False)
    with pytest.raises(ConfigError) as info:
        E.EdgarClient()
    assert 'SEC_USER_AGENT="Your Name your@email.com"' in str(info.value)


def test_base_urls_from_environment(monkeypatch):
    with E.EdgarClient() as c:
        assert (c.www_url, c.data_url) == (E.DEFAULT_WWW_URL, E.DEFAULT_DATA_URL)
        assert c.timeout == E.DEFAULT_TIMEOUT
    monkeypatch.setenv("FILINGLENS_EDGAR_URL", "http://127.0.0.1:9/")
    with E.EdgarClient() as c:
        assert (c.www_url, c.data_url) == ("http://127.0.0.1:9", "http://127.0.0.1:9")
        assert c.document_url("0000320193", "0000320193-24-000123", "a.htm") == (
            "http://127.0.0.1:9/Archives/edgar/data/320193/000032019324000123/a.htm"
        )
    monkeypatch.setenv("FILINGLENS_EDGAR_DATA_URL", "http://127.0.0.2:9")
    monkeypatch.setenv("FILINGLENS_EDGAR_TIMEOUT", "7")
    with E.EdgarClient() as c:
        assert (c.www_url, c.data_url, c.timeout) == ("http://127.0.0.1:9", "http://127.0.0.2:9", 7.0)
        assert c.submissions_url("320193") == "http://127.0.0.2:9/submissions/CIK0000320193.json"


# --------------------------------------------------------------------------- resolving and listing


def test_resolve_ticker_and_cache(edgar, client, env):
    assert E.resolve_cik("aapl", client) == ("0000320193", "Apple Inc.")
    assert E.resolve_cik("NVDA", client)[0] == "0001045810"
    assert edgar.hits["/files/company_tickers.json"] == 1  # cached in the data home for a day
    assert edgar.user_agents == [AGENT]
    assert list((env / "edgar").glob("company_tickers*.json"))


def test_unknown_ticker_and_cik(edgar, client):
    with pytest.raises(FetchError, match="unknown ticker 'ZZZZ'.*--cik"):
        E.resolve_cik("zzzz", client)
    with pytest.raises(FetchError, match="no EDGAR company with CIK 0000000042"):
        E.list_filings(42, client=client)


def test_years_filter_and_pagination(edgar, client):
    refs = E.list_filings("320193", "2019-2024", client=client)
    assert [r.fiscal_year for r in refs] == [2019, 2020, 2021, 2022, 2023, 2024]
    assert {r.form for r in refs} == {"10-K"}
    latest = refs[-1]
    assert latest.accession == "0000320193-24-000123"
    assert latest.primary_document == "aapl-20240928.htm"
    assert latest.report_date == "2024-09-28" and latest.filing_date == "2024-11-01"
    assert latest.url == f"{edgar.url}/Archives/edgar/data/320193/000032019324000123/aapl-20240928.htm"
    assert latest.company == "Apple Inc." and latest.ticker == "AAPL"
    pages = [p for p in edgar.hits if "-submissions-" in p]
    assert sorted(pages) == ["/submissions/CIK0000320193-submissions-001.json",
                             "/submissions/CIK0000320193-submissions-002.json"]

    edgar.reset()
    assert [r.fiscal_year for r in E.list_filings(320193, "2024", client=client)] == [2024]
    assert not [p for p in edgar.hits if "-submissions-" in p]  # `recent` covers 2024


def test_amendments_only_when_asked_and_other_forms_never(client):
    plain = E.list_filings(320193, client=client)
    assert {r.form for r in plain} == {"10-K", "10-K405"}
    assert 2001 in {r.fiscal_year for r in plain if r.form == "10-K405"}
    assert 2002 not in {r.fiscal_year for r in plain}  # 10-KSB is not a 10-K here

    amended = E.list_filings(320193, "2021-2024", include_amendments=True, client=client)
    forms = [(r.fiscal_year, r.form) for r in amended]
    assert (2021, "10-K/A") in forms and (2024, "10-K/A") in forms
    assert (2021, "10-K") in forms and (2024, "10-K") in forms
    assert not any(form in {"8-K", "10-Q"} for _, form in forms)
    assert all(r.is_amendment == r.form.endswith("/A") for r in amended)


# --------------------------------------------------------------------------- downloading and storing


def test_download_stores_exact_bytes_and_metadata(edgar, client, env):
    report = E.fetch_filings(ticker="NVDA", client=client)
    assert report.cik == "0001045810" and report.ticker == "NVDA"
    assert [(r.filing.fiscal_year, r.status) for r in report.results] == [(2023, "downloaded"), (2025, "downloaded")]
    sources = {2023: SHARED_HTML / "nvda-10-k-fy2023.html", 2025: SHARED_HTML / "nvda-10-k-2025-02-26.html"}
    for result in report.results:
        ref = result.filing
        assert result.path == env / "filings" / "0001045810" / ref.accession / ref.primary_document
        expected = sources[ref.fiscal_year].read_bytes()
        assert result.path.read_bytes() == expected
        meta = json.loads(result.metadata_path.read_text())
        assert meta["sha256"] == hashlib.sha256(expected).hexdigest() == result.sha256
        assert meta["bytes"] == len(expected)
        for key in ("ticker", "cik", "company", "form", "filing_date", "report_date", "fiscal_year",
                    "accession", "primary_document", "url"):
            assert meta[key] == getattr(ref, key)
    stored = E.stored_filings(ticker="nvda")
    assert [s.fiscal_year for s in stored] == [2023, 2025]
    assert [s.path for s in stored] == report.paths
    assert E.stored_filings(years="2025")[0].accession == report.results[1].filing.accession
    assert not list(env.rglob("*.part"))


def test_second_run_skips_and_repairs_a_damaged_document(edgar, client):
    first = E.fetch_filings(ticker="AAPL", years="2023-2024", client=client)
    assert [r.status for r in first.results] == ["downloaded", "downloaded"]
    edgar.reset()
    second = E.fetch_filings(ticker="AAPL", years="2023-2024", client=client)
    assert [r.status for r in second.results] == ["skipped", "skipped"]
    assert second.paths == first.paths
    assert edgar.document_hits() == 0

    # A document that no longer matches its recorded sha256 is fetched again.
    damaged = first.results[0].path
    damaged.write_bytes(b"garbage")
    third = E.fetch_filings(ticker="AAPL", years="2023-2024", client=client)
    assert [r.status for r in third.results] == ["downloaded", "skipped"]
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() == first.results[0].sha256
    assert edgar.document_hits() == 1

    # A document without its filing.json (interrupted before the metadata) is not trusted.
    first.results[1].metadata_path.unlink()
    edgar.reset()
    fourth = E.fetch_filings(ticker="AAPL", years="2023-2024", client=client)
    assert [r.status for r in fourth.results] == ["skipped", "downloaded"]
    assert edgar.document_hits() == 1 and first.results[1].metadata_path.is_file()


def test_backoff_delays(client):
    import httpx

    assert client._delay(1, httpx.Response(429, headers={"Retry-After": "2"})) == 2.0
    assert client._delay(1, httpx.Response(429, headers={"Retry-After": "99999"})) == client.max_backoff
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert client._delay(1, httpx.Response(503, headers={"Retry-After": past})) == 0.0
    assert 0.01 <= client._delay(1, None) <= 0.011
    assert 0.04 <= client._delay(3, None) <= 0.044  # doubles each try


def test_retry_after_429_then_success(edgar, client):
    path = _doc_path(edgar, "AAPL", 2024)
    edgar.fail(path, Failure("status", status=429, retry_after="1"))
    started = time.monotonic()
    report = E.fetch_filings(ticker="AAPL", years=2024, client=client)
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert report.results[0].status == "downloaded"
    assert report.results[0].path.read_bytes() == (SHARED_HTML / "aapl-10-k-2024-11-01.html").read_bytes()
    assert edgar.hits[path] == 2


def test_persistent_500_gives_up_after_bounded_tries(edgar, client, env):
    path = "/submissions/CIK0000320193.json"
    edgar.fail(path, Failure("status", status=500), forever=True)
    with pytest.raises(FetchError) as info:
        E.fetch_filings(cik=320193, client=client)
    message = str(info.value)
    assert "HTTP 500" in message and "3 tries" in message and path in message
    assert edgar.hits[path] == 3
    assert not _files_under(env / "filings")


def test_not_found_document_is_not_retried(edgar, client, tmp_path):
    path = "/Archives/edgar/data/320193/000032019324999999/missing.htm"
    with pytest.raises(FetchError, match="404"):
        client.download(edgar.url + path, tmp_path / "missing.htm")
    assert edgar.hits[path] == 1
    assert not (tmp_path / "missing.htm").exists() and not list(tmp_path.glob("*.part"))


def test_timeout_gives_fetch_error(edgar, env):
    path = _doc_path(edgar, "AAPL", 2024)
    edgar.fail(path, Failure("slow", delay=1.5), forever=True)
    with E.EdgarClient(edgar.url, timeout=0.3, max_tries=2, backoff=0.01) as slow_client:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            E.fetch_filings(ticker="AAPL", years=2024, client=slow_client)
        assert time.monotonic() - started < 3
    assert edgar.hits[path] == 2
    assert not _files_under(env / "filings")


def test_truncated_body_leaves_nothing_behind(edgar, client, env):
    path = _doc_path(edgar, "AAPL", 2024)
    edgar.fail(path, Failure("truncate", fraction=0.5), forever=True)
    with pytest.raises(FetchError, match="3 tries"):
        E.fetch_filings(ticker="AAPL", years=2024, client=client)
    assert edgar.hits[path] == 3
    leftovers = _files_under(env / "filings")
    assert leftovers == [], leftovers  # no *.part, no document, no filing.json


def test_truncated_once_then_complete(edgar, client):
    edgar.gzip = False  # plain body: the announced Content-Length is the document size
    try:
        path = _doc_path(edgar, "AAPL", 2024)
        edgar.fail(path, Failure("truncate", fraction=0.3))
        report = E.fetch_filings(ticker="AAPL", years=2024, client=client)
    finally:
        edgar.gzip = True
    assert report.results[0].path.read_bytes() == (SHARED_HTML / "aapl-10-k-2024-11-01.html").read_bytes()
    assert edgar.hits[path] == 2


# --------------------------------------------------------------------------- rate limit


def test_rate_limiter_unit():
    limiter = E.RateLimiter(5, 0.2, slack=0.01)
    starts = []
    for _ in range(12):
        limiter.acquire()
        starts.append(time.monotonic())
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u - t < 0.2) <= 5


def test_rate_limit_seen_by_server(edgar, client):
    """Four threads hammer the server; no 1-second window ever holds more than 10 starts."""
    url = client.tickers_url

    def hammer():
        for _ in range(6):
            client.get_bytes(url)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(t for t, _ in edgar.log)
    assert len(times) == 24
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < 1.0) <= 10
    assert times[-1] - times[0] >= 2.0  # 24 requests need more than 2 s at 10/s


# --------------------------------------------------------------------------- CLI


def _runner():
    from typer.testing import CliRunner

    return CliRunner()


def test_cli_fetch_json_then_table(edgar, env):
    from filinglens.cli import app

    args = ["fetch", "--ticker", "AAPL", "--years", "2023-2024", "--base-url", edgar.url]
    result = _runner().invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cik"] == "0000320193"
    assert [(f["fiscal_year"], f["status"]) for f in data["filings"]] == [(2023, "downloaded"), (2024, "downloaded")]
    assert all(Path(f["path"]).is_file() for f in data["filings"])

    result = _runner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stdout and "0000320193-24-000123" in result.stdout


def test_cli_unknown_ticker_is_readable(edgar, env):
    from filinglens.cli import app

    result = _runner().invoke(app, ["fetch", "--ticker", "ZZZZ", "--years", "2024", "--base-url", edgar.url])
    assert result.exit_code != 0
    assert "unknown ticker 'ZZZZ'" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not _files_under(env / "filings")
    assert not list(env.rglob("*.part"))


def test_cli_missing_user_agent(monkeypatch, edgar):
    from filinglens.cli import app

    monkeypatch.delenv("SEC_USER_AGENT")
    result = _runner().invoke(app, ["fetch", "--ticker", "AAPL", "--base-url", edgar.url])
    assert result.exit_code != 0
    assert "SEC_USER_AGENT" in result.output and "Traceback" not in result.output
    assert sum(edgar.hits.values()) == 0


def test_cli_subprocess_unknown_ticker(edgar, env):
    exe = Path(sys.executable).parent / "filinglens"
    if not exe.exists():
        pytest.skip("filinglens console script not installed")
    proc = subprocess.run(
        [str(exe), "fetch", "--ticker", "NOPE", "--years", "2019-2024", "--base-url", edgar.url],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )
    assert proc.returncode != 0
    assert "unknown ticker 'NOPE'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert edgar.hits["/files/company_tickers.json"] == 1
    assert not _files_under(env / "filings")
    assert not list(env.rglob("*.part"))
