import httpx


def test_unknown_path_is_openai_shaped_404(gateway_url: str) -> None:
    r = httpx.get(f"{gateway_url}/v1/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_wrong_method_is_405(gateway_url: str) -> None:
    r = httpx.get(f"{gateway_url}/v1/chat/completions")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
