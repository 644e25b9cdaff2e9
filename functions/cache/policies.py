"""Tenants' cache policies (``tenants.cache_policy``); see :mod:`functions.tenant_policies` for
caching and Postgres-down behaviour. For a tenant never read before while Postgres is down, the
cache is bypassed (None): caching is an optimisation, and the tenant may have turned it off."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.cache.policy import CachePolicy
from functions.errors import DependencyUnavailable
from functions.tenant_policies import TenantPolicyStore

if TYPE_CHECKING:
    from functions.db import Database


class CachePolicyStore(TenantPolicyStore[CachePolicy]):
    def __init__(self, db: Database, ttl_s: float) -> None:
        super().__init__(db, ttl_s, "cache_policy", CachePolicy)

    async def get_or_none(self, tenant_id: str) -> CachePolicy | None:
        try:
            return await self.get(tenant_id)
        except DependencyUnavailable:
            return None
