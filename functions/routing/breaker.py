"""Circuit breakers per backend: closed -> open after consecutive failures -> half-open (one probe
request at a time) -> closed on a success, or open again for twice as long on a failure.

Written here rather than taken from a library: pybreaker and aiobreaker keep state in-process (or,
for pybreaker, in Redis through the blocking client, on the event loop), and neither has the shape
needed here — state read by the router per request with no I/O, and shared between gateway
instances by :class:`functions.routing.shared.SharedState` off the request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class Breaker:
    threshold: int
    base_open_s: float
    max_open_s: float
    failures: int = 0
    open_until: float = 0.0
    open_s: float = 0.0
    tripped: bool = False
    """Open or half-open (not yet closed by a successful probe)."""
    probing: bool = False

    def state(self, now: float) -> State:
        if not self.tripped:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def allow(self, now: float) -> bool:
        """May a request go to this backend now? In half-open, only one at a time (the probe)."""
        state = self.state(now)
        if state == "closed":
            return True
        if state == "open" or self.probing:
            return False
        self.probing = True
        return True

    def success(self) -> bool:
        """Record a success; True when this closed the breaker."""
        was = self.tripped
        self.failures, self.tripped, self.probing, self.open_s = 0, False, False, 0.0
        return was

    def failure(self, now: float) -> float | None:
        """Record a failure; the seconds it is now open for when this opened it, else None."""
        self.failures += 1
        if self.tripped and self.state(now) == "half_open":
            self.open_s = min(self.max_open_s, max(self.base_open_s, self.open_s * 2))
        elif not self.tripped and self.failures >= self.threshold:
            self.open_s = self.base_open_s
        else:
            return None
        self.tripped, self.probing = True, False
        self.open_until = now + self.open_s
        return self.open_s

    def opened_elsewhere(self, now: float, remaining_s: float) -> None:
        """Another gateway instance opened it (read from Redis)."""
        if now + remaining_s > self.open_until:
            self.tripped, self.probing = True, False
            self.open_until = now + remaining_s
            self.open_s = max(self.open_s, remaining_s, self.base_open_s)

    def cancel_probe(self) -> None:
        """A probe that neither succeeded nor failed (the client left): let another go."""
        self.probing = False
