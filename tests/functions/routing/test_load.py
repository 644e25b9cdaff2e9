"""The router's load book: readings, the requests sent since, time per token."""

from __future__ import annotations

from functions.routing.load import BackendLoad, LoadBook, Reading, parse_load_header


def test_header_parsed_and_garbage_ignored() -> None:
    r = parse_load_header("active=3;queued=2;slots=4", at=1.0)
    assert r == Reading(3, 2, 4, 1.0)
    assert parse_load_header(None) is None
    assert parse_load_header("busy") is None
    assert parse_load_header("active=x;slots=4") is None


def test_estimate_adds_requests_sent_since_the_reading() -> None:
    b = BackendLoad()
    b.in_flight = 2
    b.observe(Reading(2, 0, 4, at=10.0))  # our 2 are in it
    b.in_flight = 5  # 3 more sent since
    assert b.estimate(11.0, ttl_s=5) == (5.0, 4)
    assert b.estimate(20.0, ttl_s=5) == (5.0, 4)  # stale: our own count alone


def test_a_slower_replica_costs_more_and_a_full_one_more_still() -> None:
    book = LoadBook(ttl_s=5)
    fast, slow = book.of("fast"), book.of("slow")
    fast.finished(1.0, 50)
    slow.finished(3.0, 50)
    for b in (fast, slow):
        b.observe(Reading(0, 0, 4, at=0.0))
    assert book.expected_cost("fast", 1.0, 0.05) < book.expected_cost("slow", 1.0, 0.05)
    fast.observe(Reading(4, 8, 4, at=0.0))  # full, with a queue of two slots' worth
    assert book.expected_cost("fast", 1.0, 0.05) > book.expected_cost("slow", 1.0, 0.05)


def test_ewma_of_time_per_token() -> None:
    b = BackendLoad()
    b.finished(1.0, 10)
    assert b.sec_per_token == 0.1
    b.finished(2.0, 10)
    assert b.sec_per_token is not None and 0.1 < b.sec_per_token < 0.2
    b.finished(5.0, 0)  # no tokens (a failure): nothing learned
    assert b.sec_per_token < 0.2
