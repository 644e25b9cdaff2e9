"""Dispatch: alias (or a route's tiers) -> a replica picked by the router, with failover before the
first token.

A replica that cannot be reached, answers 429/503, resets, or has not started answering within
its tier's time-to-first-byte limit is left and another is tried (at most ``max_retries`` more,
within the alias's retry budget), then the next tier of a route. A replica whose breaker opens
while requests wait on it (its polls stopped answering: a hang) releases them at once to be
retried. Once a stream has yielded its first event it is bound to its replica: a later failure
ends the stream with an error event, never with a silent clean close, and is never retried.
See ``docs/routing.md``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from functions.backends.base import LOAD_HEADER, Backend, Completion, Endpoint, UpstreamStream
from functions.errors import (
    BackendBusy,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    LlmpError,
    ModelNotFound,
    as_llmp_error,
    sse_error,
)
from functions.protocol.common import SamplingParams
from functions.routing.affinity import affinity_key
from models.catalog import Catalog, ModelSpec

if TYPE_CHECKING:  # the router is built with the dispatcher, not at import (function_app)
    from functions.routing.load import BackendLoad
    from functions.routing.router import Pick, Router
    from functions.routing.settings import RoutingSettings

log = logging.getLogger(__name__)

RETRYABLE = (BackendUnavailable, BackendError, BackendTimeout)
T = TypeVar("T")


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Usage | None:
        u = body.get("usage")
        if not isinstance(u, dict):
            return None
        p, c = u.get("prompt_tokens"), u.get("completion_tokens")
        return cls(p if isinstance(p, int) else 0, c if isinstance(c, int) else 0)


async def _nothing() -> None:
    return None


@dataclass(slots=True)
class StreamResult:
    """What a stream reports once it has ended (read after iteration)."""

    usage: Usage | None = None
    error: LlmpError | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    close: Callable[[], Awaitable[None]] = field(default=_nothing)
    """Releases the upstream stream; safe to call more than once."""


@dataclass(slots=True)
class Routed:
    """How a request was routed: the replica and tier that answered, why that replica, and how
    many replicas failed before it."""

    backend: Backend
    tier: str
    why: str
    retries: int = 0
    affinity: str | None = None

    @property
    def name(self) -> str:
        return self.backend.name

    def headers(self) -> dict[str, str]:
        h = {"x-llmp-backend": self.backend.name, "x-llmp-tier": self.tier,
             "x-llmp-pick": self.why, "x-llmp-retries": str(self.retries)}
        if self.affinity is not None:
            h["x-llmp-affinity"] = self.affinity
        return h


def _strip(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != LOAD_HEADER}


class _Attempts:
    """The replicas one request tries, in order: the router's pick per tier, less those tried,
    within the retry limit and the alias's retry budget."""

    def __init__(self, d: Dispatcher, req: SamplingParams, tiers: Sequence[str] | None,
                 tenant: str) -> None:
        self.d, self.req, self.tenant = d, req, tenant
        self.tiers = list(tiers) if tiers else [req.model]
        self.tried: set[str] = set()
        self.retries = 0
        self.last: LlmpError | None = None
        self.key = affinity_key(req, d.settings.affinity_min_messages)
        self.pinned: str | None = None
        self.pick: Pick | None = None
        self.tier = self.tiers[0]

    async def next(self) -> tuple[Backend, str] | None:
        d = self.d
        first = not self.tried
        if not first:
            limit = d.model(self.tiers[0]).routing.max_retries
            limit = d.settings.max_retries if limit is None else limit
            if self.retries >= limit or not d.router.budget.try_retry(self.tiers[0],
                                                                      time.monotonic()):
                return None
        for i, tier in enumerate(self.tiers):
            spec = d.model(tier)
            await d.router.ready(spec.alias)
            if first and i == 0:
                d.router.budget.request(spec.alias, time.monotonic())
                if self.key is not None:
                    self.pinned = await d.router.affinity.get(self.tenant, spec.alias, self.key)
            pick = d.router.pick(spec.alias, self.tried, self.pinned if i == 0 else None)
            if pick is None:
                continue
            if not first:
                self.retries += 1
            self.pick, self.tier = pick, spec.alias
            self.tried.add(pick.backend.name)
            return pick.backend, spec.alias
        return None

    def failed(self, backend: Backend, e: LlmpError) -> None:
        log.warning("backend failed before the first token",
                    extra={"backend": backend.name, "error": type(e).__name__,
                           "retries": self.retries})
        self.d.router.failed(backend.name, e, busy=isinstance(e, BackendBusy))
        self.last = e

    def routed(self, backend: Backend) -> Routed:
        pick = self.pick
        affinity = pick.affinity if pick is not None and self.key is not None else None
        if self.key is not None and pick is not None and pick.affinity != "hit":
            self.d.router.spawn(self.d.router.affinity.pin(self.tenant, self.tier, self.key,
                                                            backend.name))
        return Routed(backend, self.tier, pick.why if pick else "only", self.retries, affinity)

    def exhausted(self) -> LlmpError:
        if self.last is not None:
            return self.last
        return BackendUnavailable(f"No replica of the model '{self.tiers[0]}' is available "
                                  "(all are down, drained or failing); retry shortly.")


class Dispatcher:
    def __init__(self, catalog: Catalog, backends: Mapping[str, Sequence[Backend]],
                 router: Router) -> None:
        self.catalog = catalog
        self._backends = backends
        self.router = router
        self.settings: RoutingSettings = router.settings

    def model(self, alias: str) -> ModelSpec:
        spec = self.catalog.get(alias)
        if spec is None:
            raise ModelNotFound(f"The model '{alias}' does not exist or you do not have access to it.",
                                param="model")
        return spec

    def _ttfb(self, alias: str) -> float:
        return self.model(alias).routing.ttfb_s or self.settings.ttfb_s

    def _whole_deadline(self, alias: str, req: SamplingParams) -> float:
        tokens = req.max_tokens or getattr(req, "max_completion_tokens", None) or 256
        n = getattr(req, "n", None) or 1
        return self._ttfb(alias) + tokens * n / self.settings.whole_tokens_per_s

    async def _race(self, backend: Backend, work: Awaitable[T], timeout_s: float) -> T:
        """``work``, abandoned with ``BackendTimeout`` when it takes longer than ``timeout_s`` or
        the backend's breaker opens meanwhile (its polls found it hung or down)."""
        trip = self.router.trip_event(backend.name)
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(trip.wait())
        try:
            done, _ = await asyncio.wait((task, waiter), timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task in done:
            return task.result()
        task.cancel()
        why = "its breaker opened" if waiter in done else f"no first byte in {timeout_s:g} s"
        raise BackendTimeout(f"Model backend {backend.name} did not answer ({why}).")

    async def complete(self, endpoint: Endpoint, req: SamplingParams,
                       tiers: Sequence[str] | None = None, *, tenant: str = ""
                       ) -> tuple[Routed, Completion]:
        attempts = _Attempts(self, req, tiers, tenant)
        while (got := await attempts.next()) is not None:
            backend, alias = got
            body = req.upstream_body(self.served_model(alias, backend))
            backend.check(endpoint, body)
            load = self.router.started(backend.name)
            t0 = time.monotonic()
            try:
                result = await self._race(backend, backend.complete(endpoint, body),
                                          self._whole_deadline(alias, req))
            except RETRYABLE as e:
                self.router.finished(load, 0.0, 0)
                attempts.failed(backend, e)
                continue
            except BaseException:
                self.router.finished(load, 0.0, 0)
                self.router.abandoned(backend.name)
                raise
            usage = Usage.from_body(result.body)
            self.router.finished(load, time.monotonic() - t0, usage.completion_tokens if usage else 0)
            self.router.observe(backend.name, result.headers)
            self.router.succeeded(backend.name)
            shown = req.model if alias == attempts.tiers[0] else alias
            if (backend.served_model and backend.served_model != shown) or shown != req.model \
                    or LOAD_HEADER in result.headers:
                body_out = {**result.body, "model": shown}  # clients see the alias, not the file
                result = Completion(orjson.dumps(body_out), body_out, _strip(result.headers))
            return attempts.routed(backend), result
        raise attempts.exhausted()

    async def stream(self, endpoint: Endpoint, req: SamplingParams,
                     tiers: Sequence[str] | None = None, *, tenant: str = ""
                     ) -> tuple[Routed, AsyncIterator[bytes], StreamResult]:
        """Open a stream and read its first event (falling back on failure before it), then hand
        back the SSE bytes to send; ``StreamResult`` fills in as the stream ends. The caller calls
        ``result.close()`` when its response is over, also if it never iterated the bytes (a
        client gone before the first byte)."""
        attempts = _Attempts(self, req, tiers, tenant)
        while (got := await attempts.next()) is not None:
            backend, alias = got
            body = req.upstream_body(self.served_model(alias, backend))
            backend.check(endpoint, body)
            load = self.router.started(backend.name)
            t0 = time.monotonic()
            opened: list[UpstreamStream] = []

            async def first_event(b: Backend = backend, body: dict[str, Any] = body,
                                  opened: list[UpstreamStream] = opened
                                  ) -> tuple[AsyncIterator[list[bytes]], list[bytes] | None]:
                upstream = await b.open_stream(endpoint, body)
                opened.append(upstream)
                batches = upstream.batches()
                return batches, await anext(batches, None)

            try:
                batches, first = await self._race(backend, first_event(), self._ttfb(alias))
            except BaseException as e:
                for up in opened:
                    await asyncio.shield(up.aclose())
                self.router.finished(load, 0.0, 0)
                if not isinstance(e, RETRYABLE):
                    self.router.abandoned(backend.name)
                    raise  # a refusal, a cancelled request: no other backend helps
                attempts.failed(backend, e)
                continue
            upstream = opened[0]
            self.router.observe(backend.name, upstream.headers)
            self.router.succeeded(backend.name)
            result = StreamResult(headers=_strip(upstream.headers))
            done = _Done(self.router, load, t0, result)

            async def close(up: UpstreamStream = upstream, done: _Done = done) -> None:
                done()
                await up.aclose()

            result.close = close
            shown = req.model if alias == attempts.tiers[0] else alias
            rename = shown if (backend.served_model and backend.served_model != shown) \
                or shown != req.model else None
            return attempts.routed(backend), _relay(upstream, batches, first,
                                                    req.wants_usage_chunk, result, rename,
                                                    done, load), result
        raise attempts.exhausted()

    @staticmethod
    def served_model(alias: str, backend: Backend) -> str:
        return backend.served_model or alias


@dataclass(slots=True)
class _Done:
    """The router learns once that a stream ended, with its duration and tokens."""

    router: Router
    load: BackendLoad
    started: float
    result: StreamResult
    called: bool = False

    def __call__(self) -> None:
        if self.called:
            return
        self.called = True
        usage = self.result.usage
        self.router.finished(self.load, time.monotonic() - self.started,
                             usage.completion_tokens if usage and not self.result.error else 0)


async def _relay(upstream: UpstreamStream, batches: AsyncIterator[list[bytes]],
                 first: list[bytes] | None, want_usage: bool, result: StreamResult,
                 rename: str | None = None,
                 done: Callable[[], None] | None = None,
                 alive: BackendLoad | None = None) -> AsyncIterator[bytes]:
    """Pass events on as they come (no buffering); take the usage chunk; end with ``[DONE]``.
    Events that arrived before a failure are still sent, then the error event."""
    pending: list[bytes] = []
    try:
        if first is not None:
            async for batch in _prepend(first, batches):
                if alive is not None:
                    alive.last_alive = time.monotonic()
                pending.extend(_event(d, want_usage, result, rename) for d in batch)
                if out := b"".join(pending):
                    yield out
                pending.clear()
        yield b"data: [DONE]\n\n"
    except Exception as e:  # noqa: BLE001 - whatever broke, the client gets an error event
        result.error = as_llmp_error(e)
        yield b"".join(pending) + sse_error(result.error)
    finally:
        if done is not None:
            done()
        await upstream.aclose()


async def _prepend(first: list[bytes], rest: AsyncIterator[list[bytes]]
                   ) -> AsyncIterator[list[bytes]]:
    yield first
    async for batch in rest:
        yield batch


def _event(data: bytes, want_usage: bool, result: StreamResult, rename: str | None = None) -> bytes:
    if rename is not None:  # the backend serves the alias under another name: show the alias
        chunk = orjson.loads(data)
        if isinstance(chunk, dict) and "model" in chunk:
            data = orjson.dumps({**chunk, "model": rename})
    if b'"usage"' in data or b'"error"' in data:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise BackendError("Model backend sent an invalid stream event.") from e
        if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise BackendError(f"Model backend failed during the stream: {msg}")
        if isinstance(chunk, dict) and (usage := Usage.from_body(chunk)) is not None:
            result.usage = usage
            if not chunk.get("choices") and not want_usage:
                return b""
    return b"data: " + data + b"\n\n"
