import httpx
import pytest


def test_list_models_reads_the_catalog(gateway_url: str, api_key: str) -> None:
    r = httpx.get(f"{gateway_url}/v1/models", headers={"authorization": f"Bearer {api_key}"})
    data = r.json()["data"]
    by_id = {m["id"]: m for m in data}
    assert by_id["mock"]["price"] == {"input_per_1k": 0.5, "output_per_1k": 1.5}
    assert by_id["smollm2-135m"]["tier"] == "gguf"
    assert all(m["object"] == "model" for m in data)


def test_get_model(gateway_url: str, api_key: str) -> None:
    h = {"authorization": f"Bearer {api_key}"}
    assert httpx.get(f"{gateway_url}/v1/models/mock", headers=h).json()["id"] == "mock"
    r = httpx.get(f"{gateway_url}/v1/models/nope", headers=h)
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_models_require_a_key(gateway_url: str) -> None:
    assert httpx.get(f"{gateway_url}/v1/models").status_code == 401


def test_models_show_their_capabilities_and_match_the_spec(gateway_url: str, api_key: str) -> None:
    from tests.support import openapi

    h = {"authorization": f"Bearer {api_key}"}
    listing = httpx.get(f"{gateway_url}/v1/models", headers=h).json()
    assert not openapi.errors("ListModelsResponse", listing)
    caps = {m["id"]: m["capabilities"] for m in listing["data"]}
    assert caps["smollm2-135m"]["tools"] and caps["smollm2-135m"]["json_schema"]
    assert caps["smollm2-135m"]["max_n"] == 4  # one choice per slot of the test server
    assert not caps["smollm2-135m"]["echo"] and caps["mock"]["echo"]
    one = httpx.get(f"{gateway_url}/v1/models/smollm2-135m", headers=h).json()
    assert not openapi.errors("Model", one)


@pytest.mark.slow
def test_routes_are_listed_with_their_tiers(routed_gateway_url: str, postgres_url: str) -> None:
    from tests.support.tenancy import bearer, tenant_with_key

    _, key = tenant_with_key(postgres_url)
    data = {m["id"]: m for m in httpx.get(f"{routed_gateway_url}/v1/models",
                                          headers=bearer(key)).json()["data"]}
    auto = data["auto"]
    assert auto["object"] == "model" and auto["owned_by"] == "llmp" and auto["route"] is True
    assert auto["tiers"] == ["smollm2-135m", "gemma3-270m"] and auto["default_tier"] == "gemma3-270m"
    assert "route" not in data["smollm2-135m"]
    one = httpx.get(f"{routed_gateway_url}/v1/models/auto", headers=bearer(key)).json()
    assert one == auto
    # a key that may use no tier of a route does not see it
    _, narrow = tenant_with_key(postgres_url, key={"allowed_models": ["all-minilm-l6-v2"]})
    ids = {m["id"] for m in httpx.get(f"{routed_gateway_url}/v1/models",
                                      headers=bearer(narrow)).json()["data"]}
    assert ids == {"all-minilm-l6-v2"}
