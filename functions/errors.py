"""Typed domain errors and the one place that maps them to OpenAI-shaped HTTP responses.

Services raise :class:`LlmpError` subclasses; :func:`error_body` / :func:`error_response` turn any
exception into ``{"error": {"message", "type", "param", "code"}}`` with the right status, and
:func:`sse_error` into the stream form (an error event followed by ``data: [DONE]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from starlette.responses import Response

log = logging.getLogger(__name__)


class LlmpError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(LlmpError):
    status, type, code = 400, "invalid_request_error", None


class ContextLengthExceeded(LlmpError):
    """The prompt cannot fit the model's context (as OpenAI says it)."""

    status, type, code = 400, "invalid_request_error", "context_length_exceeded"


class InputTooLarge(LlmpError):
    """More text than a detector takes in one request: a 400 naming the limit (a retry of the same
    request cannot succeed; a 503 would invite one)."""

    status, type, code = 400, "invalid_request_error", "input_too_large"


class AuthenticationFailed(LlmpError):
    status, type, code = 401, "invalid_request_error", "invalid_api_key"


class PermissionDenied(LlmpError):
    status, type, code = 403, "permission_error", "permission_denied"


class NotFound(LlmpError):
    status, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(LlmpError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class UnsupportedMediaType(LlmpError):
    status, type, code = 415, "invalid_request_error", "unsupported_media_type"


class UpstreamRejected(LlmpError):
    """A backend refused the request itself (a 4xx): passed on with the backend's status."""

    type = "invalid_request_error"

    def __init__(self, message: str, *, status: int, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status


class BackendError(LlmpError):
    status, type, code = 502, "server_error", "bad_gateway"


class BackendUnavailable(LlmpError):
    status, type, code = 503, "server_error", "backend_unavailable"


class BackendBusy(BackendUnavailable):
    """The backend answered 429 or 503: up but full. Another replica is tried; its breaker is not
    charged (being full is load, not a fault)."""


class BackendTimeout(LlmpError):
    status, type, code = 504, "server_error", "backend_timeout"


class RateLimited(LlmpError):
    """Over a requests- or tokens-per-minute limit; carries ``Retry-After`` and the rate headers."""

    status, type, code = 429, "requests", "rate_limit_exceeded"


class BudgetExceeded(LlmpError):
    """The tenant's monthly budget is spent. 402, not 429: retrying will not help until the budget
    is raised or the month ends, and OpenAI clients retry 429s on their own."""

    status, type, code = 402, "insufficient_quota", "budget_exceeded"


class DependencyUnavailable(LlmpError):
    """Postgres, Redis or another platform dependency is down."""

    status, type, code = 503, "server_error", "service_unavailable"


class InternalError(LlmpError):
    status, type, code = 500, "server_error", "internal_error"


def as_llmp_error(exc: BaseException) -> LlmpError:
    if isinstance(exc, LlmpError):
        return exc
    log.error("unhandled error", exc_info=exc)
    return InternalError("The server had an error while processing your request.")


def error_body(exc: BaseException) -> dict[str, dict[str, str | None]]:
    err = as_llmp_error(exc)
    return {"error": {"message": err.message, "type": err.type, "param": err.param,
                      "code": err.code}}


def error_response(exc: BaseException, headers: Mapping[str, str] | None = None) -> Response:
    err = as_llmp_error(exc)
    return Response(
        orjson.dumps(error_body(err)),
        status_code=err.status,
        media_type="application/json",
        headers={**err.headers, **(headers or {})},
    )


def sse_error(exc: BaseException) -> bytes:
    """The tail of a stream that failed after it began: an error event, then ``[DONE]``."""
    return b"data: " + orjson.dumps(error_body(exc)) + b"\n\ndata: [DONE]\n\n"


class GuardrailBlocked(LlmpError):
    """A guardrail refused the request (PII the policy blocks, a prompt injection, moderated
    content). The message names the entity types or categories found, never the text."""

    status, type, code = 400, "invalid_request_error", "content_filter"


class OutputBlocked(LlmpError):
    """The model's answer violated the policy (or is not the JSON ``response_format`` asked for).
    A 400 like Azure OpenAI's ``content_filter`` error: a retry of the same request would not help."""

    status, type, code = 400, "invalid_request_error", "content_filter"


class GuardrailUnavailable(LlmpError):
    """A guardrail failed or timed out and the policy fails closed."""

    status, type, code = 503, "server_error", "guardrail_unavailable"
