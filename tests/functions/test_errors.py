import orjson
import pytest

from functions.errors import (
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    DependencyUnavailable,
    InvalidRequest,
    LlmpError,
    ModelNotFound,
    PayloadTooLarge,
    UpstreamRejected,
    error_body,
    error_response,
    sse_error,
)


@pytest.mark.parametrize(("exc", "status", "type_"), [
    (InvalidRequest("m", param="p"), 400, "invalid_request_error"),
    (AuthenticationFailed("m"), 401, "invalid_request_error"),
    (ModelNotFound("m"), 404, "invalid_request_error"),
    (PayloadTooLarge("m"), 413, "invalid_request_error"),
    (UpstreamRejected("m", status=422), 422, "invalid_request_error"),
    (BackendError("m"), 502, "server_error"),
    (BackendUnavailable("m"), 503, "server_error"),
    (DependencyUnavailable("m"), 503, "server_error"),
    (BackendTimeout("m"), 504, "server_error"),
])
def test_mapping(exc: LlmpError, status: int, type_: str) -> None:
    r = error_response(exc)
    assert r.status_code == status
    body = orjson.loads(bytes(r.body))
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == type_
    assert body["error"]["message"] == "m"


def test_unknown_exceptions_are_500_without_details() -> None:
    body = error_body(RuntimeError("secret detail"))
    assert body["error"]["type"] == "server_error"
    assert "secret" not in str(body)


def test_headers_are_kept() -> None:
    r = error_response(InvalidRequest("m", headers={"retry-after": "3"}))
    assert r.headers["retry-after"] == "3"


def test_sse_error_ends_with_done() -> None:
    raw = sse_error(BackendError("broke"))
    first, second = raw.split(b"\n\n")[:2]
    assert orjson.loads(first.removeprefix(b"data: "))["error"]["message"] == "broke"
    assert second == b"data: [DONE]"
