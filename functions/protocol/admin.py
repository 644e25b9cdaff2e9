"""Request bodies of ``/v1/admin/...`` (tenants and their keys) and the ``/v1/usage`` query."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from functions.errors import InvalidRequest
from functions.protocol.common import StrictModel, invalid_request_from


class _Body(StrictModel):
    @classmethod
    def parse(cls, raw: bytes) -> Self:
        """As every request body, but an empty body is an empty object."""
        return super().parse(raw or b"{}")


class TenantFields(_Body):
    """Fields left out are unchanged (PATCH) or defaulted (POST); ``null`` clears a limit."""

    allowed_models: list[str] | None = None
    rpm_limit: int | None = Field(None, ge=1)
    tpm_limit: int | None = Field(None, ge=1)
    monthly_budget: Decimal | None = Field(None, ge=0)
    on_redis_down: Literal["open", "closed"] = "open"
    entra_roles: list[str] = Field(default_factory=list)
    entra_groups: list[str] = Field(default_factory=list)
    max_price_per_1k: Decimal | None = Field(None, ge=0)
    """Routes skip tiers priced above this per 1K tokens for the tenant; ``null``: no ceiling."""

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set if k != "name"}


class TenantCreate(TenantFields):
    name: str = Field(min_length=1, max_length=63)


class KeyCreate(_Body):
    name: str | None = Field(None, max_length=200)
    expires_in_days: int | None = Field(None, ge=1)
    allowed_models: list[str] | None = None
    rpm_limit: int | None = Field(None, ge=1)
    tpm_limit: int | None = Field(None, ge=1)
    roles: list[Literal["admin"]] = Field(default_factory=list)


class UsageQuery(StrictModel):
    start: date | None = Field(None, alias="from")
    end: date | None = Field(None, alias="to")
    tenant: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> UsageQuery:
        if self.start and self.end and self.start > self.end:
            raise ValueError("'from' must not be after 'to'")
        return self

    @classmethod
    def from_query(cls, params: dict[str, str], *, allow_tenant: bool) -> UsageQuery:
        if not allow_tenant and "tenant" in params:
            raise InvalidRequest("Unrecognized query parameter: tenant (a key sees its own "
                                 "tenant's usage only).", param="tenant", code="unknown_parameter")
        try:
            return cls.model_validate(params)
        except ValidationError as e:
            raise invalid_request_from(e) from None
