"""The OpenAI-protocol backend against a real (mock) server on loopback, and a dead port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from functions.backends.openai_compat import VllmBackend
from functions.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    UpstreamRejected,
)
from models.catalog import BackendSpec

MSG = [{"role": "user", "content": "x"}]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, connect=1)) as c:
        yield c


def backend(url: str, client: httpx.AsyncClient, read_timeout: float = 5) -> VllmBackend:
    return VllmBackend(BackendSpec(name="b", url=url), client, read_timeout)  # type: ignore[arg-type]


async def test_complete(mock_url: str, client: httpx.AsyncClient) -> None:
    result = await backend(mock_url, client).complete(
        "chat/completions", {"model": "mock", "messages": MSG, "max_tokens": 3})
    assert result.body["usage"]["completion_tokens"] == 3
    assert result.content.startswith(b"{")


async def test_stream_yields_payloads_without_done(mock_url: str,
                                                   client: httpx.AsyncClient) -> None:
    s = await backend(mock_url, client).open_stream(
        "chat/completions", {"model": "mock", "messages": MSG, "max_tokens": 3, "stream": True})
    events = [e async for batch in s.batches() for e in batch]
    await s.aclose()
    assert len(events) == 5  # role chunk, 3 tokens, finish
    assert all(e.startswith(b"{") for e in events)


@pytest.mark.parametrize(("model", "error"), [
    ("mock-500", BackendError), ("mock-503", BackendUnavailable), ("mock-400", UpstreamRejected)])
async def test_status_errors(mock_url: str, client: httpx.AsyncClient, model: str,
                             error: type[Exception]) -> None:
    b = backend(mock_url, client)
    with pytest.raises(error):
        await b.complete("chat/completions", {"model": model, "messages": MSG})
    with pytest.raises(error):
        await b.open_stream("chat/completions", {"model": model, "messages": MSG, "stream": True})


async def test_upstream_400_keeps_the_backend_message(mock_url: str,
                                                      client: httpx.AsyncClient) -> None:
    with pytest.raises(UpstreamRejected) as e:
        await backend(mock_url, client).complete("chat/completions",
                                                 {"model": "mock-400", "messages": MSG})
    assert e.value.status == 400 and e.value.code == "context_length_exceeded"


async def test_unreachable(dead_url: str, client: httpx.AsyncClient) -> None:
    with pytest.raises(BackendUnavailable):
        await backend(dead_url, client).complete("chat/completions", {"model": "m"})
    assert not await backend(dead_url, client).healthy()


async def test_read_timeout(mock_url: str, client: httpx.AsyncClient) -> None:
    with pytest.raises(BackendTimeout):
        await backend(mock_url, client, read_timeout=0.3).complete(
            "chat/completions", {"model": "mock-slow", "messages": MSG})


async def test_dropped_stream_is_an_error(mock_url: str, client: httpx.AsyncClient) -> None:
    s = await backend(mock_url, client).open_stream(
        "chat/completions", {"model": "mock-drop", "messages": MSG, "stream": True})
    with pytest.raises(BackendError):
        _ = [b async for b in s.batches()]
    await s.aclose()


async def test_healthy(mock_url: str, client: httpx.AsyncClient) -> None:
    assert await backend(mock_url, client).healthy()


