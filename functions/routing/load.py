"""What the router knows of each backend's load: readings from the backends themselves (the
``x-llmp-load`` header of every GGUF answer, the periodic poll of GGUF ``/health`` and vLLM
``/metrics``), combined with this process's own in-flight count, and the observed time per token.

A reading is a snapshot taken when the backend answered; the requests this process sent since
then are added on top (they are not in it yet), and a reading older than ``snapshot_ttl_s`` is
dropped. No scrape happens on the request path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

LOAD_HEADER = "x-llmp-load"


@dataclass(frozen=True, slots=True)
class Reading:
    active: int
    queued: int
    slots: int
    at: float
    """``time.monotonic()`` of the reading."""


def parse_load_header(value: str | None, at: float | None = None) -> Reading | None:
    """``active=N;queued=N;slots=N`` (the GGUF server's format); None when absent or garbled."""
    if not value:
        return None
    fields: dict[str, int] = {}
    for part in value.split(";"):
        key, sep, num = part.partition("=")
        if sep and num.strip().isdigit():
            fields[key.strip()] = int(num)
    if "active" not in fields or "slots" not in fields:
        return None
    return Reading(fields["active"], fields.get("queued", 0), fields["slots"],
                   time.monotonic() if at is None else at)


@dataclass(slots=True)
class BackendLoad:
    """The live view of one backend in this process."""

    in_flight: int = 0
    """Requests this process has sent and not yet finished."""
    reading: Reading | None = None
    in_flight_at_reading: int = 0
    """This process's in-flight count when the reading was taken (those are in the reading)."""
    sec_per_token: float | None = None
    """EWMA of seconds per completion token of finished answers (queueing included): a slower
    replica of the same size costs more per request."""
    polled_ok: bool = False
    """The backend answered a poll at least once: a backend never heard from is tried last."""
    version: str | None = None

    def observe(self, reading: Reading) -> None:
        self.reading = reading
        self.in_flight_at_reading = self.in_flight

    def estimate(self, now: float, ttl_s: float) -> tuple[float, int]:
        """(requests at the backend, its slots): the reading plus what this process sent since,
        or this process's own count alone when there is no fresh reading."""
        r = self.reading
        if r is None or now - r.at > ttl_s:
            return float(self.in_flight), r.slots if r is not None else 1
        since = max(0, self.in_flight - self.in_flight_at_reading)
        return float(r.active + r.queued + since), max(1, r.slots)

    def finished(self, seconds: float, tokens: int, alpha: float = 0.3) -> None:
        if tokens <= 0 or seconds <= 0:
            return
        x = seconds / tokens
        self.sec_per_token = x if self.sec_per_token is None else \
            (1 - alpha) * self.sec_per_token + alpha * x


@dataclass(slots=True)
class LoadBook:
    ttl_s: float
    backends: dict[str, BackendLoad] = field(default_factory=dict)

    def of(self, name: str) -> BackendLoad:
        b = self.backends.get(name)
        if b is None:
            b = self.backends[name] = BackendLoad()
        return b

    def expected_cost(self, name: str, now: float, typical_spt: float) -> float:
        """Expected seconds per token for a new request here: the backend's time per token,
        times one plus the share of a slot's worth of requests it would queue behind."""
        b = self.of(name)
        load, slots = b.estimate(now, self.ttl_s)
        spt = b.sec_per_token if b.sec_per_token is not None else typical_spt
        waiting = max(0.0, load + 1 - slots) / slots
        return spt * (1.0 + waiting) * (1.0 + 0.05 * min(load, slots) / slots)
