"""Stage 1, authenticate: ``Authorization: Bearer KEY`` -> the tenant it belongs to.

Lookups go to Redis first (``llmp:apikey:<sha256>``, a short TTL, misses cached briefly too) and to
Postgres on a miss. Redis being down costs a Postgres query, never a refusal.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from functions.errors import AuthenticationFailed
from functions.keys import KeyRecord, KeyStore, hash_key

log = logging.getLogger(__name__)

NEGATIVE_TTL_S = 10
_INVALID = b"-"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    tenant: str
    key_id: str
    expires_at: float | None = None


def cache_key(key_hash: bytes) -> str:
    return "llmp:apikey:" + key_hash.hex()


def _principal(rec: KeyRecord) -> Principal | None:
    now = datetime.now(UTC)
    if rec.revoked_at is not None or (rec.expires_at is not None and rec.expires_at <= now):
        return None
    return Principal(str(rec.tenant_id), rec.tenant, str(rec.key_id),
                     rec.expires_at.timestamp() if rec.expires_at else None)


class Authenticator:
    def __init__(self, keys: KeyStore, redis: Redis | None, ttl_s: int) -> None:
        self._keys, self._redis, self._ttl = keys, redis, ttl_s

    async def authenticate(self, authorization: str | None) -> Principal:
        key = _bearer(authorization)
        ck = cache_key(hash_key(key))
        cached = await self._cache_get(ck)
        if cached == _INVALID:
            raise _rejected()
        if cached is not None:
            p = Principal(**orjson.loads(cached))
            if p.expires_at is None or p.expires_at > datetime.now(UTC).timestamp():
                return p
        rec = await self._keys.lookup(key)
        principal = _principal(rec) if rec else None
        if principal is None:
            await self._cache_set(ck, _INVALID, NEGATIVE_TTL_S)
            raise _rejected()
        await self._cache_set(ck, orjson.dumps(asdict(principal)), self._ttl)
        return principal

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
