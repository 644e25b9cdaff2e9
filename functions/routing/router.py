"""Which replica answers: the router's view of every backend (load, breaker, drain, affinity) and
the pick.

The pick, for one request of an alias:

1. candidates: the alias's backends, less drained ones, open breakers and the replicas this
   request already tried; a half-open backend takes the request as its probe (one at a time);
2. affinity: a conversation pinned to a replica stays there while that replica's load per slot
   is under ``affinity_max_load``;
3. no closed breaker left: the replica whose open period ends first, anyway ("panic": a refusal
   helps no one, a dead replica fails fast, and a falsely tripped one answers);
4. otherwise the lowest expected cost (:meth:`LoadBook.expected_cost`: time per token, times
   the queue a new request would join), ties broken at random; with more than four candidates,
   the better of two random ones (power of two choices), so that many gateway instances reading
   the same load do not all pile onto one replica. A backend that has never answered a poll nor
   a request is tried only when no other is left.

Load comes from the backends (a header on every GGUF answer and a poll every ``poll_s`` by one
task per process), so no request waits on a scrape; a new process polls an alias once before
its first request (bounded by ``first_poll_wait_s``), so it routes on real load from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from functions.backends.base import Backend, PollResult
from functions.errors import BackendTimeout
from functions.routing.affinity import Affinity
from functions.routing.breaker import Breaker
from functions.routing.budget import RetryBudget
from functions.routing.load import BackendLoad, LoadBook, Reading, parse_load_header
from functions.routing.settings import RoutingSettings
from functions.routing.shared import SharedState

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

DEFAULT_SEC_PER_TOKEN = 0.05
Why = Literal["affinity", "load", "probe", "only", "untried", "panic"]


@dataclass(slots=True)
class Pick:
    backend: Backend
    why: Why
    affinity: Literal["hit", "moved", "new"] | None = None


@dataclass(slots=True)
class _Stats:
    affinity_hits: int = 0
    picks: int = 0
    failures: int = 0
    opened_by_poll: bool = False
    poll_failures: int = 0


@dataclass(slots=True)
class _Alias:
    backends: Sequence[Backend]
    polled: asyncio.Event = field(default_factory=asyncio.Event)


class Router:
    def __init__(self, backends: Mapping[str, Sequence[Backend]], settings: RoutingSettings,
                 redis: Redis | None,
                 on_version: Callable[[str, str], None] | None = None,
                 rng: random.Random | None = None) -> None:
        self.settings = s = settings
        self._aliases = {alias: _Alias(list(bs)) for alias, bs in backends.items()}
        self._by_name: dict[str, tuple[str, Backend]] = {
            b.name: (alias, b) for alias, bs in backends.items() for b in bs}
        self.book = LoadBook(s.snapshot_ttl_s)
        self.breakers = {name: Breaker(s.breaker_failures, s.breaker_open_s, s.breaker_max_open_s)
                         for name in self._by_name}
        self.stats = {name: _Stats() for name in self._by_name}
        self.drained: set[str] = set()
        self.shared = SharedState(redis)
        self.affinity = Affinity(redis, s.affinity_ttl_s)
        self.budget = RetryBudget.create(s.retry_ratio, s.retry_min_per_s)
        self._on_version = on_version
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._trips: dict[str, asyncio.Event] = {}
        self._last_sync = 0.0

    # -- the background poll ---------------------------------------------------------------
    def _ensure_polling(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll_loop(),
                                                                name="llmp-router-poll")

    async def ready(self, alias: str) -> None:
        """Start the poll if it is not running; the first time an alias is used, wait (bounded)
        for its first poll, so the first request is routed on the backends' real load."""
        self._ensure_polling()
        entry = self._aliases.get(alias)
        if entry is None or entry.polled.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.first_poll_wait_s):
                await entry.polled.wait()

    async def _poll_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:  # the poll must outlive any one failure
                log.exception("router poll failed")
            await asyncio.sleep(max(0.05, self.settings.poll_s - (time.monotonic() - started)))

    async def poll_once(self) -> None:
        """Poll every backend once (concurrently), and re-read the shared state if it is due."""
        names = list(self._by_name)
        results = await asyncio.gather(*(self._poll(n) for n in names))
        for name, result in zip(names, results, strict=True):
            self._polled(name, result)
        for entry in self._aliases.values():
            entry.polled.set()
        if time.monotonic() - self._last_sync >= self.settings.shared_sync_s:
            await self.sync_shared()

    async def _poll(self, name: str) -> PollResult:
        backend = self._by_name[name][1]
        try:
            async with asyncio.timeout(self.settings.poll_timeout_s):
                return await backend.poll(self.settings.poll_timeout_s)
        except TimeoutError:
            return PollResult(False, answered=False)

    def _polled(self, name: str, r: PollResult) -> None:
        now = time.monotonic()
        load, stats, breaker = self.book.of(name), self.stats[name], self.breakers[name]
        if not r.ok:
            s = self.settings
            if r.answered is False and \
                    now - load.last_alive < s.poll_timeout_s + s.poll_s * s.breaker_failures:
                return  # a poll timed out, but answers are flowing: a busy host, not a hang
            stats.poll_failures += 1
            if (opened := breaker.failure(now)) is not None:
                stats.opened_by_poll = True
                self._opened(name, opened, "poll")
            return
        stats.poll_failures = 0
        load.polled_ok = True
        if breaker.tripped and stats.opened_by_poll and breaker.state(now) == "half_open" \
                and breaker.success():
            self._closed(name)  # it answers again: a hang or an outage is over
        if r.active is not None and r.slots:
            load.observe(Reading(r.active, r.queued or 0, r.slots, now))
        if r.version and r.version != load.version:
            load.version = r.version
            if self._on_version is not None:
                self._on_version(self._by_name[name][0], r.version)

    async def sync_shared(self) -> None:
        self._last_sync = time.monotonic()
        got = await self.shared.read(list(self._by_name))
        if got is None:
            return
        opened, drained = got
        now = time.monotonic()
        for name, remaining in opened.items():
            if name in self.breakers:
                self.breakers[name].opened_elsewhere(now, remaining)
        self.drained = {n for n in drained if n in self._by_name}

    # -- the pick --------------------------------------------------------------------------
    def backends(self, alias: str) -> Sequence[Backend]:
        entry = self._aliases.get(alias)
        return entry.backends if entry is not None else ()

    def alias_of(self, backend: str) -> str | None:
        got = self._by_name.get(backend)
        return got[0] if got else None

    def pick(self, alias: str, tried: Iterable[str] = (), pinned: str | None = None
             ) -> Pick | None:
        now = time.monotonic()
        tried = set(tried)
        pool = [b for b in self.backends(alias) if b.name not in tried and b.name not in self.drained]
        if not pool:
            return None
        closed = [b for b in pool if self.breakers[b.name].state(now) == "closed"]
        for b in pool:  # a half-open backend takes this request as its probe
            br = self.breakers[b.name]
            if br.state(now) == "half_open" and not br.probing and br.allow(now):
                return self._chosen(b, "probe")
        if not closed:
            # every replica left is open: try one anyway rather than refuse (Envoy's "panic
            # mode"); a false trip (polls slowed by a busy host) then costs nothing, and a
            # really dead replica fails fast
            return self._chosen(min(pool, key=lambda b: self.breakers[b.name].open_until), "panic")
        proven = [b for b in closed if self._proven(b.name)]
        if not proven:
            return self._chosen(self._rng.choice(closed), "untried")
        if pinned is not None:
            for b in proven:
                if b.name == pinned and self._per_slot(b.name, now) < self.settings.affinity_max_load:
                    self.stats[b.name].affinity_hits += 1
                    return self._chosen(b, "affinity", "hit")
        if len(proven) == 1:
            return self._chosen(proven[0], "only", "new" if pinned is None else "moved")
        field_ = proven if len(proven) <= 4 else self._rng.sample(proven, 2)
        typical = self._typical_spt(proven)
        self._rng.shuffle(field_)  # ties go to a random one
        best = min(field_, key=lambda b: self.book.expected_cost(b.name, now, typical))
        return self._chosen(best, "load", "new" if pinned is None else "moved")

    def _proven(self, name: str) -> bool:
        load = self.book.of(name)
        return load.polled_ok or load.reading is not None or load.sec_per_token is not None

    def _per_slot(self, name: str, now: float) -> float:
        load, slots = self.book.of(name).estimate(now, self.book.ttl_s)
        return load / slots

    def _typical_spt(self, backends: Sequence[Backend]) -> float:
        known = [x for b in backends if (x := self.book.of(b.name).sec_per_token) is not None]
        return statistics.median(known) if known else DEFAULT_SEC_PER_TOKEN

    def _chosen(self, b: Backend, why: Why,
                affinity: Literal["hit", "moved", "new"] | None = None) -> Pick:
        self.stats[b.name].picks += 1
        return Pick(b, why, affinity)

    # -- what happened ---------------------------------------------------------------------
    def started(self, name: str) -> BackendLoad:
        load = self.book.of(name)
        load.in_flight += 1
        return load

    def observe(self, name: str, headers: Mapping[str, str]) -> None:
        """The load header of an answer (GGUF servers send one on each)."""
        from functions.backends.base import LOAD_HEADER

        if (reading := parse_load_header(headers.get(LOAD_HEADER))) is not None:
            load = self.book.of(name)
            # this request is in the reading: count it out of the "sent since" share
            load.reading = reading
            load.in_flight_at_reading = load.in_flight

    def succeeded(self, name: str) -> None:
        """The backend produced a first token (or a whole answer)."""
        load = self.book.of(name)
        load.polled_ok = True
        load.last_alive = time.monotonic()
        if self.breakers[name].success():
            self._closed(name)

    def failed(self, name: str, e: BaseException, *, busy: bool = False) -> None:
        """The backend failed before the first token. A full backend (429/503) is load, not a
        fault: its reading is marked full and its breaker is not charged."""
        now = time.monotonic()
        self.stats[name].failures += 1
        load = self.book.of(name)
        s = self.settings
        if isinstance(e, BackendTimeout) and \
                now - load.last_alive < s.poll_timeout_s + s.poll_s * s.breaker_failures:
            busy = True  # slow to start while its other answers flow: queued, not hung
        if busy:
            r = load.reading
            slots = r.slots if r is not None else 1
            load.observe(Reading(slots, max(slots, r.queued if r else 0) + 1, slots, now))
            self.breakers[name].cancel_probe()
            return
        if (opened := self.breakers[name].failure(now)) is not None:
            self.stats[name].opened_by_poll = False
            self._opened(name, opened, type(e).__name__)

    def abandoned(self, name: str) -> None:
        """A request left before the backend answered (the client went away)."""
        self.breakers[name].cancel_probe()

    def finished(self, load: BackendLoad, seconds: float, tokens: int) -> None:
        load.in_flight = max(0, load.in_flight - 1)
        load.finished(seconds, tokens)

    def trip_event(self, name: str) -> asyncio.Event:
        """Set when the backend's breaker next opens: requests waiting on it give up at once."""
        ev = self._trips.get(name)
        if ev is None:
            ev = self._trips[name] = asyncio.Event()
        return ev

    def _opened(self, name: str, seconds: float, why: str) -> None:
        if (ev := self._trips.pop(name, None)) is not None:
            ev.set()
        log.warning("backend breaker opened", extra={"backend": name, "seconds": seconds,
                                                     "reason": why})
        self.spawn(self.shared.opened(name, seconds))

    def _closed(self, name: str) -> None:
        log.info("backend breaker closed", extra={"backend": name})
        self.spawn(self.shared.closed(name))

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` off the request path (awaited at close); dropped without a loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            return
        task = loop.create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- operators -------------------------------------------------------------------------
    async def drain(self, name: str, drained: bool) -> None:
        if name not in self._by_name:
            raise KeyError(name)
        await self.shared.set_drained(name, drained)
        (self.drained.add if drained else self.drained.discard)(name)

    def describe(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        rows = []
        for name, (alias, backend) in self._by_name.items():
            load, stats = self.book.of(name), self.stats[name]
            r = load.reading
            fresh = r is not None and now - r.at <= self.book.ttl_s
            rows.append({
                "alias": alias, "backend": name, "url": getattr(backend, "url", None),
                "kind": getattr(backend, "kind", None),
                "state": self.breakers[name].state(now), "drained": name in self.drained,
                # None until the replica has reported its load (or when the reading is stale)
                "load": {"active": r.active, "queued": r.queued, "slots": r.slots,
                         "in_flight": load.in_flight} if fresh and r is not None else None,
                "in_flight": load.in_flight,
                "sec_per_token": round(load.sec_per_token, 5) if load.sec_per_token else None,
                "picks": stats.picks, "failures": stats.failures,
                "affinity_hits": stats.affinity_hits, "version": load.version,
            })
        return rows

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._pending):
            with contextlib.suppress(Exception):
                await task
