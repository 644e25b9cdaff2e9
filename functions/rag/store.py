"""Chunks in Qdrant: one collection per embedding model, tenant and knowledge base on every point.

Local mode (``path=``) by default, a server (``LLMP_QDRANT_URL``) in production. The client is
synchronous and called from the store's own bounded pool (local mode computes in Python and would
otherwise hold the event loop). A server takes concurrent calls (the client's HTTP connection pool
is thread-safe): they run side by side, up to ``qdrant_workers``; only local mode, which is not
thread-safe, serializes them. Every failure to reach or use Qdrant becomes :class:`RagUnavailable`
(503).
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from functions.pools import WorkerPool
from functions.rag.errors import RagUnavailable
from functions.rag.settings import RagSettings

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

log = logging.getLogger(__name__)

T = TypeVar("T")
POINT_NAMESPACE = uuid.UUID("6f1c9a7e-2b1d-4c55-9a57-3f0a3d1c8e42")
_SCROLL_PAGE = 1024


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: str
    vector: list[float]
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any]
    vector: list[float]


def point_id(tenant: str, kb: str, doc_id: str, version: str, position: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}\x1f{kb}\x1f{doc_id}\x1f{version}\x1f{position}"))


class ChunkStore:
    def __init__(self, settings: RagSettings, model_slug: str, dim: int) -> None:
        self.settings = settings
        self.collection = f"{settings.collection_prefix}_{model_slug}_{dim}"
        self.dim = dim
        self.local = settings.qdrant_url is None
        self._lock = threading.Lock()
        """Local mode: every call. A server: only creating the collection, once."""
        self._ready = False
        self._pool = WorkerPool("qdrant", 1 if self.local else settings.qdrant_workers)

    @functools.cached_property
    def client(self) -> QdrantClient:
        from qdrant_client import QdrantClient

        s = self.settings
        if s.qdrant_url is None:
            s.qdrant_path.mkdir(parents=True, exist_ok=True)
            return QdrantClient(path=str(s.qdrant_path))
        # no version probe at construction: it is one more request, and only warns on failure
        return QdrantClient(url=s.qdrant_url, api_key=s.qdrant_api_key,
                            timeout=max(1, round(s.qdrant_timeout_s)), check_compatibility=False)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._pool.run(self._call, fn, *args)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        from qdrant_client.http.exceptions import ApiException

        try:
            if not self._ready:
                with self._lock:
                    if not self._ready:
                        self._ensure_collection()
            if self.local:
                with self._lock:
                    return fn(*args)
            return fn(*args)
        except (ApiException, OSError, RuntimeError) as e:
            log.warning("qdrant unavailable", extra={"error": type(e).__name__})
            raise RagUnavailable("The knowledge base service (Qdrant) is unavailable; try again "
                                 "later.") from e

    def _ensure_collection(self) -> None:
        from qdrant_client.http import models as qm

        c, s = self.client, self.settings
        if not c.collection_exists(self.collection):
            c.create_collection(
                self.collection,
                vectors_config=qm.VectorParams(size=self.dim, distance=qm.Distance.COSINE),
                hnsw_config=qm.HnswConfigDiff(m=s.hnsw_m, ef_construct=s.hnsw_ef_construct,
                                              payload_m=s.hnsw_m))
            if not self.local:  # payload indexes mean nothing to local mode (it scans)
                c.create_payload_index(self.collection, "tenant", qm.KeywordIndexParams(
                    type=qm.KeywordIndexType.KEYWORD, is_tenant=True))
                for name in ("kb", "doc_id"):
                    c.create_payload_index(self.collection, name, qm.PayloadSchemaType.KEYWORD)
                c.create_payload_index(self.collection, "chunk", qm.PayloadSchemaType.INTEGER)
        self._ready = True

    # --- operations (each runs in a worker thread through ``call``) ---

    def filter(self, tenant: str, kb: str | None = None, doc_id: str | None = None,
               first_chunk: bool = False, not_version: str | None = None,
               version: str | None = None) -> qm.Filter:
        from qdrant_client.http import models as qm

        must: list[qm.Condition] = [qm.FieldCondition(key="tenant", match=qm.MatchValue(value=tenant))]
        for key, value in (("kb", kb), ("doc_id", doc_id), ("version", version)):
            if value is not None:
                must.append(qm.FieldCondition(key=key, match=qm.MatchValue(value=value)))
        if first_chunk:
            must.append(qm.FieldCondition(key="chunk", match=qm.MatchValue(value=0)))
        must_not: list[qm.Condition] = []
        if not_version is not None:
            must_not.append(qm.FieldCondition(key="version", match=qm.MatchValue(value=not_version)))
        return qm.Filter(must=must, must_not=must_not or None)

    def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        from qdrant_client.http import models as qm

        for i in range(0, len(chunks), 256):
            self.client.upsert(self.collection, [
                qm.PointStruct(id=c.id, vector=c.vector, payload=c.payload)
                for c in chunks[i:i + 256]], wait=True)

    def delete(self, flt: qm.Filter) -> None:
        from qdrant_client.http import models as qm

        self.client.delete(self.collection, qm.FilterSelector(filter=flt), wait=True)

    def count(self, flt: qm.Filter) -> int:
        return int(self.client.count(self.collection, count_filter=flt, exact=True).count)

    def payloads(self, flt: qm.Filter, limit: int | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset: Any = None
        while True:
            page, offset = self.client.scroll(self.collection, scroll_filter=flt,
                                              limit=min(_SCROLL_PAGE, limit or _SCROLL_PAGE),
                                              offset=offset, with_payload=True, with_vectors=False)
            out.extend(p.payload or {} for p in page)
            if offset is None or (limit is not None and len(out) >= limit):
                return out

    def search(self, vector: list[float], flt: qm.Filter, limit: int) -> list[Hit]:
        from qdrant_client.http import models as qm

        res = self.client.query_points(
            self.collection, query=vector, query_filter=flt, limit=limit, with_payload=True,
            with_vectors=True,
            search_params=None if self.local else qm.SearchParams(hnsw_ef=self.settings.hnsw_ef))
        return [Hit(str(p.id), float(p.score), p.payload or {}, _dense(p.vector))
                for p in res.points]

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
        self._pool.close()


def _dense(vector: Any) -> list[float]:
    if isinstance(vector, dict):  # named vectors: this store uses the unnamed one
        vector = next(iter(vector.values()), [])
    return [float(x) for x in vector or []]
