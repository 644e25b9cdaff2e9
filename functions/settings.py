"""The gateway's settings, read from the environment (``LLMP_*``, plus ``DATABASE_URL``/``REDIS_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.catalog import DEFAULT_CATALOG


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_", env_file=".env", extra="ignore",
                                      frozen=True)

    environment: Literal["local", "azure"] = "local"
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "LLMP_DATABASE_URL"))
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "LLMP_REDIS_URL"))
    catalog_path: Path = DEFAULT_CATALOG

    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    """Largest accepted request body; larger ones get HTTP 413 before they are read whole."""

    backend_connect_timeout_s: float = Field(2.0, gt=0)
    backend_read_timeout_s: float = Field(120.0, gt=0)
    """Longest wait for a non-streamed answer, or between two events of a stream."""
    backend_max_connections: int = Field(256, gt=0)
    backend_cooldown_s: float = Field(5.0, ge=0)
    """How long a backend that refused a connection is skipped while another is healthy."""

    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, gt=0)
    db_timeout_s: float = Field(5.0, gt=0)
    migrate_on_start: bool = True

    redis_timeout_s: float = Field(0.5, gt=0)
    key_cache_ttl_s: int = Field(60, ge=0)
    """API-key lookups are cached in Redis this long; revocation also deletes the entry."""

    log_level: str = "INFO"

    @model_validator(mode="after")
    def _no_local_defaults_in_azure(self) -> GatewaySettings:
        if self.environment != "local":
            missing = [n for n, v in (("DATABASE_URL", self.database_url),
                                      ("REDIS_URL", self.redis_url)) if not v]
            if missing:
                raise ValueError(f"{', '.join(missing)} must be set outside local mode")
        return self
