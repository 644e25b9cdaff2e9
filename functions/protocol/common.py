"""What every OpenAI request model shares: strict parsing, OpenAI-style messages for bad input, and
the three ways a field of OpenAI's schema is treated (``docs/api-fields.md`` has the whole table):

- **passed on** to the tier (sampling, tools, formats), after the capability check
  (:mod:`functions.capabilities`);
- **accepted and dropped**: fields that change nothing for a self-hosted tier (``metadata``,
  ``store``, service tier, user ids, cache keys). They are removed from the body sent upstream and
  named in the ``x-llmp-ignored-params`` response header;
- **refused** with a 400 naming the parameter when a value would change the answer and no tier can
  honour it (audio output, web search, ``best_of`` > 1).

Fields outside the schema are a 400 ``unknown_parameter``, as OpenAI answers them.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.errors import InvalidRequest

IGNORED_HEADER = "x-llmp-ignored-params"


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


class OpenModel(BaseModel):
    """A nested object of OpenAI's schema that the gateway passes on as it came (tool definitions,
    schemas): unknown keys are kept, never refused."""

    model_config = ConfigDict(extra="allow", frozen=True)


class StreamOptions(StrictModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None
    """Obfuscation pads chunks against side channels on OpenAI's network; accepted, no effect."""


def unsupported(param: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' is not supported: {why}", param=param,
                          code="unsupported_parameter")


class SamplingParams(StrictModel):
    """Parameters shared by chat completions and completions."""

    model: str = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=128)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(None, max_length=256)
    guardrails: dict[str, Any] | None = None
    """Extension: overrides of the tenant's guardrail policy, where the policy allows them."""

    EXTENSIONS: ClassVar[frozenset[str]] = frozenset({"guardrails", "conversation_id", "rag"})
    """Fields the gateway consumes and never forwards to a backend."""
    DROPPED: ClassVar[frozenset[str]] = frozenset({"user"})
    """Fields of OpenAI's schema that change nothing for a self-hosted tier: accepted, not sent."""

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (v or {}).items():
            if not token.lstrip("-").isdigit():
                raise ValueError(f"keys must be token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError("biases must be between -100 and 100")
        return v

    @property
    def ignored(self) -> list[str]:
        """The dropped fields this request set (named in the ``x-llmp-ignored-params`` header)."""
        return sorted(f for f in self.DROPPED if getattr(self, f, None) is not None)

    @property
    def streaming(self) -> bool:
        return bool(self.stream)

    def upstream_body(self, served_model: str) -> dict[str, Any]:
        """The body sent to a backend: the same request, naming the backend's model, always
        asking for usage in streams (the gateway accounts for tokens)."""
        body = self.model_dump(exclude_none=True, exclude=_not_sent(type(self)))
        body["model"] = served_model
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream_options", None)
        return body

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


@functools.cache
def _not_sent(cls: type[SamplingParams]) -> set[str]:
    """The fields a request class never sends upstream (extensions and dropped fields), computed
    once per class rather than once per request. Never mutated by callers."""
    return set(cls.EXTENSIONS | cls.DROPPED)


def invalid_request_from(e: ValidationError) -> InvalidRequest:
    errors = e.errors(include_url=False)
    # A union (content parts, tool choice) reports one error per branch: name the deepest path.
    first = max(errors, key=lambda err: len(err["loc"])) if all(
        err["type"] != "extra_forbidden" for err in errors) else next(
        err for err in errors if err["type"] == "extra_forbidden")
    param = _param(first["loc"]) or None
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {param}", param=param,
                              code="unknown_parameter")
    if first["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter")
    msg = first["msg"].removeprefix("Value error, ")
    return InvalidRequest(f"Invalid value for '{param}': {msg}.", param=param,
                          code="invalid_value")


def _param(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "content")`` -> ``messages[0].content``. Union branch names
    (``list[...]``, ``str``) are left out, and a tagged union's tag (which repeats the field it
    selects, ``image_url.image_url``) is named once."""
    out, last = "", None
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif "[" in p or "(" in p or p in _TYPE_NAMES or p == last:
            continue
        else:
            out += f".{p}" if out else p
        last = p
    return out


_TYPE_NAMES = frozenset({"str", "int", "bool", "float", "dict", "list", "none"})
