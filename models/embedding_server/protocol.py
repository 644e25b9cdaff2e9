"""The embedding server's request model: OpenAI's ``CreateEmbeddingRequest``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

Inputs = list[str] | list[list[int]]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    truncate: bool = False
    """llmp extension: cut inputs longer than the model takes to its limit (what sentence-transformers
    does in-process) instead of a 400; the gateway's RAG and semantic cache ask for it."""

    @field_validator("input", mode="before")
    @classmethod
    def _shape(cls, v: Any) -> Any:
        return check_input_shape(v)

    def inputs(self) -> Inputs:
        """One list: strings, or token id lists (a single token array is one input)."""
        v = self.input
        if isinstance(v, str):
            return [v]
        if v and isinstance(v[0], int):
            return [v]
        return v  # type: ignore[return-value]  # a list of token ids was handled above


def check_input_shape(v: Any) -> Any:
    """A string, strings, token ids, or lists of token ids; none empty, no mixing."""
    if isinstance(v, str):
        if not v:
            raise ValueError("an input string must not be empty")
        return v
    if not isinstance(v, list) or not v:
        raise ValueError("input must be a non-empty string, array of strings, array of token ids "
                         "or array of token id arrays")
    if all(isinstance(x, str) for x in v):
        if not all(v):
            raise ValueError("an input string must not be empty")
        return v
    if all(_is_id(x) for x in v):
        return v
    if all(isinstance(x, list) and x and all(_is_id(t) for t in x) for x in v):
        return v
    raise ValueError("input must be a string, an array of strings, an array of token ids or an "
                     "array of token id arrays (not mixed, none empty)")


def _is_id(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
