"""Requests the GGUF server accepts: the OpenAI chat and completions bodies, as far as llama.cpp
serves them. Unknown fields are ignored (as llama.cpp's own server does); invalid ones are refused."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.gguf_server import grammars
from models.gguf_server import tools as toolkit
from models.gguf_server.engine import Prompt, Sampling


class ParamError(ValueError):
    """A request value the server cannot honour: a 400 naming ``param``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)

    model: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=64)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (v or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys must be token ids, got {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError("biases must be between -100 and 100")
        return v

    def _grammar(self) -> tuple[str | None, str]:
        return None, "response_format"

    def _logprobs(self) -> int | None:
        return None

    def _stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def sampling(self, default_max_tokens: int) -> Sampling:
        grammar, param = self._grammar()
        bias = tuple((int(t), b) for t, b in (self.logit_bias or {}).items())
        return Sampling(max_tokens=self.max_tokens or default_max_tokens,
                        temperature=self.temperature, top_p=self.top_p, stop=self._stops(),
                        seed=self.seed, presence_penalty=self.presence_penalty,
                        frequency_penalty=self.frequency_penalty, logit_bias=bias,
                        grammar=grammar, grammar_param=param, logprobs=self._logprobs())

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class ChatRequest(_Request):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @cached_property
    def tool_plan(self) -> toolkit.ToolPlan | None:
        """What the request's ``tools`` ask (raises :class:`ParamError`)."""
        try:
            return toolkit.plan(self.tools, self.tool_choice, self.parallel_tool_calls)
        except toolkit.ToolError as e:
            raise ParamError(str(e), e.param) from None

    @property
    def calls_tools(self) -> bool:
        p = self.tool_plan
        return p is not None and p.calls

    def prompt(self) -> Prompt:
        messages = []
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, list):  # text parts -> one string
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            messages.append({**m, "content": content or ""})
        p = self.tool_plan
        if p is not None or toolkit.has_tool_turns(messages):
            messages = toolkit.render(messages, p)
        return Prompt(messages=messages)

    def _grammar(self) -> tuple[str | None, str]:
        p = self.tool_plan
        if p is not None and p.calls:
            return p.grammar, "tools"
        return _response_format_grammar(self.response_format), "response_format"

    def _logprobs(self) -> int | None:
        if self.top_logprobs and not self.logprobs:
            raise ParamError("'top_logprobs' needs 'logprobs': true.", "top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None

    def _stops(self) -> tuple[str, ...]:
        # A stop sequence must not cut a tool call's JSON: with tools, stops are not applied.
        return () if self.calls_tools else super()._stops()

    def sampling(self, default_max_tokens: int) -> Sampling:
        s = super().sampling(default_max_tokens)
        if self.max_tokens is None and self.max_completion_tokens is not None:
            return replace(s, max_tokens=self.max_completion_tokens)
        return s


def _response_format_grammar(rf: dict[str, Any] | None) -> str | None:
    if rf is None:
        return None
    kind = rf.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return grammars.json_object()
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise ParamError("'response_format.json_schema' must be an object with a 'schema'.",
                             "response_format")
        try:
            return grammars.json_schema(spec.get("schema") or {})
        except grammars.GrammarError as e:
            raise ParamError(f"Invalid 'response_format': {e}.", "response_format") from None
    raise ParamError(f"Invalid 'response_format.type': {kind!r} (expected 'text', 'json_object' "
                     "or 'json_schema').", "response_format")


class CompletionRequest(_Request):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)

    def as_prompt(self) -> Prompt:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise ValueError("exactly one prompt is supported per request")
            return Prompt(text=self.prompt[0])
        return Prompt(text=self.prompt)

    def _logprobs(self) -> int | None:
        return self.logprobs
