"""Large uploads in Azure (LLMP_RAG_JOBS=queue): the job in Postgres, its id on an Azurite queue, the
``rag_ingest_job`` trigger called as the Functions host would call it, with a real QueueMessage."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from functions.asgi import create_app
from functions.blueprint import build_blueprint
from functions.db import Database
from functions.errors import DependencyUnavailable, LlmpError
from functions.gateway import Gateway
from functions.rag.errors import RagUnavailable
from functions.rag.jobs import Upload
from functions.rag.jobstore import QueuedJobs
from functions.rag.settings import RagSettings
from functions.settings import GatewaySettings
from llmp_cli.local import azurite_queue_connection_string, free_port

TEXT = "\n\n".join(f"## Topic {i}\nParagraph {i} explains rule number {i} of the ledger archive. "
                   "It is long enough to make the upload pass the synchronous limit." * 2
                   for i in range(120)).encode()


def trigger(gw: Gateway) -> Any:
    app = func.FunctionApp()
    app.register_functions(build_blueprint(gw))
    fn = next(f for f in app.get_functions() if f.get_function_name() == "rag_ingest_job")
    return fn.get_user_function()


def receive(conn: str, queue: str) -> list[func.QueueMessage]:
    with QueueClient.from_connection_string(conn, queue,
                                            message_decode_policy=TextBase64DecodePolicy()) as q:
        out = []
        for m in q.receive_messages(max_messages=32, visibility_timeout=60):
            out.append(QueueMessage(id=m.id, body=m.content.encode(),
                                         dequeue_count=m.dequeue_count, pop_receipt=m.pop_receipt))
            q.delete_message(m)
        return out


def settings(tmp_path: Path, conn: str, queue: str) -> RagSettings:
    return RagSettings(qdrant_path=tmp_path / "qdrant", max_upload_bytes=256 * 1024,
                       sync_ingest_max_bytes=16 * 1024, jobs="queue",
                       queue_connection_string=conn, queue_name=queue)


def test_upload_queue_trigger_and_poll(gateway_settings: GatewaySettings, azurite_queue: str,
                                       api_key: str, other_api_key: str, tmp_path: Path) -> None:
    queue = f"rag-{uuid.uuid4().hex[:12]}"
    gw = Gateway(gateway_settings, rag_settings=settings(tmp_path, azurite_queue, queue))
    run_job = trigger(gw)

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(gw)),
                                     base_url="http://gw", timeout=120) as c:
            auth = {"authorization": f"Bearer {api_key}"}

            async def upload(name: str, data: bytes, **params: str) -> httpx.Response:
                return await c.post("/v1/rag/kbs/ledger/documents",
                                    params={"filename": name, **params}, content=data,
                                    headers={**auth, "content-type": "text/markdown"})

            r = await upload("ledger.md", TEXT)
            assert r.status_code == 202, r.text
            job = r.json()
            assert job["status"] == "queued" and job["bytes"] == len(TEXT)
            assert r.headers["location"] == f"/v1/rag/jobs/{job['id']}"
            assert set(job) == {"id", "object", "status", "kb", "filename", "bytes", "created_at",
                                "finished_at", "result", "error"}
            other = await c.get(f"/v1/rag/jobs/{job['id']}",
                                headers={"authorization": f"Bearer {other_api_key}"})
            assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"

            (msg,) = await asyncio.to_thread(receive, azurite_queue, queue)
            assert msg.get_json() == {"job_id": job["id"]}
            await run_job(msg)
            done = (await c.get(f"/v1/rag/jobs/{job['id']}", headers=auth)).json()
            assert done["status"] == "succeeded", done
            assert done["result"]["chunks"] > 10 and done["finished_at"] is not None
            await run_job(msg)  # delivered again: skipped, the result stays
            assert (await c.get(f"/v1/rag/jobs/{job['id']}", headers=auth)).json() == done
            hits = (await c.post("/v1/rag/kbs/ledger/query", headers=auth,
                                 json={"query": "rule number 42 of the ledger archive"})).json()
            assert hits["data"] and hits["data"][0]["document_id"] == "ledger.md"

            r = await upload("broken.pdf", b"%PDF-1.4 broken", **{"async": "true"})
            assert r.status_code == 202
            (msg,) = await asyncio.to_thread(receive, azurite_queue, queue)
            await run_job(msg)
            failed = (await c.get(f"/v1/rag/jobs/{r.json()['id']}", headers=auth)).json()
            assert failed["status"] == "failed" and failed["result"] is None
            assert failed["error"]["code"] == "unreadable_document"
            assert set(failed["error"]) == {"message", "type", "param", "code"}

        async with gw.db.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM rag_jobs WHERE id = ANY(%s)"
                                     " AND data IS NOT NULL", ([job["id"], r.json()["id"]],))
            assert (await cur.fetchone()) == (0,)  # the bytes are gone once the jobs ended
        await gw.aclose()

    asyncio.run(run())


def upload_of(tenant: str) -> Upload:
    return Upload(tenant, "kb", "a.txt", b"some text", "text/plain", "a.txt", None)


def test_transient_failures_are_retried_then_recorded(postgres_url: str, azurite_queue: str,
                                                      tmp_path: Path) -> None:
    calls: list[int] = []

    async def flaky(_u: Upload) -> dict[str, Any]:
        calls.append(1)
        raise RagUnavailable("Qdrant is down.")

    async def run() -> None:
        db = Database(postgres_url, min_size=0, max_size=2)
        jobs = QueuedJobs(lambda: db, flaky,
                          settings(tmp_path, azurite_queue, f"rag-{uuid.uuid4().hex[:12]}"))
        job = await jobs.submit(upload_of("t-retry"))
        with pytest.raises(RagUnavailable):
            await jobs.run(job["id"], attempt=1)
        assert (await jobs.get("t-retry", job["id"]))["status"] == "queued"
        assert await jobs.run(job["id"], attempt=5) == "failed"
        failed = await jobs.get("t-retry", job["id"])
        assert failed["error"]["code"] == "rag_unavailable"
        assert await jobs.run(job["id"], attempt=5) == "skipped" and len(calls) == 2
        assert await jobs.run("job-unknown") == "skipped"
        with pytest.raises(LlmpError) as e:
            await jobs.get("t-other", job["id"])
        assert e.value.status == 404
        await jobs.aclose()
        await db.aclose()

    asyncio.run(run())


def test_postgres_down_is_503_on_submit(azurite_queue: str, tmp_path: Path) -> None:
    async def never(_u: Upload) -> dict[str, Any]:
        raise AssertionError

    async def run() -> None:
        db = Database(f"postgresql://llmp@127.0.0.1:{free_port()}/llmp", timeout_s=1)
        jobs = QueuedJobs(lambda: db, never, settings(tmp_path, azurite_queue, "rag-never"))
        with pytest.raises(DependencyUnavailable) as e:
            await jobs.submit(upload_of("t-down"))
        assert e.value.status == 503
        await jobs.aclose()
        await db.aclose()

    asyncio.run(run())


def test_queue_down_is_503_and_leaves_no_job(postgres_url: str, tmp_path: Path) -> None:
    async def never(_u: Upload) -> dict[str, Any]:
        raise AssertionError

    async def run() -> None:
        db = Database(postgres_url, min_size=0, max_size=2)
        dead = azurite_queue_connection_string(free_port())
        jobs = QueuedJobs(lambda: db, never, settings(tmp_path, dead, "rag-dead"))
        with pytest.raises(DependencyUnavailable):
            await jobs.submit(upload_of("t-noqueue"))
        async with db.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM rag_jobs WHERE tenant_id = 't-noqueue'")
            assert (await cur.fetchone()) == (0,)
        await jobs.aclose()
        await db.aclose()

    asyncio.run(run())


def test_queue_mode_needs_a_queue() -> None:
    with pytest.raises(ValueError, match="LLMP_RAG_JOBS=queue"):
        RagSettings(jobs="queue")
    s = RagSettings(jobs="queue", queue_account_url="https://acct.queue.core.windows.net")
    assert s.queue_name == "rag-ingest"
