"""The same route table registered as Azure Functions (v2 programming model, HTTP streams).

No ``from __future__ import annotations`` here: the Functions worker inspects the handler's real
annotation (the FastAPI ``Request`` class) to switch the function to HTTP streams.
"""

from collections.abc import Awaitable, Callable

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from functions.api.common import RouteSpec
from functions.api.routes import ROUTES
from functions.gateway import Gateway

RETENTION_SCHEDULE = "0 17 * * * *"
"""NCRONTAB with seconds: the conversation retention timer runs hourly, at minute 17."""


def _function(gw: Gateway, spec: RouteSpec) -> Callable[[Request], Awaitable[Response]]:
    # The worker reads the parameter's annotation to hand over a FastAPI Request (HTTP streams).
    async def handler(req: Request) -> Response:
        gw.start_background()  # Key Vault refresh; Functions has no start-up hook
        return await spec.handler(gw, req)

    handler.__name__ = handler.__qualname__ = spec.name
    return handler


def _retention(gw: Gateway) -> Callable[[func.TimerRequest], Awaitable[None]]:
    async def conversation_retention(timer: func.TimerRequest) -> None:
        from functions.conversations.retention import purge_expired

        await purge_expired(gw)

    return conversation_retention


def build_blueprint(gw: Gateway) -> func.Blueprint:
    bp = func.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)  # type: ignore[no-untyped-call]
    for spec in ROUTES:
        fn = bp.route(route=spec.path.lstrip("/"), methods=list(spec.methods),
                      auth_level=func.AuthLevel.ANONYMOUS)(_function(gw, spec))
        bp.function_name(spec.name)(fn)
    timer = bp.timer_trigger(schedule=RETENTION_SCHEDULE, arg_name="timer",
                             run_on_startup=False)(_retention(gw))
    bp.function_name("conversation_retention")(timer)
    return bp
