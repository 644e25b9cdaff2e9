"""Ingestion jobs run off the request: a queue and one worker task on the gateway's event loop.

The HTTP handler answers 202 with the job id; ``GET /v1/rag/jobs/{id}`` polls it. Jobs live in the
process that took them (``llmp serve`` runs one gateway process) and are forgotten ``ttl_s`` after
they finish. This is ``LLMP_RAG_JOBS=local`` (``make run``); in Azure (``LLMP_RAG_JOBS=queue``) jobs
live in Postgres and run in a queue-triggered function: :mod:`functions.rag.jobstore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from functions.errors import NotFound, error_body

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "succeeded", "failed"]


@dataclass(slots=True)
class Upload:
    tenant: str
    kb: str
    filename: str
    data: bytes
    media_type: str | None
    doc_id: str | None = None
    title: str | None = None


@dataclass(slots=True)
class Job:
    id: str
    upload: Upload
    status: Status = "queued"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "rag.ingest_job", "status": self.status,
                "kb": self.upload.kb, "filename": self.upload.filename,
                "bytes": len(self.upload.data), "created_at": int(self.created_at),
                "finished_at": int(self.finished_at) if self.finished_at else None,
                "result": self.result, "error": self.error}


Runner = Callable[[Upload], Awaitable[dict[str, Any]]]


class Jobs(Protocol):
    """What the HTTP handlers use: both job backends answer with the same job JSON."""

    async def submit(self, upload: Upload) -> dict[str, Any]: ...

    async def get(self, tenant: str, job_id: str) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class JobQueue:
    def __init__(self, run: Runner, ttl_s: float) -> None:
        self._run = run
        self._ttl = ttl_s
        self._jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, upload: Upload) -> dict[str, Any]:
        return self.submit_job(upload).public()

    async def get(self, tenant: str, job_id: str) -> dict[str, Any]:
        return self.get_job(tenant, job_id).public()

    def submit_job(self, upload: Upload) -> Job:
        self._expire()
        job = Job("job-" + uuid.uuid4().hex, upload)
        self._jobs[job.id] = job
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._work(self._queue), name="llmp-rag-worker")
        self._queue.put_nowait(job)
        return job

    def get_job(self, tenant: str, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or job.upload.tenant != tenant:  # another tenant's job does not exist
            raise NotFound(f"No ingestion job '{job_id}'.", param="job_id")
        return job

    async def run_one(self, job: Job) -> None:
        job.status = "running"
        try:
            job.result = await self._run(job.upload)
            job.status = "succeeded"
        except Exception as e:  # noqa: BLE001 - the job records its failure, the worker goes on
            job.error = error_body(e)["error"]
            job.status = "failed"
        finally:
            job.upload.data = b""  # the bytes are no longer needed
            job.finished_at = time.time()

    async def _work(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            await self.run_one(job)
            queue.task_done()

    async def join(self) -> None:
        if self._queue is not None:
            await self._queue.join()

    def _expire(self) -> None:
        now = time.time()
        for jid in [j.id for j in self._jobs.values()
                    if j.finished_at is not None and now - j.finished_at > self._ttl]:
            del self._jobs[jid]

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
