"""The embedding tier's backend (``models/embedding_server``): ``/v1/embeddings`` only, plus the
token counts RAG chunking needs (``/tokenize``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from functions.backends.base import Endpoint
from functions.backends.openai_compat import OpenAICompatBackend
from functions.errors import BackendError, InvalidRequest


class EmbeddingBackend(OpenAICompatBackend):
    """An embedding server: it embeds, it never generates (a chat or completion request routed to
    it is a 400 naming ``model``, before anything is sent)."""

    kind = "embedding"

    def check(self, endpoint: Endpoint, body: dict[str, Any]) -> None:
        if endpoint != "embeddings":
            raise InvalidRequest(f"The model '{body.get('model')}' is an embedding model; it serves "
                                 "/v1/embeddings only.", param="model", code="model_not_supported")

    async def tokenize(self, model: str, texts: Sequence[str]) -> list[int]:
        """Token counts of ``texts`` by the model's own tokenizer (no special tokens)."""
        r = await self._post(self._base.removesuffix("v1/") + "tokenize",
                             {"model": model, "input": list(texts)})
        try:
            counts = orjson.loads(r.content)["counts"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise BackendError(f"Model backend {self.name} sent an invalid tokenize answer.") from e
        if not isinstance(counts, list) or len(counts) != len(texts):
            raise BackendError(f"Model backend {self.name} counted the wrong number of texts.")
        return [int(c) for c in counts]
