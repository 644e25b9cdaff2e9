"""Chat completions and completions through the real gateway, over the mock backend and SmolLM2."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.servers import leave_stream_early, wait_idle

MSG = [{"role": "user", "content": "Say hello."}]


def post(url: str, key: str, body: dict[str, object], path: str = "chat/completions",
         **kw: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/{path}", json=body, timeout=60,
                      headers={"authorization": f"Bearer {key}"}, **kw)  # type: ignore[arg-type]


def test_requires_a_key(gateway_url: str) -> None:
    r = httpx.post(f"{gateway_url}/v1/chat/completions", json={"model": "mock", "messages": MSG})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"
    r = post(gateway_url, "sk-llmp-wrong", {"model": "mock", "messages": MSG})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_auth_comes_before_parsing(gateway_url: str) -> None:
    r = httpx.post(f"{gateway_url}/v1/chat/completions", content=b"{broken")
    assert r.status_code == 401


def test_non_stream_is_passed_through(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, {"model": "mock", "messages": MSG, "max_tokens": 3})
    assert r.status_code == 200
    assert r.headers["x-llmp-backend"] == "mock-a"
    assert r.json()["usage"]["completion_tokens"] == 3


def test_stream_is_passed_through_and_ends_with_done(gateway_url: str, api_key: str) -> None:
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", timeout=60,
                      headers={"authorization": f"Bearer {api_key}"},
                      json={"model": "mock", "messages": MSG, "max_tokens": 4,
                            "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.count("tok ") == 4  # the output guardrail may merge chunks; nothing is lost
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert not any('"usage"' in ln for ln in lines)


@pytest.mark.parametrize(("model", "status", "code"), [
    ("nope", 404, "model_not_found"),
    ("mock-500", 502, "bad_gateway"),
    ("mock-503", 503, "backend_unavailable"),
    ("dead", 503, "backend_unavailable"),
    ("mock-400", 400, "context_length_exceeded"),
])
@pytest.mark.parametrize("stream", [False, True])
def test_errors_before_the_stream_have_their_status(gateway_url: str, api_key: str, model: str,
                                                    status: int, code: str, stream: bool) -> None:
    r = post(gateway_url, api_key, {"model": model, "messages": MSG, "stream": stream})
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code and err["message"]


@pytest.mark.parametrize("model", ["mock-midstream-error", "mock-drop"])
def test_errors_after_the_stream_began_are_events(gateway_url: str, api_key: str,
                                                  model: str) -> None:
    r = post(gateway_url, api_key, {"model": model, "messages": MSG, "stream": True})
    assert r.status_code == 200
    events = [ln for ln in r.text.split("\n\n") if ln]
    assert events[-1] == "data: [DONE]"
    assert "error" in json.loads(events[-2][6:])


def test_fallback_is_invisible_to_the_client(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, {"model": "mock-fallback", "messages": MSG})
    assert r.status_code == 200 and r.headers["x-llmp-backend"] == "mock-b"


def test_tier_limits_are_400(gateway_url: str, api_key: str) -> None:
    """What the model's capabilities deny (here: echo on the GGUF tier) never reaches it."""
    r = post(gateway_url, api_key, {"model": "smollm2-135m", "prompt": "Hello", "echo": True},
             path="completions")
    assert r.status_code == 400 and r.json()["error"]["param"] == "echo"


def test_completions_endpoint(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, {"model": "smollm2-135m", "prompt": "1, 2, 3,",
                                    "max_tokens": 3}, path="completions")
    assert r.status_code == 200 and r.json()["object"] == "text_completion"


@pytest.mark.slow
def test_client_disconnect_cancels_the_backend(gateway_url: str, gguf_url: str,
                                               api_key: str) -> None:
    leave_stream_early(gateway_url, {"model": "smollm2-135m", "prompt": "Once upon a time",
                                     "max_tokens": 1500, "stream": True},
                       headers={"authorization": f"Bearer {api_key}"})
    wait_idle(gguf_url)
