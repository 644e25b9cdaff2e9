"""API keys: created once and shown once, stored as a SHA-256 hash, scoped to a tenant.

Keys are 256-bit random tokens, so a fast hash is enough (no password stretching is needed against a
guessing attack on a 2^256 space) and it keeps the lookup on the request path cheap.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import psycopg

from functions.db import Database
from functions.errors import InvalidRequest, NotFound

KEY_PREFIX = "sk-llmp-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: UUID
    tenant_id: UUID
    tenant: str
    prefix: str
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    allowed_models: list[str] | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    roles: list[str] = field(default_factory=list)


_SELECT = ("SELECT k.id, k.tenant_id, t.name, k.prefix, k.name, k.created_at, k.expires_at,"
           " k.revoked_at, k.allowed_models, k.rpm_limit, k.tpm_limit, k.roles"
           " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id")


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure_tenant(self, name: str) -> UUID:
        async with self._db.connection() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO UPDATE"
                    " SET name = EXCLUDED.name RETURNING id", (name,))
            except psycopg.errors.CheckViolation:
                raise InvalidRequest(f"Invalid tenant name {name!r}: use letters, digits, '.', '_'"
                                     " or '-', at most 63 characters.", param="tenant") from None
            row = await cur.fetchone()
        assert row is not None
        return UUID(str(row[0]))

    async def create(self, tenant: str, *, name: str | None = None,
                     expires_at: datetime | None = None, allowed_models: list[str] | None = None,
                     rpm_limit: int | None = None, tpm_limit: int | None = None,
                     roles: list[str] | None = None) -> tuple[KeyRecord, str]:
        """Create a key for a tenant (created if new); returns the record and the key, once.
        ``allowed_models`` narrows the tenant's models for this key; the limits apply per key,
        besides the tenant's."""
        tenant_id = await self.ensure_tenant(tenant)
        key = new_key()
        async with self._db.connection() as conn:
            try:
                cur = await conn.execute(
                    "INSERT INTO api_keys (tenant_id, key_hash, prefix, name, expires_at,"
                    " allowed_models, rpm_limit, tpm_limit, roles)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (tenant_id, hash_key(key), key[: len(KEY_PREFIX) + 6], name, expires_at,
                     allowed_models, rpm_limit, tpm_limit, roles or []))
            except psycopg.errors.CheckViolation:
                raise InvalidRequest("Key limits must be positive.") from None
            row = await cur.fetchone()
        assert row is not None
        record = await self.get(UUID(str(row[0])))
        return record, key

    async def get(self, key_id: UUID) -> KeyRecord:
        async with self._db.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE k.id = %s", (key_id,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"No API key with id {key_id}.")
        return KeyRecord(*row)

    async def lookup(self, key: str) -> KeyRecord | None:
        async with self._db.connection() as conn:
            cur = await conn.execute(_SELECT + " WHERE k.key_hash = %s", (hash_key(key),))
            row = await cur.fetchone()
        return KeyRecord(*row) if row else None

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        async with self._db.connection() as conn:
            if tenant is None:
                cur = await conn.execute(_SELECT + " ORDER BY k.created_at")
            else:
                cur = await conn.execute(_SELECT + " WHERE t.name = %s ORDER BY k.created_at",
                                         (tenant,))
            rows = await cur.fetchall()
        return [KeyRecord(*r) for r in rows]

    async def revoke(self, key_id: UUID) -> bytes:
        """Revoke a key; returns its hash so that caches can drop it."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
                " RETURNING key_hash", (key_id,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"No API key with id {key_id}.")
        return bytes(row[0])
