"""``POST /v1/chat/completions`` and ``POST /v1/completions``: authenticate, parse, dispatch, and
either pass the whole answer on or stream it event by event."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from functions.api.common import endpoint, read_body
from functions.backends.base import Endpoint
from functions.dispatch import Usage
from functions.errors import LlmpError
from functions.gateway import Gateway
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from functions.rag.chat import apply_rag
from models.streaming import ClosingStreamingResponse

if TYPE_CHECKING:
    from functions.auth import Principal  # imports Redis and psycopg: not at Functions start-up

log = logging.getLogger("llmp.usage")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _log_usage(principal: Principal, model: str, backend: str, usage: Usage | None,
               error: LlmpError | None = None) -> None:
    """One structured line per answer: who used which model for how many tokens (no content)."""
    log.info("usage", extra={
        "tenant": principal.tenant, "key_id": principal.key_id, "model": model, "backend": backend,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "error": type(error).__name__ if error else None})


async def _generate(gw: Gateway, request: Request, endpoint_: Endpoint,
                    model: type[SamplingParams]) -> Response:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    req = model.parse(await read_body(request, gw.settings.max_body_bytes))
    req, rag = await apply_rag(gw, principal, req)  # a request naming a knowledge base: retrieve, cite
    if req.stream:
        backend, body, result = await gw.dispatcher.stream(endpoint_, req)

        async def close() -> None:
            await result.close()
            _log_usage(principal, req.model, backend.name, result.usage, result.error)

        return ClosingStreamingResponse(rag.stream(body), on_close=close, headers={
            **SSE_HEADERS, **result.headers, "x-llmp-backend": backend.name})
    backend, completion = await gw.dispatcher.complete(endpoint_, req)
    _log_usage(principal, req.model, backend.name, Usage.from_body(completion.body))
    return Response(rag.body(completion), media_type="application/json",
                    headers={**completion.headers, "x-llmp-backend": backend.name})


@endpoint
async def chat_completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "chat/completions", ChatCompletionRequest)


@endpoint
async def completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "completions", CompletionRequest)
