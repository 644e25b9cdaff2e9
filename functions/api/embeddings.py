"""``POST /v1/embeddings``: authenticate, parse, check against the model's capabilities and limits,
admit (model access, rate limits, token quota, budget), input guardrails, then the embedding tier
(with fallback between its backends); the tier's exact token count is settled and ledgered."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from functions.api.common import endpoint, read_body
from functions.api.quota import account, admit_tokens
from functions.dispatch import Usage
from functions.errors import GuardrailBlocked, InvalidRequest
from functions.gateway import Gateway
from functions.protocol.embeddings import EmbeddingRequest
from models.catalog import ModelSpec

if TYPE_CHECKING:
    from functions.auth import Principal

log = logging.getLogger("llmp.usage")


def check_request(spec: ModelSpec, req: EmbeddingRequest, max_inputs: int) -> None:
    """What the catalog says the model can do, checked before anything reaches a backend."""
    caps = spec.caps
    native = caps.embedding_dimensions
    if req.dimensions is not None and req.dimensions != native and not (
            caps.matryoshka and native is not None and req.dimensions < native):
        what = f"its native {native}" if native else "its native size"
        raise InvalidRequest(f"The model '{spec.alias}' does not support 'dimensions' other than "
                             f"{what}.", param="dimensions", code="unsupported_parameter")
    if req.count > max_inputs:
        raise InvalidRequest(f"Too many inputs: {req.count}; at most {max_inputs} per request.",
                             param="input", code="too_many_inputs")
    for i, tokens in enumerate(req.token_arrays):
        if len(tokens) > spec.context_length:
            raise InvalidRequest(f"Input {i} has {len(tokens)} tokens; this model takes at most "
                                 f"{spec.context_length} per input.", param="input",
                                 code="context_length_exceeded")


async def _checked_input(gw: Gateway, request: Request, principal: Principal,
                         req: EmbeddingRequest) -> EmbeddingRequest:
    """Stage 3: the input strings pass the tenant's PII and injection policy like chat messages
    (masked or refused); token arrays carry no text to check."""
    if not gw.guardrail_settings.enabled or req.texts is None:
        return req
    policy = (await gw.policies.get(principal.tenant_id)).resolve(req.model, req.guardrails)
    guard = gw.guardrails.begin(policy, tenant_id=principal.tenant_id, model=req.model,
                                request_id=getattr(request.state, "request_id", ""))
    try:
        checked = await guard.check_input(req)
    except GuardrailBlocked as e:
        e.param = "input"  # the engine names chat's 'messages'
        raise
    return checked


@endpoint
async def embeddings(gw: Gateway, request: Request) -> Response:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    req = EmbeddingRequest.parse(await read_body(request, gw.settings.max_body_bytes))
    check_request(gw.embeddings.model(req.model), req, gw.settings.embedding_max_inputs)
    reservation = await admit_tokens(gw, request, principal, req.model,
                                     lambda spec: req.estimated_tokens())
    req = await _checked_input(gw, request, principal, req)
    backend, result = await gw.embeddings.embed(req.model, req.upstream_body(req.model))
    usage = Usage.from_body(result.body) or Usage()
    log.info("usage", extra={"tenant": principal.tenant, "key_id": principal.key_id,
                             "model": req.model, "backend": backend.name,
                             "prompt_tokens": usage.prompt_tokens, "completion_tokens": 0})
    account(gw, request, reservation, principal, req.model, backend.name, usage)  # exact tokens
    return Response(result.content, media_type="application/json",
                    headers={**result.headers, "x-llmp-backend": backend.name})
