"""What the Azure Functions host would index: every route, method and auth level."""

from typing import Any

import azure.functions as func

from functions.blueprint import build_blueprint
from functions.gateway import Gateway

EXPECTED = {
    "chat_completions": ("v1/chat/completions", ["POST"]),
    "completions": ("v1/completions", ["POST"]),
    "embeddings": ("v1/embeddings", ["POST"]),
    "list_models": ("v1/models", ["GET"]),
    "get_model": ("v1/models/{model}", ["GET"]),
    "rag_upload_document": ("v1/rag/kbs/{kb}/documents", ["POST"]),
    "rag_list_documents": ("v1/rag/kbs/{kb}/documents", ["GET"]),
    "rag_delete_document": ("v1/rag/kbs/{kb}/documents/{document_id}", ["DELETE"]),
    "rag_query": ("v1/rag/kbs/{kb}/query", ["POST"]),
    "rag_list_kbs": ("v1/rag/kbs", ["GET"]),
    "rag_delete_kb": ("v1/rag/kbs/{kb}", ["DELETE"]),
    "rag_get_job": ("v1/rag/jobs/{job_id}", ["GET"]),
    "create_conversation": ("v1/conversations", ["POST"]),
    "list_conversations": ("v1/conversations", ["GET"]),
    "export_conversations": ("v1/conversations/export", ["GET"]),
    "get_conversation": ("v1/conversations/{id}", ["GET"]),
    "delete_conversation": ("v1/conversations/{id}", ["DELETE"]),
    "health": ("health", ["GET"]),
    "ready": ("ready", ["GET"]),
    "metrics": ("metrics", ["GET"]),
    # tenancy
    "usage": ("v1/usage", ["GET"]),
    "tenants": ("v1/admin/tenants", ["GET", "POST"]),
    "tenant": ("v1/admin/tenants/{tenant}", ["GET", "PATCH"]),
    "tenant_keys": ("v1/admin/tenants/{tenant}/keys", ["GET", "POST"]),
    "key_revoke": ("v1/admin/keys/{key_id}", ["DELETE"]),
    "usage_report": ("v1/admin/usage", ["GET"]),
    "backends": ("v1/admin/backends", ["GET"]),
    "backend_drain": ("v1/admin/backends/{name}/{action}", ["POST"]),
}


def indexed(app: func.FunctionApp) -> dict[str, tuple[str, list[str], str]]:
    out = {}
    for f in app.get_functions():
        trigger = f.get_trigger()
        if trigger.get_binding_name() != "httpTrigger":
            continue
        out[f.get_function_name()] = (trigger.route, [str(m.value) for m in trigger.methods],
                                      str(trigger.auth_level.value))
    return out


def timers_of(functions: list[Any]) -> dict[str, tuple[str, bool]]:
    return {f.get_function_name(): (f.get_trigger().schedule, f.get_trigger().run_on_startup)
            for f in functions if f.get_trigger().get_binding_name() == "timerTrigger"}


def test_function_app_indexes_every_route() -> None:
    import function_app

    got = indexed(function_app.app)
    assert got == {name: (route, methods, "anonymous")
                   for name, (route, methods) in EXPECTED.items()}


def test_the_blueprint_registers_the_retention_timer() -> None:
    app = func.FunctionApp()
    app.register_functions(build_blueprint(Gateway()))
    functions = app.get_functions()  # the SDK validates names on each call: once per app
    assert timers_of(functions) == {"conversation_retention": ("0 17 * * * *", False)}
    fn = next(f for f in functions if f.get_function_name() == "conversation_retention")
    assert fn.get_user_function().__annotations__["timer"] is func.TimerRequest


def test_the_blueprint_registers_the_rag_ingest_queue_trigger() -> None:
    app = func.FunctionApp()
    app.register_functions(build_blueprint(Gateway()))
    functions = app.get_functions()
    queues = {f.get_function_name(): (f.get_trigger().queue_name, f.get_trigger().connection)
              for f in functions if f.get_trigger().get_binding_name() == "queueTrigger"}
    assert queues == {"rag_ingest_job": ("rag-ingest", "LLMP_RAG_QUEUE")}
    fn = next(f for f in functions if f.get_function_name() == "rag_ingest_job")
    assert fn.get_user_function().__annotations__["msg"] is func.QueueMessage


def test_handlers_take_the_fastapi_request_type() -> None:
    from azurefunctions.extensions.http.fastapi import Request

    app = func.FunctionApp()
    app.register_functions(build_blueprint(Gateway()))
    for f in app.get_functions():
        if f.get_trigger().get_binding_name() == "httpTrigger":
            assert f.get_user_function().__annotations__["req"] is Request
