"""``POST /v1/completions`` request model (legacy text completions): the whole request schema of
OpenAI's spec."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from functions.protocol.common import SamplingParams, unsupported


class CompletionRequest(SamplingParams):
    prompt: str | list[str] | list[int] | list[list[int]] = Field(min_length=1)
    """Text, texts, token ids or lists of token ids (ids of the tier's own tokenizer)."""
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    best_of: int | None = Field(None, ge=1, le=20)

    DROPPED: ClassVar[frozenset[str]] = SamplingParams.DROPPED | frozenset({"best_of"})
    """``best_of`` is accepted only where it changes nothing (at most ``n``)."""

    @model_validator(mode="after")
    def _honourable(self) -> CompletionRequest:
        if self.best_of is not None and self.best_of > max(1, self.n or 1):
            raise unsupported("best_of", "server-side best-of sampling is not served; send 'n' and "
                              "choose among the choices.")
        return self

    @property
    def token_prompt(self) -> bool:
        return isinstance(self.prompt, list) and bool(self.prompt) and not isinstance(
            self.prompt[0], str)

    @property
    def prompts(self) -> list[str]:
        """The text prompts (empty for token prompts)."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        return [p for p in self.prompt if isinstance(p, str)]
