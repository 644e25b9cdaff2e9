"""The GGUF server's HTTP API: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``,
``/health`` (503 while the model loads, 200 when it serves)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models.blob_store import BlobSettings, ModelStore
from models.gguf_server.engine import (
    Delta,
    EngineError,
    Event,
    Finished,
    Prompt,
    Sampling,
    Started,
)
from models.gguf_server.manager import Lease, ModelManager
from models.gguf_server.metrics import Metrics
from models.gguf_server.protocol import ChatRequest, CompletionRequest
from models.gguf_server.settings import GGUFServerSettings
from models.streaming import ClosingStreamingResponse

log = logging.getLogger(__name__)


VERSION_HEADER = "x-llmp-model-version"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def _error(status: int, message: str, type_: str = "invalid_request_error",
           code: str | None = None, param: str | None = None) -> Response:
    return _json({"error": {"message": message, "type": type_, "param": param, "code": code}},
                 status)


def _engine_error(e: EngineError) -> Response:
    type_ = "invalid_request_error" if e.status < 500 else "server_error"
    return _error(e.status, str(e), type_)


class GGUFServer:
    def __init__(self, settings: GGUFServerSettings, store: ModelStore | None = None) -> None:
        self.settings = settings
        self.manager = ModelManager(settings, Metrics(lambda: self.manager.in_flight), store)

    @property
    def metrics(self) -> Metrics:
        return self.manager.metrics

    # -- handlers ----------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        m = self.manager
        cur = m.current
        info = {"alias": self.settings.alias, "version": cur.version if cur else None,
                "sha256": cur.sha256 if cur else None,
                "load_seconds": cur.load_seconds if cur else None, "last_error": m.last_error}
        if cur is None:
            status = "failed" if m.reason.startswith("failed") else "loading"
            return _json({"status": status, "reason": m.reason, **info}, 503)
        return _json({"status": "ok", "in_flight": m.in_flight, **info})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def refresh(self, request: Request) -> Response:
        """Check Blob now. Also answers Event Grid's subscription validation handshake."""
        token = self.settings.refresh_token
        given = request.query_params.get("token") or request.headers.get("x-llmp-refresh-token")
        if token and not hmac.compare_digest(token, given or ""):
            return _error(401, "A valid refresh token is required.", code="invalid_token")
        with contextlib.suppress(orjson.JSONDecodeError):
            events = orjson.loads(await request.body() or b"[]")
            for ev in events if isinstance(events, list) else [events]:
                if isinstance(ev, dict) and ev.get("eventType") == \
                        "Microsoft.EventGrid.SubscriptionValidationEvent":
                    return _json({"validationResponse": ev.get("data", {}).get("validationCode")})
        self.manager.refresh()
        return _json({"status": "refresh scheduled"}, 202)

    async def models(self, request: Request) -> Response:
        cur = self.manager.current
        return _json({"object": "list", "data": [
            {"id": self.settings.alias, "object": "model", "created": 0, "owned_by": "llmp",
             "version": cur.version if cur else None}]})

    async def chat(self, request: Request) -> Response:
        return await self._serve(request, ChatRequest, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, CompletionRequest, chat=False)

    async def _serve(self, request: Request, model: type[ChatRequest] | type[CompletionRequest],
                     *, chat: bool) -> Response:
        try:
            req = model.model_validate_json(await request.body())
            prompt = req.prompt() if isinstance(req, ChatRequest) else req.as_prompt()
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            param = ".".join(str(p) for p in first["loc"])
            return _error(400, f"Invalid value for '{param}': {first['msg']}.", param=param)
        except ValueError as e:
            return _error(400, str(e))
        try:
            lease = self.manager.lease()
        except EngineError as e:
            return _engine_error(e)
        sampling = req.sampling(self.settings.default_max_tokens)
        if req.stream:
            return await self._stream(lease, prompt, sampling, chat=chat,
                                      include_usage=req.include_usage)
        try:
            return await self._complete(request, lease, prompt, sampling, chat=chat)
        finally:
            lease.release()

    async def _complete(self, request: Request, lease: Lease, prompt: Prompt, sampling: Sampling,
                        *, chat: bool) -> Response:
        cancel = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, cancel))
        parts: list[str] = []
        finished: Finished | None = None
        try:
            async for ev in lease.engine.generate(prompt, sampling, cancel, stream=False):
                if isinstance(ev, Delta):
                    parts.append(ev.text)
                elif isinstance(ev, Finished):
                    finished = ev
        except EngineError as e:
            return _engine_error(e)
        finally:
            watcher.cancel()
        assert finished is not None
        self.metrics.finished(finished)
        version = lease.loaded.version
        return _json(self._body(chat, "".join(parts), finished, version),
                     headers={VERSION_HEADER: version})

    def _body(self, chat: bool, text: str, f: Finished, version: str) -> dict[str, Any]:
        reason = "stop" if f.reason == "cancelled" else f.reason
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text},
             "finish_reason": reason, "logprobs": None} if chat else
            {"index": 0, "text": text, "finish_reason": reason, "logprobs": None})
        return {**self._head(chat, version, stream=False), "choices": [choice], "usage": _usage(f)}

    def _head(self, chat: bool, version: str, *, stream: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if stream else "chat.completion") if chat \
            else "text_completion"
        prefix = "chatcmpl-" if chat else "cmpl-"
        return {"id": prefix + uuid.uuid4().hex, "object": kind, "created": int(time.time()),
                "model": self.settings.alias, "system_fingerprint": version}

    async def _stream(self, lease: Lease, prompt: Prompt, sampling: Sampling, *, chat: bool,
                      include_usage: bool) -> Response:
        events = lease.engine.generate(prompt, sampling)
        try:
            first = await anext(events)  # a prompt that is too long is a 400, not a broken stream
        except EngineError as e:
            lease.release()
            return _engine_error(e)
        except BaseException:  # cancelled while waiting for a slot: give the lease back
            lease.release()
            raise
        version = lease.loaded.version

        async def close() -> None:  # the one cleanup, also if the client left before the first byte
            lease.release()
            with contextlib.suppress(RuntimeError):
                await events.aclose()  # type: ignore[attr-defined]

        return ClosingStreamingResponse(self._sse(lease, events, first, chat, include_usage),
                                        on_close=close,
                                        headers={"cache-control": "no-cache", VERSION_HEADER: version})

    async def _sse(self, lease: Lease, events: AsyncIterator[Event], first: Event, chat: bool,
                   include_usage: bool) -> AsyncIterator[bytes]:
        head = self._head(chat, lease.loaded.version, stream=True)

        def chunk(delta: str | None, finish: str | None, *, role: bool = False) -> bytes:
            if chat:
                d: dict[str, Any] = {"role": "assistant", "content": ""} if role else (
                    {"content": delta} if delta is not None else {})
                choice: dict[str, Any] = {"index": 0, "delta": d, "finish_reason": finish,
                                          "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": finish,
                          "logprobs": None}
            return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

        try:
            if chat and isinstance(first, Started):
                yield chunk(None, None, role=True)
            async for ev in _chain(first, events):
                if isinstance(ev, Delta):
                    yield chunk(ev.text, None)
                elif isinstance(ev, Finished):
                    self.metrics.finished(ev)
                    yield chunk(None, "stop" if ev.reason == "cancelled" else ev.reason)
                    if include_usage:
                        yield b"data: " + orjson.dumps(
                            {**head, "choices": [], "usage": _usage(ev)}) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except EngineError as e:
            err = {"error": {"message": str(e), "type": "server_error", "param": None,
                             "code": None}}
            yield b"data: " + orjson.dumps(err) + b"\n\ndata: [DONE]\n\n"
        # The lease and the engine's generator are released by the response's on_close.


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for ev in rest:
        yield ev


async def _watch_disconnect(request: Request, cancel: threading.Event) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            cancel.set()
            return


def _usage(f: Finished) -> dict[str, int]:
    return {"prompt_tokens": f.prompt_tokens, "completion_tokens": f.completion_tokens,
            "total_tokens": f.prompt_tokens + f.completion_tokens}


def create_app(settings: GGUFServerSettings, store: ModelStore | None = None) -> Starlette:
    if store is None and settings.from_blob:
        store = ModelStore.from_settings(BlobSettings())
    server = GGUFServer(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.manager.start()
        yield
        await server.manager.stop()

    app = Starlette(routes=[
        Route("/health", server.health, methods=["GET"]),
        Route("/metrics", server.metrics_endpoint, methods=["GET"]),
        Route("/admin/refresh", server.refresh, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
    ], lifespan=lifespan)
    app.state.server = server
    return app


def main() -> None:
    import uvicorn

    from models.logs import configure_logging

    settings = GGUFServerSettings()
    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
