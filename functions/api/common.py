"""What every handler shares: the route table entry, body reading with a size limit, and the wrapper
that maps any error to an OpenAI-shaped response and writes one structured access log line."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from functions.errors import InvalidRequest, PayloadTooLarge, error_response
from functions.gateway import Gateway

log = logging.getLogger("llmp.access")

Handler = Callable[[Gateway, Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    path: str
    methods: tuple[str, ...]
    handler: Handler


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("The client closed the connection before the body was read.") from None
    if not size:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


def add_response_headers(request: Request, headers: Mapping[str, str]) -> None:
    """Headers for this request's response whatever it turns out to be, errors included (the
    rate-limit headers)."""
    request.state.llmp_headers = {**getattr(request.state, "llmp_headers", {}), **headers}


def on_error(request: Request, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` if the handler ends in an error response (e.g. give back a token
    reservation for a request that was never answered)."""
    request.state.llmp_on_error = [*getattr(request.state, "llmp_on_error", []), callback]


async def _after_error(request: Request) -> None:
    for callback in getattr(request.state, "llmp_on_error", []):
        try:
            await callback()
        except Exception:  # the error response goes out regardless
            log.warning("error callback failed", exc_info=True)


def endpoint(fn: Handler) -> Handler:
    """Wrap a handler: request id, one access log line, every exception mapped in one place."""

    @functools.wraps(fn)
    async def wrapped(gw: Gateway, request: Request) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        try:
            response = await fn(gw, request)
        except Exception as e:  # noqa: BLE001 - the one mapping point
            response = error_response(e)
            await _after_error(request)
        for name, value in getattr(request.state, "llmp_headers", {}).items():
            response.headers.setdefault(name, value)
        response.headers["x-request-id"] = request_id
        if log.isEnabledFor(logging.INFO):  # nothing to build when the line is not written
            log.info("request", extra={  # the scope's path: request.url would parse the URL
                "request_id": request_id, "method": request.method, "path": request.scope["path"],
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 2)})
        return response

    return wrapped
