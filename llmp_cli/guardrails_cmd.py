"""``llmp guardrails``: show and set a tenant's guardrail policy (stored with the tenant)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from llmp_cli.tenants import run_db

app = typer.Typer(no_args_is_help=True, help="Show and set tenants' guardrail policies.")


@app.command("defaults")
def defaults() -> None:
    """Print the platform's default policy (JSON): a starting point for a tenant's own."""
    from functions.guardrails.policy import GuardrailPolicy

    typer.echo(GuardrailPolicy().model_dump_json(indent=2))


@app.command("show")
def show(tenant: Annotated[str, typer.Option(help="Tenant name.")]) -> None:
    """Print the tenant's effective policy (JSON)."""
    from functions.guardrails.policies import parse_policy

    async def run(db: Any) -> str | None:
        async with db.connection() as conn:
            cur = await conn.execute("SELECT guardrail_policy FROM tenants WHERE name = %s",
                                     (tenant,))
            row = await cur.fetchone()
        return None if row is None else parse_policy(row[0]).model_dump_json(indent=2)

    out = run_db(run)
    if out is None:
        typer.echo(f"no tenant named {tenant!r}", err=True)
        raise typer.Exit(1)
    typer.echo(out)


@app.command("set")
def set_policy(
    tenant: Annotated[str, typer.Option(help="Tenant name.")],
    policy: Annotated[Path | None, typer.Argument(
        help="A JSON file with the policy (omitted keys take the defaults).")] = None,
    reset: Annotated[bool, typer.Option(help="Back to the platform defaults.")] = False,
) -> None:
    """Store a tenant's policy; gateways pick it up within LLMP_GUARDRAILS_POLICY_CACHE_TTL_S."""
    from pydantic import ValidationError

    from functions.guardrails.policies import PolicyStore
    from functions.guardrails.policy import GuardrailPolicy

    if (policy is None) == (not reset):
        typer.echo("give a policy file, or --reset", err=True)
        raise typer.Exit(2)
    parsed = None
    if policy is not None:
        try:
            parsed = GuardrailPolicy.model_validate(json.loads(policy.read_text()))
        except (ValueError, ValidationError) as e:
            typer.echo(f"invalid policy: {e}", err=True)
            raise typer.Exit(2) from None

    if not run_db(lambda db: PolicyStore(db, 0).set(tenant, parsed)):
        typer.echo(f"no tenant named {tenant!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"guardrail policy of {tenant} {'reset' if reset else 'updated'}")
