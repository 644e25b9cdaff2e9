"""``llmp``: serve the platform locally, manage tenants, API keys, models, guardrail policies and
knowledge bases, report usage."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer

from llmp_cli.backends import app as backends_app
from llmp_cli.guardrails_cmd import app as guardrails_app
from llmp_cli.local import database_url, known_redis_url
from llmp_cli.models_cmd import app as models_app
from llmp_cli.rag import app as rag_app
from llmp_cli.tenants import tenants_app, usage_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(guardrails_app, name="guardrails")
app.add_typer(tenants_app, name="tenants")
app.add_typer(usage_app, name="usage")
app.add_typer(rag_app, name="rag")
app.add_typer(backends_app, name="backends")

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Gateway address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Gateway port.")] = 7071,
    catalog: Annotated[Path | None, typer.Option(help="Model catalog (YAML).")] = None,
    replicas: Annotated[int, typer.Option(
        min=1, max=16, envvar="LLMP_LOCAL_REPLICAS",
        help="GGUF servers per GGUF alias, each on its own port, sharing the cores.")] = 1,
) -> None:
    """Start local Postgres and Redis (unless DATABASE_URL/REDIS_URL are set), the catalog's GGUF
    servers and the gateway. Ctrl-C stops everything."""
    from llmp_cli.serve import serve as run
    from models.logs import configure_logging

    configure_logging(os.environ.get("LLMP_LOG_LEVEL", "INFO"))
    raise typer.Exit(run(host, port, catalog, replicas))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to (created if new).")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expiry, in days.")] = None,
    model: Annotated[list[str] | None, typer.Option(
        help="Model alias or glob this key may use (repeat); none: the tenant's models.")] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute for this key.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute for this key.")] = None,
    role: Annotated[list[str] | None, typer.Option(
        help="Platform role: 'admin' may call /v1/admin/... (repeat).")] = None,
) -> None:
    """Create a key. The key is printed once, as the last line; only its hash is stored."""
    from functions.db import Database
    from functions.keys import KeyStore

    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    if bad := [r for r in role or [] if r != "admin"]:
        raise typer.BadParameter(f"unknown role(s): {', '.join(bad)} (known: admin)")

    async def run(url: str) -> tuple[str, str]:
        db = Database(url, min_size=0, max_size=1)
        try:
            rec, key = await KeyStore(db).create(tenant, name=name, expires_at=expires,
                                                 allowed_models=model or None, rpm_limit=rpm,
                                                 tpm_limit=tpm, roles=role or None)
        finally:
            await db.aclose()
        return str(rec.key_id), key

    with database_url() as url:
        key_id, key = asyncio.run(run(url))
    typer.echo(f"created key {key_id} for tenant {tenant}"
               + (f", expires {expires:%Y-%m-%d}" if expires else ""))
    typer.echo(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None) -> None:
    """List keys (ids and prefixes, never the keys)."""
    from functions.db import Database
    from functions.keys import KeyRecord, KeyStore

    async def run(url: str) -> list[KeyRecord]:
        db = Database(url, min_size=0, max_size=1)
        try:
            return await KeyStore(db).list(tenant)
        finally:
            await db.aclose()

    with database_url() as url:
        records = asyncio.run(run(url))
    for r in records:
        state = "revoked" if r.revoked_at else "active"
        typer.echo(f"{r.key_id}  {r.tenant:<20} {r.prefix}…  {state:<8} {r.name or ''}")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[UUID, typer.Argument(help="The key's id (see `llmp keys list`).")]
                ) -> None:
    """Revoke a key at once: marked in Postgres and dropped from the gateway's key cache."""
    from redis.asyncio import Redis

    from functions.auth import Authenticator
    from functions.db import Database
    from functions.errors import NotFound
    from functions.keys import KeyStore

    async def run(url: str) -> None:
        db = Database(url, min_size=0, max_size=1)
        try:
            key_hash = await KeyStore(db).revoke(key_id)
        finally:
            await db.aclose()
        if redis_url := known_redis_url():
            redis = Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
            try:
                if not await Authenticator(KeyStore(db), redis, 0).forget(key_hash):
                    typer.echo("warning: the key cache (Redis) could not be reached; gateways may "
                               "accept the key until their cache entry expires "
                               "(LLMP_KEY_CACHE_TTL_S, 60 s by default)", err=True)
            finally:
                await redis.aclose()

    with database_url() as url:
        try:
            asyncio.run(run(url))
        except NotFound as e:
            typer.echo(e.message, err=True)
            raise typer.Exit(1) from None
    typer.echo(f"revoked key {key_id}")


if __name__ == "__main__":
    app()
