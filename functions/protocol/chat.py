"""``POST /v1/chat/completions`` request model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from functions.protocol.common import SamplingParams, StrictModel
from functions.protocol.rag import RagOptions


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


class ChatMessage(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    rag: RagOptions | None = None
    """llmp extension: answer from a knowledge base (never sent to a backend)."""
    conversation_id: str | None = Field(None, min_length=1, max_length=64)
    """Extension: a stored conversation whose history is prepended and which gets the new turns."""

    def upstream_body(self, served_model: str) -> dict[str, Any]:
        body = super().upstream_body(served_model)
        body.pop("rag", None)
        # Newer clients send max_completion_tokens; every backend understands max_tokens.
        if "max_completion_tokens" in body:
            body.setdefault("max_tokens", body.pop("max_completion_tokens"))
        return body
