"""Tenants: what an application may use (models), how fast (limits), how much (monthly budget), what
happens when Redis is down, and which Entra app roles or groups belong to it.

Records are cached per process for ``tenant_cache_ttl_s`` (10 s by default): a change made through
``llmp tenants update`` or ``/v1/admin/tenants`` reaches every instance within that time.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import psycopg

from functions.db import Database
from functions.errors import InvalidRequest, NotFound

RedisDown = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class TenantRecord:
    tenant_id: UUID
    name: str
    allowed_models: list[str] | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    monthly_budget: Decimal | None = None
    on_redis_down: RedisDown = "open"
    entra_roles: list[str] = field(default_factory=list)
    entra_groups: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    max_price_per_1k: Decimal | None = None
    """The routing price ceiling: a route never sends this tenant's requests to a tier whose
    price per 1K tokens (the larger of input and output) is above it (docs/routing.md)."""

    def as_json(self) -> dict[str, Any]:
        return {"id": str(self.tenant_id), "name": self.name, "allowed_models": self.allowed_models,
                "rpm_limit": self.rpm_limit, "tpm_limit": self.tpm_limit,
                "monthly_budget": float(self.monthly_budget) if self.monthly_budget is not None
                else None, "on_redis_down": self.on_redis_down, "entra_roles": self.entra_roles,
                "entra_groups": self.entra_groups,
                "max_price_per_1k": float(self.max_price_per_1k)
                if self.max_price_per_1k is not None else None}


UPDATABLE = ("allowed_models", "rpm_limit", "tpm_limit", "monthly_budget", "on_redis_down",
             "entra_roles", "entra_groups", "retention_days", "cache_policy", "max_price_per_1k")

_SELECT = ("SELECT id, name, allowed_models, rpm_limit, tpm_limit, monthly_budget, on_redis_down,"
           " entra_roles, entra_groups, created_at, max_price_per_1k FROM tenants")


def model_allowed(alias: str, *patterns: Sequence[str] | None) -> bool:
    """Allowed by every list given (None: no restriction); entries are aliases or globs."""
    return all(p is None or any(fnmatch.fnmatchcase(alias, x) for x in p) for p in patterns)


class TenantStore:
    def __init__(self, db: Database, cache_ttl_s: float = 10.0) -> None:
        self._db, self._ttl = db, cache_ttl_s
        self._cache: dict[str, tuple[float, TenantRecord]] = {}
        self._entra: dict[tuple[tuple[str, ...], tuple[str, ...]],
                          tuple[float, list[TenantRecord]]] = {}

    async def get(self, tenant_id: str) -> TenantRecord:
        """The tenant by id, from the per-process cache when fresh."""
        hit = self._cache.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        rec = await self._one(" WHERE id = %s", UUID(tenant_id))
        self._cache[tenant_id] = (now + self._ttl, rec)
        return rec

    async def by_name(self, name: str) -> TenantRecord:
        return await self._one(" WHERE name = %s", name)

    async def by_entra(self, roles: Sequence[str], groups: Sequence[str]) -> list[TenantRecord]:
        """Tenants that any of these app roles or group ids are mapped to."""
        if not roles and not groups:
            return []
        ck = (tuple(sorted(roles)), tuple(sorted(groups)))
        now = time.monotonic()
        if (hit := self._entra.get(ck)) is not None and hit[0] > now:
            return hit[1]
        async with self._db.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE entra_roles && %s::text[]"
                                     " OR entra_groups && %s::text[] ORDER BY name",
                                     (list(roles), list(groups)))
            found = [TenantRecord(*r) for r in await cur.fetchall()]
        if len(self._entra) > 10_000:
            self._entra.clear()
        self._entra[ck] = (now + self._ttl, found)
        return found

    async def list(self) -> list[TenantRecord]:
        async with self._db.connection() as conn:
            cur = await conn.execute(_SELECT + " ORDER BY name")
            return [TenantRecord(*r) for r in await cur.fetchall()]

    async def create(self, name: str, **values: Any) -> TenantRecord:
        async with self._db.connection() as conn:
            try:
                await conn.execute("INSERT INTO tenants (name) VALUES (%s)", (name,))
            except psycopg.errors.UniqueViolation:
                raise InvalidRequest(f"Tenant {name!r} already exists.", param="name",
                                     code="tenant_exists") from None
            except psycopg.errors.CheckViolation:
                raise _bad_name(name) from None
        return await self.update(name, **values) if values else await self.by_name(name)

    async def update(self, name: str, **values: Any) -> TenantRecord:
        unknown = set(values) - set(UPDATABLE)
        if unknown:
            raise InvalidRequest(f"Unknown tenant field(s): {', '.join(sorted(unknown))}.")
        if values:
            cols = ", ".join(f"{k} = %s" for k in values)
            async with self._db.connection() as conn:
                try:
                    cur = await conn.execute(
                        f"UPDATE tenants SET {cols}, updated_at = now() WHERE name = %s",
                        (*values.values(), name))
                except psycopg.errors.CheckViolation as e:
                    raise InvalidRequest(f"Invalid tenant settings: {e.diag.constraint_name}."
                                         ) from None
                except psycopg.errors.NotNullViolation as e:
                    raise InvalidRequest(f"{e.diag.column_name} cannot be null.") from None
                if cur.rowcount == 0:
                    raise NotFound(f"No tenant named {name!r}.")
        rec = await self.by_name(name)
        self._cache.pop(str(rec.tenant_id), None)
        return rec

    async def _one(self, where: str, arg: object) -> TenantRecord:
        async with self._db.connection() as conn:
            cur = await conn.execute(_SELECT + where, (arg,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"No tenant {arg}.")
        return TenantRecord(*row)


def _bad_name(name: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid tenant name {name!r}: use letters, digits, '.', '_' or '-', at"
                          " most 63 characters.", param="name")
