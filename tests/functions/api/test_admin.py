"""``/v1/admin/...`` through the real gateway: admin role required, onboarding end to end, and
revocation that takes effect at once on every instance."""

from __future__ import annotations

import uuid

import httpx
import pytest

from functions.api.routes import ROUTES
from tests.support.tenancy import bearer, tenant_with_key

MSG = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def admin_key(postgres_url: str) -> str:
    return tenant_with_key(postgres_url, key={"roles": ["admin"]})[1]


def test_no_route_or_function_name_starts_with_admin() -> None:
    """The Functions host reserves /admin/... and function names starting with 'admin'."""
    assert not [r for r in ROUTES if r.path.startswith("/admin") or r.name.startswith("admin")]


def test_admin_role_is_required(gateway_url: str, api_key: str) -> None:
    r = httpx.get(f"{gateway_url}/v1/admin/tenants", headers=bearer(api_key))
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert httpx.get(f"{gateway_url}/v1/admin/tenants").status_code == 401


def test_onboarding_a_tenant(gateway_url: str, admin_key: str) -> None:
    name = "app-" + uuid.uuid4().hex[:8]
    h = bearer(admin_key)
    r = httpx.post(f"{gateway_url}/v1/admin/tenants", headers=h, json={
        "name": name, "allowed_models": ["mock*"], "rpm_limit": 50, "monthly_budget": 10})
    assert r.status_code == 201, r.text
    assert r.json()["allowed_models"] == ["mock*"] and r.json()["monthly_budget"] == 10
    again = httpx.post(f"{gateway_url}/v1/admin/tenants", headers=h, json={"name": name})
    assert again.status_code == 400 and again.json()["error"]["code"] == "tenant_exists"

    r = httpx.patch(f"{gateway_url}/v1/admin/tenants/{name}", headers=h,
                    json={"rpm_limit": None, "tpm_limit": 5000, "on_redis_down": "closed"})
    assert r.status_code == 200
    t = r.json()
    assert (t["rpm_limit"], t["tpm_limit"], t["on_redis_down"]) == (None, 5000, "closed")
    assert t["allowed_models"] == ["mock*"]  # untouched
    bad = httpx.patch(f"{gateway_url}/v1/admin/tenants/{name}", headers=h, json={"rpm_limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm_limit"

    r = httpx.post(f"{gateway_url}/v1/admin/tenants/{name}/keys", headers=h,
                   json={"name": "ci", "expires_in_days": 30, "rpm_limit": 10})
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    assert key.startswith("sk-llmp-") and r.json()["rpm_limit"] == 10
    listed = httpx.get(f"{gateway_url}/v1/admin/tenants/{name}/keys", headers=h).json()["data"]
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    names = [t["name"] for t in
             httpx.get(f"{gateway_url}/v1/admin/tenants", headers=h).json()["data"]]
    assert name in names

    chat = {"model": "mock", "messages": MSG, "max_tokens": 2}
    r = httpx.post(f"{gateway_url}/v1/chat/completions", headers=bearer(key), json=chat)
    assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "10"

    r = httpx.delete(f"{gateway_url}/v1/admin/keys/{key_id}", headers=h)
    assert r.json() == {"id": key_id, "revoked": True, "cache_cleared": True}
    r = httpx.post(f"{gateway_url}/v1/chat/completions", headers=bearer(key), json=chat)
    assert r.status_code == 401  # at once: the cache entry was dropped


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/admin/tenants/no-such-tenant"),
    ("POST", "/v1/admin/tenants/no-such-tenant/keys"),
    ("DELETE", "/v1/admin/keys/00000000-0000-0000-0000-000000000000"),
    ("DELETE", "/v1/admin/keys/not-a-uuid"),
])
def test_unknown_things_are_404(gateway_url: str, admin_key: str, method: str,
                                path: str) -> None:
    r = httpx.request(method, f"{gateway_url}{path}", headers=bearer(admin_key), json={})
    assert r.status_code == 404


def test_backends_show_load_and_a_drain_moves_traffic(gateway_url: str, admin_key: str,
                                                     api_key: str) -> None:
    h = bearer(admin_key)
    assert httpx.get(f"{gateway_url}/v1/admin/backends", headers=bearer(api_key)).status_code == 403
    chat = {"model": "mock-fallback", "messages": MSG, "max_tokens": 3}
    r = httpx.post(f"{gateway_url}/v1/chat/completions", json=chat, headers=bearer(api_key))
    assert r.status_code == 200, r.text
    assert r.headers["x-llmp-backend"] == "mock-b" and r.headers["x-llmp-tier"] == "mock-fallback"
    assert r.headers["x-llmp-retries"] in ("0", "1") and "x-llmp-load" not in r.headers
    rows = {row["backend"]: row for row in
            httpx.get(f"{gateway_url}/v1/admin/backends", headers=h).json()["data"]}
    assert rows["mock-b"]["alias"] == "mock-fallback" and rows["mock-b"]["tier"] == "vllm"
    assert rows["mock-b"]["state"] == "closed" and rows["mock-b"]["picks"] >= 1
    assert rows["dead-a"]["url"].startswith("http://127.0.0.1:")
    try:
        d = httpx.post(f"{gateway_url}/v1/admin/backends/mock-b/drain", headers=h)
        assert d.status_code == 200 and d.json() == {"backend": "mock-b", "drained": True}
        r = httpx.post(f"{gateway_url}/v1/chat/completions", json=chat, headers=bearer(api_key))
        # the only other replica is dead: a drained replica gets no new request, so a clear 503
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
    finally:
        u = httpx.post(f"{gateway_url}/v1/admin/backends/mock-b/undrain", headers=h)
        assert u.status_code == 200 and u.json()["drained"] is False
    assert httpx.post(f"{gateway_url}/v1/chat/completions", json=chat,
                      headers=bearer(api_key)).status_code == 200
    missing = httpx.post(f"{gateway_url}/v1/admin/backends/nope/drain", headers=h)
    assert missing.status_code == 404

