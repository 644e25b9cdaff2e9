"""Breakers: closed -> open -> half-open (one probe) -> closed, or open for longer."""

from __future__ import annotations

from functions.routing.breaker import Breaker


def breaker() -> Breaker:
    return Breaker(threshold=3, base_open_s=5, max_open_s=12)


def test_opens_after_consecutive_failures_only() -> None:
    b = breaker()
    assert b.failure(0) is None and b.failure(0) is None
    b.success()  # a success in between starts the count again
    assert b.failure(0) is None and b.failure(0) is None
    assert b.failure(1) == 5
    assert b.state(1) == "open" and not b.allow(2)


def test_half_open_lets_one_probe_through() -> None:
    b = breaker()
    for _ in range(3):
        b.failure(0)
    assert b.state(5.5) == "half_open"
    assert b.allow(5.5)  # the probe
    assert not b.allow(5.6)  # one at a time
    assert b.success() and b.state(6) == "closed"


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_cap() -> None:
    b = breaker()
    for _ in range(3):
        b.failure(0)
    assert b.allow(5.5)
    assert b.failure(5.5) == 10
    assert b.state(15) == "open" and b.state(15.6) == "half_open"
    b.allow(15.6)
    assert b.failure(15.6) == 12  # capped


def test_a_cancelled_probe_lets_another_go() -> None:
    b = breaker()
    for _ in range(3):
        b.failure(0)
    assert b.allow(6)
    b.cancel_probe()
    assert b.allow(6)


def test_opened_elsewhere_extends_only() -> None:
    b = breaker()
    b.opened_elsewhere(0, 4)
    assert b.state(3) == "open" and b.state(4.1) == "half_open"
    b.opened_elsewhere(1, 1)  # shorter than what is known: no change
    assert b.state(3) == "open"
