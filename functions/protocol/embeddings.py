"""``POST /v1/embeddings`` request model (OpenAI's ``CreateEmbeddingRequest``)."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, StrictInt, StrictStr, field_validator

from functions.protocol.common import StrictModel
from models.embedding_server.protocol import check_input_shape


class EmbeddingRequest(StrictModel):
    model: str = Field(min_length=1)
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    """A string, strings, token ids of the model's own tokenizer, or lists of them (as vLLM)."""
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)
    guardrails: dict[str, Any] | None = None
    """Extension: overrides of the tenant's guardrail policy, where the policy allows them."""

    EXTENSIONS: ClassVar[frozenset[str]] = frozenset({"guardrails"})

    @field_validator("input", mode="before")
    @classmethod
    def _shape(cls, v: Any) -> Any:
        return check_input_shape(v)

    @property
    def count(self) -> int:
        """Number of inputs (a single string or token array is one)."""
        v = self.input
        return 1 if isinstance(v, str) or isinstance(v[0], int) else len(v)

    @property
    def texts(self) -> list[str] | None:
        """The input strings; None for token arrays (no text to check)."""
        v = self.input
        if isinstance(v, str):
            return [v]
        return [x for x in v if isinstance(x, str)] if isinstance(v[0], str) else None

    @property
    def token_arrays(self) -> list[list[int]]:
        v = self.input
        if isinstance(v, str) or isinstance(v[0], str):
            return []
        return [v] if isinstance(v[0], int) else v

    def estimated_tokens(self) -> int:
        """Tokens to reserve before the tier counts them: one per 4 bytes of text (it errs high),
        the exact length of token arrays."""
        if (texts := self.texts) is not None:
            return max(1, math.ceil(len(orjson.dumps(texts)) / 4))
        return sum(len(a) for a in self.token_arrays)

    def upstream_body(self, served_model: str) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True, exclude=set(self.EXTENSIONS))
        body["model"] = served_model
        return body
