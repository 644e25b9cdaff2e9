"""A tenant's policy kept as JSON in a column of ``tenants`` (guardrails, response cache), cached in
the process for a short TTL so that a change reaches every instance within it.

Postgres down: the last policy read for the tenant is used however old it is (a stale policy is
never weaker than none); a tenant never read before raises :class:`DependencyUnavailable`, and the
caller decides what that means (guardrails refuse, the cache is bypassed)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from functions.errors import DependencyUnavailable, InternalError

if TYPE_CHECKING:
    from functions.db import Database

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
Column = Literal["guardrail_policy", "cache_policy"]


class TenantPolicyStore(Generic[P]):
    def __init__(self, db: Database, ttl_s: float, column: Column, model: type[P]) -> None:
        self._db, self._ttl, self._column, self._model = db, ttl_s, column, model
        self._cache: dict[str, tuple[float, P]] = {}

    async def get(self, tenant_id: str) -> P:
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            async with self._db.connection() as conn:
                cur = await conn.execute(f"SELECT {self._column} FROM tenants WHERE id = %s",
                                         (tenant_id,))
                row = await cur.fetchone()
        except DependencyUnavailable:
            if hit is None:
                raise
            log.warning("policy store unavailable, using the last known policy",
                        extra={"tenant_id": tenant_id, "policy": self._column})
            return hit[1]
        policy = parse_policy_json(self._model, self._column, row[0] if row else None)
        self._cache[tenant_id] = (time.monotonic() + self._ttl, policy)
        return policy

    async def set(self, tenant: str, policy: P | None) -> bool:
        """Store a tenant's policy by name (None: back to the defaults); False if no such tenant."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                f"UPDATE tenants SET {self._column} = %s WHERE name = %s RETURNING id",
                (policy.model_dump_json() if policy else None, tenant))
            row = await cur.fetchone()
        if row:
            self._cache.pop(str(row[0]), None)
        return row is not None


def parse_policy_json(model: type[P], column: Column, raw: Any) -> P:
    """A stored value (NULL: the defaults). Stored by an operator, so an invalid one is a
    server-side problem (500), not the caller's."""
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as e:
        raise InternalError(f"This tenant's {column.replace('_', ' ')} is invalid; an operator "
                            "must fix it.") from e
