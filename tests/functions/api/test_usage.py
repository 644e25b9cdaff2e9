"""``GET /v1/usage`` and ``/v1/admin/usage``: a tenant sees its own usage and never another's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.tenancy import bearer, tenant_with_key

MSG = [{"role": "user", "content": "Say hello."}]


def _use(url: str, key: str, n: int) -> None:
    for _ in range(n):
        r = httpx.post(f"{url}/v1/chat/completions", headers=bearer(key),
                       json={"model": "mock", "messages": MSG, "max_tokens": 10})
        assert r.status_code == 200


def _usage(url: str, key: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/usage", headers=bearer(key), params=params)


def _wait_for(url: str, key: str, requests: int) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while True:  # the ledger is written in batches, about once a second
        body: dict[str, object] = _usage(url, key).json()
        by_model = body["by_model"]
        assert isinstance(by_model, list)
        if sum(m["requests"] for m in by_model) >= requests:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_tenant_a_never_sees_tenant_b(gateway_url: str, postgres_url: str) -> None:
    a, key_a = tenant_with_key(postgres_url)
    b, key_b = tenant_with_key(postgres_url)
    _use(gateway_url, key_a, 2)
    _use(gateway_url, key_b, 3)
    body_a = _wait_for(gateway_url, key_a, 2)
    body_b = _wait_for(gateway_url, key_b, 3)
    assert body_a["tenant"] == a.name and body_b["tenant"] == b.name
    assert body_a["by_model"] == [{"model": "mock", "requests": 2, "prompt_tokens": 10,
                                   "completion_tokens": 20, "cost": pytest.approx(0.035)}]
    assert {d["tenant"] for d in body_a["by_day"]} == {a.name}  # type: ignore[attr-defined]
    assert body_a["total_cost"] == pytest.approx(0.035)  # 2 x (5 x 0.5 + 10 x 1.5) / 1000
    r = _usage(gateway_url, key_a, tenant=b.name)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tenant"


def test_range_and_validation(gateway_url: str, postgres_url: str) -> None:
    _, key = tenant_with_key(postgres_url)
    _use(gateway_url, key, 1)
    _wait_for(gateway_url, key, 1)
    today = datetime.now(UTC).date()
    past = _usage(gateway_url, key, **{"from": str(today - timedelta(days=9)),
                                       "to": str(today - timedelta(days=8))}).json()
    assert past["by_model"] == [] and past["total_cost"] == 0
    assert _usage(gateway_url, key, **{"from": "2025-02-01", "to": "2025-01-01"}
                  ).status_code == 400
    assert _usage(gateway_url, key, **{"from": "yesterday"}).status_code == 400
    assert httpx.get(f"{gateway_url}/v1/usage").status_code == 401


def test_operators_see_any_tenant(gateway_url: str, postgres_url: str) -> None:
    t, key = tenant_with_key(postgres_url)
    _, admin = tenant_with_key(postgres_url, key={"roles": ["admin"]})
    _use(gateway_url, key, 1)
    _wait_for(gateway_url, key, 1)
    r = httpx.get(f"{gateway_url}/v1/admin/usage", headers=bearer(admin),
                  params={"tenant": t.name})
    assert r.status_code == 200 and r.json()["by_model"][0]["requests"] == 1
    everyone = httpx.get(f"{gateway_url}/v1/admin/usage", headers=bearer(admin)).json()
    assert t.name in {d["tenant"] for d in everyone["by_day"]}
    assert httpx.get(f"{gateway_url}/v1/admin/usage", headers=bearer(key)).status_code == 403
