"""The audit trail: every guardrail decision, written to Postgres off the request path.

Decisions are queued in memory (bounded; when full, the oldest is dropped and counted, never the
request slowed) and written in batches by a task started on first use; :meth:`AuditLog.aclose`
writes what is left. A row holds the stage, detector, action, entity types with counts and the score,
never a raw value (a :class:`~functions.guardrails.findings.Decision` has no field for one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg.types.json import Jsonb

from functions.guardrails.findings import Decision

if TYPE_CHECKING:
    from functions.db import Database

log = logging.getLogger(__name__)

INSERT = ("INSERT INTO guardrail_audit (tenant_id, request_id, model, stage, detector, action, "
          "entity_types, score) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    tenant_id: str
    request_id: str
    model: str
    decision: Decision


class AuditLog:
    def __init__(self, db: Database, *, batch: int = 200, flush_s: float = 1.0,
                 max_queue: int = 10_000) -> None:
        self._db = db
        self._batch, self._flush_s = batch, flush_s
        self._queue: deque[AuditRecord] = deque(maxlen=max_queue)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0

    def record(self, rec: AuditRecord) -> None:
        """Queue a decision; never waits."""
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(rec)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="llmp-audit")
        if len(self._queue) >= self._batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued now (retried by the background task if Postgres fails)."""
        while self._queue:
            rows = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
            try:
                await self._write(rows)
            except BaseException:  # cancelled too (shutdown): the rows go back to the queue
                self._queue.extendleft(reversed(rows))
                raise

    async def _write(self, rows: list[AuditRecord]) -> None:
        async with self._db.connection() as conn, conn.cursor() as cur:
            await cur.executemany(INSERT, [
                (r.tenant_id, r.request_id, r.model, r.decision.stage, r.decision.detector,
                 r.decision.action, Jsonb(r.decision.types), r.decision.score) for r in rows])
        self.written += len(rows)

    async def _run(self) -> None:
        while self._queue:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - Postgres down: keep the rows, try again later
                log.warning("audit write failed", extra={"error": type(e).__name__,
                                                         "queued": len(self._queue)})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception as e:  # noqa: BLE001 - shutting down: report what is lost
            log.error("audit rows lost at shutdown", extra={"error": type(e).__name__,
                                                           "lost": len(self._queue)})
