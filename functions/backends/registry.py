"""Which backend class serves which tier. A new tier registers here like the defaults do."""

from __future__ import annotations

import httpx

from functions.backends.base import Backend
from functions.backends.embedding import EmbeddingBackend
from functions.backends.openai_compat import LlamaCppBackend, OpenAICompatBackend, VllmBackend
from models.catalog import BackendSpec, Tier

BACKEND_TYPES: dict[Tier, type[OpenAICompatBackend]] = {
    "gguf": LlamaCppBackend,
    "vllm": VllmBackend,
    "embedding": EmbeddingBackend,
}


def build_backend(tier: Tier, spec: BackendSpec, client: httpx.AsyncClient,
                  read_timeout_s: float) -> Backend:
    return BACKEND_TYPES[tier](spec, client, read_timeout_s)
