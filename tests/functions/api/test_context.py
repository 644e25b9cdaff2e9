"""One settlement per request, whichever way it ends: each exit of the pipeline, through the real
gateway, leaves exactly the ledger rows it should (one for every answer a model or the cache gave,
none for a request refused before any model ran)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.tenancy import bearer, tenant_with_key
from tests.support.tenants import letter_tag

FLUSH_S = 1.0  # GatewaySettings.spend_flush_s


def _rows(postgres_url: str, tenant_id: str) -> list[tuple[str, int, int, str | None]]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        return conn.execute("SELECT backend, prompt_tokens, completion_tokens, error FROM "
                            "spend_ledger WHERE tenant_id = %s", (tenant_id,)).fetchall()


def _settled(postgres_url: str, tenant_id: str, expected: int) -> list[tuple[str, int, int, Any]]:
    """The tenant's ledger rows once ``expected`` are there, and a flush interval later (a second
    settlement would have arrived by then)."""
    deadline = time.monotonic() + 10
    while len(rows := _rows(postgres_url, tenant_id)) < expected:
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    time.sleep(FLUSH_S * 2.5)
    return _rows(postgres_url, tenant_id)


def _body(model: str = "mock", **extra: Any) -> dict[str, Any]:
    return {"model": model, "temperature": 0, "max_tokens": 6,
            "messages": [{"role": "user", "content": f"Tell me of {letter_tag()}."}], **extra}


def _post(url: str, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=bearer(key), timeout=60)


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_is_charged_once(gateway_url: str, postgres_url: str, stream: bool) -> None:
    tenant, key = tenant_with_key(postgres_url)
    assert _post(gateway_url, key, _body(stream=stream)).status_code == 200
    assert _settled(postgres_url, str(tenant.tenant_id), 1) == [("mock-a", 5, 6, None)]


def test_a_cache_hit_is_one_row_at_no_cost(gateway_url: str, postgres_url: str) -> None:
    tenant, key = tenant_with_key(postgres_url)
    body = _body()
    assert _post(gateway_url, key, body).headers["x-cache"] == "miss"
    assert _post(gateway_url, key, {**body, "stream": True}).headers["x-cache"] == "hit"
    rows = sorted(_settled(postgres_url, str(tenant.tenant_id), 2))
    assert rows == [("cache", 0, 0, None), ("mock-a", 5, 6, None)]


def test_a_stream_the_client_leaves_is_charged_once(gateway_url: str, postgres_url: str) -> None:
    tenant, key = tenant_with_key(postgres_url)
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", headers=bearer(key),
                      json=_body("mock-slow", stream=True), timeout=60) as r:
        assert r.status_code == 200
    (backend, *_), = _settled(postgres_url, str(tenant.tenant_id), 1)
    assert backend == "mock-slow-a"


@pytest.mark.parametrize(("model", "status"), [("mock-400", 400), ("dead", 503)])
def test_a_request_no_model_answered_is_not_charged(gateway_url: str, postgres_url: str,
                                                    model: str, status: int) -> None:
    tenant, key = tenant_with_key(postgres_url)
    assert _post(gateway_url, key, _body(model)).status_code == status
    time.sleep(FLUSH_S * 2.5)
    assert _rows(postgres_url, str(tenant.tenant_id)) == []


def test_a_backend_error_mid_stream_is_charged_once(gateway_url: str, postgres_url: str) -> None:
    tenant, key = tenant_with_key(postgres_url)
    r = _post(gateway_url, key, _body("mock-midstream-error", stream=True))
    assert r.status_code == 200 and '"error"' in r.text
    (backend, _, _, error), = _settled(postgres_url, str(tenant.tenant_id), 1)
    assert backend == "mock-midstream-error-a" and error == "BackendError"


def test_settlement_counts_how_the_request_was_routed(gateway_url: str, api_key: str) -> None:
    chat = {"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    r = httpx.post(f"{gateway_url}/v1/chat/completions", json=chat, headers=bearer(api_key))
    assert r.status_code == 200 and r.headers["x-llmp-tier"] == "mock"
    text = httpx.get(f"{gateway_url}/metrics").text
    pick = r.headers["x-llmp-pick"]
    assert f'llmp_replica_picks_total{{backend="mock-a",pick="{pick}",tier="mock"}}' in text


# Routes: `auto` over the two real GGUF tiers (SmolLM2, Gemma), classified by the embedding tier --

def _route_rows(postgres_url: str, tenant_id: str, expected: int) -> list[tuple[Any, ...]]:
    _settled(postgres_url, tenant_id, expected)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        return conn.execute("SELECT model, backend, route, reason, retries FROM spend_ledger "
                            "WHERE tenant_id = %s ORDER BY at", (tenant_id,)).fetchall()


def _routed(url: str, key: str, text: str, model: str = "auto", **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), timeout=120, json={
        "model": model, "temperature": 0, "max_tokens": 8,
        "messages": [{"role": "user", "content": text}], **extra})


@pytest.mark.slow
def test_auto_is_answered_by_the_tier_its_examples_name(routed_gateway_url: str,
                                                         postgres_url: str) -> None:
    tenant, key = tenant_with_key(postgres_url)
    easy = _routed(routed_gateway_url, key, "Hey, good evening to you!")
    assert easy.status_code == 200, easy.text
    assert easy.headers["x-llmp-route"] == "auto"
    assert easy.headers["x-llmp-tier"] == "smollm2-135m"
    assert easy.headers["x-llmp-route-reason"] == "classifier:smollm2-135m"
    assert easy.headers["x-llmp-backend"] == "gguf-smollm2"
    assert easy.json()["model"] == "smollm2-135m" and easy.json()["choices"][0]["message"]["content"]
    hard = _routed(routed_gateway_url, key,
                   "Implement a binary search in JavaScript and explain its complexity.",
                   stream=True)
    assert hard.status_code == 200 and "data: [DONE]" in hard.text
    assert hard.headers["x-llmp-tier"] == "gemma3-270m"
    assert hard.headers["x-llmp-route-reason"] == "classifier:gemma3-270m"
    assert hard.headers["x-llmp-backend"] == "gguf-gemma3"
    named = _routed(routed_gateway_url, key, f"Say {letter_tag()}.", model="smollm2-135m")
    assert named.headers["x-llmp-tier"] == "smollm2-135m" and "x-llmp-route" not in named.headers
    assert named.headers["x-llmp-route-reason"] == "requested"
    rows = _route_rows(postgres_url, str(tenant.tenant_id), 3)
    assert sorted(rows, key=str) == sorted([
        ("smollm2-135m", "gguf-smollm2", "auto", "classifier:smollm2-135m", 0),
        ("gemma3-270m", "gguf-gemma3", "auto", "classifier:gemma3-270m", 0),
        ("smollm2-135m", "gguf-smollm2", None, "requested", 0)], key=str)
    usage = httpx.get(f"{routed_gateway_url}/v1/usage", headers=bearer(key)).json()
    (auto,) = usage["by_route"]
    assert auto["route"] == "auto" and auto["requests"] == 2
    assert auto["largest_tier"] == "gemma3-270m"
    assert {t["tier"] for t in auto["tiers"]} == {"smollm2-135m", "gemma3-270m"}
    assert auto["saved"] == pytest.approx(auto["cost_at_largest"] - auto["cost"])
    assert auto["saved"] > 0  # the easy one cost SmolLM2's price, not Gemma's
    metrics = httpx.get(f"{routed_gateway_url}/metrics").text
    assert 'llmp_routed_requests_total{reason="classifier:smollm2-135m",route="auto",' \
           'tier="smollm2-135m"}' in metrics


@pytest.mark.slow
def test_auto_respects_the_rules_before_the_examples(routed_gateway_url: str,
                                                     postgres_url: str) -> None:
    _, key = tenant_with_key(postgres_url)
    # an easy prompt, but 2100 answer tokens do not fit SmolLM2's 2048: the next larger tier
    long = _routed(routed_gateway_url, key, "Hey, good evening to you!", max_tokens=2100,
                   stop=["\n", "."])
    assert long.status_code == 200, long.text
    assert long.headers["x-llmp-tier"] == "gemma3-270m"
    assert long.headers["x-llmp-route-reason"] == "rule:context"
    # tools: the route's default tier serves none, the next one does
    tools = _routed(routed_gateway_url, key, "What is the weather in Paris?", model="auto-tools",
                    tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {
                        "type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"]}}}], tool_choice="required", max_tokens=40)
    assert tools.status_code == 200, tools.text
    assert tools.headers["x-llmp-tier"] == "smollm2-135m"
    assert tools.headers["x-llmp-route-reason"] == "rule:capability:tools"
    assert tools.json()["choices"][0]["message"]["tool_calls"]
    # what no tier serves is the usual 400, and the answer still says how it was routed
    refused = _routed(routed_gateway_url, key, "Hi", n=9)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "n"
    assert refused.headers["x-llmp-route-reason"] == "rule:capability:max_n"


@pytest.mark.slow
def test_a_tenant_price_ceiling_keeps_auto_on_the_cheap_tier(routed_gateway_url: str,
                                                              postgres_url: str) -> None:
    from decimal import Decimal

    tenant, key = tenant_with_key(postgres_url, max_price_per_1k=Decimal("0.00005"))
    r = _routed(routed_gateway_url, key,
                "Implement a binary search in JavaScript and explain its complexity.")
    assert r.status_code == 200, r.text
    assert r.headers["x-llmp-tier"] == "smollm2-135m"
    assert r.headers["x-llmp-route-reason"] == "rule:cost"
    assert _route_rows(postgres_url, str(tenant.tenant_id), 1) == [
        ("smollm2-135m", "gguf-smollm2", "auto", "rule:cost", 0)]


def test_a_prompt_longer_than_the_context_is_refused_before_the_guardrails(
        gateway_url: str, postgres_url: str) -> None:
    """``mock`` has 4,096 tokens of context: 40 kB is at least 5,000 tokens. Refused with OpenAI's
    code before the guardrails run (the SSN in it would be a ``pii_blocked`` otherwise), nothing
    charged."""
    tenant, key = tenant_with_key(postgres_url)
    body = _body()
    body["messages"] = [{"role": "user", "content": "SSN 536-22-8745. " + "word " * 8000}]
    r = _post(gateway_url, key, body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == ("context_length_exceeded", "messages")
    assert "4096 tokens" in err["message"]
    assert _settled(postgres_url, str(tenant.tenant_id), 0) == []
