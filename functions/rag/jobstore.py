"""Ingestion jobs in Azure (``LLMP_RAG_JOBS=queue``): rows in Postgres, ids on an Azure Storage queue.

``submit`` writes the job (with the upload's bytes) to ``rag_jobs`` and sends ``{"job_id": ...}`` to
the queue (``LLMP_RAG_QUEUE_NAME``, ``rag-ingest``); the ``rag_ingest_job`` queue trigger
(:mod:`functions.blueprint`) calls :meth:`QueuedJobs.run` on whichever instance takes the message,
and ``GET /v1/rag/jobs/{id}`` reads the row, so nothing depends on the instance that took the upload.

``run`` is idempotent: a finished job is skipped (the queue delivers at least once). A transient
failure (a 503: Qdrant or the database unreachable) puts the job back to ``queued`` and raises, so
the queue delivers it again, up to ``LLMP_RAG_JOB_MAX_ATTEMPTS``; any other failure, or the last
attempt, is recorded on the row as an OpenAI-shaped error. The bytes are cleared when the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from psycopg.types.json import Jsonb

from functions.errors import DependencyUnavailable, LlmpError, NotFound, error_body
from functions.rag.jobs import Runner, Upload
from functions.rag.settings import RagSettings

if TYPE_CHECKING:
    from azure.identity.aio import DefaultAzureCredential
    from azure.storage.queue.aio import QueueClient

    from functions.db import Database

log = logging.getLogger(__name__)

_COLUMNS = ("id, tenant_id, kb, filename, bytes, status, result, error, created_at, finished_at")


def job_id_of(body: bytes | str) -> str:
    """The job id of a queue message (``{"job_id": "job-..."}``)."""
    try:
        value = orjson.loads(body)["job_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not a RAG job message: {body[:200]!r}") from e
    if not isinstance(value, str):
        raise ValueError(f"not a RAG job message: {body[:200]!r}")
    return value


def _public(row: tuple[Any, ...]) -> dict[str, Any]:
    jid, _tenant, kb, filename, size, status, result, error, created, finished = row
    return {"id": jid, "object": "rag.ingest_job", "status": status, "kb": kb,
            "filename": filename, "bytes": size, "created_at": _epoch(created),
            "finished_at": _epoch(finished) if finished else None, "result": result,
            "error": error}


def _epoch(ts: datetime) -> int:
    return int(ts.timestamp())


class QueuedJobs:
    def __init__(self, db: Callable[[], Database], run: Runner, settings: RagSettings) -> None:
        self._db = db
        self._run = run
        self.settings = settings
        self._queue: QueueClient | None = None
        self._credential: DefaultAzureCredential | None = None
        self._queue_ready = False
        self._lock = asyncio.Lock()

    # --- the queue (built on first use: the SDK is not imported by `import function_app`) ---

    def _client(self) -> QueueClient:
        if self._queue is None:
            from azure.storage.queue import TextBase64EncodePolicy
            from azure.storage.queue.aio import QueueClient

            s = self.settings
            policy = TextBase64EncodePolicy()  # what the Functions host expects (messageEncoding)
            if s.queue_connection_string:
                self._queue = QueueClient.from_connection_string(
                    s.queue_connection_string, s.queue_name, message_encode_policy=policy,
                    retry_total=2)  # on the request path: 503 rather than a long wait
            else:
                from azure.identity.aio import DefaultAzureCredential

                if not s.queue_account_url:
                    raise DependencyUnavailable("The ingestion queue is not configured.")
                self._credential = DefaultAzureCredential()
                self._queue = QueueClient(s.queue_account_url, s.queue_name,
                                          credential=self._credential, message_encode_policy=policy,
                                          retry_total=2)  # on the request path: 503 rather than a long wait
        return self._queue

    async def _send(self, job_id: str) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._client()
        body = orjson.dumps({"job_id": job_id}).decode()
        try:
            try:
                await client.send_message(body)
            except ResourceNotFoundError:  # Azurite: the queue is created here; in Azure, Terraform
                from azure.core.exceptions import ResourceExistsError

                async with self._lock:
                    with contextlib.suppress(ResourceExistsError):
                        await client.create_queue()
                await client.send_message(body)
        except AzureError as e:
            raise DependencyUnavailable("The ingestion queue is unavailable.") from e

    # --- the HTTP side ---

    async def submit(self, upload: Upload) -> dict[str, Any]:
        job_id = "job-" + uuid.uuid4().hex
        async with self._db().connection() as conn:
            await conn.execute(
                "DELETE FROM rag_jobs WHERE finished_at < now() - make_interval(secs => %s)",
                (self.settings.job_ttl_s,))
            cur = await conn.execute(
                "INSERT INTO rag_jobs (id, tenant_id, kb, filename, media_type, doc_id, title, data,"
                f" bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (job_id, upload.tenant, upload.kb, upload.filename, upload.media_type,
                 upload.doc_id, upload.title, upload.data, len(upload.data)))
            row = await cur.fetchone()
        assert row is not None
        try:
            await self._send(job_id)
        except BaseException:
            # no message, no job: the client gets the error and may upload again
            async with self._db().connection() as conn:
                await conn.execute("DELETE FROM rag_jobs WHERE id = %s", (job_id,))
            raise
        return _public(row)

    async def get(self, tenant: str, job_id: str) -> dict[str, Any]:
        async with self._db().connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM rag_jobs WHERE id = %s AND tenant_id = %s"
                                     " AND (finished_at IS NULL OR finished_at >="
                                     " now() - make_interval(secs => %s))",
                                     (job_id, tenant, self.settings.job_ttl_s))
            row = await cur.fetchone()
        if row is None:  # another tenant's job does not exist
            raise NotFound(f"No ingestion job '{job_id}'.", param="job_id")
        return _public(row)

    # --- the queue trigger's side ---

    async def run(self, job_id: str, attempt: int = 1) -> str:
        """Run the job (the body of the ``rag_ingest_job`` trigger); returns its final status, or
        ``skipped`` when it is unknown or already finished."""
        async with self._db().connection() as conn:
            cur = await conn.execute(
                "UPDATE rag_jobs SET status = 'running', started_at = now(),"
                " attempts = attempts + 1 WHERE id = %s AND status IN ('queued', 'running')"
                " AND data IS NOT NULL"
                " RETURNING tenant_id, kb, filename, data, media_type, doc_id, title", (job_id,))
            row = await cur.fetchone()
        if row is None:
            log.info("rag job skipped", extra={"job_id": job_id})
            return "skipped"
        tenant, kb, filename, data, media_type, doc_id, title = row
        upload = Upload(tenant, kb, filename, bytes(data), media_type, doc_id, title)
        try:
            result = await self._run(upload)
        except Exception as e:
            status = e.status if isinstance(e, LlmpError) else 500
            if status == 503 and attempt < self.settings.job_max_attempts:
                async with self._db().connection() as conn:
                    await conn.execute("UPDATE rag_jobs SET status = 'queued' WHERE id = %s"
                                       " AND status = 'running'", (job_id,))
                log.warning("rag job will be retried", extra={"job_id": job_id, "attempt": attempt})
                raise
            await self._finish(job_id, "failed", None, error_body(e)["error"])
            log.warning("rag job failed", extra={"job_id": job_id, "error": str(e)[:200]})
            return "failed"
        await self._finish(job_id, "succeeded", result, None)
        return "succeeded"

    async def _finish(self, job_id: str, status: str, result: dict[str, Any] | None,
                      error: dict[str, Any] | None) -> None:
        async with self._db().connection() as conn:
            await conn.execute(
                "UPDATE rag_jobs SET status = %s, result = %s, error = %s, data = NULL,"
                " finished_at = now() WHERE id = %s",
                (status, Jsonb(result) if result is not None else None,
                 Jsonb(error) if error is not None else None, job_id))

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
        if self._credential is not None:
            await self._credential.close()
            self._credential = None
