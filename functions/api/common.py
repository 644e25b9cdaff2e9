"""What every handler shares: the route table entry, body reading with a size limit, and the wrapper
that maps any error to an OpenAI-shaped response and writes one structured access log line."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
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
        response.headers["x-request-id"] = request_id
        log.info("request", extra={
            "request_id": request_id, "method": request.method, "path": request.url.path,
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 2)})
        return response

    return wrapped
