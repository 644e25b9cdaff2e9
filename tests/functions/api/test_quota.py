"""Tenancy on the generation routes, through real gateways (two instances sharing one Redis): model
access, exact limits under a concurrent hammer, rate headers on every response, token settlement
after streams, budgets, Redis down per tenant, and how fast a revoked key stops working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from redis import Redis

from functions.asgi import create_app
from functions.gateway import Gateway
from functions.keys import hash_key
from functions.settings import GatewaySettings
from tests.support.servers import serve_asgi
from tests.support.tenancy import bearer, tenant_with_key

MSG = [{"role": "user", "content": "Say hello."}]
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens")
KEY_CACHE_TTL_S = 1


@pytest.fixture(scope="module")
def settings(gateway_settings: GatewaySettings) -> GatewaySettings:
    return gateway_settings.model_copy(update={"key_cache_ttl_s": KEY_CACHE_TTL_S,
                                               "tenant_cache_ttl_s": 0})


@pytest.fixture(scope="module")
def gateways(settings: GatewaySettings) -> Iterator[tuple[str, str]]:
    """Two gateway instances (own pools, own processes' worth of state), one Redis, one Postgres."""
    with serve_asgi(create_app(Gateway(settings))) as a, \
            serve_asgi(create_app(Gateway(settings))) as b:
        yield a, b


def chat(url: str, key: str, **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), timeout=30,
                      json={"model": "mock", "messages": MSG, "max_tokens": 4, **body})


def test_two_instances_hammered_never_admit_more_than_the_limit(
        gateways: tuple[str, str], postgres_url: str) -> None:
    _, key = tenant_with_key(postgres_url, rpm_limit=6)

    async def hammer() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(
                client.post(f"{gateways[i % 2]}/v1/chat/completions", headers=bearer(key),
                            json={"model": "mock", "messages": MSG, "max_tokens": 2})
                for i in range(40)))

    started = time.monotonic()
    responses = asyncio.run(hammer())
    assert time.monotonic() - started < 10  # one request every 10 s refills at 6 per minute
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 6 + [429] * 34
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"


def test_rate_headers_on_every_response(gateways: tuple[str, str], postgres_url: str) -> None:
    _, key = tenant_with_key(postgres_url, rpm_limit=100, tpm_limit=100_000)
    started = time.monotonic()
    ok = chat(gateways[0], key)
    failed = chat(gateways[1], key, model="mock-500")
    streamed = httpx.post(f"{gateways[0]}/v1/chat/completions", headers=bearer(key),
                          json={"model": "mock", "messages": MSG, "stream": True})
    assert (ok.status_code, failed.status_code, streamed.status_code) == (200, 502, 200)
    for r in (ok, failed, streamed):
        assert all(h in r.headers for h in RATE_HEADERS), r.headers
        assert r.headers["x-ratelimit-limit-requests"] == "100"
    refilled = (time.monotonic() - started) * 100 / 60  # the bucket refills at rpm / 60 per second
    assert int(streamed.headers["x-ratelimit-remaining-requests"]) <= 97 + refilled


def test_a_failed_request_gives_its_tokens_back(gateways: tuple[str, str],
                                                postgres_url: str) -> None:
    _, key = tenant_with_key(postgres_url, tpm_limit=1000)
    assert chat(gateways[0], key, model="mock-500", max_tokens=600).status_code == 502
    assert chat(gateways[1], key, max_tokens=600).status_code == 200


def _outstanding_tokens(redis_url: str, tenant_id: str, tpm: int) -> float:
    r = Redis.from_url(redis_url)
    try:
        tat = r.get(f"llmp:rl:{{{tenant_id}}}:t:tok")
        sec, usec = r.time()
    finally:
        r.close()
    now = sec * 1_000_000 + usec
    return max(0.0, (int(tat) - now) / (60_000_000 / tpm)) if tat else 0.0


def _ledger(postgres_url: str, tenant_id: str) -> list[tuple[int, int]]:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        return conn.execute("SELECT prompt_tokens, completion_tokens FROM spend_ledger"
                            " WHERE tenant_id = %s", (tenant_id,)).fetchall()


@pytest.mark.parametrize("stream", [True, False])
def test_tokens_are_settled_from_the_real_usage(gateways: tuple[str, str], postgres_url: str,
                                                redis_url: str, stream: bool) -> None:
    tpm = 600  # one token every 100 ms comes back
    tenant, key = tenant_with_key(postgres_url, tpm_limit=tpm)
    long_prompt = [{"role": "user", "content": "word " * 300}]  # estimated at about 380 tokens
    r = chat(gateways[0], key, messages=long_prompt, max_tokens=4, stream=stream)
    assert r.status_code == 200 and int(r.headers["x-ratelimit-remaining-tokens"]) < tpm - 380
    deadline = time.monotonic() + 5
    while (left := _outstanding_tokens(redis_url, str(tenant.tenant_id), tpm)) > 10:
        assert time.monotonic() < deadline, f"{left} tokens still reserved"
        time.sleep(0.02)
    assert 0 < left <= 9  # the mock reports 5 prompt + 4 completion tokens: 9 stay charged
    while not (rows := _ledger(postgres_url, str(tenant.tenant_id))):
        assert time.monotonic() < deadline, "no ledger row"
        time.sleep(0.1)
    assert rows == [(5, 4)]


def test_models_are_limited_by_tenant_and_key(gateways: tuple[str, str],
                                              postgres_url: str) -> None:
    _, key = tenant_with_key(postgres_url, allowed_models=["mock"])
    assert chat(gateways[0], key).status_code == 200
    r = chat(gateways[0], key, model="mock-fallback")
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert "tenant" in r.json()["error"]["message"]
    _, key = tenant_with_key(postgres_url, key={"allowed_models": ["mock-f*"]})
    assert chat(gateways[0], key, model="mock-fallback").status_code == 200
    r = chat(gateways[0], key)
    assert r.status_code == 403 and "key" in r.json()["error"]["message"]
    assert chat(gateways[0], key, model="nope").status_code == 404
    models = httpx.get(f"{gateways[0]}/v1/models", headers=bearer(key)).json()["data"]
    assert [m["id"] for m in models] == ["mock-fallback"]


def test_budget_exhaustion_is_402_with_a_clear_message(gateways: tuple[str, str],
                                                       postgres_url: str) -> None:
    # "mock" costs 0.5 / 1.5 per 1K tokens: 5 prompt + 16 completion tokens = 0.0265
    _, key = tenant_with_key(postgres_url, monthly_budget=Decimal("0.05"))
    assert chat(gateways[0], key, max_tokens=16).status_code == 200
    assert chat(gateways[1], key, max_tokens=16).status_code == 200
    r = chat(gateways[0], key, max_tokens=16)
    assert r.status_code == 402
    err = r.json()["error"]
    assert err["code"] == "budget_exceeded" and "monthly budget" in err["message"]


def test_redis_down_fails_open_or_closed_per_tenant(settings: GatewaySettings, dead_url: str,
                                                    postgres_url: str) -> None:
    down = settings.model_copy(update={
        "redis_url": f"redis://127.0.0.1:{dead_url.rsplit(':', 1)[1]}", "redis_timeout_s": 0.2})
    _, open_key = tenant_with_key(postgres_url, rpm_limit=1, on_redis_down="open")
    _, closed_key = tenant_with_key(postgres_url, rpm_limit=1, on_redis_down="closed")
    with serve_asgi(create_app(Gateway(down))) as url:
        for _ in range(3):  # the limit of 1 cannot be counted, and is not enforced
            r = chat(url, open_key)
            assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
        r = chat(url, closed_key)
        assert r.status_code == 503 and r.json()["error"]["code"] == "service_unavailable"


def test_revoked_key_stops_within_the_cache_ttl(gateways: tuple[str, str],
                                                postgres_url: str) -> None:
    """Revoked behind the gateways' back (Redis unreachable from the CLI, say): the cached entry
    lives at most ``LLMP_KEY_CACHE_TTL_S``; through ``llmp keys revoke`` or the admin route it is
    at once (tests/functions/api/test_admin.py)."""
    import psycopg

    _, key = tenant_with_key(postgres_url)
    assert chat(gateways[0], key).status_code == 200  # cached now
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = %s",
                     (hash_key(key),))
    revoked_at = time.monotonic()
    while chat(gateways[0], key).status_code != 401:
        assert time.monotonic() - revoked_at < KEY_CACHE_TTL_S + 1
        time.sleep(0.1)
    assert chat(gateways[1], key).status_code == 401



def test_an_answer_refused_by_the_output_guardrails_is_still_charged(
        gateways: tuple[str, str], postgres_url: str, redis_url: str) -> None:
    """The model ran: its real usage is settled, and the refund for failed requests does not
    overwrite it."""
    tpm = 60  # one token a second comes back: the 7 charged are still outstanding when checked
    tenant, key = tenant_with_key(postgres_url, tpm_limit=tpm)
    r = chat(gateways[0], key, model="mock-echo", max_tokens=4,
             messages=[{"role": "user", "content": "not json"}],
             response_format={"type": "json_object"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json_output"
    deadline = time.monotonic() + 5
    while not (rows := _ledger(postgres_url, str(tenant.tenant_id))):
        assert time.monotonic() < deadline, "no ledger row"
        time.sleep(0.1)
    assert rows == [(5, 2)]  # mock-echo: 5 prompt tokens, one per 3 characters answered
    # refunded, the tenant's token bucket would be back to empty at once
    assert _outstanding_tokens(redis_url, str(tenant.tenant_id), tpm) > 0.5


def test_a_stream_ended_before_its_usage_is_charged_the_reservation(
        gateways: tuple[str, str], postgres_url: str) -> None:
    """max_chars ends the stream before the backend's usage chunk: never a free answer."""
    import psycopg

    from functions.guardrails.policy import GuardrailPolicy

    tenant, key = tenant_with_key(postgres_url, tpm_limit=100_000)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE tenants SET guardrail_policy = %s WHERE id = %s",
                     (GuardrailPolicy(output={"max_chars": 5}).model_dump_json(), tenant.tenant_id))
    r = chat(gateways[1], key, model="mock-echo", max_tokens=50, stream=True,
             messages=[{"role": "user", "content": "a fairly long answer that will be cut"}])
    assert r.status_code == 200 and '"finish_reason":"length"' in r.text
    deadline = time.monotonic() + 5
    while not (rows := _ledger(postgres_url, str(tenant.tenant_id))):
        assert time.monotonic() < deadline, "no ledger row"
        time.sleep(0.1)
    (prompt, completion), = rows
    assert prompt == 0 and completion >= 50  # the reservation (prompt estimate + max_tokens)
