"""``POST /v1/chat/completions`` and ``POST /v1/completions``: authenticate, parse, dispatch, and
either pass the whole answer on or stream it event by event."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from functions.api.common import endpoint, read_body
from functions.backends.base import Endpoint
from functions.gateway import Gateway
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from models.streaming import ClosingStreamingResponse

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _generate(gw: Gateway, request: Request, endpoint_: Endpoint,
                    model: type[SamplingParams]) -> Response:
    await gw.authenticator.authenticate(request.headers.get("authorization"))
    req = model.parse(await read_body(request, gw.settings.max_body_bytes))
    if req.stream:
        backend, body, result = await gw.dispatcher.stream(endpoint_, req)
        return ClosingStreamingResponse(body, on_close=result.close, headers={
            **SSE_HEADERS, **result.headers, "x-llmp-backend": backend.name})
    backend, completion = await gw.dispatcher.complete(endpoint_, req)
    return Response(completion.content, media_type="application/json",
                    headers={**completion.headers, "x-llmp-backend": backend.name})


@endpoint
async def chat_completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "chat/completions", ChatCompletionRequest)


@endpoint
async def completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "completions", CompletionRequest)
