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
FAULT_MODES = fake_edgar.FAULT_MODES

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
    for name in ("FILINGLENS_EDGAR_URL", "FILINGLENS_EDGAR_DATA_URL", "FILINGLENS_EDGAR_TIMEOUT", "FILINGLENS_EDGAR_TRIES",
                 "FILINGLENS_EDGAR_DEADLINE", "FILINGLENS_EDGAR_MAX_BACKOFF"):
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


def test_rate_limiter_holds_when_a_sleep_overshoots(monkeypatch):
    """A loaded machine wakes a sleeper late; the limiter used to count the planned slot, so the
    next starts bunched up (6 in 0.2 s here, and the flaky ``test_rate_limiter_unit``)."""
    real_sleep, calls = time.sleep, []

    def oversleep(seconds):
        calls.append(seconds)
        real_sleep(seconds + (0.1 if len(calls) == 3 else 0))

    monkeypatch.setattr(E.time, "sleep", oversleep)
    limiter = E.RateLimiter(5, 0.2, slack=0.01)
    starts = []
    for _ in range(12):
        limiter.acquire()
        starts.append(time.monotonic())
    assert len(calls) >= 3
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



# --------------------------------------------------------------------------- validating what EDGAR sends

REAL_DOCUMENT_NAMES = [  # primary documents of real 10-Ks on EDGAR
    "aapl-20240928.htm", "d10k.htm", "0001193125-09-214859.txt", "msft-10k_20230630.htm", "form10-k.htm",
    "ko-20241231.htm", "wfc-20241231.htm", "a2019-10k.htm", "R10K.HTM",
]


def test_normalize_accession_accepts_both_edgar_forms():
    assert E.normalize_accession("0000320193-24-000123") == "0000320193-24-000123"
    assert E.normalize_accession("000032019324000123") == "0000320193-24-000123"


@pytest.mark.parametrize("bad", [
    "../../../x", "/etc/passwd", "0000320193-24-00012", "0000320193-24-000123/..", "0000320193-24-000123\n",
    "٠٠٠٠٣٢٠١٩٣-٢٤-٠٠٠١٢٣", "", None, 32019324000123, ["0000320193-24-000123"],
])
def test_normalize_accession_refuses_anything_else(bad):
    with pytest.raises(E.InvalidEdgarData, match="accession number"):
        E.normalize_accession(bad)


@pytest.mark.parametrize("name", REAL_DOCUMENT_NAMES + [p.name for p in sorted(SHARED_HTML.glob("*.html"))[:5]])
def test_document_names_of_real_filings_are_accepted(name):
    assert E.check_document_name(name) == name


@pytest.mark.parametrize("bad,reason", [
    ("../../../escaped.htm", "path separator"), ("/etc/passwd.htm", "path separator"),
    ("sub/aapl.htm", "path separator"), ("sub\\aapl.htm", "path separator"), ("..htm", r"'\.\.'"),
    ("a..b.htm", r"'\.\.'"), ("aapl\x00.htm", "control"), ("aapl\n.htm", "control"), (".hidden.htm", "start with"),
    ("aapl 2024.htm", "characters outside"), ("[x]y.htm", "characters outside"), ("[/]x.htm", "path separator"), ("run.sh", "does not end in"),
    ("filing.json", "does not end in"), ("aapl", "does not end in"), ("a" * 201 + ".htm", "longer than 200"),
    ("", "empty"), (None, "not text"), (42, "not text"),
])
def test_document_name_refusals(bad, reason):
    with pytest.raises(E.InvalidEdgarData, match=reason):
        E.check_document_name(bad)


def test_cik_with_unicode_digits_is_rejected():
    # "²".isdigit() is True but int("²") fails: this used to escape as a ValueError traceback.
    for bad in ("²", "٣٢٠١٩٣", "12345678901", True, 0, "CIK"):
        with pytest.raises(InputError, match="bad CIK"):
            E.normalize_cik(bad)


def test_filing_dir_refuses_accession_with_path_traversal(env):
    with pytest.raises(E.InvalidEdgarData):
        E.filing_dir("320193", "../../../x")
    with pytest.raises(E.InvalidEdgarData):
        E.filing_dir("320193", str(env.parent / "outside"))
    assert E.filing_dir("320193", "000032019324000123") == env / "filings" / "0000320193" / "0000320193-24-000123"


def test_written_paths_must_lie_inside_the_filings_folder(env):
    """Defence in depth: even a FilingRef built without validation cannot write outside ``filings/``."""
    folder = E.filing_dir("320193", "0000320193-24-000123")
    assert E._inside(folder, folder / "aapl-20240928.htm")
    with pytest.raises(FetchError, match="not inside"):
        E._inside(folder, folder / ".." / ".." / ".." / "escaped.htm")
    ref = E.FilingRef("0000320193", "Apple", "AAPL", "10-K", "0000320193-24-000123", "2024-11-01", "2024-09-28",
                      2024, "../../escaped.htm", "http://127.0.0.1:9/x")
    with pytest.raises(E.InvalidEdgarData):
        E._document_path(ref)


def test_retry_after_nan_falls_back_to_backoff(client):
    import httpx

    # time.sleep(nan) raises ValueError: this used to end fetch with a traceback.
    delay = client._delay(1, httpx.Response(429, headers={"Retry-After": "nan"}))
    assert 0.01 <= delay <= 0.011
    assert client._delay(1, httpx.Response(429, headers={"Retry-After": "inf"})) == client.max_backoff
    assert client._delay(1, httpx.Response(429, headers={"Retry-After": "-5"})) == 0.0


def test_deadline_and_max_backoff_settings(monkeypatch):
    with E.EdgarClient() as c:
        assert c.deadline == 300.0 and c.max_backoff == E.MAX_BACKOFF and c.deadline_enforced
    monkeypatch.setenv("FILINGLENS_EDGAR_DEADLINE", "7.5")
    monkeypatch.setenv("FILINGLENS_EDGAR_MAX_BACKOFF", "2")
    with E.EdgarClient() as c:
        assert (c.deadline, c.max_backoff, c.max_transfer) == (7.5, 2.0, 7.5)
    for bad in ("0", "-1", "nan", "soon"):
        monkeypatch.setenv("FILINGLENS_EDGAR_DEADLINE", bad)
        with pytest.raises(ConfigError, match="FILINGLENS_EDGAR_DEADLINE|deadline"):
            E.EdgarClient()


def test_tries_that_are_not_a_number_are_a_config_error(monkeypatch):
    # int(float("nan")) raised ValueError: a traceback from a setting.
    for bad in ("nan", "inf"):
        monkeypatch.setenv("FILINGLENS_EDGAR_TRIES", bad)
        with pytest.raises(ConfigError, match="tries"):
            E.EdgarClient()


def test_recent_as_an_empty_list_is_unusable_not_empty(edgar, client):
    """``filings.recent: []`` used to read as "no filings" (``[] or {}``)."""
    edgar.fail("/submissions/CIK0000320193.json",
               Failure("json", transform=lambda d: {**d, "filings": {**d["filings"], "recent": []}}))
    with pytest.raises(FetchError, match="filings.recent is list, not an object"):
        E.list_filings(320193, "2024", client=client)


def test_deadline_covers_proxy_transports_too(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    with E.EdgarClient() as c:
        assert c.deadline_enforced
        assert c._http._mounts and all(
            isinstance(t._pool._network_backend, E._DeadlineBackend) for t in c._http._mounts.values() if t
        )


def test_trickling_json_hits_the_deadline(edgar, env):
    edgar.fail("/files/company_tickers.json", Failure("trickle", interval=0.05), forever=True)
    with E.EdgarClient(edgar.url, timeout=0.5, deadline=0.8, max_tries=2, backoff=0.01) as c:
        started = time.monotonic()
        with pytest.raises(FetchError, match="deadline of 0.8 s"):
            E.resolve_cik("AAPL", c)
        assert time.monotonic() - started < 3
    assert edgar.hits["/files/company_tickers.json"] == 2
    assert not list(env.rglob("company_tickers*"))


def test_trickling_document_hits_the_deadline(edgar, env):
    """A document that trickles used to be checked only between 64 KiB chunks: never, at 1 byte per read."""
    path = _doc_path(edgar, "AAPL", 2024)
    edgar.fail(path, Failure("trickle", interval=0.05, chunk=100), forever=True)
    with E.EdgarClient(edgar.url, timeout=0.5, deadline=0.8, max_tries=2, backoff=0.01) as c:
        started = time.monotonic()
        with pytest.raises(FetchError, match="deadline"):
            E.fetch_filings(ticker="AAPL", years=2024, client=c)
        assert time.monotonic() - started < 4
    assert not _files_under(env / "filings")


def test_bad_ticker_rows_are_skipped_counted_and_not_cached(edgar, client, env):
    edgar.inject("tickers-bad-rows")
    report = E.fetch_filings(ticker="AAPL", years=2024, client=client)
    assert [r.status for r in report.results] == ["downloaded"]
    assert report.notes == ["company_tickers.json: skipped 5 invalid rows"]
    cached = json.loads(next((env / "edgar").glob("company_tickers*.json")).read_text())
    assert all(isinstance(r, dict) and isinstance(r["cik_str"], int) and r["ticker"] for r in cached.values())
    assert len(cached) == len(edgar.companies) + sum(len(c.tickers) for c in edgar.companies.values()) - len(edgar.companies)
    # The cache holds only valid rows, so the next run trusts it and says nothing.
    edgar.reset()
    again = E.fetch_filings(ticker="AAPL", years=2024, client=client)
    assert again.notes == [] and edgar.hits["/files/company_tickers.json"] == 0


@pytest.mark.parametrize("mode", ["malformed-json-tickers", "tickers-not-object", "tickers-no-usable-row"])
def test_unusable_ticker_table_is_never_cached(edgar, client, env, mode):
    edgar.inject(mode)
    with pytest.raises(FetchError, match="company_tickers.json|not JSON"):
        E.resolve_cik("AAPL", client)
    assert not list(env.rglob("company_tickers*"))


def test_a_broken_cache_is_refetched(edgar, client, env):
    E.resolve_cik("AAPL", client)
    cache = next((env / "edgar").glob("company_tickers*.json"))
    cache.write_text('{"0": "AAPL", "1": {"ticker": "AAPL"}}')
    edgar.reset()
    assert E.resolve_cik("AAPL", client) == ("0000320193", "Apple Inc.")
    assert edgar.hits["/files/company_tickers.json"] == 1


def test_list_filings_reports_invalid_rows(edgar, client):
    edgar.inject("accession-path-traversal")
    refs = E.list_filings(320193, "2023-2024", client=client)
    assert [r.fiscal_year for r in refs] == [2023]
    [failure] = refs.invalid
    assert failure.where == "filings.recent[2]" and failure.form == "10-K"
    assert failure.accession == "'../../../escaped-accession'"
    assert "not of the form 0000000000-00-000000" in failure.reason


def test_invalid_older_page_entry_is_reported_not_read(edgar, client):
    def bad_page(data):
        data["filings"]["files"][0]["name"] = "../../files/company_tickers.json"
        return data

    edgar.fail("/submissions/CIK0000320193.json", Failure("json", transform=bad_page))
    refs = E.list_filings(320193, "2018-2024", client=client)
    assert any("submissions page name" in f.reason for f in refs.invalid)
    assert "/files/company_tickers.json" not in edgar.hits
    assert [p for p in edgar.hits if "-submissions-" in p] == ["/submissions/CIK0000320193-submissions-002.json"]


def test_stored_filings_ignore_metadata_with_a_hostile_document_name(edgar, client, env):
    report = E.fetch_filings(ticker="AAPL", years=2024, client=client)
    meta_path = report.results[0].metadata_path
    meta = json.loads(meta_path.read_text())
    meta["primary_document"] = "../../../../etc/passwd"
    meta_path.write_text(json.dumps(meta))
    assert E.stored_filings(ticker="AAPL") == []


# --------------------------------------------------------------------------- fault suite through the CLI

CLI_ARGS = ["fetch", "--ticker", "AAPL", "--years", "2024"]


def _cli_fault(edgar, env, tmp_path, monkeypatch, mode, *, args=None, limits=None, max_seconds=8.0):
    """Run ``filinglens fetch`` against the fake armed with ``mode``; check the outcome it promises.

    Always: no traceback, nothing outside the data home, no ``*.part`` left,
    done within ``max_seconds``.  ``ok``: exit 0 and the real document stored;
    ``error``: one ``error:`` line, exit != 0, nothing under ``filings/``;
    ``invalid``: a ``not fetched:`` line, exit 1, the FY2024 filing not stored.
    """
    from filinglens.cli import app

    for name, value in {**fake_edgar.CLIENT_LIMITS, **(limits or {})}.items():
        monkeypatch.setenv(name, value)
    fault = edgar.inject(mode, outside=tmp_path / "outside")
    started = time.monotonic()
    result = _runner().invoke(app, (args or CLI_ARGS) + ["--base-url", edgar.url])
    elapsed = time.monotonic() - started
    assert elapsed < max_seconds, f"{mode}: took {elapsed:.1f} s"
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert [p.name for p in tmp_path.iterdir()] == ["home"], "something was written outside the data home"
    assert not any(p.exists() for p in fault.outside)
    assert not list(env.rglob("*.part"))
    stored = [p for p in _files_under(env / "filings") if p.name != "filing.json"]
    if fault.expect == "ok":
        assert result.exit_code == 0, result.output
        apple = (SHARED_HTML / "aapl-10-k-2024-11-01.html").read_bytes()
        assert [p.read_bytes() == apple for p in stored] == [True]
    elif fault.expect == "error":
        assert result.exit_code not in (0, None), result.output
        assert result.stderr.count("error:") == 1, result.stderr
        assert not _files_under(env / "filings")
    else:
        assert fault.expect == "invalid"
        assert result.exit_code == 1, result.output
        assert "not fetched:" in result.stderr and "filings.recent[" in result.stderr, result.stderr
        assert not any(p.parent.name == "0000320193-24-000123" for p in stored)
    return result, elapsed


def test_cli_fault_429_retry_after(edgar, env, tmp_path, monkeypatch):
    _, elapsed = _cli_fault(edgar, env, tmp_path, monkeypatch, "429-retry-after",
                            limits={"FILINGLENS_EDGAR_MAX_BACKOFF": "5"})
    assert elapsed >= 0.9  # Retry-After: 1 honoured
    assert edgar.hits[_doc_path(edgar, "AAPL", 2024)] == 2


def test_cli_fault_429_forever(edgar, env, tmp_path, monkeypatch):
    result, elapsed = _cli_fault(edgar, env, tmp_path, monkeypatch, "429-forever", max_seconds=4)
    assert "HTTP 429" in result.stderr and "3 tries" in result.stderr
    assert edgar.hits["/submissions/CIK0000320193.json"] == 3  # Retry-After: 3600 capped at 0.3 s


def test_cli_fault_retry_after_nan(edgar, env, tmp_path, monkeypatch):
    _cli_fault(edgar, env, tmp_path, monkeypatch, "retry-after-nan")


def test_cli_fault_500_then_ok(edgar, env, tmp_path, monkeypatch):
    _cli_fault(edgar, env, tmp_path, monkeypatch, "500-then-ok")
    assert edgar.hits["/submissions/CIK0000320193.json"] == 3


def test_cli_fault_500_forever(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "500-forever", max_seconds=4)
    assert "HTTP 500" in result.stderr
    assert edgar.hits["/submissions/CIK0000320193.json"] == 3


def test_cli_fault_read_timeout(edgar, env, tmp_path, monkeypatch):
    result, elapsed = _cli_fault(edgar, env, tmp_path, monkeypatch, "read-timeout", max_seconds=4)
    assert "timed out" in result.stderr


def test_cli_fault_trickle_json(edgar, env, tmp_path, monkeypatch):
    result, elapsed = _cli_fault(edgar, env, tmp_path, monkeypatch, "trickle-json", max_seconds=6)
    assert "deadline of 1 s" in result.stderr and elapsed >= 2.9  # three tries of 1 s
    assert not list(env.rglob("company_tickers*"))


def test_cli_fault_trickle_headers(edgar, env, tmp_path, monkeypatch):
    result, elapsed = _cli_fault(edgar, env, tmp_path, monkeypatch, "trickle-headers", max_seconds=6)
    assert "deadline" in result.stderr


def test_cli_fault_trickle_document(edgar, env, tmp_path, monkeypatch):
    result, elapsed = _cli_fault(edgar, env, tmp_path, monkeypatch, "trickle-document", max_seconds=6)
    assert "deadline" in result.stderr


def test_cli_fault_truncated_document(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "truncated-document")
    assert "3 tries" in result.stderr


def test_cli_fault_bad_gzip(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "bad-gzip")
    assert "DecodingError" in result.stderr


def test_cli_fault_redirect_loop(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "redirect-loop")
    assert "TooManyRedirects" in result.stderr


def test_cli_fault_malformed_json_tickers(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "malformed-json-tickers")
    assert "not JSON" in result.stderr
    assert not list(env.rglob("company_tickers*"))


def test_cli_fault_malformed_json_submissions(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "malformed-json-submissions")
    assert "not JSON" in result.stderr


def test_cli_fault_deeply_nested_json(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "deeply-nested-json")
    assert "not JSON" in result.stderr


def test_cli_fault_tickers_not_object(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "tickers-not-object")
    assert "top level is list" in result.stderr
    assert not list(env.rglob("company_tickers*"))


def test_cli_fault_tickers_bad_rows(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "tickers-bad-rows")
    assert "skipped 5 invalid rows" in result.stderr


def test_cli_fault_tickers_no_usable_row(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "tickers-no-usable-row")
    assert "has a ticker and a CIK" in result.stderr
    assert not list(env.rglob("company_tickers*"))


def test_cli_fault_submissions_not_object(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "submissions-not-object")
    assert "unusable EDGAR submissions data" in result.stderr


def test_cli_fault_recent_not_object(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "recent-not-object")
    assert "filings.recent is str" in result.stderr


def test_cli_fault_recent_unequal_columns(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "recent-unequal-columns")
    assert "differ in length" in result.stderr


def test_cli_fault_recent_column_not_list(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "recent-column-not-list")
    assert "filings.recent.form is str, not a list" in result.stderr


def test_cli_fault_files_not_list(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "files-not-list")
    assert "filings.files is dict" in result.stderr


def test_cli_fault_accession_not_text(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "accession-not-text")
    assert "accession number 32019324000123 is not of the form" in result.stderr


def test_cli_fault_accession_path_traversal(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "accession-path-traversal")
    assert "'../../../escaped-accession'" in result.stderr
    assert edgar.document_hits() == 0  # never even requested


def test_cli_fault_accession_absolute(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "accession-absolute")
    assert "accession number" in result.stderr and edgar.document_hits() == 0


def test_cli_fault_accession_18_digits(edgar, env, tmp_path, monkeypatch):
    _cli_fault(edgar, env, tmp_path, monkeypatch, "accession-18-digits")
    assert (env / "filings" / "0000320193" / "0000320193-24-000123" / "filing.json").is_file()


def test_cli_fault_document_path_traversal(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "document-path-traversal")
    assert "path separator" in result.stderr and edgar.document_hits() == 0


def test_cli_fault_document_absolute(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "document-absolute")
    assert "path separator" in result.stderr and edgar.document_hits() == 0


def test_cli_fault_document_nul(edgar, env, tmp_path, monkeypatch):
    # open() refuses a NUL in a path with ValueError: this used to be a traceback.
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "document-nul")
    assert "control characters" in result.stderr


def test_cli_fault_document_bad_extension(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "document-bad-extension")
    assert "does not end in" in result.stderr


def test_cli_fault_bad_report_date(edgar, env, tmp_path, monkeypatch):
    # int("20x4") used to end the fetch with a ValueError traceback.
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "bad-report-date", args=["fetch", "--ticker", "AAPL"])
    assert "reportDate 20x4-09-28 is not a date" in result.stderr


def test_cli_fault_bad_filing_date(edgar, env, tmp_path, monkeypatch):
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "bad-filing-date")
    assert "filingDate 2024-13-45 is not a date" in result.stderr


def test_cli_fault_markup_in_values(edgar, env, tmp_path, monkeypatch):
    """Rich markup in EDGAR's values ("[/]" would raise MarkupError) is printed as text."""
    result, _ = _cli_fault(edgar, env, tmp_path, monkeypatch, "markup-in-values",
                           args=["fetch", "--ticker", "AAPL", "--years", "2023-2024"])
    assert "'[/]x.htm'" in result.stderr
    assert "[/][bold]Evil[/bold]" in result.stdout and "\x1b[31m" not in result.stdout
    assert "1 downloaded" in result.stdout and "1 invalid" in result.stdout


def test_cli_invalid_rows_in_json_output(edgar, env, tmp_path, monkeypatch):
    edgar.inject("document-path-traversal")
    from filinglens.cli import app

    result = _runner().invoke(app, CLI_ARGS + ["--base-url", edgar.url, "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["filings"] == []
    [failure] = data["failed"]
    assert failure["accession"] == "0000320193-24-000123" and failure["form"] == "10-K"
    assert failure["reason"].startswith("document name '../../../escaped.htm' has a path separator")


def test_every_fault_mode_has_a_named_cli_test():
    missing = [m for m in FAULT_MODES if f"test_cli_fault_{m.replace('-', '_')}" not in globals()]
    assert not missing


@pytest.mark.parametrize("mode", ["accession-path-traversal", "trickle-json"])
def test_cli_subprocess_fault(edgar, env, tmp_path, mode):
    """The real command in its own process: one error line on stderr, no traceback, bounded time."""
    fault = edgar.inject(mode, outside=tmp_path / "outside")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "filinglens.cli", *CLI_ARGS, "--base-url", edgar.url],
        capture_output=True, text=True, timeout=60, env={**os.environ, **fake_edgar.CLIENT_LIMITS},
    )
    assert time.monotonic() - started < 15
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == (1 if fault.expect == "invalid" else 2)
    marker = "not fetched:" if fault.expect == "invalid" else "error:"
    assert proc.stderr.count(marker) == 1, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["home"]
    assert not _files_under(env / "filings")


@pytest.mark.parametrize("mode", ["accession-path-traversal", "500-forever", "500-then-ok"])
def test_check_fault_helper_for_the_benchmark(edgar, tmp_path, monkeypatch, mode):
    monkeypatch.delenv("FILINGLENS_EDGAR_TRIES", raising=False)
    outcome = fake_edgar.check_fault(mode, tmp_path / "work", edgar)
    assert outcome.passed, outcome
    assert outcome.got == FAULT_MODES[mode].expect and outcome.seconds < 5 and outcome.escaped == []
    assert os.environ.get("FILINGLENS_EDGAR_DEADLINE") is None  # environment restored
