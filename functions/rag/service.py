"""The RAG service: ingest, delete and list documents of a tenant's knowledge bases, and retrieve.

Ingestion writes nothing until the document has been parsed, chunked and embedded; a changed
document's new chunks are written before the old version's are deleted, and a failed write removes
what it wrote. Every point carries the tenant and the knowledge base, and every read filters on them.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from functions.errors import InvalidRequest, NotFound
from functions.pools import WorkerPool
from functions.rag.chunking import Chunk, chunk_sections, counted_texts
from functions.rag.embedder import LocalEmbedder, Reranker, TextEmbedder
from functions.rag.jobs import JobQueue, Jobs, Upload
from functions.rag.parsing import parse
from functions.rag.retrieval import Mode, Passage, RankParams, second_stage
from functions.rag.settings import RagSettings
from functions.rag.store import ChunkStore, StoredChunk, point_id

if TYPE_CHECKING:
    from functions.db import Database
    from functions.rag.jobstore import QueuedJobs  # psycopg: not at Functions start-up

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def check_name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise InvalidRequest(f"Invalid {what} '{value[:140]}': use 1 to 128 letters, digits, '.', "
                             "'_' or '-', starting with a letter or digit.", param=what)
    return value


def doc_id_from_filename(filename: str) -> str:
    name = _UNSAFE.sub("-", PurePosixPath(filename).name).strip("-._")[:128]
    return name or "document"


@dataclass(frozen=True, slots=True)
class IngestResult:
    document_id: str
    kb: str
    version: str
    title: str
    chunks: int
    status: Literal["created", "replaced", "unchanged"]

    def public(self) -> dict[str, Any]:
        return {"object": "rag.document", **asdict(self)}


class RagService:
    def __init__(self, settings: RagSettings, db: Callable[[], Database] | None = None,
                 embedder: Callable[[], TextEmbedder] | None = None) -> None:
        self.settings = settings
        self._db = db
        self._embedder = embedder

    @functools.cached_property
    def jobs(self) -> Jobs:
        """Where 202 uploads go: the in-process worker, or Postgres and the Storage queue."""
        return self.queued_jobs if self.settings.jobs == "queue" else self.local_jobs

    @functools.cached_property
    def local_jobs(self) -> JobQueue:
        return JobQueue(self.ingest_upload, self.settings.job_ttl_s)

    @functools.cached_property
    def queued_jobs(self) -> QueuedJobs:
        """The ``rag_jobs`` table and the queue; the ``rag_ingest_job`` trigger runs these jobs."""
        if self._db is None:
            raise RuntimeError("queued RAG jobs need the database (RagService(settings, db=...))")
        from functions.rag.jobstore import QueuedJobs

        return QueuedJobs(self._db, self.ingest_upload, self.settings)

    @functools.cached_property
    def cpu(self) -> WorkerPool:
        """Parsing, chunking and ranking: RAG's own pool, not the guardrails' or Qdrant's."""
        return WorkerPool("rag", self.settings.cpu_workers)

    @functools.cached_property
    def embedder(self) -> TextEmbedder:
        """The gateway's (the embedding tier, over HTTP), else sentence-transformers in-process."""
        if self._embedder is not None:
            return self._embedder()
        return LocalEmbedder(self.settings.embedding_model, self.settings.embedding_batch_size)

    @functools.cached_property
    def store(self) -> ChunkStore:
        return ChunkStore(self.settings, self.embedder.slug, self.embedder.dim)

    @functools.cached_property
    def reranker(self) -> Reranker | None:
        return Reranker(self.settings.reranker_model) if self.settings.reranker_model else None

    @property
    def default_mode(self) -> Mode:
        return "rerank" if self.settings.reranker_model else self.settings.mode

    # --- ingestion ---

    async def ingest_upload(self, u: Upload) -> dict[str, Any]:
        result = await self.ingest(u.tenant, u.kb, u.filename, u.data, u.media_type, u.doc_id,
                                   u.title)
        return result.public()

    async def ingest(self, tenant: str, kb: str, filename: str, data: bytes,
                     media_type: str | None = None, doc_id: str | None = None,
                     title: str | None = None) -> IngestResult:
        check_name(kb, "kb")
        doc_id = check_name(doc_id, "document_id") if doc_id else doc_id_from_filename(filename)
        s = self.settings
        version = hashlib.sha256(data + f"|{s.chunk_tokens}|{s.chunk_overlap_tokens}|{title}".encode()
                                 ).hexdigest()[:24]
        parsed = await self.cpu.run(parse, filename, data, media_type)  # 400/422, nothing written
        store = self.store
        previous = await store.call(store.payloads, store.filter(tenant, kb, doc_id, first_chunk=True), 1)
        if previous and previous[0].get("version") == version:
            p = previous[0]
            return IngestResult(doc_id, kb, version, str(p.get("title", "")),
                                int(p.get("chunks", 0)), "unchanged")
        title = title or parsed.title
        texts = counted_texts(parsed.sections)  # counted in one call (one request to the tier)
        counts = dict(zip(texts, await self.embedder.count_tokens(texts), strict=True))
        chunks = await self.cpu.run(chunk_sections, parsed.sections, s.chunk_tokens,
                                    s.chunk_overlap_tokens, counts.__getitem__)
        vectors = await self.embedder.embed([c.embed_text for c in chunks])
        now = int(time.time())
        points = [StoredChunk(point_id(tenant, kb, doc_id, version, c.position), v.tolist(),
                              _payload(tenant, kb, doc_id, version, title, filename, c, len(chunks),
                                       now))
                  for c, v in zip(chunks, vectors, strict=True)]
        try:
            await store.call(store.upsert, points)
        except BaseException:
            # remove whatever part of this version was written (best effort: Qdrant may be down)
            await asyncio.shield(self._forget_version(tenant, kb, doc_id, version))
            raise
        await store.call(store.delete, store.filter(tenant, kb, doc_id, not_version=version))
        return IngestResult(doc_id, kb, version, title, len(chunks),
                            "replaced" if previous else "created")

    async def _forget_version(self, tenant: str, kb: str, doc_id: str, version: str) -> None:
        flt = self.store.filter(tenant, kb, doc_id, version=version)
        try:
            await self.store.call(self.store.delete, flt)
        except Exception:  # noqa: BLE001 - the write already failed; its error is what counts
            return

    async def delete_document(self, tenant: str, kb: str, doc_id: str) -> int:
        store = self.store
        flt = store.filter(tenant, check_name(kb, "kb"), check_name(doc_id, "document_id"))
        n = await store.call(store.count, flt)
        if not n:
            raise NotFound(f"No document '{doc_id}' in knowledge base '{kb}'.", param="document_id")
        await store.call(store.delete, flt)
        return n

    async def delete_kb(self, tenant: str, kb: str) -> int:
        store = self.store
        flt = store.filter(tenant, check_name(kb, "kb"))
        n = await store.call(store.count, flt)
        if not n:
            raise NotFound(f"No knowledge base '{kb}'.", param="kb")
        await store.call(store.delete, flt)
        return n

    async def documents(self, tenant: str, kb: str | None = None) -> list[dict[str, Any]]:
        """One entry per document (its first chunk's payload), of one knowledge base or all."""
        store = self.store
        rows = await store.call(store.payloads, store.filter(
            tenant, check_name(kb, "kb") if kb else None, first_chunk=True))
        return sorted(({"object": "rag.document", "document_id": p["doc_id"], "kb": p["kb"],
                        "title": p.get("title"), "filename": p.get("filename"),
                        "version": p.get("version"), "chunks": p.get("chunks"),
                        "ingested_at": p.get("ingested_at")} for p in rows),
                      key=lambda d: (d["kb"], d["document_id"]))

    async def is_empty(self, tenant: str, kb: str) -> bool:
        store = self.store
        return not await store.call(store.count, store.filter(tenant, kb))

    # --- retrieval ---

    async def retrieve(self, tenant: str, kb: str, query: str, top_k: int | None = None,
                       mode: Mode | None = None, min_score: float | None = None) -> list[Passage]:
        s, store = self.settings, self.store
        check_name(kb, "kb")
        vector = (await self.embedder.embed([query]))[0].tolist()
        hits = await store.call(store.search, vector, store.filter(tenant, kb), s.candidates)
        params = RankParams(top_k or s.top_k, s.min_score if min_score is None else min_score,
                            s.dedup_threshold, s.rrf_k, s.lexical_max_df)
        return await self.cpu.run(second_stage, query, hits, mode or self.default_mode, params,
                                  self.reranker)

    async def aclose(self) -> None:
        for name in ("local_jobs", "queued_jobs"):
            if name in self.__dict__:
                await self.__dict__[name].aclose()
        if "store" in self.__dict__:
            await self.cpu.run(self.store.close)
        self.cpu.close()


def _payload(tenant: str, kb: str, doc_id: str, version: str, title: str, filename: str,
             c: Chunk, total: int, now: int) -> dict[str, Any]:
    return {"tenant": tenant, "kb": kb, "doc_id": doc_id, "version": version, "title": title,
            "filename": filename, "chunk": c.position, "chunks": total, "heading": c.heading,
            "text": c.text, "text_hash": hashlib.sha256(c.embed_text.encode()).hexdigest()[:32],
            "ingested_at": now}
