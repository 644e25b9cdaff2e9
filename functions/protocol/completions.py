"""``POST /v1/completions`` request model (legacy text completions)."""

from __future__ import annotations

from pydantic import Field

from functions.protocol.common import SamplingParams


class CompletionRequest(SamplingParams):
    prompt: str | list[str] = Field(min_length=1)
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
