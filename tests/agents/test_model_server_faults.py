"""A model server that misbehaves, on loopback: 429 with Retry-After, 500, a body that is not JSON, a server
that never answers. Each gives a bounded number of requests and seconds, a recorded failure (never a score),
and a one-line error; a 429 that clears is retried and the rating succeeds."""

from __future__ import annotations

import json
import time

import pytest

from filinglens.agents.evidence import EvidenceItem
from filinglens.agents.rating import RatingChain, Target
from filinglens.store import Store

TARGET = Target("f1", "Example Corp", "EXM", "0000000001", 2024, "hash-f1")
EVIDENCE = [EvidenceItem("c1", "We aim to reach net zero emissions by 2040.", "1", "EXM 10-K FY2024, Item 1")]
ANSWER = {"score": 2, "rationale": "A dated target.", "quotes": ["We aim to reach net zero emissions by 2040."]}


def completion(text: str) -> bytes:
    return json.dumps({
        "id": "x", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }).encode()


def rate(url: str, tmp_path, **params):
    store = Store(tmp_path / "r.db")
    chain = RatingChain(store, model_id="openai:fake", gather=lambda p, t: list(EVIDENCE),
                        connection={"base_url": url}, model_params=params)
    t0 = time.monotonic()
    rating = chain.rate(TARGET, "environment", "v1")
    return rating, time.monotonic() - t0, store


@pytest.fixture
def server(http_server, clean_env):
    return http_server


def test_a_429_with_retry_after_is_waited_out_and_the_rating_succeeds(server, tmp_path):
    state = {"n": 0}

    def handle(seen):
        state["n"] += 1
        if state["n"] <= 2:
            return 429, "application/json", b'{"error": {"message": "rate limited"}}'
        return 200, "application/json", completion(json.dumps(ANSWER))

    srv = server(handle)
    rating, seconds, _ = rate(srv.url + "/v1", tmp_path)
    assert rating.status == "ok" and rating.score == 2, rating.error
    assert len(srv.requests) == 3 and seconds < 30


@pytest.mark.parametrize("case", ["http-500", "not-json", "no-answer"])
def test_a_failing_model_server_is_a_recorded_bounded_one_line_failure(server, tmp_path, case):
    def handle(seen):
        if case == "http-500":
            return 500, "application/json", b'{"error": {"message": "internal error"}}'
        if case == "not-json":
            return 200, "application/json", b"<html>502 Bad Gateway</html>"
        time.sleep(8)  # longer than the client's timeout
        return 200, "application/json", completion(json.dumps(ANSWER))

    srv = server(handle)
    rating, seconds, store = rate(srv.url + "/v1", tmp_path, timeout=1)
    assert rating.status == "failed" and rating.score is None
    assert rating.error and "\n" not in rating.error and "Traceback" not in rating.error
    assert 1 <= len(srv.requests) <= 9 and seconds < 60  # the SDK's retries, bounded
    store.save_rating(store.start_run("rate", {}), rating.to_row())  # what `rate` stores: the failure, no score
    [row] = store.ratings()
    assert row["status"] == "failed" and row["score"] is None and row["error"] == rating.error
    calls = store.calls()
    assert calls and all(c["error"] and c["response"] is None for c in calls)  # recorded, never cached as answers
