"""Stage 9 (part): the spend ledger. Each answer's tokens and cost become one row in Postgres,
written in batches by a background task, so a slow or unreachable database never slows a request;
what is still queued is written on shutdown (:meth:`SpendLedger.aclose`).

Rows carry an id made here, so a batch retried after an ambiguous failure is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from functions.db import Database

if TYPE_CHECKING:
    from models.catalog import Catalog

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class SpendEntry:
    tenant_id: str
    principal: str
    model: str
    backend: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    backend_seconds: float | None = None
    request_id: str | None = None
    error: str | None = None
    route: str | None = None
    """The route the client named (``auto``); None when it named the model."""
    reason: str = "requested"
    """Why this tier (:class:`functions.routing.plan.TierChoice`)."""
    retries: int = 0
    """Replicas or tiers tried before the one that answered."""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    entry_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def row(self) -> tuple[Any, ...]:
        return (self.entry_id, self.at, self.tenant_id, self.principal, self.request_id,
                self.model, self.backend, self.prompt_tokens, self.completion_tokens,
                self.backend_seconds, self.cost, self.error, self.route, self.reason, self.retries)


_INSERT = ("INSERT INTO spend_ledger (entry_id, at, tenant_id, principal, request_id, model,"
           " backend, prompt_tokens, completion_tokens, backend_seconds, cost, error, route, reason,"
           " retries) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
           " ON CONFLICT (entry_id) DO NOTHING")


class SpendLedger:
    def __init__(self, db: Database, *, flush_s: float = 1.0, batch_max: int = 500,
                 buffer_max: int = 100_000) -> None:
        self._db = db
        self._flush_s, self._batch_max, self._buffer_max = flush_s, batch_max, buffer_max
        self._queue: deque[SpendEntry] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False
        self._writing = 0

    @property
    def pending(self) -> int:
        """Entries not yet written (queued, or in a batch being written)."""
        return len(self._queue) + self._writing

    def record(self, entry: SpendEntry) -> None:
        """Queue an entry; never waits (the request path calls this)."""
        if len(self._queue) >= self._buffer_max:
            dropped = self._queue.popleft()
            log.error("spend buffer full: dropped an entry",
                      extra={"tenant_id": dropped.tenant_id, "cost": dropped.cost})
        self._queue.append(entry)
        if self._closed:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._queue) >= self._batch_max:
            self._wake.set()

    async def flush(self) -> int:
        """Write everything queued now; returns the number of rows written. On failure the
        entries stay queued (in order) and the error is raised."""
        written = 0
        async with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch_max,
                                                                  len(self._queue)))]
                self._writing = len(batch)
                try:
                    async with (self._db.connection() as conn, conn.transaction(),
                                conn.cursor() as cur):
                        await cur.executemany(_INSERT, [e.row() for e in batch])
                except BaseException:
                    self._queue.extendleft(reversed(batch))
                    raise
                finally:
                    self._writing = 0
                written += len(batch)
        return written

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - kept queued, retried next round
                log.warning("spend flush failed", extra={"error": type(e).__name__,
                                                         "pending": len(self._queue)})

    async def aclose(self) -> None:
        """Stop the background task and write what is left (retrying for a few seconds)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = asyncio.get_running_loop().time() + CLOSE_TIMEOUT_S
        while self._queue:
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001
                if asyncio.get_running_loop().time() > deadline:
                    log.error("spend entries lost at shutdown",
                              extra={"error": type(e).__name__, "pending": len(self._queue)})
                    return
                await asyncio.sleep(0.5)

    async def month_total(self, tenant_id: str) -> Decimal:
        """What the tenant spent this calendar month (UTC), as written so far."""
        start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        async with self._db.connection() as conn:
            cur = await conn.execute("SELECT coalesce(sum(cost), 0) FROM spend_ledger"
                                     " WHERE tenant_id = %s AND at >= %s", (tenant_id, start))
            row = await cur.fetchone()
        return Decimal(row[0]) if row else Decimal(0)


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: date
    tenant: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


def month_range(today: date | None = None) -> tuple[date, date]:
    """The current month as [first day, last day]."""
    today = today or datetime.now(UTC).date()
    first = today.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


class UsageReader:
    """Cost per model and per day, for one tenant (``/v1/usage``) or all (operators); and per
    route and tier (:meth:`routes`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def routes(self, start: date, end: date, tenant_id: str | None = None
                     ) -> list[RouteRow]:
        return await route_report(self._db, start, end, tenant_id)

    async def report(self, start: date, end: date, tenant_id: str | None = None
                     ) -> list[UsageRow]:
        """Rows for the days ``start`` to ``end`` inclusive (UTC)."""
        where, args = _period("l.", start, end, tenant_id)
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT (l.at AT TIME ZONE 'UTC')::date AS day, t.name, l.model, count(*),"
                " sum(l.prompt_tokens), sum(l.completion_tokens), sum(l.cost)"
                " FROM spend_ledger l JOIN tenants t ON t.id = l.tenant_id"
                f" WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", args)
            rows = await cur.fetchall()
        return [UsageRow(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), float(r[6]))
                for r in rows]


def _period(alias: str, start: date, end: date, tenant_id: str | None
            ) -> tuple[str, list[Any]]:
    """The ledger rows of the UTC days ``start`` to ``end`` inclusive, of one tenant if given:
    a WHERE clause over the ledger (``alias``: its table prefix, e.g. ``"l."``) and its args."""
    where = f"{alias}at >= %s AND {alias}at < %s"
    args: list[Any] = [start, end + timedelta(days=1)]
    if tenant_id is not None:
        where += f" AND {alias}tenant_id = %s"
        args.append(tenant_id)
    return where, args


@dataclass(frozen=True, slots=True)
class RouteRow:
    route: str
    tier: str
    reason: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float


async def route_report(db: Database, start: date, end: date, tenant_id: str | None = None
                       ) -> list[RouteRow]:
    """Requests that named a route, per route, tier and reason, for the days ``start`` to ``end``."""
    where, args = _period("", start, end, tenant_id)
    where = "route IS NOT NULL AND " + where
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT route, model, reason, count(*), sum(prompt_tokens), sum(completion_tokens),"
            f" sum(cost) FROM spend_ledger WHERE {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", args)
        rows = await cur.fetchall()
    return [RouteRow(r[0], r[1], r[2] or "", int(r[3]), int(r[4]), int(r[5]), float(r[6]))
            for r in rows]


def summarize_routes(rows: list[RouteRow], catalog: Catalog) -> list[dict[str, Any]]:
    """Per route: requests and cost per tier and reason, and what the same tokens would have cost
    on the route's largest tier (its last), so the saving is ``cost_at_largest - cost``. Token
    counts are each tier's own tokenizer's, so the comparison is an estimate."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        spec = catalog.route(r.route)
        largest = catalog.get(spec.tiers[-1]) if spec else None
        at_largest = (largest.price.cost(r.prompt_tokens, r.completion_tokens)
                      if largest and largest.price.gpu_hour is None else r.cost)
        o = out.setdefault(r.route, {"route": r.route, "largest_tier": largest.alias if largest
                                     else None, "requests": 0, "cost": 0.0,
                                     "cost_at_largest": 0.0, "tiers": []})
        o["requests"] += r.requests
        o["cost"] += r.cost
        o["cost_at_largest"] += at_largest
        o["tiers"].append({"tier": r.tier, "reason": r.reason, "requests": r.requests,
                           "prompt_tokens": r.prompt_tokens,
                           "completion_tokens": r.completion_tokens, "cost": r.cost})
    for o in out.values():
        o["saved"] = o["cost_at_largest"] - o["cost"]
    return list(out.values())


def summarize(rows: list[UsageRow]) -> dict[str, Any]:
    """The JSON shape shared by ``/v1/usage`` and ``llmp usage report --json``."""
    by_model: dict[str, dict[str, float]] = {}
    for r in rows:
        m = by_model.setdefault(r.model, {"requests": 0, "prompt_tokens": 0,
                                          "completion_tokens": 0, "cost": 0.0})
        m["requests"] += r.requests
        m["prompt_tokens"] += r.prompt_tokens
        m["completion_tokens"] += r.completion_tokens
        m["cost"] += r.cost
    return {"total_cost": sum(r.cost for r in rows),
            "by_model": [{"model": k, **v} for k, v in sorted(by_model.items())],
            "by_day": [{"day": r.day.isoformat(), "tenant": r.tenant, "model": r.model,
                        "requests": r.requests, "prompt_tokens": r.prompt_tokens,
                        "completion_tokens": r.completion_tokens, "cost": r.cost}
                       for r in rows]}
