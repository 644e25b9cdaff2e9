"""Dispatch: alias -> tier -> a healthy backend, with fallback only before the first token.

A backend that cannot be reached, or fails before it produced anything, is skipped for a cool-down and
the next backend of the alias is tried. Once a stream has yielded its first event it is bound to its
backend: a later failure ends the stream with an error event, never with a silent clean close.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from functions.backends.base import Backend, Completion, Endpoint, UpstreamStream
from functions.errors import (
    BackendError,
    BackendUnavailable,
    LlmpError,
    ModelNotFound,
    as_llmp_error,
    sse_error,
)
from functions.protocol.common import SamplingParams
from models.catalog import Catalog, ModelSpec

log = logging.getLogger(__name__)

RETRYABLE = (BackendUnavailable, BackendError)


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
class _Health:
    down_until: dict[str, float] = field(default_factory=dict)

    def order(self, backends: Sequence[Backend]) -> list[Backend]:
        now = time.monotonic()
        up = [b for b in backends if self.down_until.get(b.name, 0.0) <= now]
        return up + [b for b in backends if b not in up]

    def mark_down(self, name: str, seconds: float) -> None:
        self.down_until[name] = time.monotonic() + seconds

    def mark_up(self, name: str) -> None:
        self.down_until.pop(name, None)


class Dispatcher:
    def __init__(self, catalog: Catalog, backends: Mapping[str, Sequence[Backend]],
                 cooldown_s: float) -> None:
        self.catalog = catalog
        self._backends = backends
        self._cooldown = cooldown_s
        self._health = _Health()

    def model(self, alias: str) -> ModelSpec:
        spec = self.catalog.get(alias)
        if spec is None:
            raise ModelNotFound(f"The model '{alias}' does not exist or you do not have access to it.",
                                param="model")
        return spec

    def _candidates(self, alias: str) -> list[Backend]:
        return self._health.order(self._backends[self.model(alias).alias])

    def _failed(self, backend: Backend, e: LlmpError) -> None:
        log.warning("backend failed", extra={"backend": backend.name, "error": type(e).__name__})
        self._health.mark_down(backend.name, self._cooldown)

    async def complete(self, endpoint: Endpoint, req: SamplingParams) -> tuple[Backend, Completion]:
        last: LlmpError | None = None
        for backend in self._candidates(req.model):
            body = req.upstream_body(self.served_model(req.model, backend))
            backend.check(endpoint, body)
            try:
                result = await backend.complete(endpoint, body)
            except RETRYABLE as e:
                self._failed(backend, e)
                last = e
                continue
            self._health.mark_up(backend.name)
            if backend.served_model and backend.served_model != req.model:
                body_out = {**result.body, "model": req.model}  # clients see the alias they asked for
                result = Completion(orjson.dumps(body_out), body_out, result.headers)
            return backend, result
        raise last or BackendUnavailable("No backend is configured for this model.")

    async def stream(self, endpoint: Endpoint, req: SamplingParams
                     ) -> tuple[Backend, AsyncIterator[bytes], StreamResult]:
        """Open a stream and read its first event (falling back on failure before it), then hand
        back the SSE bytes to send; ``StreamResult`` fills in as the stream ends. The caller calls
        ``result.close()`` when its response is over, also if it never iterated the bytes (a
        client gone before the first byte)."""
        last: LlmpError | None = None
        for backend in self._candidates(req.model):
            body = req.upstream_body(self.served_model(req.model, backend))
            backend.check(endpoint, body)
            upstream: UpstreamStream | None = None
            try:
                upstream = await backend.open_stream(endpoint, body)
                batches = upstream.batches()
                first = await anext(batches, None)
            except BaseException as e:
                if upstream is not None:
                    await upstream.aclose()
                if not isinstance(e, RETRYABLE):
                    raise  # a timeout, a refusal, a cancelled request: no other backend helps
                self._failed(backend, e)
                last = e
                continue
            self._health.mark_up(backend.name)
            result = StreamResult(headers=upstream.headers, close=upstream.aclose)
            rename = req.model if backend.served_model and backend.served_model != req.model else None
            return backend, _relay(upstream, batches, first, req.wants_usage_chunk, result,
                                   rename), result
        raise last or BackendUnavailable("No backend is configured for this model.")

    @staticmethod
    def served_model(alias: str, backend: Backend) -> str:
        return backend.served_model or alias


async def _relay(upstream: UpstreamStream, batches: AsyncIterator[list[bytes]],
                 first: list[bytes] | None, want_usage: bool, result: StreamResult,
                 rename: str | None = None) -> AsyncIterator[bytes]:
    """Pass events on as they come (no buffering); take the usage chunk; end with ``[DONE]``.
    Events that arrived before a failure are still sent, then the error event."""
    pending: list[bytes] = []
    try:
        if first is not None:
            async for batch in _prepend(first, batches):
                pending.extend(_event(d, want_usage, result, rename) for d in batch)
                if out := b"".join(pending):
                    yield out
                pending.clear()
        yield b"data: [DONE]\n\n"
    except Exception as e:  # noqa: BLE001 - whatever broke, the client gets an error event
        result.error = as_llmp_error(e)
        yield b"".join(pending) + sse_error(result.error)
    finally:
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
