"""The embedding backend refuses to generate, before anything is sent."""

from __future__ import annotations

import httpx
import pytest

from functions.backends import build_backend
from functions.backends.embedding import EmbeddingBackend
from functions.errors import BackendUnavailable, InvalidRequest
from models.catalog import BackendSpec


async def test_only_embeddings() -> None:
    async with httpx.AsyncClient() as client:
        b = build_backend("embedding", BackendSpec(name="e", url="http://127.0.0.1:9"), client, 5)
        assert isinstance(b, EmbeddingBackend)
        b.check("embeddings", {"model": "m"})
        for endpoint in ("chat/completions", "completions"):
            with pytest.raises(InvalidRequest) as e:
                b.check(endpoint, {"model": "m"})  # type: ignore[arg-type]
            assert e.value.param == "model"
        with pytest.raises(BackendUnavailable):
            await b.tokenize("m", ["x"])
