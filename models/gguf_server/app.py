"""The GGUF server's HTTP API: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``,
``/health`` (503 while the model loads, 200 when it serves)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from models.gguf_server.engine import (
    Delta,
    Engine,
    EngineError,
    Event,
    Finished,
    Prompt,
    Sampling,
    Started,
)
from models.gguf_server.protocol import ChatRequest, CompletionRequest
from models.gguf_server.settings import GGUFServerSettings
from models.local_files import resolve_model_file

log = logging.getLogger(__name__)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(status: int, message: str, type_: str = "invalid_request_error",
           code: str | None = None, param: str | None = None) -> Response:
    return _json({"error": {"message": message, "type": type_, "param": param, "code": code}},
                 status)


def _engine_error(e: EngineError) -> Response:
    type_ = "invalid_request_error" if e.status < 500 else "server_error"
    return _error(e.status, str(e), type_)


class GGUFServer:
    def __init__(self, settings: GGUFServerSettings) -> None:
        self.settings = settings
        self.engine: Engine | None = None
        self.version = settings.version
        self.sha256: str | None = None
        self.load_seconds: float | None = None
        self.load_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        s = self.settings
        started = time.perf_counter()
        try:
            path = resolve_model_file(s.model)
            engine = Engine(path, slots=s.slots, threads_per_slot=s.threads_per_slot,
                            n_ctx=s.n_ctx, n_batch=s.n_batch, max_queue=s.max_queue)
            await asyncio.to_thread(engine.load)
            self.sha256 = await asyncio.to_thread(_sha256, path)
        except Exception as e:  # noqa: BLE001 - reported by /health
            self.load_error = f"{type(e).__name__}: {e}"
            log.error("model load failed", extra={"error": self.load_error})
            return
        engine.activate()
        self.version = self.version or path.name
        self.load_seconds = round(time.perf_counter() - started, 3)
        self.engine = engine

    async def stop(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await asyncio.to_thread(engine.close)

    # -- handlers ----------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        info = {"alias": self.settings.alias, "version": self.version, "sha256": self.sha256,
                "load_seconds": self.load_seconds}
        if self.engine is None:
            status = "failed" if self.load_error else "loading"
            return _json({"status": status, "reason": self.load_error or "loading model", **info},
                         503)
        return _json({"status": "ok", "in_flight": self.engine.in_flight, **info})

    async def models(self, request: Request) -> Response:
        return _json({"object": "list", "data": [
            {"id": self.settings.alias, "object": "model", "created": 0, "owned_by": "llmp",
             "version": self.version}]})

    async def chat(self, request: Request) -> Response:
        return await self._serve(request, ChatRequest, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, CompletionRequest, chat=False)

    async def _serve(self, request: Request, model: type[ChatRequest] | type[CompletionRequest],
                     *, chat: bool) -> Response:
        if self.engine is None:
            return _error(503, "The model is still loading.", "server_error", "model_loading")
        try:
            req = model.model_validate_json(await request.body())
            prompt = req.prompt() if isinstance(req, ChatRequest) else req.as_prompt()
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            param = ".".join(str(p) for p in first["loc"])
            return _error(400, f"Invalid value for '{param}': {first['msg']}.", param=param)
        except ValueError as e:
            return _error(400, str(e))
        sampling = req.sampling(self.settings.default_max_tokens)
        if req.stream:
            return await self._stream(prompt, sampling, chat=chat, include_usage=req.include_usage)
        return await self._complete(request, prompt, sampling, chat=chat)

    async def _complete(self, request: Request, prompt: Prompt, sampling: Sampling, *,
                        chat: bool) -> Response:
        assert self.engine is not None
        cancel = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, cancel))
        parts: list[str] = []
        finished: Finished | None = None
        try:
            async for ev in self.engine.generate(prompt, sampling, cancel):
                if isinstance(ev, Delta):
                    parts.append(ev.text)
                elif isinstance(ev, Finished):
                    finished = ev
        except EngineError as e:
            return _engine_error(e)
        finally:
            watcher.cancel()
        assert finished is not None
        text = "".join(parts)
        return _json(self._body(chat, text, finished))

    def _body(self, chat: bool, text: str, f: Finished) -> dict[str, Any]:
        reason = "stop" if f.reason == "cancelled" else f.reason
        choice: dict[str, Any] = (
            {"index": 0, "message": {"role": "assistant", "content": text},
             "finish_reason": reason, "logprobs": None} if chat else
            {"index": 0, "text": text, "finish_reason": reason, "logprobs": None})
        return {**self._head(chat, stream=False), "choices": [choice], "usage": _usage(f)}

    def _head(self, chat: bool, *, stream: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if stream else "chat.completion") if chat \
            else "text_completion"
        prefix = "chatcmpl-" if chat else "cmpl-"
        return {"id": prefix + uuid.uuid4().hex, "object": kind, "created": int(time.time()),
                "model": self.settings.alias, "system_fingerprint": self.version}

    async def _stream(self, prompt: Prompt, sampling: Sampling, *, chat: bool,
                      include_usage: bool) -> Response:
        assert self.engine is not None
        events = self.engine.generate(prompt, sampling)
        try:
            first = await anext(events)  # a prompt that is too long is a 400, not a broken stream
        except EngineError as e:
            return _engine_error(e)
        return StreamingResponse(self._sse(events, first, chat, include_usage),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    async def _sse(self, events: AsyncIterator[Event], first: Event, chat: bool,
                   include_usage: bool) -> AsyncIterator[bytes]:
        head = self._head(chat, stream=True)

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
                    yield chunk(None, "stop" if ev.reason == "cancelled" else ev.reason)
                    if include_usage:
                        yield b"data: " + orjson.dumps(
                            {**head, "choices": [], "usage": _usage(ev)}) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except EngineError as e:
            err = {"error": {"message": str(e), "type": "server_error", "param": None,
                             "code": None}}
            yield b"data: " + orjson.dumps(err) + b"\n\ndata: [DONE]\n\n"
        finally:
            with contextlib.suppress(RuntimeError):
                await events.aclose()  # type: ignore[attr-defined]


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


def _sha256(path: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def create_app(settings: GGUFServerSettings) -> Starlette:
    server = GGUFServer(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        yield
        await server.stop()

    app = Starlette(routes=[
        Route("/health", server.health, methods=["GET"]),
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
