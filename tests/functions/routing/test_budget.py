"""The retry budget: a share of the recent requests, plus a floor."""

from __future__ import annotations

from functions.routing.budget import RetryBudget


def test_retries_are_bounded_by_the_share_of_requests() -> None:
    budget = RetryBudget.create(ratio=0.2, min_per_s=0)
    for _ in range(50):
        budget.request("a", 0.0)
    allowed = sum(budget.try_retry("a", 0.0) for _ in range(30))
    assert allowed == 10
    assert budget.try_retry("b", 0.0) is False  # another alias has its own budget (none yet)


def test_the_floor_lets_a_quiet_tier_retry_and_old_windows_fade() -> None:
    budget = RetryBudget.create(ratio=0.0, min_per_s=0.2)  # 2 per 10 s
    assert budget.try_retry("a", 0.0) and budget.try_retry("a", 1.0)
    assert not budget.try_retry("a", 2.0)
    assert budget.try_retry("a", 25.0)  # two windows later: the old retries are forgotten
