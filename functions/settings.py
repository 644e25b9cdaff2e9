"""The gateway's settings, read from the environment (``LLMP_*``, plus ``DATABASE_URL``/``REDIS_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    embedding_alias: str | None = "all-minilm-l6-v2"
    """The catalog alias (an embedding tier) that embeds for RAG and the semantic cache, over HTTP:
    the gateway never loads torch. Empty: sentence-transformers in the gateway process
    (``LLMP_RAG_EMBEDDING_MODEL``; tests and benchmarks only)."""
    embedding_max_inputs: int = Field(2048, gt=0)
    """Inputs per ``/v1/embeddings`` request (OpenAI's limit); more is a 400 naming ``input``."""

    db_pool_min: int = Field(1, ge=0)
    db_pool_max: int = Field(10, gt=0)
    db_timeout_s: float = Field(5.0, gt=0)
    migrate_on_start: bool = True

    redis_timeout_s: float = Field(0.5, gt=0)
    key_cache_ttl_s: int = Field(60, ge=0)
    """API-key lookups are cached in Redis this long; revocation also deletes the entry."""

    log_level: str = "INFO"

    # tenancy (docs/tenancy.md) ------------------------------------------------------------------
    tenant_cache_ttl_s: float = Field(10.0, ge=0)
    """Tenant records (allowed models, limits, budget) are cached per process this long."""
    limit_default_max_tokens: int = Field(1024, gt=0)
    """Tokens reserved for the answer when a request sets no ``max_tokens`` (capped by the
    model's context length); the real count is settled after the answer."""
    spend_flush_s: float = Field(1.0, gt=0)
    """The spend ledger is written to Postgres in batches at least this often (and on shutdown)."""
    spend_batch_max: int = Field(500, gt=0)
    spend_buffer_max: int = Field(100_000, gt=0)
    """Entries kept in memory while Postgres is unreachable; past this the oldest are dropped
    (and logged)."""
    admin_role: str = "LLMP.Admin"
    """The Entra app role that grants the platform's admin role (keys get it with --role admin)."""
    entra_tenant_id: str | None = None
    """The Entra directory (tenant) id whose tokens are accepted; unset: API keys only."""
    entra_audiences: Annotated[list[str], NoDecode] = []
    """Accepted ``aud`` values (the API's application id URI and/or client id); comma-separated."""
    entra_issuers: Annotated[list[str], NoDecode] = []
    """Accepted ``iss`` values; default: the v2.0 and v1.0 issuers of ``entra_tenant_id``."""
    entra_jwks_url: str | None = None
    """Default: ``https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys``."""
    entra_clock_skew_s: int = Field(60, ge=0)
    entra_jwks_ttl_s: int = Field(3600, gt=0)
    entra_jwks_min_refresh_s: float = Field(30.0, ge=0)
    """An unknown ``kid`` refreshes the JWKS at most this often (so forged kids cannot hammer it)."""
    entra_timeout_s: float = Field(3.0, gt=0)
    key_vault_url: str | None = None
    """With it, the settings named in ``key_vault_secrets`` are read from this vault at start-up."""
    key_vault_secrets: dict[str, str] = {}
    """Setting or env name -> Key Vault secret name, e.g. ``{"DATABASE_URL": "llmp-database-url"}``
    (JSON). Names that are not gateway settings (backend API keys) are put in the environment."""
    key_vault_refresh_s: float = Field(3600.0, gt=0)
    # end tenancy --------------------------------------------------------------------------------

    @field_validator("entra_audiences", "entra_issuers", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @property
    def entra_enabled(self) -> bool:
        return bool(self.entra_tenant_id and self.entra_audiences)

    @property
    def entra_issuer_list(self) -> list[str]:
        tid = self.entra_tenant_id
        return self.entra_issuers or [f"https://login.microsoftonline.com/{tid}/v2.0",
                                      f"https://sts.windows.net/{tid}/"]

    @property
    def entra_jwks(self) -> str:
        return self.entra_jwks_url or (
            f"https://login.microsoftonline.com/{self.entra_tenant_id}/discovery/v2.0/keys")

    @model_validator(mode="after")
    def _no_local_defaults_in_azure(self) -> GatewaySettings:
        if self.environment != "local":
            missing = [n for n, v in (("DATABASE_URL", self.database_url),
                                      ("REDIS_URL", self.redis_url)) if not v]
            if missing:
                raise ValueError(f"{', '.join(missing)} must be set outside local mode")
        return self
