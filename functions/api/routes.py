"""The route table: one list, registered both as Azure Functions and as ASGI routes."""

from __future__ import annotations

from functions.api.common import RouteSpec
from functions.api.conversations import (
    create_conversation,
    delete_conversation,
    export_conversations,
    get_conversation,
    list_conversations,
)
from functions.api.generate import chat_completions, completions
from functions.api.health import health, metrics, ready
from functions.api.models import get_model, list_models

ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("chat_completions", "/v1/chat/completions", ("POST",), chat_completions),
    RouteSpec("completions", "/v1/completions", ("POST",), completions),
    RouteSpec("list_models", "/v1/models", ("GET",), list_models),
    RouteSpec("get_model", "/v1/models/{model}", ("GET",), get_model),
    RouteSpec("create_conversation", "/v1/conversations", ("POST",), create_conversation),
    RouteSpec("list_conversations", "/v1/conversations", ("GET",), list_conversations),
    # before /{id}: the ASGI router takes the first match (Functions prefers the literal segment)
    RouteSpec("export_conversations", "/v1/conversations/export", ("GET",), export_conversations),
    RouteSpec("get_conversation", "/v1/conversations/{id}", ("GET",), get_conversation),
    RouteSpec("delete_conversation", "/v1/conversations/{id}", ("DELETE",), delete_conversation),
    RouteSpec("health", "/health", ("GET",), health),
    RouteSpec("ready", "/ready", ("GET",), ready),
    RouteSpec("metrics", "/metrics", ("GET",), metrics),
)
