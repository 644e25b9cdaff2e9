"""Tenants' guardrail policies (``tenants.guardrail_policy``); see :mod:`functions.tenant_policies`
for caching and Postgres-down behaviour (a tenant never read before is refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.guardrails.policy import GuardrailPolicy
from functions.tenant_policies import TenantPolicyStore, parse_policy_json

if TYPE_CHECKING:
    from functions.db import Database

DEFAULT = GuardrailPolicy()


class PolicyStore(TenantPolicyStore[GuardrailPolicy]):
    def __init__(self, db: Database, ttl_s: float) -> None:
        super().__init__(db, ttl_s, "guardrail_policy", GuardrailPolicy)


def parse_policy(raw: Any) -> GuardrailPolicy:
    return parse_policy_json(GuardrailPolicy, "guardrail_policy", raw)
