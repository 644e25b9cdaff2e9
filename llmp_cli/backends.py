"""``llmp backends``: each backend of each alias as the gateway's router sees it (URL, load, breaker
state, affinity hits), and ``drain`` / ``undrain`` of one replica, over the gateway's admin API:

- ``GET /v1/admin/backends``
- ``POST /v1/admin/backends/{name}/drain``, ``POST /v1/admin/backends/{name}/undrain``

A client of the gateway like ``llmp rag``, so it works against a local gateway and against Azure
alike: ``--base-url`` (``LLMP_BASE_URL``, default the local gateway) and ``--api-key``
(``LLMP_ADMIN_KEY``: a key with the admin role; default the local admin key that ``llmp serve``
keeps in ``.llmp/admin-api-key``).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal
from urllib.parse import quote

import httpx
import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmp_cli.local import data_dir

DEFAULT_URL = "http://127.0.0.1:7071"
ADMIN_KEY_FILE = "admin-api-key"

BaseUrl = Annotated[str, typer.Option("--base-url", envvar="LLMP_BASE_URL",
                                      help="The gateway (local or Azure).")]
AdminKey = Annotated[str | None, typer.Option(
    "--api-key", envvar="LLMP_ADMIN_KEY",
    help="A key with the admin role (default: the local admin key of `llmp serve`).")]


class Load(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    active: int = Field(ge=0)
    queued: int = Field(ge=0)
    slots: int = Field(ge=0)
    in_flight: int = Field(ge=0)


class BackendRow(BaseModel):
    """One backend of one alias, as ``GET /v1/admin/backends`` reports it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    alias: str
    tier: str
    backend: str
    url: str
    state: Literal["closed", "open", "half_open"]
    drained: bool
    load: Load | None = None
    """None: the gateway has not heard from the backend yet."""
    affinity_hits: int = Field(0, ge=0)
    version: str | None = None


class BackendList(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    object: Literal["list"]
    data: list[BackendRow]


class GatewayError(Exception):
    """The gateway could not be reached, refused the call, or answered something else."""


def admin_client(base_url: str, api_key: str | None) -> httpx.Client:
    key = api_key
    if key is None:
        local = data_dir() / ADMIN_KEY_FILE
        if not local.is_file():
            raise typer.BadParameter("no --api-key / LLMP_ADMIN_KEY, and no local admin key "
                                     "(`llmp serve` makes one)", param_hint="--api-key")
        key = local.read_text().strip()
    return httpx.Client(base_url=base_url.rstrip("/"), headers={"authorization": f"Bearer {key}"},
                        timeout=httpx.Timeout(10, connect=5), trust_env=False)


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    try:
        r = client.request(method, path)
    except httpx.HTTPError as e:
        raise GatewayError(f"cannot reach the gateway at {client.base_url}: {e}") from None
    if r.status_code >= 400:
        try:
            message = str(r.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = r.text[:200] or r.reason_phrase
        raise GatewayError(f"{method} {path}: HTTP {r.status_code}: {message}")
    return r


def fetch_backends(client: httpx.Client) -> BackendList:
    r = _call(client, "GET", "/v1/admin/backends")
    try:
        return BackendList.model_validate_json(r.content)
    except ValidationError as e:
        raise GatewayError(f"the gateway's backend list is not what this CLI reads: {e}") from None


def set_drained(client: httpx.Client, name: str, drained: bool) -> None:
    action = "drain" if drained else "undrain"
    _call(client, "POST", f"/v1/admin/backends/{quote(name, safe='')}/{action}")


COLUMNS = ("ALIAS", "TIER", "BACKEND", "URL", "STATE", "ACTIVE", "QUEUED", "SLOTS", "IN_FLIGHT",
           "AFFINITY", "VERSION")


def _cells(row: BackendRow) -> tuple[str, ...]:
    state = row.state + (" drained" if row.drained else "")
    load = ("-",) * 4 if row.load is None else (
        str(row.load.active), str(row.load.queued), str(row.load.slots), str(row.load.in_flight))
    return (row.alias, row.tier, row.backend, row.url, state, *load, str(row.affinity_hits),
            row.version or "-")


def table(rows: list[BackendRow]) -> str:
    """Plain aligned columns (greppable; ``--json`` for scripts)."""
    cells = [COLUMNS, *(_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in cells)


app = typer.Typer(invoke_without_command=True,
                  help="Backends of each alias: load, breaker state, affinity; drain a replica.")


@app.callback()
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The gateway's rows, as JSON.")] = False,
    base_url: BaseUrl = DEFAULT_URL,
    api_key: AdminKey = None,
) -> None:
    """List each backend of each alias (unless a subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    with admin_client(base_url, api_key) as client:
        try:
            rows = fetch_backends(client).data
        except GatewayError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
    else:
        typer.echo(table(rows))


def _drain(name: str, drained: bool, base_url: str, api_key: str | None) -> None:
    with admin_client(base_url, api_key) as client:
        try:
            set_drained(client, name, drained)
        except GatewayError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(1) from None
    typer.echo(f"{'drained' if drained else 'undrained'} {name}")


Name = Annotated[str, typer.Argument(help="The backend (see `llmp backends`).")]


@app.command()
def drain(name: Name, base_url: BaseUrl = DEFAULT_URL, api_key: AdminKey = None) -> None:
    """Send no new requests to this backend (those in flight finish)."""
    _drain(name, True, base_url, api_key)


@app.command()
def undrain(name: Name, base_url: BaseUrl = DEFAULT_URL, api_key: AdminKey = None) -> None:
    """Route to this backend again."""
    _drain(name, False, base_url, api_key)
