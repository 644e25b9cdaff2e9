import httpx


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
