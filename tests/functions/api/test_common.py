"""Body limits and the access wrapper, through the real gateway."""

import httpx


def test_oversized_body_is_413_before_reading_it(gateway_url: str, api_key: str) -> None:
    r = httpx.post(f"{gateway_url}/v1/chat/completions", content=b"x" * (65 * 1024),
                   headers={"authorization": f"Bearer {api_key}"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_oversized_chunked_body_is_413(gateway_url: str, api_key: str) -> None:
    def body():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 1024

    r = httpx.post(f"{gateway_url}/v1/chat/completions", content=body(),
                   headers={"authorization": f"Bearer {api_key}"})
    assert r.status_code == 413


def test_empty_body_is_400(gateway_url: str, api_key: str) -> None:
    r = httpx.post(f"{gateway_url}/v1/chat/completions",
                   headers={"authorization": f"Bearer {api_key}"})
    assert r.status_code == 400
    assert "empty" in r.json()["error"]["message"]


def test_request_id_is_echoed_or_made(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/health", headers={"x-request-id": "abc"}
                     ).headers["x-request-id"] == "abc"
    assert len(httpx.get(f"{gateway_url}/health").headers["x-request-id"]) == 32
