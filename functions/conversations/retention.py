"""Retention: delete conversations (and their messages) idle longer than their tenant's
``retention_days`` (or ``LLMP_CONVERSATION_RETENTION_DAYS``). Run by an Azure Functions timer
trigger (``functions/blueprint.py``), hourly."""

from __future__ import annotations

import logging
import time

from functions.gateway import Gateway

log = logging.getLogger(__name__)


async def purge_expired(gw: Gateway) -> int:
    s = gw.conversation_settings
    started = time.perf_counter()
    deleted = await gw.conversations.purge_expired(s.retention_days, s.retention_batch,
                                                   s.retention_max_batches)
    gw.metrics.conversations_expired.inc(deleted)
    log.info("conversations expired", extra={
        "deleted": deleted, "ms": round((time.perf_counter() - started) * 1000, 1)})
    return deleted
