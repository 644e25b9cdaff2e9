"""The ``rag`` extension field of ``POST /v1/chat/completions`` (``extra_body`` in the OpenAI SDK)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from functions.protocol.common import StrictModel


class RagOptions(StrictModel):
    kb: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """The tenant's knowledge base to answer from."""
    top_k: int | None = Field(None, ge=1, le=20)
    mode: Literal["dense", "hybrid", "rerank"] | None = None
    min_score: float | None = Field(None, ge=-1, le=1)
