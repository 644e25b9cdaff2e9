"""``llmp tenants create/update/list`` and ``llmp usage report``, straight against Postgres (like
``llmp keys``). Gateways see tenant changes within ``LLMP_TENANT_CACHE_TTL_S`` (10 s)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from llmp_cli.local import database_url

T = TypeVar("T")

tenants_app = typer.Typer(no_args_is_help=True, help="Create, update and list tenants.")
usage_app = typer.Typer(no_args_is_help=True, help="What tenants used and what it cost.")

Models = Annotated[list[str] | None, typer.Option(
    "--model", help="Allowed model alias or glob (repeat); none given: every model.")]
Rpm = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute (tenant-wide).")]
Tpm = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute (tenant-wide).")]
Budget = Annotated[Decimal | None, typer.Option(min=0, help="Monthly budget (catalog currency).")]
RedisDown = Annotated[str | None, typer.Option(
    "--on-redis-down", help="'open' (serve without limits) or 'closed' (refuse with 503).")]
Roles = Annotated[list[str] | None, typer.Option(
    "--entra-role", help="Entra app role mapped to this tenant (repeat).")]
Groups = Annotated[list[str] | None, typer.Option(
    "--entra-group", help="Entra group object id mapped to this tenant (repeat).")]


def run_db(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(db)`` against the configured (or local) Postgres."""
    from functions.db import Database

    async def go(url: str) -> T:
        db = Database(url, min_size=0, max_size=1)
        try:
            return await work(db)
        finally:
            await db.aclose()

    with database_url() as url:
        return asyncio.run(go(url))


def _fields(models: list[str] | None, rpm: int | None, tpm: int | None, budget: Decimal | None,
            on_redis_down: str | None, roles: list[str] | None, groups: list[str] | None,
            clear: list[str] | None = None) -> dict[str, Any]:
    given = {"allowed_models": models or None, "rpm_limit": rpm, "tpm_limit": tpm,
             "monthly_budget": budget, "on_redis_down": on_redis_down,
             "entra_roles": roles or None, "entra_groups": groups or None}
    out = {k: v for k, v in given.items() if v is not None}
    for name in clear or []:
        field = {"models": "allowed_models", "rpm": "rpm_limit", "tpm": "tpm_limit",
                 "budget": "monthly_budget", "price": "max_price_per_1k"}.get(name)
        if field is None:
            raise typer.BadParameter(f"--clear takes models, rpm, tpm, budget or price, not {name!r}")
        out[field] = None
    return out


def _show(rec: Any) -> None:
    d = rec.as_json()
    models = ",".join(d["allowed_models"]) if d["allowed_models"] is not None else "*"
    typer.echo(f"{d['name']:<20} models={models} rpm={d['rpm_limit'] or '-'} "
               f"tpm={d['tpm_limit'] or '-'} budget={d['monthly_budget'] if d['monthly_budget'] is not None else '-'} "  # noqa: E501
               f"redis-down={d['on_redis_down']} entra-roles={','.join(d['entra_roles']) or '-'} "
               f"entra-groups={','.join(d['entra_groups']) or '-'}")


def _fail_on_llmp_error(fn: Callable[[], T]) -> T:
    from functions.errors import LlmpError

    try:
        return fn()
    except LlmpError as e:
        typer.echo(e.message, err=True)
        raise typer.Exit(1) from None


@tenants_app.command("create")
def create(name: Annotated[str, typer.Argument(help="Tenant name.")], models: Models = None,
           rpm: Rpm = None, tpm: Tpm = None, budget: Budget = None,
           on_redis_down: RedisDown = None, entra_role: Roles = None,
           entra_group: Groups = None) -> None:
    """Create a tenant."""
    from functions.tenants import TenantStore

    fields = _fields(models, rpm, tpm, budget, on_redis_down, entra_role, entra_group)
    rec = _fail_on_llmp_error(lambda: run_db(lambda db: TenantStore(db).create(name, **fields)))
    _show(rec)


@tenants_app.command("update")
def update(name: Annotated[str, typer.Argument(help="Tenant name.")], models: Models = None,
           rpm: Rpm = None, tpm: Tpm = None, budget: Budget = None,
           on_redis_down: RedisDown = None, entra_role: Roles = None,
           entra_group: Groups = None,
           retention_days: Annotated[int | None, typer.Option(
               min=1, help="Days conversations are kept (default LLMP_CONVERSATION_RETENTION_DAYS)."
           )] = None,
           cache_policy: Annotated[Path | None, typer.Option(
               help="A JSON file with the response-cache policy (see docs/cache.md).")] = None,
           max_price_per_1k: Annotated[Decimal | None, typer.Option(
               min=0, help="Routes skip tiers priced above this per 1K tokens (docs/routing.md)."
           )] = None,
           clear: Annotated[list[str] | None, typer.Option(
               help="Remove a restriction: models, rpm, tpm, budget or price (repeat).")] = None
           ) -> None:
    """Change a tenant's models, limits, budget, Entra mapping, conversation retention or cache
    policy (options given replace values)."""
    from psycopg.types.json import Jsonb
    from pydantic import ValidationError

    from functions.cache.policy import CachePolicy
    from functions.tenants import TenantStore

    fields = _fields(models, rpm, tpm, budget, on_redis_down, entra_role, entra_group, clear)
    if retention_days is not None:
        fields["retention_days"] = retention_days
    if max_price_per_1k is not None:
        fields["max_price_per_1k"] = max_price_per_1k
    if cache_policy is not None:
        try:
            parsed = CachePolicy.model_validate(json.loads(cache_policy.read_text()))
        except (ValueError, ValidationError) as e:
            typer.echo(f"invalid cache policy: {e}", err=True)
            raise typer.Exit(2) from None
        fields["cache_policy"] = Jsonb(parsed.model_dump(mode="json"))
    rec = _fail_on_llmp_error(lambda: run_db(lambda db: TenantStore(db).update(name, **fields)))
    _show(rec)


@tenants_app.command("list")
def list_() -> None:
    """List tenants with their settings."""
    from functions.tenants import TenantStore

    for rec in run_db(lambda db: TenantStore(db).list()):
        _show(rec)


@usage_app.command("report")
def report(
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of tables.")] = False,
) -> None:
    """Tokens and cost per model and per day, and per route and tier with what routing saved
    (default: this month, every tenant)."""
    from functions.spend import UsageReader, month_range, summarize, summarize_routes
    from functions.tenants import TenantStore
    from models.catalog import load_catalog

    first, last = month_range()
    try:
        d0 = date.fromisoformat(start) if start else first
        d1 = date.fromisoformat(end) if end else last
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None

    async def work(db: Any) -> Any:
        tid = str((await TenantStore(db).by_name(tenant)).tenant_id) if tenant else None
        reader = UsageReader(db)
        return await reader.report(d0, d1, tid), await reader.routes(d0, d1, tid)

    rows, route_rows = _fail_on_llmp_error(lambda: run_db(work))
    summary = {**summarize(rows), "by_route": summarize_routes(route_rows, load_catalog())}
    if as_json:
        typer.echo(json.dumps({"from": d0.isoformat(), "to": d1.isoformat(), "tenant": tenant,
                               **summary}, indent=2))
        return
    typer.echo(f"usage {d0} .. {d1}" + (f", tenant {tenant}" if tenant else ""))
    typer.echo("\nper model:")
    typer.echo(f"{'model':<24} {'requests':>9} {'prompt':>10} {'completion':>11} {'cost':>14}")
    for m in summary["by_model"]:
        typer.echo(f"{m['model']:<24} {m['requests']:>9} {m['prompt_tokens']:>10} "
                   f"{m['completion_tokens']:>11} {m['cost']:>14.6f}")
    typer.echo("\nper day:")
    typer.echo(f"{'day':<11} {'tenant':<20} {'model':<24} {'requests':>9} {'cost':>14}")
    for r in rows:
        typer.echo(f"{r.day!s:<11} {r.tenant:<20} {r.model:<24} {r.requests:>9} {r.cost:>14.6f}")
    if summary["by_route"]:
        typer.echo("\nper route and tier:")
        typer.echo(f"{'route':<12} {'tier':<24} {'reason':<28} {'requests':>9} {'cost':>14}")
    for route in summary["by_route"]:
        for t in route["tiers"]:
            typer.echo(f"{route['route']:<12} {t['tier']:<24} {t['reason']:<28} "
                       f"{t['requests']:>9} {t['cost']:>14.6f}")
        typer.echo(f"{route['route']:<12} saved {route['saved']:.6f} of "
                   f"{route['cost_at_largest']:.6f} (all on {route['largest_tier']})")
    typer.echo(f"\ntotal cost: {summary['total_cost']:.6f}")
