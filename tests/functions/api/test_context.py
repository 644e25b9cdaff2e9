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
