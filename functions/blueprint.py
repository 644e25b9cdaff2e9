"""The same route table registered as Azure Functions (v2 programming model, HTTP streams).

No ``from __future__ import annotations`` here: the Functions worker inspects the handler's real
annotation (the FastAPI ``Request`` class) to switch the function to HTTP streams.
"""

from collections.abc import Awaitable, Callable

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from functions.api.common import RouteSpec
from functions.api.routes import ROUTES
from functions.gateway import Gateway

RETENTION_SCHEDULE = "0 17 * * * *"
"""NCRONTAB with seconds: the conversation retention timer runs hourly, at minute 17."""
RAG_INGEST_QUEUE = "rag-ingest"
"""The Storage queue of RAG ingestion jobs (``LLMP_RAG_QUEUE_NAME`` must name the same queue)."""
RAG_QUEUE_CONNECTION = "LLMP_RAG_QUEUE"
"""The trigger's connection: ``LLMP_RAG_QUEUE__queueServiceUri`` (identity-based, in Azure) or a
connection string in ``LLMP_RAG_QUEUE``."""


def _function(gw: Gateway, spec: RouteSpec) -> Callable[[Request], Awaitable[Response]]:
    # The worker reads the parameter's annotation to hand over a FastAPI Request (HTTP streams).
    async def handler(req: Request) -> Response:
        gw.start_background()  # Key Vault refresh; Functions has no start-up hook
        return await spec.handler(gw, req)

    handler.__name__ = handler.__qualname__ = spec.name
    return handler


def _retention(gw: Gateway) -> Callable[[func.TimerRequest], Awaitable[None]]:
    async def conversation_retention(timer: func.TimerRequest) -> None:
        from functions.conversations.retention import purge_expired

        await purge_expired(gw)

    return conversation_retention


def _rag_ingest(gw: Gateway) -> Callable[[func.QueueMessage], Awaitable[None]]:
    async def rag_ingest_job(msg: func.QueueMessage) -> None:
        from functions.rag.jobstore import job_id_of

        # a message that is not a job is logged and dropped (raising would only poison it 5 times)
        try:
            job_id = job_id_of(msg.get_body())
        except ValueError:
            import logging

            logging.getLogger(__name__).error("dropped a malformed RAG job message",
                                              extra={"message_id": msg.id})
            return
        await gw.rag.queued_jobs.run(job_id, attempt=msg.dequeue_count or 1)

    return rag_ingest_job


def build_blueprint(gw: Gateway) -> func.Blueprint:
    bp = func.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)  # type: ignore[no-untyped-call]
    for spec in ROUTES:
        fn = bp.route(route=spec.path.lstrip("/"), methods=list(spec.methods),
                      auth_level=func.AuthLevel.ANONYMOUS)(_function(gw, spec))
        bp.function_name(spec.name)(fn)
    timer = bp.timer_trigger(schedule=RETENTION_SCHEDULE, arg_name="timer",
                             run_on_startup=False)(_retention(gw))
    bp.function_name("conversation_retention")(timer)
    queue = bp.queue_trigger(arg_name="msg", queue_name=RAG_INGEST_QUEUE,
                             connection=RAG_QUEUE_CONNECTION)(_rag_ingest(gw))
    bp.function_name("rag_ingest_job")(queue)
    return bp
