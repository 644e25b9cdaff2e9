"""Knowledge bases over HTTP: upload, list and delete documents, poll ingestion jobs, query.

``POST /v1/rag/kbs/{kb}/documents?filename=NAME`` takes the file as the raw body (its media type
in ``Content-Type``, or from the file name). Up to ``LLMP_RAG_SYNC_INGEST_MAX_BYTES`` it is ingested
in the request (201 created or replaced, 200 unchanged); larger uploads, or ``?async=true``, are
queued (202 with a job to poll at ``GET /v1/rag/jobs/{id}``): for the in-process worker, or in Azure
(``LLMP_RAG_JOBS=queue``) in Postgres and on a Storage queue for the ``rag_ingest_job`` trigger.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.common import endpoint, read_body
from functions.errors import InvalidRequest
from functions.gateway import Gateway
from functions.protocol.common import StrictModel, invalid_request_from
from functions.rag.chat import citation
from functions.rag.jobs import Upload
from functions.rag.parsing import kind_of
from functions.rag.service import check_name, doc_id_from_filename

_PARAM = re.compile(r"\{(\w+)\}")


def path_params(request: Request, template: str) -> dict[str, str]:
    """Values of ``{name}`` segments (works the same under uvicorn and Azure Functions)."""
    pattern = "^" + _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", template) + "$"
    m = re.match(pattern, request.url.path)
    return m.groupdict() if m else {}


async def _tenant(gw: Gateway, request: Request) -> str:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    return principal.tenant_id


@endpoint
async def upload_document(gw: Gateway, request: Request) -> Response:
    tenant = await _tenant(gw, request)
    kb = check_name(path_params(request, "/v1/rag/kbs/{kb}/documents")["kb"], "kb")
    q = request.query_params
    media_type = request.headers.get("content-type")
    filename = q.get("filename") or "upload"
    kind_of(filename, media_type)  # an unsupported type is a 400 before the body is read
    doc_id = check_name(q["document_id"], "document_id") if q.get("document_id") else None
    rag = gw.rag
    data = await read_body(request, rag.settings.max_upload_bytes)
    upload = Upload(tenant, kb, filename, data, media_type, doc_id or doc_id_from_filename(filename),
                    q.get("title") or None)
    if q.get("async", "").lower() in ("1", "true") or len(data) > rag.settings.sync_ingest_max_bytes:
        job = await rag.jobs.submit(upload)
        return JSONResponse(job, status_code=202, headers={"location": f"/v1/rag/jobs/{job['id']}"})
    result = await rag.ingest(upload.tenant, kb, filename, data, media_type, upload.doc_id,
                              upload.title)
    return JSONResponse(result.public(), status_code=200 if result.status == "unchanged" else 201)


@endpoint
async def list_documents(gw: Gateway, request: Request) -> Response:
    tenant = await _tenant(gw, request)
    kb = path_params(request, "/v1/rag/kbs/{kb}/documents")["kb"]
    return JSONResponse({"object": "list", "data": await gw.rag.documents(tenant, kb)})


@endpoint
async def list_kbs(gw: Gateway, request: Request) -> Response:
    tenant = await _tenant(gw, request)
    kbs: dict[str, dict[str, Any]] = {}
    for d in await gw.rag.documents(tenant):
        kb = kbs.setdefault(d["kb"], {"id": d["kb"], "object": "rag.kb", "documents": 0, "chunks": 0})
        kb["documents"] += 1
        kb["chunks"] += d["chunks"] or 0
    return JSONResponse({"object": "list", "data": list(kbs.values())})


@endpoint
async def delete_document(gw: Gateway, request: Request) -> Response:
    tenant = await _tenant(gw, request)
    p = path_params(request, "/v1/rag/kbs/{kb}/documents/{document_id}")
    n = await gw.rag.delete_document(tenant, p["kb"], p["document_id"])
    return JSONResponse({"object": "rag.document.deleted", "kb": p["kb"],
                         "document_id": p["document_id"], "deleted": True, "chunks": n})


@endpoint
async def delete_kb(gw: Gateway, request: Request) -> Response:
    tenant = await _tenant(gw, request)
    kb = path_params(request, "/v1/rag/kbs/{kb}")["kb"]
    n = await gw.rag.delete_kb(tenant, kb)
    return JSONResponse({"object": "rag.kb.deleted", "id": kb, "deleted": True, "chunks": n})


@endpoint
async def get_job(gw: Gateway, request: Request) -> Response:
    tenant = await _tenant(gw, request)
    job_id = path_params(request, "/v1/rag/jobs/{job_id}")["job_id"]
    return JSONResponse(await gw.rag.jobs.get(tenant, job_id))


class QueryRequest(StrictModel):
    query: str = Field(min_length=1, max_length=8192)
    top_k: int | None = Field(None, ge=1, le=50)
    mode: Literal["dense", "hybrid", "rerank"] | None = None
    min_score: float | None = Field(None, ge=-1, le=1)


@endpoint
async def query_kb(gw: Gateway, request: Request) -> Response:
    """Retrieval alone: the passages a chat request would be given, with their scores."""
    tenant = await _tenant(gw, request)
    kb = path_params(request, "/v1/rag/kbs/{kb}/query")["kb"]
    try:
        q = QueryRequest.model_validate(orjson.loads(await read_body(request,
                                                                     gw.settings.max_body_bytes)))
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"The request body is not valid JSON: {e}") from None
    except ValidationError as e:
        raise invalid_request_from(e) from None
    passages = await gw.rag.retrieve(tenant, kb, q.query, q.top_k, q.mode, q.min_score)
    return JSONResponse({"object": "list", "kb": kb,
                         "data": [citation(i, p) for i, p in enumerate(passages, 1)]})
