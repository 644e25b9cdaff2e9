"""``GET /v1/usage?from=YYYY-MM-DD&to=YYYY-MM-DD``: the caller's own tenant's tokens and cost, per
model and per day (default: the current month). There is no parameter naming another tenant."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.common import endpoint
from functions.errors import PermissionDenied
from functions.gateway import Gateway
from functions.protocol.admin import UsageQuery


async def usage_body(gw: Gateway, q: UsageQuery, tenant_id: str | None,
                     tenant: str | None) -> dict[str, object]:
    from functions.spend import month_range, summarize, summarize_routes

    first, last = month_range()
    start, end = q.start or first, q.end or last
    rows = await gw.usage.report(start, end, tenant_id)
    routes = await gw.usage.routes(start, end, tenant_id)
    return {"object": "usage", "tenant": tenant, "from": start.isoformat(),
            "to": end.isoformat(), **summarize(rows),
            "by_route": summarize_routes(routes, gw.catalog)}


@endpoint
async def get_usage(gw: Gateway, request: Request) -> Response:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    if not principal.tenant_id:
        raise PermissionDenied("This identity is not mapped to a tenant.")
    q = UsageQuery.from_query(dict(request.query_params), allow_tenant=False)
    return JSONResponse(await usage_body(gw, q, principal.tenant_id, principal.tenant))
