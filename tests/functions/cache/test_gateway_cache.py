"""The response cache through the real gateway (mock backends, real Redis and Postgres)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.tenants import Tenant, chat, letter_tag, make_tenant


@pytest.fixture(scope="module")
def tenant(postgres_url: str) -> Tenant:
    return make_tenant(postgres_url, "cache")


def unique(text: str = "What is the capital of France?") -> str:
    return f"{text} [{letter_tag()}]"


def structure(chunks: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a client sees of a stream, without ids and timestamps."""
    out: list[tuple[Any, ...]] = []
    for c in chunks:
        if not c["choices"]:
            out.append(("usage", c["usage"]))
            continue
        ch = c["choices"][0]
        out.append((c["object"], c["model"], ch.get("delta"), ch.get("finish_reason")))
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_second_request_is_a_hit(gateway_url: str, tenant: Tenant, stream: bool) -> None:
    text = unique()
    first = chat(gateway_url, tenant, text, stream=stream)
    second = chat(gateway_url, tenant, text, stream=stream)
    assert (first.status, first.headers["x-cache"]) == (200, "miss")
    assert (second.status, second.headers["x-cache"]) == (200, "hit")
    assert second.headers["x-llmp-cache"] == "exact"
    assert second.text == first.text == text


def test_replayed_stream_has_the_live_chunk_structure(gateway_url: str, tenant: Tenant) -> None:
    text = unique("A longer answer so that the stream has many chunks, cut three by three.")
    opts = {"stream_options": {"include_usage": True}}
    live = chat(gateway_url, tenant, text, stream=True, **opts)
    replay = chat(gateway_url, tenant, text, stream=True, **opts)
    assert replay.headers["x-cache"] == "hit"
    assert live.chunks is not None and replay.chunks is not None
    assert structure(replay.chunks) == structure(live.chunks)
    assert replay.chunks[-1]["usage"] == live.chunks[-1]["usage"]  # the final usage chunk
    assert len({c["id"] for c in replay.chunks}) == 1


def test_a_stream_and_a_whole_answer_share_the_entry(gateway_url: str, tenant: Tenant) -> None:
    text = unique()
    assert chat(gateway_url, tenant, text, stream=True).headers["x-cache"] == "miss"
    whole = chat(gateway_url, tenant, text)
    assert (whole.headers["x-cache"], whole.text) == ("hit", text)
    assert whole.body is not None and whole.body["object"] == "chat.completion"
    assert whole.body["usage"]["completion_tokens"] > 0


def test_sampled_requests_are_not_cached_unless_the_tenant_opts_in(
        gateway_url: str, tenant: Tenant, postgres_url: str) -> None:
    text = unique()
    for _ in range(2):
        assert chat(gateway_url, tenant, text, temperature=0.7).headers["x-cache"] == "miss"
    assert chat(gateway_url, tenant, text, temperature=0.7, seed=7).headers["x-cache"] == "miss"
    assert chat(gateway_url, tenant, text, temperature=0.7, seed=7).headers["x-cache"] == "hit"
    opted = make_tenant(postgres_url, "cache-sampled", cache={"nondeterministic": True})
    chat(gateway_url, opted, text, temperature=None)
    assert chat(gateway_url, opted, text, temperature=None).headers["x-cache"] == "hit"


def test_cache_control(gateway_url: str, tenant: Tenant) -> None:
    text = unique()
    no_store = {"cache-control": "no-store"}
    assert chat(gateway_url, tenant, text, headers=no_store).headers["x-cache"] == "miss"
    assert chat(gateway_url, tenant, text, headers=no_store).headers["x-cache"] == "miss"
    chat(gateway_url, tenant, text)  # stored now
    no_cache = {"cache-control": "no-cache"}
    assert chat(gateway_url, tenant, text, headers=no_cache).headers["x-cache"] == "miss"
    assert chat(gateway_url, tenant, text).headers["x-cache"] == "hit"


def test_pii_findings_are_never_cached(gateway_url: str, tenant: Tenant) -> None:
    text = unique("Please write to dana.white@contoso.com about the release.")
    for stream in (False, True, False):
        r = chat(gateway_url, tenant, text, stream=stream)
        assert (r.status, r.headers["x-cache"], r.text) == (200, "miss", text)


def test_errors_and_tool_calls_are_not_cached(gateway_url: str, tenant: Tenant) -> None:
    for _ in range(2):
        r = chat(gateway_url, tenant, unique(), model="mock-midstream-error", stream=True)
        assert r.error is not None and r.headers["x-cache"] == "miss"
    body = {"model": "mock-500", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    for _ in range(2):
        r2 = httpx.post(f"{gateway_url}/v1/chat/completions", json=body, headers=tenant.auth)
        assert r2.status_code == 502


def test_tenants_never_share_entries(gateway_url: str, tenant: Tenant, postgres_url: str) -> None:
    other = make_tenant(postgres_url, "cache-other")
    text = unique()
    chat(gateway_url, tenant, text)
    assert chat(gateway_url, tenant, text).headers["x-cache"] == "hit"
    assert chat(gateway_url, other, text).headers["x-cache"] == "miss"
    assert chat(gateway_url, other, text).headers["x-cache"] == "hit"


def test_a_tenant_can_turn_the_cache_off(gateway_url: str, postgres_url: str) -> None:
    off = make_tenant(postgres_url, "cache-off", cache={"enabled": False})
    text = unique()
    chat(gateway_url, off, text)
    assert chat(gateway_url, off, text).headers["x-cache"] == "miss"


def test_completions_endpoint_is_cached_too(gateway_url: str, tenant: Tenant) -> None:
    body = {"model": "mock-echo", "prompt": unique(), "temperature": 0, "stream": True}
    texts = []
    for expected in ("miss", "hit"):
        with httpx.stream("POST", f"{gateway_url}/v1/completions", json=body,
                          headers=tenant.auth) as r:
            assert r.headers["x-cache"] == expected
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: {")]
        texts.append("".join(httpx.Response(200, content=ln[6:]).json()["choices"][0]["text"]
                             for ln in lines))
    assert texts[0] == texts[1] == body["prompt"]


def test_a_model_version_change_invalidates(gateway_url: str, tenant: Tenant, mock_url: str) -> None:
    """A GGUF swap changes the version the backend reports; the first live answer from the new
    version moves the alias on, and old entries are never served again."""
    text = unique()
    try:
        chat(gateway_url, tenant, text, model="mock-versioned")  # learns v1, stores under v1
        hit = chat(gateway_url, tenant, text, model="mock-versioned")
        assert (hit.headers["x-cache"], hit.headers["x-llmp-model-version"]) == ("hit", "v1")
        httpx.post(f"{mock_url}/mock/version", content=b"v2")
        chat(gateway_url, tenant, unique(), model="mock-versioned")  # any live answer: v2 now
        after = chat(gateway_url, tenant, text, model="mock-versioned")
        assert (after.headers["x-cache"], after.headers["x-llmp-model-version"]) == ("miss", "v2")
        again = chat(gateway_url, tenant, text, model="mock-versioned")
        assert (again.headers["x-cache"], again.headers["x-llmp-model-version"]) == ("hit", "v2")
    finally:
        httpx.post(f"{mock_url}/mock/version", content=b"v1")


def test_metrics_count_lookups(gateway_url: str) -> None:
    text = httpx.get(f"{gateway_url}/metrics").text
    assert 'llmp_cache_lookups_total{kind="exact",result="hit"}' in text
    assert 'llmp_cache_stores_total{result="stored"}' in text
