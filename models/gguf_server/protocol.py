"""Requests the GGUF server accepts: the OpenAI chat and completions bodies, as far as llama.cpp
serves them. Unknown fields are ignored (as llama.cpp's own server does); unsupported ones are refused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.gguf_server.engine import Prompt, Sampling


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)

    def sampling(self, default_max_tokens: int) -> Sampling:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return Sampling(max_tokens=self.max_tokens or default_max_tokens,
                        temperature=self.temperature, top_p=self.top_p, stop=stop, seed=self.seed,
                        presence_penalty=self.presence_penalty,
                        frequency_penalty=self.frequency_penalty)

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class ChatRequest(_Request):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = Field(None, max_length=0)

    def prompt(self) -> Prompt:
        messages = []
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, list):  # text parts -> one string
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            messages.append({**m, "content": content or ""})
        return Prompt(messages=messages)

    def sampling(self, default_max_tokens: int) -> Sampling:
        s = super().sampling(default_max_tokens)
        if self.max_tokens is None and self.max_completion_tokens is not None:
            return replace(s, max_tokens=self.max_completion_tokens)
        return s


class CompletionRequest(_Request):
    prompt: str | list[str]

    def as_prompt(self) -> Prompt:
        if isinstance(self.prompt, list):
            if len(self.prompt) != 1:
                raise ValueError("exactly one prompt is supported per request")
            return Prompt(text=self.prompt[0])
        return Prompt(text=self.prompt)
