"""The route table: one list, registered both as Azure Functions and as ASGI routes."""

from __future__ import annotations

from functions.api import admin
from functions.api.common import RouteSpec
from functions.api.conversations import (
    create_conversation,
    delete_conversation,
    export_conversations,
    get_conversation,
    list_conversations,
)
from functions.api.embeddings import embeddings
from functions.api.generate import chat_completions, completions
from functions.api.health import health, metrics, ready
from functions.api.models import get_model, list_models
from functions.api.rag import (
    delete_document,
    delete_kb,
    get_job,
    list_documents,
    list_kbs,
    query_kb,
    upload_document,
)
from functions.api.usage import get_usage

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("chat_completions", "/v1/chat/completions", ("POST",), chat_completions),
    RouteSpec("completions", "/v1/completions", ("POST",), completions),
    RouteSpec("embeddings", "/v1/embeddings", ("POST",), embeddings),
    RouteSpec("list_models", "/v1/models", ("GET",), list_models),
    RouteSpec("get_model", "/v1/models/{model}", ("GET",), get_model),
    RouteSpec("rag_upload_document", "/v1/rag/kbs/{kb}/documents", ("POST",), upload_document),
    RouteSpec("rag_list_documents", "/v1/rag/kbs/{kb}/documents", ("GET",), list_documents),
    RouteSpec("rag_delete_document", "/v1/rag/kbs/{kb}/documents/{document_id}", ("DELETE",),
              delete_document),
    RouteSpec("rag_query", "/v1/rag/kbs/{kb}/query", ("POST",), query_kb),
    RouteSpec("rag_list_kbs", "/v1/rag/kbs", ("GET",), list_kbs),
    RouteSpec("rag_delete_kb", "/v1/rag/kbs/{kb}", ("DELETE",), delete_kb),
    RouteSpec("rag_get_job", "/v1/rag/jobs/{job_id}", ("GET",), get_job),
    RouteSpec("create_conversation", "/v1/conversations", ("POST",), create_conversation),
    RouteSpec("list_conversations", "/v1/conversations", ("GET",), list_conversations),
    # before /{id}: the ASGI router takes the first match (Functions prefers the literal segment)
    RouteSpec("export_conversations", "/v1/conversations/export", ("GET",), export_conversations),
    RouteSpec("get_conversation", "/v1/conversations/{id}", ("GET",), get_conversation),
    RouteSpec("delete_conversation", "/v1/conversations/{id}", ("DELETE",), delete_conversation),
    RouteSpec("health", "/health", ("GET",), health),
    RouteSpec("ready", "/ready", ("GET",), ready),
    RouteSpec("metrics", "/metrics", ("GET",), metrics),
    RouteSpec("usage", "/v1/usage", ("GET",), get_usage),
    # Operators (admin role). Function names and routes must not start with "admin" (reserved by
    # the Functions host).
    RouteSpec("tenants", "/v1/admin/tenants", ("GET", "POST"), admin.tenants),
    RouteSpec("tenant", "/v1/admin/tenants/{tenant}", ("GET", "PATCH"), admin.tenant),
    RouteSpec("tenant_keys", "/v1/admin/tenants/{tenant}/keys", ("GET", "POST"), admin.tenant),
    RouteSpec("key_revoke", "/v1/admin/keys/{key_id}", ("DELETE",), admin.revoke_key),
    RouteSpec("usage_report", "/v1/admin/usage", ("GET",), admin.admin_usage),
    RouteSpec("backends", "/v1/admin/backends", ("GET",), admin.backends),
    RouteSpec("backend_drain", "/v1/admin/backends/{name}/{action}", ("POST",),
              admin.backend_drain),
)
