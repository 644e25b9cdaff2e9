"""``GET /health`` (liveness: the process answers) and ``GET /ready`` (its dependencies answer)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.common import endpoint
from functions.gateway import Gateway


@endpoint
async def health(gw: Gateway, request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _check_db(gw: Gateway) -> str:
    try:
        await asyncio.wait_for(gw.db.check(), gw.settings.db_timeout_s)
    except Exception as e:  # noqa: BLE001 - readiness reports, never raises
        return f"error: {type(e).__name__}"
    return "ok"


async def _check_redis(gw: Gateway) -> str:
    if gw.redis is None:
        return "ok: not configured (local mode, caches off)"
    try:
        await asyncio.wait_for(gw.redis.ping(), gw.settings.redis_timeout_s * 2)
    except Exception as e:  # noqa: BLE001
        return f"error: {type(e).__name__}"
    return "ok"


async def _check_guardrails(gw: Gateway) -> str:
    """Ready once Presidio/spaCy are loaded (the check starts the load if nothing has)."""
    if not gw.guardrail_settings.enabled:
        return "ok: off"
    try:
        await asyncio.wait_for(asyncio.shield(gw.guardrails.detectors.pii.load()), 0.05)
    except TimeoutError:
        return "loading"
    except Exception as e:  # noqa: BLE001
        return f"error: {type(e).__name__}"
    return "ok"


@endpoint
async def ready(gw: Gateway, request: Request) -> Response:
    db, redis, rails = await asyncio.gather(_check_db(gw), _check_redis(gw), _check_guardrails(gw))
    checks = {"postgres": db, "redis": redis, "guardrails": rails,
              "catalog": f"ok: {len(gw.catalog.models)} models"}
    ok = db == "ok" and redis.startswith("ok") and rails.startswith("ok")
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                        status_code=200 if ok else 503)


@endpoint
async def metrics(gw: Gateway, request: Request) -> Response:
    """Prometheus metrics of this instance (guardrail decisions and failures)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)
