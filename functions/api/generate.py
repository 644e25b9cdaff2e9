"""``POST /v1/chat/completions`` and ``POST /v1/completions``: authenticate, parse, input guardrails,
dispatch, output guardrails, and either pass the whole answer on or stream it event by event."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from functions.api.common import endpoint, read_body
from functions.api.quota import account, admit
from functions.backends.base import Completion, Endpoint
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
    from functions.guardrails.engine import OutputKind, RequestGuard

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


async def _guard(gw: Gateway, request: Request, principal: Principal,
                 req: SamplingParams) -> RequestGuard:
    from functions.guardrails.policy import GuardrailPolicy

    if gw.guardrail_settings.enabled:
        policy = (await gw.policies.get(principal.tenant_id)).resolve(req.model, req.guardrails)
    else:
        policy = GuardrailPolicy(enabled=False)
    return gw.guardrails.begin(policy, tenant_id=principal.tenant_id, model=req.model,
                               request_id=getattr(request.state, "request_id", ""))


def _response_format(req: SamplingParams) -> dict[str, Any] | None:
    return req.response_format if isinstance(req, ChatCompletionRequest) else None


async def _generate(gw: Gateway, request: Request, endpoint_: Endpoint,
                    model: type[SamplingParams], kind: OutputKind) -> Response:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    req = model.parse(await read_body(request, gw.settings.max_body_bytes))
    reservation = await admit(gw, request, principal, req)  # tenancy: models, limits, budget
    guard = await _guard(gw, request, principal, req)

    async def untrusted(texts: Sequence[str], principal: Principal) -> None:
        await guard.check_untrusted(texts)

    # A request naming a knowledge base: retrieve (passages pass the injection check as untrusted
    # content), then the input guardrails see the whole prompt, passages included.
    req, rag = await apply_rag(gw, principal, req, untrusted)
    req = await guard.check_input(req)
    if req.stream:
        backend, body, result = await gw.dispatcher.stream(endpoint_, req)
        if guard.transforms_output or (guard.active and _response_format(req)):
            from functions.guardrails.output import guard_stream

            def failed(e: LlmpError) -> None:
                result.error = e

            body = guard_stream(guard, body, kind, gw.guardrails.holdback_chars,
                                _response_format(req), failed)

        async def close() -> None:
            await result.close()
            _log_usage(principal, req.model, backend.name, result.usage, result.error)
            account(gw, request, reservation, principal, req.model, backend.name,
                    result.usage, result.error)  # tenancy: settle tokens, record spend

        return ClosingStreamingResponse(rag.stream(body), on_close=close, headers={
            **SSE_HEADERS, **result.headers, "x-llmp-backend": backend.name})
    backend, completion = await gw.dispatcher.complete(endpoint_, req)
    usage = Usage.from_body(completion.body)
    _log_usage(principal, req.model, backend.name, usage)
    account(gw, request, reservation, principal, req.model, backend.name, usage)  # tenancy
    if guard.active:
        from functions.guardrails.output import check_completion

        checked = await check_completion(guard, dict(completion.body), kind, _response_format(req))
        if checked != completion.body:
            completion = Completion(orjson.dumps(checked), checked, completion.headers)
    return Response(rag.body(completion), media_type="application/json",
                    headers={**completion.headers, "x-llmp-backend": backend.name})


@endpoint
async def chat_completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "chat/completions", ChatCompletionRequest, "chat")


@endpoint
async def completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "completions", CompletionRequest, "text")
