"""A tenant's cache policy (``tenants.cache_policy``, JSON; NULL means these defaults)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticPolicy(_Strict):
    enabled: bool = False
    """Off by default: a similar question is not always the same question."""
    threshold: float = Field(0.95, gt=0, le=1)
    """Cosine similarity of the last user messages' embeddings from which an answer is reused."""


class CachePolicy(_Strict):
    enabled: bool = True
    ttl_s: int = Field(3600, gt=0)
    """How long an answer is kept (capped by ``LLMP_CACHE_MAX_TTL_S``)."""
    nondeterministic: bool = False
    """Also cache sampled answers (temperature above 0 and no ``seed``): the same request then gets
    the same answer until the entry expires."""
    max_entry_bytes: int | None = Field(None, gt=0)
    """A smaller size limit than the platform's ``LLMP_CACHE_MAX_ENTRY_BYTES``."""
    semantic: SemanticPolicy = SemanticPolicy()
