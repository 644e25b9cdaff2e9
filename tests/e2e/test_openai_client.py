"""The official ``openai`` client against the real gateway and the real GGUF server (SmolLM2-135M)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(gateway_url: str, api_key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0) as c:
        yield c


def test_chat_non_stream(client: OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=16, temperature=0,
                                       seed=7)
    assert r.model == MODEL
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.completion_tokens <= 16
    again = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=16,
                                           temperature=0, seed=7)
    assert again.choices[0].message.content == r.choices[0].message.content


def test_chat_stream_with_usage(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=MSG, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices
                and c.choices[0].finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    whole = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=12,
                                           temperature=0)
    assert whole.choices[0].message.content == text  # greedy: streamed == whole


def test_stop_and_top_p(client: OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=30, temperature=0,
                                       top_p=0.9, stop=["."])
    assert "." not in (r.choices[0].message.content or "")


def test_completions(client: OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5)
    assert r.choices[0].text and r.usage is not None
    streamed = list(client.completions.create(model=MODEL, prompt="The sky is", max_tokens=5,
                                              stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices)


def test_responses_name_the_model_version(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSG, max_tokens=2)
    version = raw.headers["x-llmp-model-version"]
    assert version.endswith(".gguf")
    assert raw.parse().system_fingerprint == version
    with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MSG, max_tokens=2, stream=True) as streamed:
        assert streamed.headers["x-llmp-model-version"] == version


def test_models(client: OpenAI) -> None:
    assert MODEL in [m.id for m in client.models.list()]


def test_wrong_key(gateway_url: str) -> None:
    with (OpenAI(base_url=f"{gateway_url}/v1", api_key="sk-llmp-nope", max_retries=0) as c,
          pytest.raises(openai.AuthenticationError)):
        c.models.list()


def test_unknown_model(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-99", messages=MSG)


def test_bad_parameter(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=MSG, temperature=5)
    assert e.value.param == "temperature"  # type: ignore[attr-defined]


def test_unknown_parameter(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument"):
        client.chat.completions.create(model=MODEL, messages=MSG, extra_body={"wat": 1})


def test_oversized_request(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": "x" * 70_000}])
    assert e.value.status_code == 413


def test_prompt_over_context_is_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model=MODEL, messages=[
            {"role": "user", "content": "word " * 3000}])


@pytest.mark.parametrize(("model", "error"), [
    ("mock-500", openai.InternalServerError), ("dead", openai.InternalServerError)])
def test_backend_failures(client: OpenAI, model: str, error: type[Exception]) -> None:
    with pytest.raises(error) as e:
        client.chat.completions.create(model=model, messages=MSG)
    assert e.value.status_code in (502, 503)  # type: ignore[attr-defined]


def test_backend_timeout_is_504(gateway_settings, api_key: str) -> None:  # type: ignore[no-untyped-def]
    from functions.asgi import create_app
    from functions.gateway import Gateway
    from tests.support.servers import serve_asgi

    settings = gateway_settings.model_copy(update={"backend_read_timeout_s": 0.5})
    with serve_asgi(create_app(Gateway(settings))) as url, \
            OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0) as c, \
            pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="mock-slow", messages=MSG)
    assert e.value.status_code == 504


def test_error_mid_stream_reaches_the_client(client: OpenAI) -> None:
    with pytest.raises(openai.APIError, match="backend"):
        list(client.chat.completions.create(model="mock-midstream-error", messages=MSG,
                                            stream=True))


def test_concurrent_streams(gateway_url: str, api_key: str) -> None:
    import concurrent.futures

    def one(i: int) -> str:
        with httpx.Client(timeout=60) as h:
            r = h.post(f"{gateway_url}/v1/chat/completions",
                       headers={"authorization": f"Bearer {api_key}"},
                       json={"model": MODEL, "messages": MSG, "max_tokens": 8, "stream": True})
            return r.text

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    assert all(t.rstrip().endswith("data: [DONE]") for t in results)


def test_conversation_id_and_cached_stream(client: OpenAI, gateway_url: str, api_key: str) -> None:
    conv = httpx.post(f"{gateway_url}/v1/conversations",
                      headers={"authorization": f"Bearer {api_key}"}).json()["id"]
    first = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=8, temperature=0,
                                           extra_body={"conversation_id": conv})
    stored = httpx.get(f"{gateway_url}/v1/conversations/{conv}",
                       headers={"authorization": f"Bearer {api_key}"}).json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == first.choices[0].message.content
    msg = [{"role": "user", "content": "Name a colour."}]
    live = list(client.chat.completions.create(model=MODEL, messages=msg, max_tokens=8,
                                               temperature=0, stream=True))
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=msg, max_tokens=8, temperature=0, stream=True)
    assert raw.headers["x-cache"] == "hit"
    replayed = list(raw.parse())
    assert [c.choices[0].delta.content for c in replayed if c.choices] == [
        c.choices[0].delta.content for c in live if c.choices]
