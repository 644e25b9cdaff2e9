"""Settings of one GGUF server process (``LLMP_GGUF_*``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_threads() -> int:
    return max(1, (os.cpu_count() or 1))


class GGUFServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_GGUF_", extra="ignore", frozen=True)

    model: str = Field(min_length=1)
    """A GGUF path; ``package:DIST`` for a GGUF shipped in an installed Python distribution;
    ``assemble:MODULE`` for one a package assembles from chunk wheels (into ``cache_dir``); or
    ``blob:`` to serve the version the alias points at in Blob Storage, and follow it."""

    @property
    def from_blob(self) -> bool:
        return self.model == "blob:"
    alias: str = Field(min_length=1)
    """The model name this server answers to (the catalog alias)."""
    version: str | None = None
    """The version label reported by ``/health`` and ``system_fingerprint``; defaults to the file name."""
    chat_template_file: Path | None = None
    """A Jinja chat template for a GGUF that carries none (Gemma 3 270M's: models/templates/
    gemma3.jinja), when serving a file; a version from Blob carries its own."""
    host: str = "127.0.0.1"
    port: int = Field(8081, gt=0, lt=65536)

    slots: int = Field(4, ge=1, le=64)
    """Requests decoded at once. Each slot is one llama.cpp context over the same mmapped weights."""
    threads: int = Field(default_factory=_default_threads, ge=1)
    """CPU threads for decoding, shared by the requests decoding at the time: one request alone
    uses all of them, N requests threads // N each (at least one)."""
    n_ctx: int = Field(2048, ge=64)
    """Context length of each slot (prompt plus answer)."""
    n_batch: int = Field(256, ge=1)
    flash_attn: bool = True
    """llama.cpp flash attention; on by default as llama-server has it (faster decode here too)."""
    max_queue: int = Field(64, ge=0)
    """Requests allowed to wait for a free slot; beyond that the server answers 503."""
    default_max_tokens: int = Field(256, ge=1)

    # Blob Storage source (LLMP_GGUF_MODEL=blob:): see models/blob_store.py and docs/models.md
    cache_dir: Path = Path(".llmp/gguf-cache")
    """Local model cache (on AKS an emptyDir or node disk)."""
    poll_interval_s: float = Field(5.0, gt=0)
    """How often the alias pointer's ETag is checked; POST /admin/refresh checks at once."""
    keep_versions: int = Field(3, ge=1)
    """Versions kept in the cache for rollback."""
    min_free_bytes: int = Field(256 * 1024 * 1024, ge=0)
    """Free disk that a download must leave."""
    startup_backoff_max_s: float = Field(30.0, gt=0)
    refresh_token: str | None = None
    """If set, POST /admin/refresh needs ``?token=`` or ``x-llmp-refresh-token`` equal to it."""
    log_level: str = "INFO"
