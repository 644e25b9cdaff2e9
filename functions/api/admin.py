"""``/v1/admin/...``: onboarding for operators' scripts, for principals with the admin role (an API
key made with ``--role admin``, or an Entra token carrying the ``LLMP_ADMIN_ROLE`` app role).

Not ``/admin/...``: the Functions host reserves routes (and function names) starting with ``admin``
for its own admin API, and ``host.json`` serves our routes without a prefix.

- ``GET /v1/admin/tenants``, ``POST /v1/admin/tenants``
- ``GET /v1/admin/tenants/{name}``, ``PATCH /v1/admin/tenants/{name}``
- ``GET /v1/admin/tenants/{name}/keys``, ``POST /v1/admin/tenants/{name}/keys`` (the key is in the
  answer, once)
- ``DELETE /v1/admin/keys/{id}`` (revoked, and dropped from the key cache)
- ``GET /v1/admin/usage?tenant=&from=&to=``
- ``GET /v1/admin/backends``, ``POST /v1/admin/backends/{name}/drain`` (and ``/undrain``)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from functions.api.common import endpoint, read_body
from functions.api.usage import usage_body
from functions.errors import InvalidRequest, NotFound, PermissionDenied
from functions.gateway import Gateway
from functions.protocol.admin import KeyCreate, TenantCreate, TenantFields, UsageQuery

if TYPE_CHECKING:
    from functions.keys import KeyRecord

PREFIX = "/v1/admin/"


async def _admin(gw: Gateway, request: Request) -> None:
    principal = await gw.authenticator.authenticate(request.headers.get("authorization"))
    if not principal.is_admin:
        raise PermissionDenied("This endpoint needs the platform admin role.")


def _parts(request: Request) -> list[str]:
    return request.url.path.removeprefix(PREFIX).strip("/").split("/")


def _key_json(r: KeyRecord) -> dict[str, Any]:
    return {"id": str(r.key_id), "tenant": r.tenant, "prefix": r.prefix, "name": r.name,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
            "allowed_models": r.allowed_models, "rpm_limit": r.rpm_limit,
            "tpm_limit": r.tpm_limit, "roles": r.roles}


@endpoint
async def tenants(gw: Gateway, request: Request) -> Response:
    """``GET`` lists tenants, ``POST`` creates one."""
    await _admin(gw, request)
    if request.method == "GET":
        return JSONResponse({"object": "list",
                             "data": [t.as_json() for t in await gw.tenants.list()]})
    body = TenantCreate.parse(await read_body(request, gw.settings.max_body_bytes))
    rec = await gw.tenants.create(body.name, **body.given())
    return JSONResponse(rec.as_json(), status_code=201)


@endpoint
async def tenant(gw: Gateway, request: Request) -> Response:
    """``GET`` one tenant, ``PATCH`` its settings; ``.../keys``: ``GET`` its keys, ``POST`` one."""
    await _admin(gw, request)
    parts = _parts(request)
    name = parts[1]
    if len(parts) == 2:
        if request.method == "PATCH":
            fields = TenantFields.parse(await read_body(request, gw.settings.max_body_bytes))
            return JSONResponse((await gw.tenants.update(name, **fields.given())).as_json())
        return JSONResponse((await gw.tenants.by_name(name)).as_json())
    await gw.tenants.by_name(name)  # 404 for an unknown tenant, never an implicit create
    if request.method == "GET":
        return JSONResponse({"object": "list",
                             "data": [_key_json(k) for k in await gw.keys.list(name)]})
    body = KeyCreate.parse(await read_body(request, gw.settings.max_body_bytes))
    expires = (datetime.now(UTC) + timedelta(days=body.expires_in_days)
               if body.expires_in_days else None)
    rec, key = await gw.keys.create(name, name=body.name, expires_at=expires,
                                    allowed_models=body.allowed_models,
                                    rpm_limit=body.rpm_limit, tpm_limit=body.tpm_limit,
                                    roles=list(body.roles))
    return JSONResponse({**_key_json(rec), "key": key}, status_code=201)


@endpoint
async def revoke_key(gw: Gateway, request: Request) -> Response:
    await _admin(gw, request)
    try:
        key_id = UUID(_parts(request)[1])
    except ValueError:
        raise NotFound("No API key with that id.") from None
    forgotten = await gw.authenticator.forget(await gw.keys.revoke(key_id))
    return JSONResponse({"id": str(key_id), "revoked": True, "cache_cleared": forgotten})


@endpoint
async def admin_usage(gw: Gateway, request: Request) -> Response:
    await _admin(gw, request)
    q = UsageQuery.from_query(dict(request.query_params), allow_tenant=True)
    if q.tenant is None:
        return JSONResponse(await usage_body(gw, q, None, None))
    try:
        rec = await gw.tenants.by_name(q.tenant)
    except NotFound:
        raise InvalidRequest(f"No tenant named {q.tenant!r}.", param="tenant") from None
    return JSONResponse(await usage_body(gw, q, str(rec.tenant_id), rec.name))


@endpoint
async def backends(gw: Gateway, request: Request) -> Response:
    """``GET /v1/admin/backends``: every backend of every chat tier, as this gateway instance's
    router sees it (load, breaker, drain, affinity hits, model version)."""
    await _admin(gw, request)
    router = gw.dispatcher.router
    await router.sync_shared()  # drains and breakers as every instance sees them
    tiers = {m.alias: m.tier for m in gw.catalog.models}
    rows = [{**row, "tier": tiers.get(row["alias"])} for row in router.describe()]
    return JSONResponse({"object": "list", "data": rows})


@endpoint
async def backend_drain(gw: Gateway, request: Request) -> Response:
    """``POST /v1/admin/backends/{name}/drain`` or ``.../undrain``: a drained replica gets no new
    requests (on every instance: the drain is kept in Redis); those under way finish."""
    await _admin(gw, request)
    parts = _parts(request)
    if len(parts) != 3 or parts[2] not in ("drain", "undrain"):
        raise NotFound("Use /v1/admin/backends/{name}/drain or /undrain.")
    name, drained = parts[1], parts[2] == "drain"
    try:
        await gw.dispatcher.router.drain(name, drained)
    except KeyError:
        raise NotFound(f"No backend is named '{name}'.", param="name") from None
    return JSONResponse({"backend": name, "drained": drained})
