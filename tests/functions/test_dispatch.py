"""Dispatch with fallback, over real backends on loopback (mock server and a dead port)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from functions.backends import build_backend
from functions.dispatch import Dispatcher
from functions.errors import BackendUnavailable, ModelNotFound
from functions.protocol.chat import ChatCompletionRequest
from functions.routing.router import Router
from functions.routing.settings import RoutingSettings
from models.catalog import parse_catalog
from tests.conftest import catalog_yaml


@pytest.fixture
async def dispatcher(mock_url: str, dead_url: str) -> AsyncIterator[Dispatcher]:
    catalog = parse_catalog(catalog_yaml(None, mock_url, dead_url), {})
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, connect=1)) as client:
        backends = {m.alias: [build_backend(m.tier, b, client, 5) for b in m.backends]
                    for m in catalog.models}
        router = Router(backends, RoutingSettings(), None)
        yield Dispatcher(catalog, backends, router)
        await router.aclose()


def req(model: str, **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.parse(orjson.dumps(
        {"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
         **extra}))


async def test_unknown_alias(dispatcher: Dispatcher) -> None:
    with pytest.raises(ModelNotFound):
        await dispatcher.complete("chat/completions", req("nope"))


async def test_falls_back_to_the_next_backend(dispatcher: Dispatcher) -> None:
    backend, result = await dispatcher.complete("chat/completions", req("mock-fallback"))
    assert backend.name == "mock-b"
    assert result.body["model"] == "mock-fallback"


async def test_an_open_breaker_keeps_requests_off_a_backend(dispatcher: Dispatcher) -> None:
    router = dispatcher.router
    for _ in range(router.settings.breaker_failures):
        router.failed("dead-a", BackendUnavailable("refused"))
    assert router.breakers["dead-a"].state(time.monotonic()) == "open"
    for _ in range(5):
        routed, _ = await dispatcher.complete("chat/completions", req("mock-fallback"))
        assert routed.name == "mock-b" and routed.retries == 0


async def test_all_down_is_503(dispatcher: Dispatcher) -> None:
    with pytest.raises(BackendUnavailable):
        await dispatcher.complete("chat/completions", req("dead"))
    with pytest.raises(BackendUnavailable):
        await dispatcher.stream("chat/completions", req("dead", stream=True))


async def test_stream_falls_back_before_the_first_token(dispatcher: Dispatcher) -> None:
    backend, body, result = await dispatcher.stream("chat/completions",
                                                    req("mock-fallback", stream=True))
    raw = b"".join([c async for c in body])
    assert backend.name == "mock-b"
    assert raw.endswith(b"data: [DONE]\n\n")
    assert b'"usage"' not in raw  # not asked for: taken, not sent
    assert result.usage is not None and result.usage.completion_tokens == 3


async def test_stream_usage_chunk_when_asked(dispatcher: Dispatcher) -> None:
    _, body, _ = await dispatcher.stream(
        "chat/completions", req("mock", stream=True, stream_options={"include_usage": True}))
    raw = b"".join([c async for c in body])
    events = [e for e in raw.split(b"\n\n") if e]
    assert b'"usage"' in events[-2] and events[-1] == b"data: [DONE]"


@pytest.mark.parametrize("model", ["mock-midstream-error", "mock-drop"])
async def test_failure_after_first_token_is_an_error_event(dispatcher: Dispatcher,
                                                           model: str) -> None:
    _, body, result = await dispatcher.stream("chat/completions", req(model, stream=True))
    events = [e for e in b"".join([c async for c in body]).split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    err = orjson.loads(events[-2].removeprefix(b"data: "))
    assert err["error"]["type"] == "server_error"
    assert result.error is not None
    assert sum(b'"content":"tok ' in e for e in events) == 2


async def test_events_before_an_error_in_the_same_read_are_sent() -> None:
    from functions.dispatch import StreamResult, _relay

    class OneRead:
        async def batches(self) -> AsyncIterator[list[bytes]]:
            yield [b'{"choices": [{"delta": {"content": "a"}}]}', b'{"error": {"message": "x"}}']

        async def aclose(self) -> None:
            self.closed = True

    up = OneRead()
    it = up.batches()
    first = await anext(it)
    raw = b"".join([c async for c in _relay(up, it, first, False, StreamResult())])
    assert raw.index(b'"content": "a"') < raw.index(b'"error"')
    assert raw.endswith(b"data: [DONE]\n\n") and up.closed


async def test_timeout_before_the_first_event_with_no_other_replica_is_504(mock_url: str,
                                                                         dead_url: str) -> None:
    from functions.errors import BackendTimeout

    catalog = parse_catalog(catalog_yaml(None, mock_url, dead_url), {})
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, connect=1)) as client:
        backends = {m.alias: [build_backend(m.tier, b, client, 0.3) for b in m.backends]
                    for m in catalog.models}
        router = Router(backends, RoutingSettings(), None)
        d = Dispatcher(catalog, backends, router)
        with pytest.raises(BackendTimeout):
            await d.stream("chat/completions", req("mock-slow", stream=True))
        name = backends["mock-slow"][0].name
        assert router.stats[name].failures == 1  # counted towards its breaker
        assert router.breakers[name].state(time.monotonic()) == "closed"  # once is not enough
        await router.aclose()


async def test_answers_name_the_alias_not_the_served_model(dispatcher: Dispatcher) -> None:
    _, result = await dispatcher.complete("chat/completions", req("mock-fallback"))
    assert result.body["model"] == "mock-fallback"
    assert orjson.loads(result.content)["model"] == "mock-fallback"
    _, body, _ = await dispatcher.stream("chat/completions", req("mock-fallback", stream=True))
    events = [e for e in b"".join([c async for c in body]).split(b"\n\n") if e]
    assert all(orjson.loads(e[6:])["model"] == "mock-fallback" for e in events[:-1])


async def test_a_broken_usage_chunk_still_ends_the_stream_properly() -> None:
    from functions.dispatch import StreamResult, _relay

    class Odd:

        async def batches(self) -> AsyncIterator[list[bytes]]:
            yield [b'{"choices": [], "usage": {"prompt_tokens": "n/a"}}', b'{"usage": broken']

        async def aclose(self) -> None:
            pass

    up = Odd()
    it = up.batches()
    first = await anext(it)
    result = StreamResult()
    raw = b"".join([c async for c in _relay(up, it, first, True, result)])
    assert raw.endswith(b"data: [DONE]\n\n") and b'"error"' in raw
    assert result.usage is not None and result.usage.prompt_tokens == 0
