"""A retry budget per alias: retries may be at most ``ratio`` of the requests of the last ten
seconds, plus ``min_per_s`` (so a quiet tier can still retry), as in Finagle's and gRPC's retry
budgets. Past it, a failure before the first token is the client's error at once instead of more
load on a tier that is already failing.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 10.0


@dataclass(slots=True)
class _Window:
    start: float = 0.0
    requests: int = 0
    retries: int = 0
    prev_requests: int = 0
    prev_retries: int = 0

    def roll(self, now: float) -> None:
        if now - self.start >= WINDOW_S:
            stale = now - self.start >= 2 * WINDOW_S
            self.prev_requests = 0 if stale else self.requests
            self.prev_retries = 0 if stale else self.retries
            self.requests = self.retries = 0
            self.start = now

    def weighted(self, now: float) -> tuple[float, float]:
        """(requests, retries) over a sliding window: the previous window's share weighted."""
        w = max(0.0, 1.0 - (now - self.start) / WINDOW_S)
        return self.requests + w * self.prev_requests, self.retries + w * self.prev_retries


@dataclass(slots=True)
class RetryBudget:
    ratio: float
    min_per_s: float
    windows: dict[str, _Window]

    @classmethod
    def create(cls, ratio: float, min_per_s: float) -> RetryBudget:
        return cls(ratio, min_per_s, {})

    def _w(self, alias: str, now: float) -> _Window:
        w = self.windows.get(alias)
        if w is None:
            w = self.windows[alias] = _Window(start=now)
        w.roll(now)
        return w

    def request(self, alias: str, now: float) -> None:
        self._w(alias, now).requests += 1

    def try_retry(self, alias: str, now: float) -> bool:
        w = self._w(alias, now)
        requests, retries = w.weighted(now)
        if retries + 1 > self.ratio * requests + self.min_per_s * WINDOW_S:
            return False
        w.retries += 1
        return True
