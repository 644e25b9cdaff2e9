"""The model version behind each alias, as live answers report it (``x-llmp-model-version``, or
``system_fingerprint``), kept in Redis for every gateway instance and memoised in the process.

Entries are keyed by version, so when a GGUF swap changes the version behind an alias, the first
live answer from the new version (on any instance) moves the alias on, and from then on lookups use
keys the old version never wrote. Other instances follow within ``LLMP_CACHE_VERSION_TTL_S``."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from functions.cache.keys import version_key

VERSION_TTL_S = 30 * 86_400
"""The Redis record of an alias's version outlives any entry."""


class ModelVersions:
    def __init__(self, redis: Redis, ttl_s: float) -> None:
        self._redis, self._ttl = redis, ttl_s
        self._memo: dict[str, tuple[float, str]] = {}

    async def current(self, alias: str) -> str:
        """The version last reported for the alias ('' if none yet). Raises RedisError/OSError."""
        memo = self._memo.get(alias)
        if memo is not None and memo[0] > time.monotonic():
            return memo[1]
        raw = await self._redis.get(version_key(alias))
        version = raw.decode() if isinstance(raw, bytes) else (raw or "")
        self._memo[alias] = (time.monotonic() + self._ttl, version)
        return version

    async def seen(self, alias: str, version: str) -> None:
        """A live answer came from ``version``: record it if it is news."""
        if self.note(alias, version):
            await self.record(alias, version)

    def note(self, alias: str, version: str) -> bool:
        """This process's part of :meth:`seen`, at once: the alias moves on to ``version`` here
        (so this instance's next lookup uses it); True when it is news, and :meth:`record` should
        then tell the other instances."""
        if not version:
            return False
        memo = self._memo.get(alias)
        if memo is not None and memo[1] == version and memo[0] > time.monotonic():
            return False
        self._memo[alias] = (time.monotonic() + self._ttl, version)
        return True

    async def record(self, alias: str, version: str) -> None:
        """The Redis record every instance reads (raises RedisError/OSError); on failure this
        process forgets the version too, so that the next live answer records it again."""
        try:
            await self._redis.set(version_key(alias), version, ex=VERSION_TTL_S)
        except BaseException:
            memo = self._memo.get(alias)
            if memo is not None and memo[1] == version:
                del self._memo[alias]
            raise
