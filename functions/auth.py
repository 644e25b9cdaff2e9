"""Stage 1, authenticate: ``Authorization: Bearer KEY`` (or an Entra ID access token) -> the tenant
it belongs to.

Key lookups go to Redis first (``llmp:apikey:<sha256>``, a short TTL, misses cached briefly too) and
to Postgres on a miss. Redis being down costs a Postgres query, never a refusal. Entra tokens are
verified by :class:`functions.entra.EntraVerifier` and mapped to a tenant through its app roles or
groups (``tenants.entra_roles`` / ``entra_groups``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from functions.errors import AuthenticationFailed, PermissionDenied
from functions.keys import KeyRecord, KeyStore, hash_key

if TYPE_CHECKING:
    from functions.entra import EntraVerifier
    from functions.tenants import TenantStore

log = logging.getLogger(__name__)

NEGATIVE_TTL_S = 10
_DECODED_MAX = 10_000
_INVALID = b"-"
ADMIN = "admin"
"""The platform role that may call ``/v1/admin/...``."""


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    tenant: str
    key_id: str
    """The API key's id, or ``entra:<object id>`` for an Entra identity."""
    expires_at: float | None = None
    roles: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] | None = None
    """The key's own model list (the tenant's applies too); None: no restriction of its own."""
    rpm_limit: int | None = None
    tpm_limit: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Principal:
        """From the key cache's JSON (lists back to tuples; fields cached by older versions
        default)."""
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                if k in cls.__dataclass_fields__}
        return cls(**data)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles


def cache_key(key_hash: bytes) -> str:
    return "llmp:apikey:" + key_hash.hex()


def _principal(rec: KeyRecord) -> Principal | None:
    now = datetime.now(UTC)
    if rec.revoked_at is not None or (rec.expires_at is not None and rec.expires_at <= now):
        return None
    return Principal(str(rec.tenant_id), rec.tenant, str(rec.key_id),
                     rec.expires_at.timestamp() if rec.expires_at else None,
                     tuple(rec.roles),
                     tuple(rec.allowed_models) if rec.allowed_models is not None else None,
                     rec.rpm_limit, rec.tpm_limit)


class Authenticator:
    def __init__(self, keys: KeyStore, redis: Redis | None, ttl_s: int, *,
                 entra: EntraVerifier | None = None, tenants: TenantStore | None = None,
                 entra_admin_role: str = "LLMP.Admin") -> None:
        self._keys, self._redis, self._ttl = keys, redis, ttl_s
        self._entra, self._tenants, self._admin_role = entra, tenants, entra_admin_role
        self._decoded: dict[bytes, Principal] = {}
        """Key-cache values already decoded, by their bytes: the value read from Redis on every
        request still decides (revocation is seen at once); only the JSON parsing is saved."""

    async def authenticate(self, authorization: str | None) -> Principal:
        key = _bearer(authorization)
        if self._entra is not None:
            from functions.entra import looks_like_jwt

            if looks_like_jwt(key):
                return await self._entra_principal(key)
        ck = cache_key(hash_key(key))
        cached = await self._cache_get(ck)
        if cached == _INVALID:
            raise _rejected()
        if cached is not None:
            p = self._decode(cached)
            if p.expires_at is None or p.expires_at > time.time():
                return p
        rec = await self._keys.lookup(key)
        principal = _principal(rec) if rec else None
        if principal is None:
            await self._cache_set(ck, _INVALID, NEGATIVE_TTL_S)
            raise _rejected()
        await self._cache_set(ck, orjson.dumps(asdict(principal)), self._ttl)
        return principal

    def _decode(self, cached: bytes) -> Principal:
        p = self._decoded.get(cached)
        if p is None:
            p = Principal.from_json(orjson.loads(cached))
            if len(self._decoded) >= _DECODED_MAX:
                self._decoded.clear()
            self._decoded[cached] = p
        return p

    async def _entra_principal(self, token: str) -> Principal:
        assert self._entra is not None
        assert self._tenants is not None
        ident = await self._entra.verify(token)
        roles = (ADMIN,) if self._admin_role in ident.roles else ()
        tenants = await self._tenants.by_entra(ident.roles, ident.groups)
        if len(tenants) > 1:
            raise PermissionDenied("This identity's roles and groups map to several tenants ("
                                   + ", ".join(t.name for t in tenants) + "); map it to one.")
        if not tenants and not roles:
            raise PermissionDenied("This identity is not mapped to any tenant (ask the platform"
                                   " team to map one of its app roles or groups).")
        t = tenants[0] if tenants else None
        return Principal(str(t.tenant_id) if t else "", t.name if t else "",
                         "entra:" + ident.subject, ident.expires_at, roles)

    async def forget(self, key_hash: bytes) -> bool:
        """Drop a key from the cache; False if the cache could not be reached (the entry then
        lives out its TTL)."""
        if self._redis is None:
            return True
        try:
            await self._redis.delete(cache_key(key_hash))
        except (RedisError, OSError) as e:
            log.warning("key cache unavailable", extra={"error": type(e).__name__})
            return False
        return True

    async def _cache_get(self, ck: str) -> bytes | None:
        if self._redis is None:
            return None
        try:
            value = await self._redis.get(ck)
            return value.encode() if isinstance(value, str) else value
        except (RedisError, OSError) as e:
            log.warning("key cache unavailable", extra={"error": type(e).__name__})
            return None

    async def _cache_set(self, ck: str, value: bytes, ttl: int) -> None:
        if ttl <= 0 or self._redis is None:
            return
        try:
            await self._redis.set(ck, value, ex=ttl)
        except (RedisError, OSError) as e:
            log.warning("key cache unavailable", extra={"error": type(e).__name__})


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            code="missing_api_key")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("The Authorization header must be 'Bearer YOUR_KEY'.")
    return token


def _rejected() -> AuthenticationFailed:
    return AuthenticationFailed("Incorrect API key provided.")
