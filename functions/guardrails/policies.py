"""Tenants' guardrail policies, read from ``tenants.guardrail_policy`` and cached in the process for
a short TTL (a change reaches every instance within it).

Postgres down: the last policy read for the tenant is used however old it is (a policy never gets
weaker by being stale); a tenant never read before is refused (503), never given the defaults."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from functions.errors import DependencyUnavailable, InternalError
from functions.guardrails.policy import GuardrailPolicy

if TYPE_CHECKING:
    from functions.db import Database

log = logging.getLogger(__name__)

DEFAULT = GuardrailPolicy()


class PolicyStore:
    def __init__(self, db: Database, ttl_s: float) -> None:
        self._db, self._ttl = db, ttl_s
        self._cache: dict[str, tuple[float, GuardrailPolicy]] = {}

    async def get(self, tenant_id: str) -> GuardrailPolicy:
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            async with self._db.connection() as conn:
                cur = await conn.execute("SELECT guardrail_policy FROM tenants WHERE id = %s",
                                         (tenant_id,))
                row = await cur.fetchone()
        except DependencyUnavailable:
            if hit is not None:
                log.warning("policy store unavailable, using the last known policy",
                            extra={"tenant_id": tenant_id})
                return hit[1]
            raise
        policy = parse_policy(row[0] if row else None)
        self._cache[tenant_id] = (time.monotonic() + self._ttl, policy)
        return policy

    async def set(self, tenant: str, policy: GuardrailPolicy | None) -> bool:
        """Store a tenant's policy by name (None: back to the defaults); False if no such tenant."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "UPDATE tenants SET guardrail_policy = %s WHERE name = %s RETURNING id",
                (policy.model_dump_json() if policy else None, tenant))
            row = await cur.fetchone()
        if row:
            self._cache.pop(str(row[0]), None)
        return row is not None


def parse_policy(raw: Any) -> GuardrailPolicy:
    if raw is None:
        return DEFAULT
    try:
        return GuardrailPolicy.model_validate(raw)
    except ValidationError as e:  # stored by an operator: a server-side problem, not the caller's
        raise InternalError("This tenant's guardrail policy is invalid; an operator must fix it.") \
            from e
