"""Failure paths of the cache and history stages, each on a gateway of its own: Redis down (served,
cache bypassed, counted), Postgres down (503 for a conversation, served without one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from functions.asgi import create_app
from functions.gateway import Gateway
from functions.settings import GatewaySettings
from tests.support.servers import serve_asgi
from tests.support.socket_proxy import postgres_proxy
from tests.support.tenants import Tenant, chat, make_tenant


@pytest.fixture(scope="module")
def tenant(postgres_url: str) -> Tenant:
    return make_tenant(postgres_url, "failures")


@pytest.fixture
def redis_down_gateway(postgres_url: str, dead_url: str, catalog_path: Path) -> Iterator[str]:
    port = dead_url.rsplit(":", 1)[1]
    s = GatewaySettings(database_url=postgres_url, redis_url=f"redis://127.0.0.1:{port}",
                        catalog_path=catalog_path, redis_timeout_s=0.2)
    with serve_asgi(create_app(Gateway(s))) as url:
        yield url


def test_redis_down_serves_without_the_cache(redis_down_gateway: str, tenant: Tenant) -> None:
    conv = httpx.post(f"{redis_down_gateway}/v1/conversations", headers=tenant.auth).json()["id"]
    for stream in (False, True, False):
        r = chat(redis_down_gateway, tenant, "same question twice", stream=stream,
                 conversation_id=conv)
        assert (r.status, r.headers["x-cache"], r.text) == (200, "miss", "same question twice")
    metrics = httpx.get(f"{redis_down_gateway}/metrics").text
    assert 'llmp_cache_unavailable_total{op="lookup"} 3.0' in metrics


def test_postgres_down(postgres_url: str, redis_url: str, catalog_path: Path, tenant: Tenant,
                       tmp_path: Path) -> None:
    with postgres_proxy(postgres_url, tmp_path) as (url, proxy):
        s = GatewaySettings(database_url=url, redis_url=redis_url, catalog_path=catalog_path,
                            db_timeout_s=1)
        with serve_asgi(create_app(Gateway(s))) as gw:
            conv = httpx.post(f"{gw}/v1/conversations", headers=tenant.auth).json()["id"]
            assert chat(gw, tenant, "warm up", conversation_id=conv).status == 200
            proxy.cut()
            with_history = chat(gw, tenant, "hello", conversation_id=conv)
            assert with_history.status == 503
            assert with_history.error is not None
            assert with_history.error["code"] == "conversation_store_unavailable"
            assert "without 'conversation_id'" in with_history.error["message"]
            streamed = chat(gw, tenant, "hello", conversation_id=conv, stream=True)
            assert streamed.status == 503
            # without a conversation: the key from Redis, the last known guardrail policy
            for stream in (False, True):
                r = chat(gw, tenant, "hello without history", stream=stream)
                assert (r.status, r.text) == (200, "hello without history")
            listed = httpx.get(f"{gw}/v1/conversations", headers=tenant.auth)
            assert listed.status_code == 503
            metrics = httpx.get(f"{gw}/metrics").text
            assert 'llmp_history_failures_total{op="load"} 2.0' in metrics


def test_history_write_failing_after_the_answer_is_an_error(postgres_url: str, redis_url: str,
                                                            catalog_path: Path, tenant: Tenant,
                                                            tmp_path: Path) -> None:
    """The answer arrives but cannot be saved: the client is told (503, or an error event instead
    of ``[DONE]``) and the conversation is unchanged."""
    with postgres_proxy(postgres_url, tmp_path) as (url, proxy):
        s = GatewaySettings(database_url=url, redis_url=redis_url, catalog_path=catalog_path,
                            db_timeout_s=1)
        with serve_asgi(create_app(Gateway(s))) as gw:
            conv = httpx.post(f"{gw}/v1/conversations", headers=tenant.auth).json()["id"]
            chat(gw, tenant, "warm up", conversation_id=conv)
            body = {"model": "mock-slow", "stream": True, "conversation_id": conv,
                    "messages": [{"role": "user", "content": "slow"}]}
            with httpx.stream("POST", f"{gw}/v1/chat/completions", json=body, headers=tenant.auth,
                              timeout=30) as r:
                lines = r.iter_lines()
                first = next(lines)
                proxy.cut()  # the history was read; the write at the end fails
                rest = [ln for ln in lines if ln.startswith("data: ")]
            assert first.startswith("data: ")
            assert rest[-1] == "data: [DONE]"
            error = json.loads(rest[-2][6:])["error"]
            assert error["code"] == "conversation_store_unavailable"
