"""One generation request's state, and the one place where it is settled.

:class:`RequestContext` is opened after authentication, parsing, the capability check and admission
(limits reserved). Stages record on it who answered and with what usage; :meth:`RequestContext.settle`
then charges the request exactly once, however it ended: a whole answer, a stream closed (finished,
failed or abandoned), a cache hit, or an error. It is idempotent, so a second call (an error after a
stream was handed over, a client gone twice) changes nothing: "charged exactly once" holds by
construction rather than by care at each exit.

What a settlement charges:

- nothing answered (refused or failed before any model ran): the reservation is given back (the
  refund registered by :func:`functions.api.quota.admit`), no ledger row;
- a cache hit: a ledger row at no cost, the reservation given back;
- a model answered: its real usage, also when the output guardrails then refused the answer; a
  stream that ended before its usage chunk is charged the reservation (never a free answer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from starlette.requests import Request

from functions.api.common import add_response_headers, read_body
from functions.api.quota import account, admit
from functions.capabilities import check as check_capabilities
from functions.context_window import check_context
from functions.errors import LlmpError, as_llmp_error
from functions.gateway import Gateway
from functions.protocol.common import IGNORED_HEADER, SamplingParams
from functions.routing.plan import TierChoice

if TYPE_CHECKING:
    from functions.auth import Principal
    from functions.dispatch import Routed, Usage
    from functions.limits import Reservation
    from models.catalog import ModelSpec

log = logging.getLogger("llmp.usage")

R = TypeVar("R", bound=SamplingParams)


@dataclass(eq=False, slots=True)
class RequestContext(Generic[R]):
    gw: Gateway
    request: Request
    principal: Principal
    req: R
    """The request as the stages have made it so far (history, retrieval, masking applied)."""
    spec: ModelSpec
    reservation: Reservation
    choice: TierChoice
    """How the request was routed: a route's chosen tier and fallbacks, or the alias named."""
    backend: str | None = None
    """Who answered: a backend's name, ``"cache"``, or None while no model has run."""
    usage: Usage | None = None
    error: LlmpError | None = None
    routed: Routed | None = None
    """How dispatch routed it (replica, tier, retries), once a model answered."""
    settled: bool = False

    @classmethod
    async def open(cls, gw: Gateway, request: Request, model: type[R]) -> RequestContext[R]:
        principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
        req = model.parse(await read_body(request, gw.settings.max_body_bytes))
        choice = TierChoice.requested(req.model)
        if gw.catalog.route(req.model) is not None:  # a route: from here on, its chosen tier
            choice = await gw.tier_chooser.choose(req.model, req, principal)
            req = req.model_copy(update={"model": choice.tiers[0]})
        add_response_headers(request, route_headers(choice))
        spec = gw.dispatcher.model(req.model)
        if ignored := req.ignored:
            add_response_headers(request, {IGNORED_HEADER: ", ".join(ignored)})
        check_capabilities(spec, req)  # before anything expensive, nothing reserved yet
        check_context(req, spec.context_length)
        reservation = await admit(gw, request, principal, req)
        return cls(gw, request, principal, req, spec, reservation, choice)

    @property
    def request_id(self) -> str:
        return str(getattr(self.request.state, "request_id", ""))

    def answered(self, backend: str, usage: Usage | None, routed: Routed | None = None) -> None:
        self.backend, self.usage = backend, usage
        if routed is not None:
            self.routed = routed

    def failed(self, e: BaseException) -> None:
        if self.error is None and isinstance(e, Exception):
            self.error = as_llmp_error(e)

    def settle(self) -> None:
        """Charge the request (see the module's docstring); once, whatever calls it again."""
        if self.settled:
            return
        self.settled = True
        if self.backend is None:
            return  # no model ran: the admission's refund gives the reservation back
        p, usage, choice = self.principal, self.usage, self.choice
        tier = self.routed.tier if self.routed else self.req.model  # after any fallback
        reason = choice.reason if tier == choice.tiers[0] else f"fallback:{choice.tiers[0]}"
        retries = self.routed.retries if self.routed else 0
        log.info("usage", extra={
            "tenant": p.tenant, "key_id": p.key_id, "model": self.req.model,
            "backend": self.backend, "request_id": self.request_id, "route": choice.route,
            "tier": tier, "route_reason": reason,
            "pick": self.routed.why if self.routed else None,
            "retries": retries,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "error": type(self.error).__name__ if self.error else None})
        if (routed := self.routed) is not None:
            metrics = self.gw.metrics
            metrics.replica_picks.labels(routed.tier, routed.name, routed.why).inc()
            if routed.retries:
                metrics.route_retries.labels(routed.tier).inc(routed.retries)
        account(self.gw, self.request, self.reservation, p, tier, self.backend, usage,
                self.error, route=choice.route, reason=reason, retries=retries)


def route_headers(choice: TierChoice) -> dict[str, str]:
    """On every answer: the tier that was chosen and why, and the route when one was named."""
    headers = {"x-llmp-tier": choice.tiers[0], "x-llmp-route-reason": choice.reason}
    if choice.route is not None:
        headers["x-llmp-route"] = choice.route
    return headers
