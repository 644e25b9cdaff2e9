"""Settings of conversation history (``LLMP_CONVERSATION_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConversationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_CONVERSATION_", env_file=".env",
                                      extra="ignore", frozen=True)

    retention_days: int | None = Field(90, gt=0)
    """Conversations not touched for this long are deleted (a tenant's ``retention_days`` wins);
    None keeps them until deleted."""
    retention_batch: int = Field(500, gt=0)
    """Conversations deleted per statement by the retention timer."""
    retention_max_batches: int = Field(200, gt=0)
    """Batches per timer run at most (the rest waits for the next run)."""
    max_messages: int = Field(1000, gt=0)
    """Most recent messages read when a request names a conversation (before token truncation)."""
    reserve_tokens: int = Field(1024, gt=0)
    """Tokens kept free for the answer when a request sets no ``max_tokens`` (at most a quarter of
    the model's context)."""
    page_max: int = Field(100, gt=0)
    """Largest page of ``GET /v1/conversations``."""
