"""Tenants' cache policies, read from ``tenants.cache_policy`` and cached in the process for a short
TTL, like the guardrail policies (``functions/guardrails/policies.py``).

Postgres down: the last policy read for the tenant is used however old it is; for a tenant never
read before the cache is bypassed (None), since caching is an optimisation and a tenant may have
turned it off."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from functions.cache.policy import CachePolicy
from functions.errors import DependencyUnavailable, InternalError

if TYPE_CHECKING:
    from functions.db import Database

log = logging.getLogger(__name__)

DEFAULT = CachePolicy()


class CachePolicyStore:
    def __init__(self, db: Database, ttl_s: float) -> None:
        self._db, self._ttl = db, ttl_s
        self._cache: dict[str, tuple[float, CachePolicy]] = {}

    async def get(self, tenant_id: str) -> CachePolicy | None:
        """The tenant's policy; None when it cannot be known (Postgres down, never read)."""
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            async with self._db.connection() as conn:
                cur = await conn.execute("SELECT cache_policy FROM tenants WHERE id = %s",
                                         (tenant_id,))
                row = await cur.fetchone()
        except DependencyUnavailable:
            log.warning("cache policy store unavailable", extra={"tenant_id": tenant_id})
            return hit[1] if hit is not None else None
        policy = parse_policy(row[0] if row else None)
        self._cache[tenant_id] = (time.monotonic() + self._ttl, policy)
        return policy

    async def set(self, tenant: str, policy: CachePolicy | None) -> bool:
        """Store a tenant's policy by name (None: back to the defaults); False if no such tenant."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "UPDATE tenants SET cache_policy = %s WHERE name = %s RETURNING id",
                (policy.model_dump_json() if policy else None, tenant))
            row = await cur.fetchone()
        if row:
            self._cache.pop(str(row[0]), None)
        return row is not None


def parse_policy(raw: Any) -> CachePolicy:
    if raw is None:
        return DEFAULT
    try:
        return CachePolicy.model_validate(raw)
    except ValidationError as e:
        raise InternalError("This tenant's cache policy is invalid; an operator must fix it.") from e
