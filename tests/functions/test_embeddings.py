"""The embedding dispatcher: fallback between an alias's backends, cool-down, typed refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from functions.backends import build_backend
from functions.embeddings import EmbeddingDispatcher
from functions.errors import BackendUnavailable, InvalidRequest, ModelNotFound
from models.catalog import parse_catalog
from tests.conftest import catalog_yaml


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, connect=1)) as c:
        yield c


def dispatcher(client: httpx.AsyncClient, mock_url: str, dead_url: str,
               embedding_url: str) -> EmbeddingDispatcher:
    catalog = parse_catalog(catalog_yaml(None, mock_url, dead_url, embedding_url), {})
    backends = {m.alias: [build_backend(m.tier, b, client, 30) for b in m.backends]
                for m in catalog.models if m.caps.embeddings}
    return EmbeddingDispatcher(catalog, backends, cooldown_s=60)


@pytest.mark.slow
async def test_fallback_then_cooldown(client: httpx.AsyncClient, mock_url: str, dead_url: str,
                                      embedding_url: str) -> None:
    d = dispatcher(client, mock_url, dead_url, embedding_url)
    backend, result = await d.embed("embedding-fallback", {"input": "hi"})
    assert backend.name == "embedding-b" and result.body["model"] == "embedding-fallback"
    assert len(result.body["data"][0]["embedding"]) == 384
    assert d._order("embedding-fallback")[0].name == "embedding-b"  # the dead one waits its cool-down
    assert await d.tokenize("embedding-fallback", ["hello world"]) == [2]
    with pytest.raises(BackendUnavailable):
        await d.embed("embedding-dead", {"input": "hi"})


async def test_refusals(client: httpx.AsyncClient, mock_url: str, dead_url: str) -> None:
    d = dispatcher(client, mock_url, dead_url, dead_url)
    with pytest.raises(ModelNotFound):
        d.model("nope")
    with pytest.raises(InvalidRequest) as e:
        d.model("mock")  # a chat model
    assert e.value.param == "model"
    assert d.model("all-minilm-l6-v2").caps.embedding_dimensions == 384
