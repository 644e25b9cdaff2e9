"""``/v1/conversations`` request models."""

from __future__ import annotations

from pydantic import Field

from functions.protocol.common import StrictModel


class CreateConversation(StrictModel):
    title: str | None = Field(None, max_length=256)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    """Up to 16 string pairs, as in OpenAI's metadata."""
