"""Context affinity: the turns of a conversation go to the replica that holds its prefix in its KV
cache. The pin (conversation -> backend) lives in Redis, so every gateway instance sends the next
turn to the same replica; a bounded local table (TTL) stands in while Redis is down.

The key is the ``conversation_id`` when the request names one, else a hash of the conversation's
first two messages (the system prompt and the first user turn: what every later turn repeats),
taken once the request has ``affinity_min_messages`` messages. Single-turn requests are not
pinned: nothing of theirs is worth keeping, and pinning them would only add a Redis write.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from cachetools import TTLCache

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

PREFIX = "llmp:route:aff:"
LOCAL_MAX = 10_000


def affinity_key(req: Any, min_messages: int) -> str | None:
    """The conversation a chat request belongs to, or None (not pinned)."""
    conv = getattr(req, "conversation_id", None)
    if conv:
        return "c:" + str(conv)
    messages = getattr(req, "messages", None)
    if not messages or len(messages) < min_messages:
        return None
    h = hashlib.blake2b(digest_size=16)
    for m in messages[:2]:
        h.update(m.role.encode())
        h.update(b"\x00")
        h.update(m.text().encode())
        h.update(b"\x01")
    return "p:" + h.hexdigest()


class Affinity:
    def __init__(self, redis: Redis | None, ttl_s: float) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._local: TTLCache[str, str] = TTLCache(maxsize=LOCAL_MAX, ttl=ttl_s)
        self.failures = 0

    @staticmethod
    def _key(tenant: str, alias: str, key: str) -> str:
        return f"{PREFIX}{{{tenant}}}:{alias}:{key}"

    async def get(self, tenant: str, alias: str, key: str) -> str | None:
        k = self._key(tenant, alias, key)
        if self._redis is not None:
            try:
                v = await self._redis.get(k)
            except Exception as e:  # noqa: BLE001 - Redis down: the local table
                self._failed(e)
            else:
                return v.decode() if isinstance(v, bytes) else v
        return self._local.get(k)

    async def pin(self, tenant: str, alias: str, key: str, backend: str) -> None:
        k = self._key(tenant, alias, key)
        self._local[k] = backend
        if self._redis is not None:
            try:
                await self._redis.set(k, backend, px=int(self._ttl * 1000))
            except Exception as e:  # noqa: BLE001
                self._failed(e)

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        log.warning("affinity not shared: Redis unavailable", extra={"error": type(e).__name__})
