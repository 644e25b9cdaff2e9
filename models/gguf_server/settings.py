"""Settings of one GGUF server process (``LLMP_GGUF_*``)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_threads() -> int:
    return max(1, (os.cpu_count() or 1))


class GGUFServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_GGUF_", extra="ignore", frozen=True)

    model: str = Field(min_length=1)
    """A GGUF path, or ``package:DIST`` for a GGUF shipped in an installed Python distribution."""
    alias: str = Field(min_length=1)
    """The model name this server answers to (the catalog alias)."""
    version: str | None = None
    """The version label reported by ``/health`` and ``system_fingerprint``; defaults to the file name."""
    host: str = "127.0.0.1"
    port: int = Field(8081, gt=0, lt=65536)

    slots: int = Field(4, ge=1, le=64)
    """Requests decoded at once. Each slot is one llama.cpp context over the same mmapped weights."""
    threads: int = Field(default_factory=_default_threads, ge=1)
    """CPU threads shared by all slots; each slot gets max(1, threads // slots)."""
    n_ctx: int = Field(2048, ge=64)
    """Context length of each slot (prompt plus answer)."""
    n_batch: int = Field(256, ge=1)
    max_queue: int = Field(64, ge=0)
    """Requests allowed to wait for a free slot; beyond that the server answers 503."""
    default_max_tokens: int = Field(256, ge=1)
    log_level: str = "INFO"

    @property
    def threads_per_slot(self) -> int:
        return max(1, self.threads // self.slots)
