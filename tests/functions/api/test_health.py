import time
from pathlib import Path

import httpx

from functions.asgi import create_app
from functions.gateway import Gateway
from functions.settings import GatewaySettings
from tests.support.servers import serve_asgi


def test_health_needs_no_key(gateway_url: str) -> None:
    r = httpx.get(f"{gateway_url}/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_checks_dependencies(gateway_url: str) -> None:
    body = httpx.get(f"{gateway_url}/ready").json()
    assert body["status"] == "ready"
    assert body["checks"]["postgres"] == "ok" and body["checks"]["redis"] == "ok"
    assert body["checks"]["guardrails"] == "ok"


def test_not_ready_until_the_guardrail_models_load(gateway_settings: GatewaySettings) -> None:
    from functions.guardrails.settings import GuardrailSettings

    gw = Gateway(gateway_settings, guardrail_settings=GuardrailSettings(spacy_model="/nonexistent"))
    with serve_asgi(create_app(gw)) as url:
        deadline = time.monotonic() + 30
        while (checks := httpx.get(f"{url}/ready", timeout=10).json()["checks"])["guardrails"] \
                == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        r = httpx.get(f"{url}/ready", timeout=10)
    assert r.status_code == 503 and checks["guardrails"].startswith("error")


def test_not_ready_when_redis_and_postgres_are_down(dead_url: str, catalog_path: Path) -> None:
    port = dead_url.rsplit(":", 1)[1]
    settings = GatewaySettings(database_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                               redis_url=f"redis://127.0.0.1:{port}", catalog_path=catalog_path,
                               db_timeout_s=1, redis_timeout_s=0.2)
    with serve_asgi(create_app(Gateway(settings))) as url:
        r = httpx.get(f"{url}/ready", timeout=10)
        assert httpx.get(f"{url}/health").status_code == 200
        key = httpx.post(f"{url}/v1/chat/completions", timeout=10,
                         headers={"authorization": "Bearer sk-llmp-x"}, json={})
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["postgres"].startswith("error") and checks["redis"].startswith("error")
    assert key.status_code == 503 and key.json()["error"]["code"] == "service_unavailable"
