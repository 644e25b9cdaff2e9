"""``POST /v1/chat/completions`` and ``POST /v1/completions``: authenticate, parse, input guardrails,
conversation history, cache lookup, dispatch, output guardrails, and either pass the whole answer on
or stream it event by event; the finish stage stores it in the cache and the conversation."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response

from functions.api.common import endpoint, read_body
from functions.api.quota import account, admit
from functions.backends.base import Completion, Endpoint
from functions.dispatch import StreamResult, Usage
from functions.errors import LlmpError, as_llmp_error
from functions.finish import Finish
from functions.gateway import Gateway
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from functions.rag.chat import Citations, apply_rag
from models.streaming import ClosingStreamingResponse

if TYPE_CHECKING:
    from functions.auth import Principal  # imports Redis and psycopg: not at Functions start-up
    from functions.cache.entry import Answer
    from functions.conversations.history import History
    from functions.guardrails.engine import OutputKind, RequestGuard
    from functions.limits import Reservation

log = logging.getLogger("llmp.usage")

R = TypeVar("R", bound=SamplingParams)
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


async def _history(gw: Gateway, principal: Principal, req: SamplingParams,
                   guard: RequestGuard) -> History | None:
    """Stage 4, before the input is masked: new placeholders are numbered after the history's."""
    if not isinstance(req, ChatCompletionRequest) or req.conversation_id is None:
        return None
    from functions.conversations.history import History

    history = await History.load(gw.conversations, gw.metrics, principal.tenant_id,
                                 req.conversation_id, gw.conversation_settings.max_messages)
    history.reserve(guard.masker)
    return history


def _with_history(gw: Gateway, req: R, history: History | None) -> R:
    if history is None or not isinstance(req, ChatCompletionRequest):
        return req
    context = gw.dispatcher.model(req.model).context_length
    return cast(R, history.apply(req, context, gw.conversation_settings.reserve_tokens))


async def _replay(gw: Gateway, request: Request, reservation: Reservation, principal: Principal,
                  req: SamplingParams, answer: Answer, finish: Finish, rag: Citations,
                  how: str) -> Response:
    """A cache hit, sent like a live answer (a stream when the request streams). No model ran:
    the token reservation is returned and the ledger records the hit at no cost."""
    from functions.cache.entry import replay_body, replay_events

    finish.replayed(answer)
    usage = Usage.from_body({"usage": answer.usage})
    _log_usage(principal, req.model, "cache", usage)
    account(gw, request, reservation, principal, req.model, "cache", Usage())
    headers = {"x-cache": "hit", "x-llmp-cache": how, "x-llmp-backend": "cache",
               **({"x-llmp-model-version": answer.version} if answer.version else {})}
    if req.stream:
        result = StreamResult()
        body = finish.stream(_once(replay_events(answer, req.model, req.wants_usage_chunk)), result)
        return ClosingStreamingResponse(rag.stream(body), on_close=result.close,
                                        headers={**SSE_HEADERS, **headers})
    whole = replay_body(answer, req.model)
    await finish.whole(whole, {})
    return Response(rag.body(Completion(orjson.dumps(whole), whole, {})),
                    media_type="application/json", headers=headers)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _generate(gw: Gateway, request: Request, endpoint_: Endpoint,
                    model: type[SamplingParams], kind: OutputKind) -> Response:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    req = model.parse(await read_body(request, gw.settings.max_body_bytes))
    reservation = await admit(gw, request, principal, req)  # tenancy: models, limits, budget
    guard = await _guard(gw, request, principal, req)
    history = await _history(gw, principal, req, guard)

    async def untrusted(texts: Sequence[str], principal: Principal) -> None:
        await guard.check_untrusted(texts)

    # A request naming a knowledge base: retrieve (passages pass the injection check as untrusted
    # content), then the input guardrails see the whole prompt, passages included.
    req, rag = await apply_rag(gw, principal, req, untrusted)
    req = _with_history(gw, await guard.check_input(req), history)
    cache = await gw.response_cache.begin(principal.tenant_id, endpoint_, req, guard,
                                          request.headers)
    finish = Finish(kind, cache, history)
    if (hit := await cache.lookup()) is not None:
        return await _replay(gw, request, reservation, principal, req, hit, finish, rag,
                             cache.hit or "exact")
    if req.stream:
        backend, body, result = await gw.dispatcher.stream(endpoint_, req)
        if guard.transforms_output or (guard.active and _response_format(req)):
            from functions.guardrails.output import guard_stream

            def failed(e: LlmpError) -> None:
                result.error = e

            body = guard_stream(guard, body, kind, gw.guardrails.holdback_chars,
                                _response_format(req), failed, finish.on_checked())
        body = finish.stream(body, result)

        async def close() -> None:
            await result.close()
            _log_usage(principal, req.model, backend.name, result.usage, result.error)
            account(gw, request, reservation, principal, req.model, backend.name,
                    result.usage, result.error)  # tenancy: settle tokens, record spend

        return ClosingStreamingResponse(rag.stream(body), on_close=close, headers={
            **SSE_HEADERS, **result.headers, "x-llmp-backend": backend.name, "x-cache": "miss"})
    backend, completion = await gw.dispatcher.complete(endpoint_, req)
    usage = Usage.from_body(completion.body)
    _log_usage(principal, req.model, backend.name, usage)
    content, body_out = completion.content, completion.body
    try:
        if guard.active:
            from functions.guardrails.output import check_completion

            body_out = await check_completion(guard, dict(completion.body), kind,
                                              _response_format(req), finish.on_checked())
            if body_out != completion.body:
                content = orjson.dumps(body_out)
        await finish.whole(body_out, completion.headers)
    except Exception as e:  # the model ran: its tokens count even if the answer is refused
        account(gw, request, reservation, principal, req.model, backend.name, usage,
                as_llmp_error(e))
        raise
    account(gw, request, reservation, principal, req.model, backend.name, usage)  # tenancy
    return Response(rag.body(Completion(content, body_out, completion.headers)),
                    media_type="application/json", headers={
        **completion.headers, "x-llmp-backend": backend.name, "x-cache": "miss"})


@endpoint
async def chat_completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "chat/completions", ChatCompletionRequest, "chat")


@endpoint
async def completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "completions", CompletionRequest, "text")
