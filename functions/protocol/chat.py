"""``POST /v1/chat/completions`` request model: the whole request schema of OpenAI's spec.

Messages and content parts are typed (the gateway reads and rewrites them); tool definitions,
``response_format`` and ``prediction`` are passed on as they came. See :mod:`functions.protocol.common`
for how each field is treated.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from functions.errors import InvalidRequest
from functions.protocol.common import OpenModel, SamplingParams, StrictModel, unsupported
from functions.protocol.rag import RagOptions


class TextPart(StrictModel):
    type: Literal["text"]
    text: str


class RefusalPart(StrictModel):
    """An assistant turn that refused (sent back in the history)."""

    type: Literal["refusal"]
    refusal: str

    @property
    def text(self) -> str:
        return self.refusal


class ImagePart(StrictModel):
    type: Literal["image_url"]
    image_url: dict[str, Any]


class AudioPart(StrictModel):
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


class FilePart(StrictModel):
    type: Literal["file"]
    file: dict[str, Any]


ContentPart = Annotated[TextPart | RefusalPart | ImagePart | AudioPart | FilePart,
                        Field(discriminator="type")]
MEDIA_PARTS = (ImagePart, AudioPart, FilePart)


class ToolFunction(StrictModel):
    name: str
    arguments: str


class ToolCall(StrictModel):
    id: str
    type: Literal["function"] = "function"
    function: ToolFunction


class ChatMessage(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    """Kept as the client sent them (validated as :class:`ToolCall`): what reaches the model."""
    tool_call_id: str | None = None
    refusal: str | None = None
    function_call: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None

    @field_validator("tool_calls")
    @classmethod
    def _tool_calls(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for i, call in enumerate(v or []):
            try:
                ToolCall.model_validate(call)
            except ValidationError as e:
                err = e.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"tool_calls[{i}].{where}: {err['msg']}") from None
        return v

    def text(self, sep: str = "") -> str:
        """The message's text: the string, or its text and refusal parts joined by ``sep``."""
        if isinstance(self.content, list):
            return sep.join(p.text for p in self.content if isinstance(p, TextPart | RefusalPart))
        return self.content or ""

    @model_validator(mode="after")
    def _by_role(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs 'tool_call_id'")
        if self.role != "assistant" and self.content is None:
            raise ValueError(f"a {self.role} message needs 'content'")
        return self


class FunctionDefinition(OpenModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(StrictModel):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(StrictModel):
    type: Literal["custom"]
    custom: dict[str, Any]


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]
TOOLS: TypeAdapter[list[Tool]] = TypeAdapter(list[Tool])
"""Tool definitions rebuilt from dicts (after the input guardrails masked a description)."""


class ResponseFormat(OpenModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema(self) -> ResponseFormat:
        if self.type == "json_schema":
            if not isinstance(self.json_schema, dict) or not self.json_schema.get("name"):
                raise ValueError("a json_schema response format needs json_schema.name")
            if not isinstance(self.json_schema.get("schema", {}), dict):
                raise ValueError("json_schema.schema must be an object")
        return self


class ChatCompletionRequest(SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # accepted, dropped: they change nothing for a self-hosted tier
    metadata: dict[str, str] | None = Field(None, max_length=16)
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = Field(None, max_length=64)
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    """Self-hosted tiers here are not reasoning models: no reasoning tokens, nothing to constrain."""
    verbosity: Literal["low", "medium", "high"] | None = None
    """A style hint to models trained on it; no tier's model is."""
    prediction: dict[str, Any] | None = None
    """Predicted outputs make answers faster, never different: dropped."""
    modalities: list[Literal["text", "audio"]] | None = None
    # refused unless harmless: they would change the answer and no tier can honour them
    audio: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    # llmp extensions (``extra_body`` in the OpenAI SDK), never sent to a backend
    rag: RagOptions | None = None
    """Answer from a knowledge base."""
    conversation_id: str | None = Field(None, min_length=1, max_length=64)
    """A stored conversation whose history is prepended and which gets the new turns."""

    DROPPED: ClassVar[frozenset[str]] = SamplingParams.DROPPED | frozenset({
        "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
        "prompt_cache_retention", "prompt_cache_options", "reasoning_effort", "verbosity",
        "prediction", "modalities"})

    @model_validator(mode="after")
    def _honourable(self) -> ChatCompletionRequest:
        if self.modalities and "audio" in self.modalities:
            raise unsupported("modalities", "audio output is not served by any tier; ask for "
                              "[\"text\"].")
        if self.audio is not None:
            raise unsupported("audio", "audio output is not served by any tier.")
        if self.web_search_options is not None:
            raise unsupported("web_search_options", "no tier searches the web; use 'rag' with a "
                              "knowledge base.")
        if self.moderation is not None:
            raise unsupported("moderation", "moderation is set by the tenant's guardrail policy "
                              "(see docs/guardrails.md).")
        if self.functions is not None or self.function_call is not None:
            param = "functions" if self.functions is not None else "function_call"
            raise unsupported(param, "the deprecated function-calling fields are not served; send "
                              "'tools' and 'tool_choice'.")
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequest("'top_logprobs' needs 'logprobs': true.", param="top_logprobs",
                                 code="invalid_value")
        if isinstance(self.tool_choice, dict) and not self.tools:
            raise unsupported("tool_choice", "a named tool_choice needs 'tools'.")
        return self

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def json_mode(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    def upstream_body(self, served_model: str) -> dict[str, Any]:
        body = super().upstream_body(served_model)
        # Newer clients send max_completion_tokens; every backend understands max_tokens.
        if "max_completion_tokens" in body:
            body.setdefault("max_tokens", body.pop("max_completion_tokens"))
        return body
