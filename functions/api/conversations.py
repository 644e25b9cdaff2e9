"""``/v1/conversations``: create, list (paginated), read with messages, delete, and export every
conversation of the caller's tenant as JSON Lines. A conversation of another tenant does not exist
for the caller (404)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from functions.api.common import endpoint, read_body
from functions.errors import InvalidRequest
from functions.gateway import Gateway
from functions.protocol.common import invalid_request_from
from functions.protocol.conversations import CreateConversation

if TYPE_CHECKING:
    from functions.conversations.store import Conversation

PREFIX = "/v1/conversations/"


def conversation_object(c: Conversation) -> dict[str, Any]:
    out: dict[str, Any] = {"id": str(c.id), "object": "conversation",
                           "created_at": int(c.created_at.timestamp()),
                           "updated_at": int(c.updated_at.timestamp()), "title": c.title,
                           "metadata": c.metadata}
    if c.messages is not None:
        out["messages"] = [{**m.as_openai(), "created_at": int(m.created_at.timestamp())
                            if m.created_at else None} for m in c.messages]
    return out


async def _tenant(gw: Gateway, request: Request) -> str:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    return principal.tenant_id


def _id_from_path(request: Request) -> str:
    return request.url.path.split(PREFIX, 1)[1]


@endpoint
async def create_conversation(gw: Gateway, request: Request) -> Response:
    tenant_id = await _tenant(gw, request)
    raw = b""
    if request.headers.get("content-length") not in (None, "0"):
        raw = await read_body(request, gw.settings.max_body_bytes)
    try:
        spec = CreateConversation.model_validate_json(raw or b"{}")
    except ValidationError as e:
        raise invalid_request_from(e) from None
    conv = await gw.conversations.create(tenant_id, spec.title, spec.metadata)
    return JSONResponse(conversation_object(conv))


@endpoint
async def list_conversations(gw: Gateway, request: Request) -> Response:
    from functions.conversations.store import parse_id

    tenant_id = await _tenant(gw, request)
    q = request.query_params
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise InvalidRequest("'limit' must be an integer.", param="limit") from None
    if not 1 <= limit <= gw.conversation_settings.page_max:
        raise InvalidRequest(f"'limit' must be between 1 and {gw.conversation_settings.page_max}.",
                             param="limit")
    after = parse_id(q["after"]) if q.get("after") else None
    page, more = await gw.conversations.page(tenant_id, limit, after)
    data = [conversation_object(c) for c in page]
    return JSONResponse({"object": "list", "data": data,
                         "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": more})


@endpoint
async def get_conversation(gw: Gateway, request: Request) -> Response:
    from functions.conversations.store import parse_id

    tenant_id = await _tenant(gw, request)
    conv = await gw.conversations.get(tenant_id, parse_id(_id_from_path(request)))
    return JSONResponse(conversation_object(conv))


@endpoint
async def delete_conversation(gw: Gateway, request: Request) -> Response:
    from functions.conversations.store import parse_id

    tenant_id = await _tenant(gw, request)
    conv_id = parse_id(_id_from_path(request))
    await gw.conversations.delete(tenant_id, conv_id)
    return JSONResponse({"id": str(conv_id), "object": "conversation.deleted", "deleted": True})


@endpoint
async def export_conversations(gw: Gateway, request: Request) -> Response:
    """Every conversation of the tenant with its messages, one JSON object a line, oldest first."""
    tenant_id = await _tenant(gw, request)
    conversations = gw.conversations.export(tenant_id)
    first = await anext(conversations, None)  # a database failure is still a plain 503 here

    async def lines() -> AsyncIterator[bytes]:
        if first is None:
            return
        yield orjson.dumps(conversation_object(first)) + b"\n"
        async for c in conversations:
            yield orjson.dumps(conversation_object(c)) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson", headers={
        "content-disposition": 'attachment; filename="conversations.jsonl"'})
