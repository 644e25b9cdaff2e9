"""What every OpenAI request model shares: strict parsing and OpenAI-style messages for bad input."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.errors import InvalidRequest


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, raw: bytes) -> Self:
        """Parse a JSON body; any problem becomes :class:`InvalidRequest` naming the parameter."""
        try:
            data: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InvalidRequest(f"The request body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise invalid_request_from(e) from None


class StreamOptions(StrictModel):
    include_usage: bool = False


class SamplingParams(StrictModel):
    """Parameters shared by chat completions and completions."""

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(None, max_length=256)
    guardrails: dict[str, Any] | None = None
    """Extension: overrides of the tenant's guardrail policy, where the policy allows them."""

    EXTENSIONS: ClassVar[frozenset[str]] = frozenset({"guardrails", "conversation_id"})
    """Fields the gateway consumes and never forwards to a backend."""

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return v

    def upstream_body(self, served_model: str) -> dict[str, Any]:
        """The body sent to a backend: the same request, naming the backend's model, always
        asking for usage in streams (the gateway accounts for tokens)."""
        body = self.model_dump(exclude_none=True, exclude=set(self.EXTENSIONS))
        body["model"] = served_model
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def invalid_request_from(e: ValidationError) -> InvalidRequest:
    first = e.errors(include_url=False)[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}", param=param,
                              code="unknown_parameter")
    if first["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter")
    return InvalidRequest(f"Invalid value for '{param}': {first['msg']}.", param=param,
                          code="invalid_value")
