"""A minimal OpenAI-protocol backend, for the overhead benchmark (it isolates the gateway's own cost)
and for the tests' failure paths. Behaviour is chosen by the request's ``model``:

- ``mock`` (or anything else): answers at once; streams ``max_tokens`` chunks (default 16)
- ``mock-500`` / ``mock-503``: answers that HTTP status
- ``mock-slow``: waits 5 s before answering
- ``mock-midstream-error``: streams 2 chunks, then an error event
- ``mock-drop``: streams 2 chunks, then closes the connection without ``[DONE]``
- ``mock-400``: refuses the request with an OpenAI error body
- ``mock-echo``: answers with the last user message (or prompt), streamed 3 characters a chunk so
  that words are split across chunks; a message ``sayhex:<hex>`` is answered with the decoded
  text instead (so tests can make the "model" say what an input check would have refused), and a
  message ``dump:messages`` with the messages it was sent, as JSON ``[[role, content], ...]``
- ``mock-versioned``: ``mock-echo`` that reports a model version (``x-llmp-model-version``),
  changed with ``POST /mock/version`` (a stand-in for a GGUF swap)
- ``mock-dump``: answers (not streamed) with the request body it received, as JSON text
- ``mock-tools``: answers with tool calls (``finish_reason: "tool_calls"``): the last user message
  (decoded when ``sayhex:<hex>``) split at ``\x1e`` gives each call's raw ``arguments``; any other
  text is sent as ``{"text": ...}``. Streamed: each call's id and name first, then its arguments 3
  characters a chunk (so values and escapes are split across fragments)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

TOKEN = "tok "


def _chunk(model: str, content: str | None, finish: str | None) -> bytes:
    delta = {"content": content} if content is not None else {}
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }) + b"\n\n"


async def _stream(model: str, n: int, usage: bool) -> AsyncIterator[bytes]:
    yield _chunk(model, "", None)
    for i in range(n):
        if model == "mock-midstream-error" and i == 2:
            yield b'data: {"error": {"message": "backend exploded", "type": "server_error"}}\n\n'
            return
        if model == "mock-drop" and i == 2:
            raise ConnectionResetError("mock drops the connection")
        yield _chunk(model, TOKEN, None)
    yield _chunk(model, None, "length")
    if usage:
        yield b"data: " + orjson.dumps({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}}) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _echo_text(body: dict[str, Any]) -> str:
    if "prompt" in body:
        prompt = body["prompt"]
        text = prompt if isinstance(prompt, str) else prompt[-1]
    else:
        content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        text = content if isinstance(content, str) else "".join(p["text"] for p in content)
    if text.startswith("sayhex:"):
        return bytes.fromhex(text[7:]).decode()
    if text == "dump:messages":
        return orjson.dumps([[m["role"], m.get("content")] for m in body["messages"]]).decode()
    return str(text)


async def _echo_stream(body: dict[str, Any], text: str) -> AsyncIterator[bytes]:
    model, chat = body["model"], "messages" in body
    yield _chunk(model, "", None) if chat else _text_chunk(model, "", None)
    for i in range(0, len(text), 3):
        yield _chunk(model, text[i:i + 3], None) if chat else _text_chunk(model, text[i:i + 3], None)
    yield _chunk(model, None, "stop") if chat else _text_chunk(model, "", "stop")
    yield b"data: " + orjson.dumps({
        "id": "cmpl-echo", "object": "chat.completion.chunk", "created": 0, "model": model,
        "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(text) // 3,
                                 "total_tokens": 5 + len(text) // 3}}) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _text_chunk(model: str, text: str, finish: str | None) -> bytes:
    return b"data: " + orjson.dumps({
        "id": "cmpl-echo", "object": "text_completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]}) + b"\n\n"


def _echo(body: dict[str, Any]) -> Response:
    text = _echo_text(body)
    if body.get("stream"):
        return StreamingResponse(_echo_stream(body, text), media_type="text/event-stream")
    usage = {"prompt_tokens": 5, "completion_tokens": len(text) // 3,
             "total_tokens": 5 + len(text) // 3}
    if "messages" in body:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop", "logprobs": None}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        kind = "text_completion"
    return Response(orjson.dumps({"id": "cmpl-echo", "object": kind, "created": int(time.time()),
                                  "model": body["model"], "choices": [choice], "usage": usage}),
                    media_type="application/json")


def _tools(body: dict[str, Any]) -> Response:
    model, raw = body["model"], [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    text = raw if isinstance(raw, str) else "".join(p["text"] for p in raw)
    decoded = text.startswith("sayhex:")
    args = _echo_text(body).split("\x1e") if decoded else [orjson.dumps({"text": text}).decode()]
    calls = [{"id": f"call_{i}", "type": "function", "function": {"name": "record", "arguments": a}}
             for i, a in enumerate(args)]
    if not body.get("stream"):
        return Response(orjson.dumps({
            "id": "chatcmpl-tools", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                                         "message": {"role": "assistant", "content": None,
                                                     "tool_calls": calls}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}),
            media_type="application/json")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({
            "id": "chatcmpl-tools", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        ) + b"\n\n"

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": None})
        for i, call in enumerate(calls):
            fn = call["function"]
            yield chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                         "function": {"name": fn["name"], "arguments": ""}}]})
            for j in range(0, len(fn["arguments"]), 3):
                yield chunk({"tool_calls": [{"index": i, "function": {
                    "arguments": fn["arguments"][j:j + 3]}}]})
        yield chunk({}, "tool_calls")
        yield b"data: " + orjson.dumps({
            "id": "chatcmpl-tools", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 5,
                                     "total_tokens": 10}}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def chat(request: Request) -> Response:
    body: dict[str, Any] = orjson.loads(await request.body())
    model = str(body.get("model", "mock"))
    if model == "mock-tools":
        return _tools(body)
    if model == "mock-echo":
        return _echo(body)
    if model == "mock-versioned":
        version = request.app.state.version
        response = _echo(body)
        response.headers["x-llmp-model-version"] = version
        return response
    n = int(body.get("max_tokens") or 16)
    if model in ("mock-500", "mock-503"):
        return Response(b'{"error": {"message": "boom", "type": "server_error"}}',
                        status_code=int(model[-3:]), media_type="application/json")
    if model == "mock-400":
        return Response(b'{"error": {"message": "This model\'s maximum context length is 8 tokens.",'
                        b' "type": "invalid_request_error", "param": "messages",'
                        b' "code": "context_length_exceeded"}}', status_code=400,
                        media_type="application/json")
    if model == "mock-dump" and not body.get("stream"):
        return Response(orjson.dumps({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                         "message": {"role": "assistant",
                                                     "content": orjson.dumps(body).decode()}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        }), media_type="application/json")
    if model == "mock-slow":
        await asyncio.sleep(5)
    if body.get("stream"):
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(_stream(model, n, usage), media_type="text/event-stream")
    return Response(orjson.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TOKEN * n},
                     "finish_reason": "length", "logprobs": None}],
        "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n},
    }), media_type="application/json")


async def set_version(request: Request) -> Response:
    request.app.state.version = (await request.body()).decode()
    return Response(b"", status_code=204)


async def health(request: Request) -> Response:
    return Response(b'{"status": "ok"}', media_type="application/json")


def create_app() -> Starlette:
    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", chat, methods=["POST"]),
        Route("/mock/version", set_version, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ])
    app.state.version = "v1"
    return app


if __name__ == "__main__":
    import sys

    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
