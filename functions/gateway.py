"""The gateway's dependencies, built lazily: nothing here connects or loads at construction.

One :class:`Gateway` is owned by the app that serves it (the Functions blueprint, or the ASGI app's
lifespan); handlers receive it as an argument. Clients are created on first use, on the event loop that
uses them, and closed by :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import cached_property
from typing import TYPE_CHECKING

from functions.settings import GatewaySettings
from models.catalog import Catalog, load_catalog

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx
    from redis.asyncio import Redis

    from functions.auth import Authenticator
    from functions.backends.base import Backend
    from functions.cache.policies import CachePolicyStore
    from functions.cache.settings import CacheSettings
    from functions.cache.stage import ResponseCache
    from functions.conversations.settings import ConversationSettings
    from functions.conversations.store import ConversationStore
    from functions.db import Database
    from functions.dispatch import Dispatcher
    from functions.embeddings import EmbeddingDispatcher
    from functions.entra import EntraVerifier
    from functions.guardrails.engine import Guardrails
    from functions.guardrails.policies import PolicyStore
    from functions.guardrails.settings import GuardrailSettings
    from functions.keys import KeyStore
    from functions.limits import Limiter
    from functions.metrics import GatewayMetrics
    from functions.rag.embedder import TextEmbedder
    from functions.rag.service import RagService
    from functions.rag.settings import RagSettings
    from functions.routing.router import Router
    from functions.routing.settings import RoutingSettings
    from functions.routing.tiers import TierChooser, TierSettings
    from functions.secrets import KeyVaultSecrets
    from functions.spend import SpendLedger, UsageReader
    from functions.tenants import TenantStore


log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, settings: GatewaySettings | None = None, *,
                 guardrail_settings: GuardrailSettings | None = None,
                 rag_settings: RagSettings | None = None,
                 cache_settings: CacheSettings | None = None,
                 conversation_settings: ConversationSettings | None = None,
                 routing_settings: RoutingSettings | None = None,
                 tier_settings: TierSettings | None = None) -> None:
        self._settings = settings
        self._routing_settings = routing_settings
        self._tier_settings = tier_settings
        self._guardrail_settings = guardrail_settings
        self._rag_settings = rag_settings
        self._cache_settings = cache_settings
        self._conversation_settings = conversation_settings
        self._routing_settings = routing_settings
        self.vault: KeyVaultSecrets | None = None
        self._refresher: asyncio.Task[None] | None = None

    @cached_property
    def settings(self) -> GatewaySettings:
        """The settings, with Key Vault secrets applied when ``LLMP_KEY_VAULT_URL`` is set (read
        once here, at start-up: the ASGI lifespan, or the first Functions request)."""
        from functions.secrets import load_settings

        settings, vault = load_settings(self._settings or GatewaySettings())
        self.vault = self.vault or vault
        return settings

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

        s = self.settings
        return Authenticator(self.keys, self.redis, s.key_cache_ttl_s, entra=self.entra,
                             tenants=self.tenants, entra_admin_role=s.admin_role)

    # tenancy -----------------------------------------------------------------------------------
    @cached_property
    def tenants(self) -> TenantStore:
        from functions.tenants import TenantStore

        return TenantStore(self.db, self.settings.tenant_cache_ttl_s)

    @cached_property
    def entra(self) -> EntraVerifier | None:
        """None unless ``LLMP_ENTRA_TENANT_ID`` and ``LLMP_ENTRA_AUDIENCES`` are set."""
        s = self.settings
        if not s.entra_enabled:
            return None
        from functions.entra import EntraVerifier

        return EntraVerifier(self.http, s.entra_jwks, audiences=s.entra_audiences,
                             issuers=s.entra_issuer_list, skew_s=s.entra_clock_skew_s,
                             ttl_s=s.entra_jwks_ttl_s, min_refresh_s=s.entra_jwks_min_refresh_s,
                             timeout_s=s.entra_timeout_s)

    @cached_property
    def limiter(self) -> Limiter:
        from functions.limits import Limiter

        return Limiter(self.redis, self.spend.month_total)

    @cached_property
    def spend(self) -> SpendLedger:
        from functions.spend import SpendLedger

        s = self.settings
        return SpendLedger(self.db, flush_s=s.spend_flush_s, batch_max=s.spend_batch_max,
                           buffer_max=s.spend_buffer_max)

    @cached_property
    def usage(self) -> UsageReader:
        from functions.spend import UsageReader

        return UsageReader(self.db)

    def start_background(self) -> None:
        """Start the Key Vault refresh loop (when a vault is configured); cheap to call on every
        request (the Functions host has no start-up hook)."""
        if self._refresher is None and self.settings is not None and self.vault is not None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_secrets())

    async def refresh_secrets(self) -> bool:
        """Read the vault again; changed values apply to what reads settings per request (Entra
        audiences, limits defaults) and to clients built afterwards."""
        if self.vault is None or not await self.vault.refresh():
            return False
        from functions.secrets import with_secrets

        self.__dict__["settings"] = with_secrets(self.settings, self.vault.values)
        log.info("key vault secrets changed; settings reloaded")
        return True

    async def _refresh_secrets(self) -> None:
        while True:
            await asyncio.sleep(self.settings.key_vault_refresh_s)
            try:
                await self.refresh_secrets()
            except Exception as e:  # noqa: BLE001 - keep the values in use, try again later
                log.warning("key vault refresh failed", extra={"error": type(e).__name__})
    # end tenancy -------------------------------------------------------------------------------

    @cached_property
    def dispatcher(self) -> Dispatcher:
        from functions.backends import build_backend
        from functions.dispatch import Dispatcher

        s = self.settings
        backends = {m.alias: [build_backend(m.tier, b, self.http, s.backend_read_timeout_s)
                              for b in m.backends] for m in self.catalog.models}
        return Dispatcher(self.catalog, backends, self._router(backends))

    def _router(self, backends: Mapping[str, Sequence[Backend]]) -> Router:
        """The chat tiers' router: its poll reports each backend's model version to the response
        cache, so a swapped model is seen even while every request is a cache hit."""
        from functions.routing.router import Router
        from functions.routing.settings import RoutingSettings

        def on_version(alias: str, version: str) -> None:
            if self.redis is not None:
                self.response_cache.note_version(alias, version)

        return Router(backends, self._routing_settings or RoutingSettings(), self.redis,
                      on_version=on_version)

    @cached_property
    def tier_chooser(self) -> TierChooser:
        """Routes (``auto``) to tiers: rules, then the nearest labelled examples, embedded by
        :attr:`text_embedder` on first use."""
        from functions.routing.tiers import KnnClassifier, TierChooser

        classifier = KnnClassifier(lambda: self.text_embedder, self.settings.catalog_path.parent)
        return TierChooser(self.catalog, classifier, lambda t: self.tenants.get(t), self.metrics,
                           self._tier_settings)

    @cached_property
    def embeddings(self) -> EmbeddingDispatcher:
        """The catalog's embedding models and their backends (``/v1/embeddings``, RAG, cache)."""
        from functions.backends import build_backend
        from functions.embeddings import EmbeddingDispatcher

        s = self.settings
        backends = {m.alias: [build_backend(m.tier, b, self.http, s.backend_read_timeout_s)
                              for b in m.backends] for m in self.catalog.models if m.caps.embeddings}
        return EmbeddingDispatcher(self.catalog, backends, s.backend_cooldown_s)

    @cached_property
    def text_embedder(self) -> TextEmbedder:
        """The one embedder of RAG and the semantic cache: the embedding tier named by
        ``LLMP_EMBEDDING_ALIAS``, else (the setting empty) a model in this process."""
        from functions.rag.embedder import HttpEmbedder, LocalEmbedder
        from functions.rag.settings import RagSettings

        alias = self.settings.embedding_alias
        if alias:
            return HttpEmbedder(self.embeddings, alias)
        rag = self._rag_settings or RagSettings()
        return LocalEmbedder(rag.embedding_model, rag.embedding_batch_size)

    @cached_property
    def guardrail_settings(self) -> GuardrailSettings:
        from functions.guardrails.settings import GuardrailSettings

        return self._guardrail_settings or GuardrailSettings()

    @cached_property
    def metrics(self) -> GatewayMetrics:
        from functions.metrics import GatewayMetrics

        return GatewayMetrics()

    @cached_property
    def policies(self) -> PolicyStore:
        from functions.guardrails.policies import PolicyStore

        return PolicyStore(self.db, self.guardrail_settings.policy_cache_ttl_s)

    @cached_property
    def guardrails(self) -> Guardrails:
        """Detectors are built here but load their models on first use (Presidio/spaCy: about
        2 s, once per process)."""
        from functions.guardrails.audit import AuditLog
        from functions.guardrails.engine import Guardrails
        from functions.guardrails.factory import build_detectors

        s = self.guardrail_settings
        audit = AuditLog(self.db, batch=s.audit_batch, flush_s=s.audit_flush_s,
                         max_queue=s.audit_queue_max) if self.settings.database_url else None
        return Guardrails(build_detectors(s), audit, self.metrics, s.timeout_s, s.holdback_chars,
                          max_chars=s.max_chars, workers=s.workers, bulk_chars=s.bulk_chars)

    @cached_property
    def cache_settings(self) -> CacheSettings:
        from functions.cache.settings import CacheSettings

        return self._cache_settings or CacheSettings()

    @cached_property
    def conversation_settings(self) -> ConversationSettings:
        from functions.conversations.settings import ConversationSettings

        return self._conversation_settings or ConversationSettings()

    @cached_property
    def cache_policies(self) -> CachePolicyStore:
        from functions.cache.policies import CachePolicyStore

        return CachePolicyStore(self.db, self.cache_settings.policy_cache_ttl_s)

    @cached_property
    def response_cache(self) -> ResponseCache:
        """The exact and semantic caches (Redis); the embedder loads on first semantic use."""
        from functions.cache.stage import ResponseCache

        return ResponseCache(self.redis, self.cache_policies, self.cache_settings, self.metrics,
                             lambda: self.text_embedder)

    @cached_property
    def conversations(self) -> ConversationStore:
        from functions.conversations.store import ConversationStore

        return ConversationStore(self.db)

    async def aclose(self) -> None:
        built = self.__dict__
        if "guardrails" in built and self.guardrails.audit is not None:
            await self.guardrails.audit.aclose()  # before the pool it writes through closes
        if "guardrails" in built:
            self.guardrails.close()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if "dispatcher" in built:  # the router's poll, before the HTTP client closes
            await self.dispatcher.router.aclose()
        if "tier_chooser" in built:
            await self.tier_chooser.aclose()
        if "response_cache" in built:  # stores still under way, before Redis closes
            await self.response_cache.aclose()
        if "limiter" in built:
            await self.limiter.aclose()
        if "spend" in built:  # first: it still needs the database
            await self.spend.aclose()
        if "rag" in built:
            await self.rag.aclose()
        if "http" in built:
            await self.http.aclose()
        if "redis" in built and self.redis is not None:
            await self.redis.aclose()
        if "db" in built:
            await self.db.aclose()

    @cached_property
    def rag(self) -> RagService:
        """Knowledge bases: Qdrant, the embedder and the ingestion worker (loaded on first use)."""
        from functions.rag.service import RagService
        from functions.rag.settings import RagSettings

        return RagService(self._rag_settings or RagSettings(), db=lambda: self.db,
                          embedder=lambda: self.text_embedder)
