"""Settings of the response cache (``LLMP_CACHE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_CACHE_", env_file=".env", extra="ignore",
                                      frozen=True)

    enabled: bool = True
    """The platform switch; each tenant's ``cache_policy`` decides within it."""
    max_ttl_s: int = Field(7 * 86_400, gt=0)
    """No tenant's entries live longer than this, whatever its policy says."""
    max_entry_bytes: int = Field(256 * 1024, gt=0)
    """Largest entry stored (a tenant's policy may set a smaller limit)."""
    policy_cache_ttl_s: float = Field(30.0, ge=0)
    """A tenant's cache policy is cached in the process this long."""
    version_ttl_s: float = Field(1.0, ge=0)
    """The model version of an alias, as last seen by any gateway, is re-read from Redis after this
    long (the bound on how late one instance learns a swap another instance saw)."""
    semantic_max_entries: int = Field(256, gt=0)
    """Vectors kept per semantic partition (tenant, model, version, system prompt, tools,
    parameters): the most recent ones."""
    semantic_load_timeout_s: float = Field(60.0, gt=0)
    """Loading torch and the embedding model (a few seconds, once per process)."""
    semantic_timeout_s: float = Field(2.0, gt=0)
    """Longest an embedding may take; past it the semantic lookup is skipped."""
