"""The gateway's dependencies, built lazily: nothing here connects or loads at construction.

One :class:`Gateway` is owned by the app that serves it (the Functions blueprint, or the ASGI app's
lifespan); handlers receive it as an argument. Clients are created on first use, on the event loop that
uses them, and closed by :meth:`aclose`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from functions.settings import GatewaySettings
from models.catalog import Catalog, load_catalog

if TYPE_CHECKING:
    import httpx
    from redis.asyncio import Redis

    from functions.auth import Authenticator
    from functions.db import Database
    from functions.dispatch import Dispatcher
    from functions.keys import KeyStore
    from functions.rag.service import RagService
    from functions.rag.settings import RagSettings


class Gateway:
    def __init__(self, settings: GatewaySettings | None = None,
                 rag_settings: RagSettings | None = None) -> None:
        self._settings = settings
        self._rag_settings = rag_settings

    @cached_property
    def settings(self) -> GatewaySettings:
        return self._settings or GatewaySettings()

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path)

    @cached_property
    def http(self) -> httpx.AsyncClient:
        import httpx

        s = self.settings
        return httpx.AsyncClient(
            timeout=httpx.Timeout(s.backend_read_timeout_s, connect=s.backend_connect_timeout_s,
                                  pool=s.backend_connect_timeout_s),
            limits=httpx.Limits(max_connections=s.backend_max_connections,
                                max_keepalive_connections=s.backend_max_connections),
            trust_env=False)

    @cached_property
    def redis(self) -> Redis | None:
        """None only in local mode without ``REDIS_URL`` (settings refuse that in Azure): the
        gateway then runs without its Redis caches."""
        from redis.asyncio import Redis

        s = self.settings
        if not s.redis_url:
            return None
        return Redis.from_url(s.redis_url, socket_timeout=s.redis_timeout_s,
                              socket_connect_timeout=s.redis_timeout_s)

    @cached_property
    def db(self) -> Database:
        from functions.db import Database

        s = self.settings
        if not s.database_url:
            raise RuntimeError("DATABASE_URL is not set (llmp serve starts a local Postgres and sets it)")
        return Database(s.database_url, min_size=s.db_pool_min, max_size=s.db_pool_max,
                        timeout_s=s.db_timeout_s, migrate=s.migrate_on_start)

    @cached_property
    def keys(self) -> KeyStore:
        from functions.keys import KeyStore

        return KeyStore(self.db)

    @cached_property
    def authenticator(self) -> Authenticator:
        from functions.auth import Authenticator

        return Authenticator(self.keys, self.redis, self.settings.key_cache_ttl_s)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from functions.backends import build_backend
        from functions.dispatch import Dispatcher

        s = self.settings
        backends = {m.alias: [build_backend(m.tier, b, self.http, s.backend_read_timeout_s)
                              for b in m.backends] for m in self.catalog.models}
        return Dispatcher(self.catalog, backends, s.backend_cooldown_s)

    @cached_property
    def rag(self) -> RagService:
        """Knowledge bases: Qdrant, the embedder and the ingestion worker (loaded on first use)."""
        from functions.rag.service import RagService
        from functions.rag.settings import RagSettings

        return RagService(self._rag_settings or RagSettings())

    async def aclose(self) -> None:
        built = self.__dict__
        if "rag" in built:
            await self.rag.aclose()
        if "http" in built:
            await self.http.aclose()
        if "redis" in built and self.redis is not None:
            await self.redis.aclose()
        if "db" in built:
            await self.db.aclose()
