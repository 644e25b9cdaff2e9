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
    TokenLogprob,
)
from models.gguf_server.manager import Lease, ModelManager
from models.gguf_server.metrics import Metrics
from models.gguf_server.protocol import ChatRequest, CompletionRequest, ParamError
from models.gguf_server.settings import GGUFServerSettings
from models.gguf_server.tools import CallArgs, CallStart, Content, Piece, ToolAnswer, ToolPlan
from models.streaming import ClosingStreamingResponse

log = logging.getLogger(__name__)


VERSION_HEADER = "x-llmp-model-version"
LOAD_HEADER = "x-llmp-load"
"""On every answer and on ``/health``: ``active=N;queued=N;slots=N``, the load the gateway's router
learns without scraping (``docs/routing.md``)."""


def format_load(load: dict[str, int]) -> str:
    return f"active={load['active']};queued={load['queued']};slots={load['slots']}"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def _error(status: int, message: str, type_: str = "invalid_request_error",
           code: str | None = None, param: str | None = None) -> Response:
    return _json({"error": {"message": message, "type": type_, "param": param, "code": code}},
                 status)


def _engine_error(e: EngineError) -> Response:
    type_ = "invalid_request_error" if e.status < 500 else "server_error"
    return _error(e.status, str(e), type_, code=e.code, param=e.param)


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
        load = m.load()
        return _json({"status": "ok", "in_flight": m.in_flight, "load": load, **info},
                     headers={LOAD_HEADER: format_load(load)})

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

    async def tokenize(self, request: Request) -> Response:
        """llama.cpp server's ``POST /tokenize``: ``{"content": str, "add_special": bool}``."""
        try:
            body = orjson.loads(await request.body())
            content, special = body["content"], bool(body.get("add_special", False))
            if not isinstance(content, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return _error(400, "The body must be {'content': string}.", param="content")
        try:
            lease = self.manager.lease()
        except EngineError as e:
            return _engine_error(e)
        try:
            return _json({"tokens": lease.engine.tokenize(content, add_special=special)})
        except EngineError as e:
            return _engine_error(e)
        finally:
            lease.release()

    async def detokenize(self, request: Request) -> Response:
        """llama.cpp server's ``POST /detokenize``: ``{"tokens": [int]}``."""
        try:
            tokens = orjson.loads(await request.body())["tokens"]
            if not isinstance(tokens, list) or not all(type(t) is int for t in tokens):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _error(400, "The body must be {'tokens': [integer]}.", param="tokens")
        try:
            lease = self.manager.lease()
        except EngineError as e:
            return _engine_error(e)
        try:
            return _json({"content": lease.engine.detokenize(tokens)})
        except EngineError as e:
            return _engine_error(e)
        finally:
            lease.release()

    async def chat(self, request: Request) -> Response:
        return await self._serve(request, ChatRequest, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._serve(request, CompletionRequest, chat=False)

    async def _serve(self, request: Request, model: type[ChatRequest] | type[CompletionRequest],
                     *, chat: bool) -> Response:
        try:
            req = model.model_validate_json(await request.body())
            prompt = req.prompt() if isinstance(req, ChatRequest) else req.as_prompt()
            sampling = req.sampling(self.settings.default_max_tokens)
        except ValidationError as e:
            first = e.errors(include_url=False)[0]
            param = ".".join(str(p) for p in first["loc"])
            return _error(400, f"Invalid value for '{param}': {first['msg']}.", param=param)
        except ParamError as e:
            return _error(400, str(e), param=e.param)
        except ValueError as e:
            return _error(400, str(e))
        if req.n > self.settings.slots:
            return _error(400, f"Invalid value for 'n': at most {self.settings.slots} (the "
                               "server's slots).", param="n")
        try:
            lease = self.manager.lease()
        except EngineError as e:
            return _engine_error(e)
        answer = _Answer(chat, req.n, req.tool_plan if isinstance(req, ChatRequest) else None,
                         sampling.logprobs is not None,
                         len(prompt.text or "") if not chat else 0)
        if req.stream:
            return await self._stream(lease, prompt, sampling, answer,
                                      include_usage=req.include_usage)
        try:
            return await self._complete(request, lease, prompt, sampling, answer)
        finally:
            lease.release()

    async def _complete(self, request: Request, lease: Lease, prompt: Prompt, sampling: Sampling,
                        answer: _Answer) -> Response:
        cancel = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, cancel))
        try:
            async for ev in lease.engine.generate(prompt, sampling, cancel, stream=False,
                                                  n=answer.n):
                answer.add(ev)
                if isinstance(ev, Finished):
                    self.metrics.finished(ev)
        except EngineError as e:
            return _engine_error(e)
        finally:
            watcher.cancel()
        version = lease.loaded.version
        return _json({**self._head(answer.chat, version, stream=False),
                      "choices": answer.choices(), "usage": answer.usage()},
                     headers={VERSION_HEADER: version,
                              LOAD_HEADER: format_load(self.manager.load())})

    def _head(self, chat: bool, version: str, *, stream: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if stream else "chat.completion") if chat \
            else "text_completion"
        prefix = "chatcmpl-" if chat else "cmpl-"
        return {"id": prefix + uuid.uuid4().hex, "object": kind, "created": int(time.time()),
                "model": self.settings.alias, "system_fingerprint": version}

    async def _stream(self, lease: Lease, prompt: Prompt, sampling: Sampling, answer: _Answer, *,
                      include_usage: bool) -> Response:
        events = lease.engine.generate(prompt, sampling, n=answer.n)
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

        return ClosingStreamingResponse(self._sse(lease, events, first, answer, include_usage),
                                        on_close=close,
                                        headers={"cache-control": "no-cache", VERSION_HEADER: version,
                                                 LOAD_HEADER: format_load(self.manager.load())})

    async def _sse(self, lease: Lease, events: AsyncIterator[Event], first: Event,
                   answer: _Answer, include_usage: bool) -> AsyncIterator[bytes]:
        head = self._head(answer.chat, lease.loaded.version, stream=True)

        def data(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**head, "choices": choices, **extra}) + b"\n\n"

        try:
            if answer.chat and isinstance(first, Started):
                yield data([answer.role_chunk(i) for i in range(answer.n)])
            async for ev in _chain(first, events):
                if isinstance(ev, Finished):
                    self.metrics.finished(ev)
                chunks = answer.chunks(ev)
                if chunks:
                    yield b"".join(data([c]) for c in chunks)
                if answer.done and include_usage:
                    yield data([], usage=answer.usage())
            yield b"data: [DONE]\n\n"
        except EngineError as e:
            err = {"error": {"message": str(e), "param": e.param, "code": e.code,
                             "type": "invalid_request_error" if e.status < 500 else "server_error"}}
            yield b"data: " + orjson.dumps(err) + b"\n\ndata: [DONE]\n\n"
        # The lease and the engine's generator are released by the response's on_close.


class _Choice:
    """One of the ``n`` sequences of an answer, as it comes."""

    def __init__(self, index: int, tools: ToolPlan | None) -> None:
        self.index = index
        self.parts: list[str] = []
        self.logprobs: list[TokenLogprob] = []
        self.tools = ToolAnswer() if tools is not None and tools.calls else None
        self.finished: Finished | None = None

    def finish_reason(self) -> str:
        f = self.finished
        reason = "stop" if f is None or f.reason == "cancelled" else f.reason
        if reason == "stop" and self.tools is not None and self.tools.mode == "calls":
            return "tool_calls"
        return reason


class _Answer:
    """What the engine's events become: OpenAI choices, whole or as chunks."""

    def __init__(self, chat: bool, n: int, tools: ToolPlan | None, logprobs: bool,
                 text_offset: int) -> None:
        self.chat, self.n, self.want_logprobs = chat, n, logprobs
        self._choices = [_Choice(i, tools) for i in range(n)]
        self._prompt_tokens = 0
        self._offsets = [text_offset] * n
        self._finished = 0

    @property
    def done(self) -> bool:
        return self._finished == self.n

    def add(self, ev: Event) -> None:
        if isinstance(ev, Started):
            self._prompt_tokens = ev.prompt_tokens
        elif isinstance(ev, Delta):
            c = self._choices[ev.index]
            c.parts.append(ev.text)
            c.logprobs.extend(ev.logprobs)
        elif isinstance(ev, Finished):
            self._prompt_tokens = ev.prompt_tokens
            self._choices[ev.index].finished = ev
            self._finished += 1

    def usage(self) -> dict[str, int]:
        completion = sum(c.finished.completion_tokens for c in self._choices if c.finished)
        return {"prompt_tokens": self._prompt_tokens, "completion_tokens": completion,
                "total_tokens": self._prompt_tokens + completion}

    # -- whole -------------------------------------------------------------------------------
    def choices(self) -> list[dict[str, Any]]:
        return [self._whole(c) for c in self._choices]

    def _whole(self, c: _Choice) -> dict[str, Any]:
        text = "".join(c.parts)
        lp = self._logprobs(c.index, c.logprobs)
        if not self.chat:
            return {"index": c.index, "text": text, "finish_reason": c.finish_reason(),
                    "logprobs": lp}
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if c.tools is not None:
            pieces = c.tools.feed(text) + c.tools.flush()
            if c.tools.mode == "calls":
                message["content"] = None
                message["tool_calls"] = [
                    {"id": call.id, "type": "function",
                     "function": {"name": call.name or "", "arguments": call.arguments}}
                    for call in c.tools.calls]
            else:
                message["content"] = "".join(p.text for p in pieces if isinstance(p, Content))
        return {"index": c.index, "message": message, "finish_reason": c.finish_reason(),
                "logprobs": lp}

    def _logprobs(self, index: int, entries: list[TokenLogprob]) -> dict[str, Any] | None:
        if not self.want_logprobs:
            return None
        if self.chat:
            return {"content": [_chat_logprob(e) for e in entries], "refusal": None}
        tokens = [_text(e.token) for e in entries]
        offsets = []
        for t in tokens:
            offsets.append(self._offsets[index])
            self._offsets[index] += len(t)
        return {"tokens": tokens, "token_logprobs": [e.logprob for e in entries],
                "top_logprobs": [{_text(t): lp for t, lp in e.top} for e in entries],
                "text_offset": offsets}

    # -- streamed ----------------------------------------------------------------------------
    def role_chunk(self, index: int) -> dict[str, Any]:
        return {"index": index, "delta": {"role": "assistant", "content": ""},
                "finish_reason": None, "logprobs": None}

    def chunks(self, ev: Event) -> list[dict[str, Any]]:
        """The choices to send for one event (each one chunk)."""
        self.add(ev)
        if isinstance(ev, Delta):
            c = self._choices[ev.index]
            lp = self._logprobs(ev.index, list(ev.logprobs)) if ev.logprobs else None
            if c.tools is None:
                return [self._chunk(c.index, {"content": ev.text} if self.chat else ev.text, lp)]
            return self._tool_chunks(c, c.tools.feed(ev.text), lp)
        if isinstance(ev, Finished):
            c = self._choices[ev.index]
            out = self._tool_chunks(c, c.tools.flush(), None) if c.tools is not None else []
            return [*out, self._chunk(c.index, {} if self.chat else "", None, c.finish_reason())]
        return []

    def _chunk(self, index: int, delta: dict[str, Any] | str, lp: dict[str, Any] | None,
               finish: str | None = None) -> dict[str, Any]:
        if self.chat:
            return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": lp}
        return {"index": index, "text": delta, "finish_reason": finish, "logprobs": lp}

    def _tool_chunks(self, c: _Choice, pieces: list[Piece],
                     lp: dict[str, Any] | None) -> list[dict[str, Any]]:
        out = []
        for p in pieces:
            if isinstance(p, Content):
                delta: dict[str, Any] = {"content": p.text}
            elif isinstance(p, CallStart):
                delta = {"tool_calls": [{"index": p.index, "id": p.id, "type": "function",
                                         "function": {"name": p.name, "arguments": ""}}]}
            elif isinstance(p, CallArgs):
                delta = {"tool_calls": [{"index": p.index,
                                         "function": {"arguments": p.fragment}}]}
            out.append(self._chunk(c.index, delta, lp))
            lp = None  # the tokens' log probabilities go with the first chunk they made
        if lp is not None:
            out.append(self._chunk(c.index, {}, lp))
        return out


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def _chat_logprob(e: TokenLogprob) -> dict[str, Any]:
    return {"token": _text(e.token), "logprob": e.logprob, "bytes": list(e.token),
            "top_logprobs": [{"token": _text(t), "logprob": lp, "bytes": list(t)}
                             for t, lp in e.top]}


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
        Route("/tokenize", server.tokenize, methods=["POST"]),
        Route("/detokenize", server.detokenize, methods=["POST"]),
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
