"""Breaker and drain state shared by every gateway instance through Redis.

- An opened breaker is a key ``llmp:route:open:{backend}`` that expires when the open period
  ends: written at once by the instance that opened it, deleted by the one whose probe closed it.
- A drained backend is a member of the set ``llmp:route:drained``.

Each instance re-reads both every ``shared_sync_s`` (one pipelined round trip for all backends,
off the request path), so the request path never waits on Redis for them. With Redis down, each
instance keeps its own view (the local fallback) and the outage is logged and counted; nothing
fails because of it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from functions.errors import DependencyUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

OPEN_PREFIX = "llmp:route:open:"
DRAINED_KEY = "llmp:route:drained"


class SharedState:
    def __init__(self, redis: Redis | None) -> None:
        self._redis = redis
        self.failures = 0
        """Redis calls that failed (the local view was used)."""

    @property
    def shared(self) -> bool:
        return self._redis is not None

    async def opened(self, backend: str, seconds: float) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.set(OPEN_PREFIX + backend, b"1", px=max(1, int(seconds * 1000)))
        except Exception as e:  # noqa: BLE001 - Redis down: this instance's view stands
            self._failed("open", e)

    async def closed(self, backend: str) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.delete(OPEN_PREFIX + backend)
        except Exception as e:  # noqa: BLE001
            self._failed("close", e)

    async def set_drained(self, backend: str, drained: bool) -> None:
        """Raises when Redis is down: an operator's drain must not silently stay local."""
        if self._redis is None:
            return
        try:
            if drained:
                await self._redis.sadd(DRAINED_KEY, backend)
            else:
                await self._redis.srem(DRAINED_KEY, backend)
        except Exception as e:
            self._failed("drain", e)
            raise DependencyUnavailable("Redis is unavailable: the drain could not be shared with "
                                        "the other gateway instances; try again.") from e

    async def read(self, backends: Sequence[str]) -> tuple[dict[str, float], set[str]] | None:
        """(seconds each open backend stays open, drained backends); None when Redis is down
        or not configured."""
        if self._redis is None:
            return None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in backends:
                    pipe.pttl(OPEN_PREFIX + name)
                pipe.smembers(DRAINED_KEY)
                *ttls, drained = await pipe.execute()
        except Exception as e:  # noqa: BLE001
            self._failed("read", e)
            return None
        opened = {name: ms / 1000 for name, ms in zip(backends, ttls, strict=True)
                  if isinstance(ms, int) and ms > 0}
        return opened, {m.decode() if isinstance(m, bytes) else str(m) for m in drained}

    def _failed(self, what: str, e: Exception) -> None:
        self.failures += 1
        log.warning("routing state not shared: Redis unavailable",
                    extra={"op": what, "error": type(e).__name__})
