"""Audit rows in the real Postgres: written off the request path, never a raw value."""

import asyncio
from typing import Any

import pytest

from functions.db import Database
from functions.guardrails.audit import AuditLog, AuditRecord
from functions.guardrails.engine import Detectors, Guardrails
from functions.guardrails.findings import Decision
from functions.guardrails.injection import HeuristicInjectionDetector
from functions.guardrails.moderation import RuleModerator
from functions.guardrails.pii import PresidioAnalyzer
from functions.guardrails.policy import GuardrailPolicy
from functions.metrics import GatewayMetrics
from functions.protocol.chat import ChatCompletionRequest

TENANT = "00000000-0000-0000-0000-0000000000a1"


async def rows(db: Database, request_id: str) -> list[tuple[Any, ...]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT stage, detector, action, entity_types, score, row_to_json(a)::text "
            "FROM guardrail_audit a WHERE request_id = %s ORDER BY id", (request_id,))
        return await cur.fetchall()


def test_decisions_are_written_without_values(postgres_url: str, analyzer: PresidioAnalyzer) -> None:
    async def run() -> list[tuple[Any, ...]]:
        db = Database(postgres_url, min_size=0, max_size=2)
        audit = AuditLog(db, flush_s=0.05)
        rails = Guardrails(Detectors(analyzer, HeuristicInjectionDetector(), RuleModerator()), audit,
                           GatewayMetrics(), timeout_s=5, holdback_chars=96)
        g = rails.begin(GuardrailPolicy(pii={"entities": {"URL": "flag", "EMAIL_ADDRESS": "mask",
                                                          "US_SSN": "block"}}),
                        tenant_id=TENANT, request_id="audit-1", model="m")
        req = ChatCompletionRequest.model_validate({"model": "m", "messages": [
            {"role": "user", "content": "write to zed@contoso.com, see https://contoso.com/a, "
                                        "ssn 536-22-8745"}]})
        with pytest.raises(Exception, match="US_SSN"):
            await g.check_input(req)
        await audit.aclose()  # flushes
        got = await rows(db, "audit-1")
        await db.aclose()
        return got

    got = asyncio.run(run())
    assert {(r[0], r[1], r[2]) for r in got} == {
        ("input", "presidio", "mask"), ("input", "presidio", "flag"), ("input", "presidio", "block")}
    assert {r[2]: r[3] for r in got}["mask"] == {"EMAIL_ADDRESS": 1}
    for r in got:
        assert "zed@" not in r[5] and "8745" not in r[5] and "contoso.com/a" not in r[5]


def test_writes_are_retried_when_postgres_is_down(postgres_url: str, dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]

    async def run() -> tuple[int, int]:
        down = Database(f"postgresql://x@127.0.0.1:{port}/x", min_size=0, max_size=1,
                        timeout_s=0.2)
        audit = AuditLog(down, flush_s=0.05)
        audit.record(AuditRecord(TENANT, "audit-2", "m", Decision("input", "d", "flag", {"X": 1})))
        await asyncio.sleep(0.6)  # the background task tried (and failed) at least once
        kept = len(audit._queue)
        audit._db = Database(postgres_url, min_size=0, max_size=1)  # Postgres is back
        await audit.aclose()
        written = audit.written
        await audit._db.aclose()
        return kept, written

    assert asyncio.run(run()) == (1, 1)
