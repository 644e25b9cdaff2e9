"""The tenancy call sites of the generation routes: :func:`admit` after authentication (model access,
limits and budget reserved; rate headers on whatever response follows) and :func:`account` once the
answer's usage is known (tokens settled, spend queued for the ledger)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request

from functions.api.common import add_response_headers, on_error
from functions.errors import LlmpError, PermissionDenied
from functions.gateway import Gateway

if TYPE_CHECKING:
    from functions.auth import Principal
    from functions.dispatch import Usage
    from functions.limits import Reservation
    from functions.protocol.common import SamplingParams
    from models.catalog import ModelSpec


async def admit(gw: Gateway, request: Request, principal: Principal, req: SamplingParams
                ) -> Reservation:
    """Refuse a model the key or tenant may not use (403), then reserve the request and its
    estimated tokens against every limit (429) and the budget (402)."""
    from functions.limits import estimate_tokens

    return await admit_tokens(gw, request, principal, req.model, lambda spec: estimate_tokens(
        req, spec.context_length, gw.settings.limit_default_max_tokens))


async def admit_tokens(gw: Gateway, request: Request, principal: Principal, alias: str,
                       estimate: Callable[[ModelSpec], int]) -> Reservation:
    """:func:`admit` for any request that names a model: ``estimate`` gives the tokens to reserve
    (``/v1/embeddings`` reserves its input's estimate, no answer tokens)."""
    from functions.tenants import model_allowed

    if not principal.tenant_id:
        raise PermissionDenied("This identity is not mapped to a tenant.")
    spec = gw.dispatcher.model(alias)
    tenant = await gw.tenants.get(principal.tenant_id)
    if not model_allowed(spec.alias, tenant.allowed_models, principal.allowed_models):
        who = "this tenant" if not model_allowed(spec.alias, tenant.allowed_models) else "this key"
        raise PermissionDenied(f"The model '{spec.alias}' is not enabled for {who}.",
                               param="model", code="model_not_allowed")
    tokens = estimate(spec)
    try:
        reservation = await gw.limiter.reserve(principal, tenant, tokens)
    except LlmpError as e:
        add_response_headers(request, e.headers)
        raise
    add_response_headers(request, reservation.headers)
    async def refund() -> None:  # a request refused or failed before its usage was known
        if not reservation.accounted:
            await gw.limiter.settle(reservation, 0, 0.0)

    on_error(request, refund)
    reservation.started = time.monotonic()
    return reservation


def account(gw: Gateway, request: Request, reservation: Reservation, principal: Principal,
                  model: str, backend: str, usage: Usage | None,
                  error: LlmpError | None = None, *, route: str | None = None,
                  reason: str = "requested", retries: int = 0) -> None:
    """Settle the reservation with the real token count and queue the ledger row; neither waits
    (both run in the background), so the answer is not delayed.

    A model answer whose usage never arrived (a stream the client left, or that a guardrail or
    ``max_chars`` ended before the usage chunk) is charged what was reserved: never a free answer.
    """
    from functions.spend import SpendEntry

    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    if usage is None and backend != "cache":
        completion = max(0, reservation.tokens)  # the estimate (prompt + max_tokens), as output
    seconds = time.monotonic() - reservation.started
    spec = gw.catalog.get(model)
    cost = spec.price.cost(prompt, completion, seconds) if spec and backend != "cache" else 0.0
    gw.limiter.settle_soon(reservation, prompt + completion, cost)
    gw.spend.record(SpendEntry(
        principal.tenant_id, principal.key_id, model, backend, prompt, completion, cost,
        backend_seconds=round(seconds, 4), request_id=getattr(request.state, "request_id", None),
        error=type(error).__name__ if error else None, route=route, reason=reason,
        retries=retries))
    labels = (route or "", model, reason)
    gw.metrics.routed_requests.labels(*labels).inc()
    gw.metrics.routed_cost.labels(*labels).inc(cost)
