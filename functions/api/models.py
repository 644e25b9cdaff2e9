"""``GET /v1/models`` and ``GET /v1/models/{model}``, read from the catalog."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.common import endpoint
from functions.gateway import Gateway
from models.catalog import ModelSpec, TierRoute


def route_object(r: TierRoute) -> dict[str, Any]:
    """A route, listed like a model (clients can name it), with its tiers cheapest first."""
    return {"id": r.alias, "object": "model", "created": 0, "owned_by": "llmp", "route": True,
            "description": r.description, "tiers": list(r.tiers), "default_tier": r.default_tier}


def model_object(m: ModelSpec) -> dict[str, Any]:
    return {"id": m.alias, "object": "model", "created": 0, "owned_by": "llmp",
            "tier": m.tier, "context_length": m.context_length,
            "capabilities": m.caps.model_dump(exclude_none=True),
            "price": m.price.model_dump(exclude_none=True)}


@endpoint
async def list_models(gw: Gateway, request: Request) -> Response:
    """The catalog's models that this key and its tenant may use."""
    from functions.tenants import model_allowed

    p = await gw.authenticator.authenticate(request.headers.get("authorization"))
    tenant_models = (await gw.tenants.get(p.tenant_id)).allowed_models if p.tenant_id else None
    return JSONResponse({"object": "list", "data": [
        *(model_object(m) for m in gw.catalog.models
          if model_allowed(m.alias, tenant_models, p.allowed_models)),
        # a route is listed when any of its tiers may be used (the others are skipped)
        *(route_object(r) for r in gw.catalog.routes
          if any(model_allowed(t, tenant_models, p.allowed_models) for t in r.tiers))]})


@endpoint
async def get_model(gw: Gateway, request: Request) -> Response:
    await gw.authenticator.authenticate(request.headers.get("authorization"))
    alias = request.url.path.split("/v1/models/", 1)[1]
    if (route := gw.catalog.route(alias)) is not None:
        return JSONResponse(route_object(route))
    return JSONResponse(model_object(gw.dispatcher.model(alias)))
