"""The response cache stage: decides per request whether the cache is used, looks the answer up
(exact, then semantic), and stores a live answer once it is complete.

Not cached: a tenant's policy turns it off, a request with guardrail findings (PII masked or flagged,
anything flagged, a check skipped on error), sampled requests (temperature above 0 and no ``seed``)
unless the tenant opts in, ``logprobs``/``echo``, answers with tool calls, errors or cut short, and
entries over the size limit. ``Cache-Control: no-cache`` skips the lookup, ``no-store`` the store.
Redis failing is never an error for the request: the cache is bypassed and
``llmp_cache_unavailable_total`` counts it.

A live answer is written to Redis after it was sent (a background task, off the answer's path). This
process still reads its own writes: a lookup of a request whose store is still under way waits for
that store first, and a new model version is known to this process at once (Redis learns it with
the store).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from functions.cache.entry import Answer
from functions.cache.keys import (
    digest,
    entry_key,
    last_user_text,
    request_hash,
    semantic_partition,
)
from functions.cache.policies import CachePolicyStore
from functions.cache.policy import CachePolicy
from functions.cache.semantic import Embedder, SemanticIndex, Vector, partition_key
from functions.cache.settings import CacheSettings
from functions.cache.versions import ModelVersions
from functions.metrics import GatewayMetrics
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest

if TYPE_CHECKING:
    from functions.guardrails.engine import RequestGuard
    from functions.rag.embedder import TextEmbedder

log = logging.getLogger(__name__)

FAILURES = (RedisError, OSError, TimeoutError)
VERSION_HEADER = "x-llmp-model-version"
How = Literal["exact", "semantic"]


class ResponseCache:
    def __init__(self, redis: Redis | None, policies: CachePolicyStore, settings: CacheSettings,
                 metrics: GatewayMetrics, embedder: Callable[[], TextEmbedder] | None = None) -> None:
        self.redis, self.policies, self.settings, self.metrics = redis, policies, settings, metrics
        self.versions = ModelVersions(redis, settings.version_ttl_s) if redis is not None else None
        self.semantic = SemanticIndex(redis, settings.semantic_max_entries) if redis else None
        self.embedder = Embedder(embedder)
        self._storing: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        """Stores still under way, by (tenant, alias, request hash)."""
        self._recording: set[asyncio.Task[None]] = set()
        self._fps: dict[int, tuple[BaseModel, str]] = {}

    async def aclose(self) -> None:
        """Wait for the stores still under way (shutdown)."""
        pending = [*self._storing.values(), *self._recording]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def note_version(self, alias: str, version: str) -> None:
        """A model version seen in service (an answer's header, or the router's poll)."""
        if self.versions is None or not self.versions.note(alias, version):
            return
        task = asyncio.get_running_loop().create_task(self._record(alias, version))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _record(self, alias: str, version: str) -> None:
        assert self.versions is not None
        try:
            await self.versions.record(alias, version)
        except FAILURES as e:
            self.unavailable("version", e)

    async def begin(self, tenant_id: str, endpoint: str, req: SamplingParams, guard: RequestGuard,
                    headers: Mapping[str, str]) -> CacheTurn:
        turn = CacheTurn(self, tenant_id, endpoint, req, guard)
        if self.redis is None or not self.settings.enabled or not _cacheable(req, guard):
            return turn
        policy = await self.policies.get_or_none(tenant_id)
        if policy is None or not policy.enabled:
            return turn
        if not (policy.nondeterministic or req.temperature == 0 or req.seed is not None):
            return turn
        directives = {d.strip().lower() for d in headers.get("cache-control", "").split(",")}
        turn.policy = policy
        turn.can_lookup = "no-cache" not in directives
        turn.can_store = "no-store" not in directives
        turn.policy_fp = self._policy_fp(guard.policy)
        return turn

    def _policy_fp(self, policy: BaseModel) -> str:
        """The guardrail policy's part of the key, computed once per policy object: a caller that
        reuses its policy objects (one disabled policy for every request with guardrails off)
        dumps and hashes each once, not once per request."""
        memo = self._fps.get(id(policy))
        if memo is not None and memo[0] is policy:
            return memo[1]
        fp = digest(policy.model_dump(mode="json"))
        if len(self._fps) >= 1024:
            self._fps.clear()
        self._fps[id(policy)] = (policy, fp)
        return fp

    def unavailable(self, op: str, e: BaseException) -> None:
        self.metrics.cache_unavailable.labels(op).inc()
        log.warning("cache unavailable, bypassed", extra={"op": op, "error": type(e).__name__})


def _cacheable(req: SamplingParams, guard: RequestGuard) -> bool:
    if guard.has_findings:
        return False
    if isinstance(req, ChatCompletionRequest):
        return not (req.logprobs or req.top_logprobs)
    if isinstance(req, CompletionRequest):
        return not (req.logprobs or req.echo)
    return False


class CacheTurn:
    """The cache's part in one request."""

    def __init__(self, cache: ResponseCache, tenant_id: str, endpoint: str, req: SamplingParams,
                 guard: RequestGuard) -> None:
        self.cache, self.tenant_id, self.endpoint, self.req = cache, tenant_id, endpoint, req
        self.guard = guard
        self.policy: CachePolicy | None = None
        self.can_lookup = self.can_store = False
        self.policy_fp = ""
        self.hit: How | None = None
        self._hash = ""
        self._vector: Vector | None = None
        self._partition: str | None = None

    @property
    def header(self) -> str:
        return "hit" if self.hit else "miss"

    @property
    def alias(self) -> str:
        return self.req.model

    def _rhash(self) -> str:
        if not self._hash:
            self._hash = request_hash(self.tenant_id, self.endpoint, self.req, self.policy_fp)
        return self._hash

    async def lookup(self) -> Answer | None:
        c = self.cache
        if not self.can_lookup or c.redis is None or c.versions is None:
            return None
        storing = c._storing.get((self.tenant_id, self.alias, self._rhash()))
        if storing is not None:  # the same request, answered here a moment ago: read that write
            await asyncio.wait([storing])
        try:
            version = await c.versions.current(self.alias)
            raw = await c.redis.get(entry_key(self.tenant_id, self.alias, version, self._rhash()))
        except FAILURES as e:
            c.unavailable("lookup", e)
            self.can_store = False
            return None
        if raw is not None:
            return self._found("exact", raw)
        c.metrics.cache_lookups.labels("exact", "miss").inc()
        return await self._semantic(version)

    def _found(self, how: How, raw: bytes | str) -> Answer | None:
        try:
            answer = Answer.decode(raw)
        except (ValueError, TypeError):
            log.warning("unreadable cache entry ignored")
            return None
        self.hit = how
        self.cache.metrics.cache_lookups.labels(how, "hit").inc()
        return answer

    async def _semantic(self, version: str) -> Answer | None:
        c, policy = self.cache, self.policy
        if (policy is None or not policy.semantic.enabled or c.semantic is None or c.redis is None
                or not isinstance(self.req, ChatCompletionRequest)):
            return None
        self._partition = semantic_partition(self.tenant_id, self.endpoint, self.req, self.policy_fp)
        if self._partition is None:
            return None
        try:
            await asyncio.wait_for(c.embedder.load(), c.settings.semantic_load_timeout_s)
            self._vector = await asyncio.wait_for(c.embedder.embed(last_user_text(self.req)),
                                                  c.settings.semantic_timeout_s)
            pkey = partition_key(self.tenant_id, self.alias, version, self._partition)
            found = await c.semantic.nearest(pkey, self._vector, policy.semantic.threshold)
            raw = await c.redis.get(found[0]) if found else None
        except Exception as e:  # noqa: BLE001 - the semantic cache never fails a request
            c.unavailable("semantic", e)
            self._vector = None
            return None
        if raw is None or found is None or not found[0].startswith(
                entry_key(self.tenant_id, self.alias, version, "")):
            c.metrics.cache_lookups.labels("semantic", "miss").inc()
            return None
        return self._found("semantic", raw)

    async def seen(self, headers: Mapping[str, str], answer: Answer | None = None) -> str:
        """Learn the version a live answer came from; returns it ('' if unknown). This process
        knows it at once; the Redis record is written in the background."""
        version = headers.get(VERSION_HEADER) or (answer.fingerprint if answer else None) or ""
        self.cache.note_version(self.alias, version)
        return version

    async def store(self, answer: Answer, headers: Mapping[str, str]) -> None:
        """Store a complete live answer, if this request may be stored: decided now, written in
        the background (the answer does not wait for Redis)."""
        answer.version = await self.seen(headers, answer)
        c, policy = self.cache, self.policy
        if (not self.can_store or self.hit or policy is None or c.redis is None
                or self.guard.has_findings or answer.tool_calls
                or answer.finish_reason not in ("stop", "length")):
            return
        raw = answer.encode()
        if len(raw) > min(c.settings.max_entry_bytes, policy.max_entry_bytes or 1 << 62):
            c.metrics.cache_stores.labels("too_large").inc()
            return
        key = entry_key(self.tenant_id, self.alias, answer.version, self._rhash())
        ttl = min(policy.ttl_s, c.settings.max_ttl_s)
        pending = (self.tenant_id, self.alias, self._rhash())
        task = asyncio.get_running_loop().create_task(self._write(key, raw, ttl, answer.version))
        c._storing[pending] = task

        def done(t: asyncio.Task[None]) -> None:
            if c._storing.get(pending) is t:
                del c._storing[pending]

        task.add_done_callback(done)

    async def _write(self, key: str, raw: bytes, ttl: int, version: str) -> None:
        c = self.cache
        assert c.redis is not None
        try:
            await c.redis.set(key, raw, ex=ttl)
            if self._vector is not None and self._partition is not None and c.semantic is not None:
                pkey = partition_key(self.tenant_id, self.alias, version, self._partition)
                await c.semantic.add(pkey, self._vector, key, ttl)
        except FAILURES as e:
            c.unavailable("store", e)
            return
        c.metrics.cache_stores.labels("stored").inc()
