"""The embedding tier seen from the gateway: alias -> its backends in order, a backend that failed
skipped for a cool-down, and the next one tried before the request fails (503).

Used by ``/v1/embeddings`` and by the gateway's own embedders (RAG ingestion and retrieval, the
semantic cache: :class:`functions.rag.embedder.HttpEmbedder`), so they all share one pool of
connections and one view of which backend is down. The chat dispatcher is not used: an embedding
answer is one JSON body, never a stream, and its request is not a sampling request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from functions.backends.base import Backend, Completion
from functions.backends.embedding import EmbeddingBackend
from functions.dispatch import RETRYABLE
from functions.errors import BackendUnavailable, InvalidRequest, LlmpError, ModelNotFound
from models.catalog import Catalog, ModelSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


class EmbeddingDispatcher:
    def __init__(self, catalog: Catalog, backends: Mapping[str, Sequence[Backend]],
                 cooldown_s: float) -> None:
        self.catalog = catalog
        self._backends = backends
        self._cooldown = cooldown_s
        self._down_until: dict[str, float] = {}

    def model(self, alias: str) -> ModelSpec:
        """The catalog entry of an embedding model: 404 for an unknown alias, 400 naming ``model``
        for one that does not embed (a chat model)."""
        spec = self.catalog.get(alias)
        if spec is None:
            raise ModelNotFound(f"The model '{alias}' does not exist or you do not have access to it.",
                                param="model")
        if not spec.caps.embeddings:
            raise InvalidRequest(f"The model '{alias}' does not serve embeddings.", param="model",
                                 code="model_not_supported")
        return spec

    def _order(self, alias: str) -> list[Backend]:
        now = time.monotonic()
        backends = self._backends.get(self.model(alias).alias, ())
        up = [b for b in backends if self._down_until.get(b.name, 0.0) <= now]
        return up + [b for b in backends if b not in up]

    async def _first(self, alias: str, call: Callable[[Backend], Awaitable[T]],
                     accept: Callable[[Backend], bool] = lambda b: True) -> tuple[Backend, T]:
        last: LlmpError | None = None
        for backend in self._order(alias):
            if not accept(backend):
                continue
            try:
                result = await call(backend)
            except RETRYABLE as e:
                log.warning("backend failed", extra={"backend": backend.name,
                                                     "error": type(e).__name__})
                self._down_until[backend.name] = time.monotonic() + self._cooldown
                last = e
                continue
            self._down_until.pop(backend.name, None)
            return backend, result
        raise last or BackendUnavailable("No backend is configured for this model.")

    async def embed(self, alias: str, body: dict[str, Any]) -> tuple[Backend, Completion]:
        """Send an embeddings body (``model`` set per backend); the answer names the alias."""
        async def call(backend: Backend) -> Completion:
            served = backend.served_model or alias
            backend.check("embeddings", body)
            result = await backend.complete("embeddings", {**body, "model": served})
            if served != alias:
                renamed = {**result.body, "model": alias}
                result = Completion(orjson.dumps(renamed), renamed, result.headers)
            return result

        return await self._first(alias, call)

    async def tokenize(self, alias: str, texts: Sequence[str]) -> list[int]:
        """Token counts by the model's tokenizer, from the first embedding server that answers."""
        async def call(backend: Backend) -> list[int]:
            assert isinstance(backend, EmbeddingBackend)
            return await backend.tokenize(backend.served_model or alias, texts)

        _, counts = await self._first(alias, call, lambda b: isinstance(b, EmbeddingBackend))
        return counts
