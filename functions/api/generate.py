"""``POST /v1/chat/completions`` and ``POST /v1/completions``: the pipeline of one generation request.

:meth:`RequestContext.open` authenticates, parses, checks the model's capabilities and admits the
request (limits reserved); then the input guardrails, conversation history, retrieval, the cache
lookup, dispatch and the output guardrails run, and the answer is passed on whole or streamed event
by event; the finish stage stores it in the cache and the conversation. However the request ends,
:meth:`RequestContext.settle` charges it, once: in :func:`_generate`'s handler for whole answers and
errors, in the response's close for streams.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response

from functions.api.common import endpoint
from functions.api.context import RequestContext
from functions.backends.base import Completion, Endpoint
from functions.dispatch import StreamResult, Usage
from functions.errors import LlmpError
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
    from functions.guardrails.policy import GuardrailPolicy

R = TypeVar("R", bound=SamplingParams)
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
LOGPROBS_HEADER = "x-llmp-logprobs-withheld"
"""Set on a stream whose logprobs are not sent, because the output guardrails check its text."""


@functools.cache
def _guardrails_off() -> GuardrailPolicy:
    """One policy object for every request while guardrails are off (its cache-key part is
    computed once per object)."""
    from functions.guardrails.policy import GuardrailPolicy

    return GuardrailPolicy(enabled=False)


async def _guard(ctx: RequestContext[Any]) -> RequestGuard:
    gw, req = ctx.gw, ctx.req
    if gw.guardrail_settings.enabled:
        policy = (await gw.policies.get(ctx.principal.tenant_id)).resolve(req.model, req.guardrails)
    else:
        policy = _guardrails_off()
    return gw.guardrails.begin(policy, tenant_id=ctx.principal.tenant_id, model=req.model,
                               request_id=ctx.request_id)


def _response_format(req: SamplingParams) -> dict[str, Any] | None:
    if isinstance(req, ChatCompletionRequest) and req.response_format is not None:
        return req.response_format.model_dump(exclude_none=True)
    return None


async def _history(ctx: RequestContext[Any], guard: RequestGuard) -> History | None:
    """Stage 4, before the input is masked: new placeholders are numbered after the history's."""
    req = ctx.req
    if not isinstance(req, ChatCompletionRequest) or req.conversation_id is None:
        return None
    from functions.conversations.history import History

    gw = ctx.gw
    history = await History.load(gw.conversations, gw.metrics, ctx.principal.tenant_id,
                                 req.conversation_id, gw.conversation_settings.max_messages)
    history.reserve(guard.masker)
    return history


def _with_history(ctx: RequestContext[Any], req: R, history: History | None) -> R:
    if history is None or not isinstance(req, ChatCompletionRequest):
        return req
    return cast(R, history.apply(req, ctx.spec.context_length,
                                 ctx.gw.conversation_settings.reserve_tokens))


async def _replay(ctx: RequestContext[Any], answer: Answer, finish: Finish, rag: Citations,
                  how: str) -> Response:
    """A cache hit, sent like a live answer (a stream when the request streams). No model ran:
    the token reservation is returned and the ledger records the hit at no cost."""
    from functions.cache.entry import replay_body, replay_events

    req = ctx.req
    finish.replayed(answer)
    ctx.answered("cache", Usage())
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


async def _stream(ctx: RequestContext[Any], endpoint_: Endpoint, kind: OutputKind,
                  guard: RequestGuard, finish: Finish, rag: Citations) -> Response:
    req, gw = ctx.req, ctx.gw
    routed, body, result = await gw.dispatcher.stream(endpoint_, req, ctx.choice.tiers,
                                                      tenant=ctx.principal.tenant_id)
    ctx.answered(routed.name, None, routed)  # a model runs: from here on it is charged
    fmt = _response_format(req)
    if guard.transforms_output or (guard.active and fmt):
        from functions.guardrails.output import guard_stream

        def failed(e: LlmpError) -> None:
            result.error = e

        body = guard_stream(guard, body, kind, gw.guardrails.holdback_chars, fmt, failed,
                            finish.on_checked(), finish.on_checked_calls())
    body = finish.stream(body, result)

    async def close() -> None:
        await result.close()
        ctx.usage, ctx.error = result.usage, ctx.error or result.error
        ctx.settle()

    headers = {**SSE_HEADERS, **result.headers, **routed.headers(), "x-cache": "miss"}
    if getattr(req, "logprobs", None) and guard.withholds_stream_logprobs:
        headers[LOGPROBS_HEADER] = "output-guardrails"
    return ClosingStreamingResponse(rag.stream(body), on_close=close, headers=headers)


async def _complete(ctx: RequestContext[Any], endpoint_: Endpoint, kind: OutputKind,
                    guard: RequestGuard, finish: Finish, rag: Citations) -> Response:
    routed, completion = await ctx.gw.dispatcher.complete(endpoint_, ctx.req, ctx.choice.tiers,
                                                          tenant=ctx.principal.tenant_id)
    ctx.answered(routed.name, Usage.from_body(completion.body), routed)
    content, body_out = completion.content, completion.body
    if guard.active:  # the model ran: its tokens count even if the answer is refused here
        from functions.guardrails.output import check_completion

        body_out = await check_completion(guard, dict(completion.body), kind,
                                          _response_format(ctx.req), finish.on_checked(),
                                          finish.on_checked_calls())
        if body_out != completion.body:
            content = orjson.dumps(body_out)
    await finish.whole(body_out, completion.headers)
    return Response(rag.body(Completion(content, body_out, completion.headers)),
                    media_type="application/json", headers={
        **completion.headers, **routed.headers(), "x-cache": "miss"})


async def _pipeline(ctx: RequestContext[Any], endpoint_: Endpoint, kind: OutputKind) -> Response:
    gw, request = ctx.gw, ctx.request
    guard = await _guard(ctx)
    history = await _history(ctx, guard)

    async def untrusted(texts: Sequence[str], principal: Principal) -> None:
        await guard.check_untrusted(texts)

    # A request naming a knowledge base: retrieve (passages pass the injection check as untrusted
    # content), then the input guardrails see the whole prompt, passages included.
    req, rag = await apply_rag(gw, ctx.principal, ctx.req, untrusted)
    ctx.req = req = _with_history(ctx, await guard.check_input(req), history)
    cache = await gw.response_cache.begin(ctx.principal.tenant_id, endpoint_, req, guard,
                                          request.headers)
    finish = Finish(kind, cache, history)
    if (hit := await cache.lookup()) is not None:
        return await _replay(ctx, hit, finish, rag, cache.hit or "exact")
    if req.stream:
        return await _stream(ctx, endpoint_, kind, guard, finish, rag)
    return await _complete(ctx, endpoint_, kind, guard, finish, rag)


async def _generate(gw: Gateway, request: Request, endpoint_: Endpoint,
                    model: type[SamplingParams], kind: OutputKind) -> Response:
    ctx = await RequestContext.open(gw, request, model)
    try:
        response = await _pipeline(ctx, endpoint_, kind)
    except BaseException as e:
        ctx.failed(e)
        ctx.settle()
        raise
    if not ctx.req.stream or ctx.backend == "cache":
        ctx.settle()  # a model's stream settles when it closes: its usage comes at the end
    return response


@endpoint
async def chat_completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "chat/completions", ChatCompletionRequest, "chat")


@endpoint
async def completions(gw: Gateway, request: Request) -> Response:
    return await _generate(gw, request, "completions", CompletionRequest, "text")
