"""The same handlers as the Functions app, served as an ASGI app (uvicorn locally and in tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from functions.api.common import RouteSpec
from functions.api.routes import ROUTES
from functions.errors import LlmpError, NotFound, error_response
from functions.gateway import Gateway
from models.logs import configure_logging


class _MethodNotAllowed(LlmpError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


def _route(gw: Gateway, spec: RouteSpec) -> Route:
    async def call(request: Request) -> Response:
        return await spec.handler(gw, request)

    return Route(spec.path, call, methods=list(spec.methods), name=spec.name)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(_MethodNotAllowed(f"Method {request.method} is not allowed on "
                                                f"{request.url.path}."))
    return error_response(NotFound(f"Unknown request URL: {request.method} {request.url.path}."))


def create_app(gateway: Gateway | None = None) -> Starlette:
    gw = gateway or Gateway()
    configure_logging(gw.settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        _ = gw.dispatcher  # validate the catalog at start-up: a bad one stops the server here
        gw.start_background()
        warm = None
        if gw.guardrail_settings.enabled:  # load Presidio/spaCy now, not on the first request
            warm = asyncio.get_running_loop().create_task(gw.guardrails.detectors.pii.load())
        yield
        if warm is not None and not warm.done():
            warm.cancel()
        await gw.aclose()  # flushes the spend ledger and the guardrail audit

    app = Starlette(routes=[_route(gw, s) for s in ROUTES], lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error})
    app.state.gateway = gw
    return app
