"""``llmp backends``: the CLI's reading and formatting of the gateway's admin API, against a real
HTTP server that answers in that API's shape (a stand-in for the gateway's routes; the end-to-end
test against a gateway lives with the router)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from llmp_cli.main import app
from tests.support.servers import serve_asgi

runner = CliRunner()
ADMIN = "sk-llmp-admin-test"
ROWS: list[dict[str, Any]] = [
    {"alias": "smollm2-135m", "tier": "gguf", "backend": "gguf-smollm2-local-0",
     "url": "http://127.0.0.1:8081", "state": "closed", "drained": False,
     "load": {"active": 3, "queued": 1, "slots": 4, "in_flight": 4}, "affinity_hits": 17,
     "version": "v20261201-abc"},
    {"alias": "smollm2-135m", "tier": "gguf", "backend": "gguf-smollm2-local-1",
     "url": "http://127.0.0.1:8181", "state": "open", "drained": False,
     "load": {"active": 0, "queued": 0, "slots": 4, "in_flight": 0}, "affinity_hits": 0,
     "version": None},
]


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error",
                                   "param": None, "code": code}}, status)


def admin_api(rows: list[dict[str, Any]]) -> Starlette:
    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {ADMIN}"

    async def listing(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        return JSONResponse({"object": "list", "data": rows})

    async def drain(request: Request) -> JSONResponse:
        if not authorized(request):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        name, action = request.path_params["name"], request.path_params["action"]
        row = next((r for r in rows if r["backend"] == name), None)
        if row is None or action not in ("drain", "undrain"):
            return _error(404, f"No backend named '{name}'.", "not_found")
        row["drained"] = action == "drain"
        return JSONResponse(row)

    return Starlette(routes=[Route("/v1/admin/backends", listing),
                             Route("/v1/admin/backends/{name}/{action}", drain, methods=["POST"])])


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rows = copy.deepcopy(ROWS)
    with serve_asgi(admin_api(rows)) as url:
        yield url, rows


def cli(*args: str) -> Any:
    return runner.invoke(app, ["backends", *args])


def test_lists_each_backend_with_load_state_and_affinity(gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    out = cli("--base-url", url, "--api-key", ADMIN)
    assert out.exit_code == 0, out.output
    header, first, second = out.stdout.splitlines()
    assert header.split() == ["ALIAS", "TIER", "BACKEND", "URL", "STATE", "ACTIVE", "QUEUED",
                              "SLOTS", "IN_FLIGHT", "AFFINITY", "VERSION"]
    assert first.split() == ["smollm2-135m", "gguf", "gguf-smollm2-local-0", "http://127.0.0.1:8081",
                             "closed", "3", "1", "4", "4", "17", "v20261201-abc"]
    assert second.split() == ["smollm2-135m", "gguf", "gguf-smollm2-local-1",
                              "http://127.0.0.1:8181", "open", "0", "0", "4", "0", "0", "-"]
    assert first.index("gguf-smollm2-local-0") == header.index("BACKEND")  # aligned columns


def test_json_is_the_gateways_rows(gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    out = cli("--json", "--base-url", url, "--api-key", ADMIN)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == ROWS


def test_drain_then_undrain_a_replica(gateway: tuple[str, Any]) -> None:
    url, rows = gateway
    out = cli("drain", "gguf-smollm2-local-1", "--base-url", url, "--api-key", ADMIN)
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "drained gguf-smollm2-local-1"
    assert rows[1]["drained"] is True
    listed = cli("--base-url", url, "--api-key", ADMIN).stdout.splitlines()
    assert "open drained" in listed[2] and "drained" not in listed[1]
    assert cli("undrain", "gguf-smollm2-local-1", "--base-url", url,
               "--api-key", ADMIN).exit_code == 0
    assert rows[1]["drained"] is False


def test_unknown_backend_is_an_error_naming_it(gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    out = cli("drain", "nope", "--base-url", url, "--api-key", ADMIN)
    assert out.exit_code == 1
    assert "HTTP 404" in out.output and "No backend named 'nope'" in out.output


def test_admin_key_from_the_environment_and_a_wrong_key(gateway: tuple[str, Any]) -> None:
    url, _ = gateway
    ok = runner.invoke(app, ["backends", "--base-url", url], env={"LLMP_ADMIN_KEY": ADMIN})
    assert ok.exit_code == 0 and "gguf-smollm2-local-0" in ok.stdout
    bad = cli("--base-url", url, "--api-key", "sk-llmp-wrong")
    assert bad.exit_code == 1 and "HTTP 401: Incorrect API key provided." in bad.output


def test_the_local_admin_key_is_the_default(gateway: tuple[str, Any], tmp_path: Path) -> None:
    url, _ = gateway
    none = runner.invoke(app, ["backends", "--base-url", url],
                         env={"LLMP_DATA_DIR": str(tmp_path), "LLMP_ADMIN_KEY": None, "COLUMNS": "200"})
    assert none.exit_code == 2 and "no local admin key" in none.output
    (tmp_path / "admin-api-key").write_text(ADMIN + "\n")
    out = runner.invoke(app, ["backends", "--base-url", url],
                        env={"LLMP_DATA_DIR": str(tmp_path), "LLMP_ADMIN_KEY": None, "COLUMNS": "200"})
    assert out.exit_code == 0, out.output


def test_an_unreachable_gateway_or_a_foreign_answer_fails_clearly() -> None:
    from llmp_cli.local import free_port

    down = cli("--base-url", f"http://127.0.0.1:{free_port()}", "--api-key", ADMIN)
    assert down.exit_code == 1 and "cannot reach the gateway" in down.output

    async def other(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"alias": "a"}]})

    with serve_asgi(Starlette(routes=[Route("/v1/admin/backends", other)])) as url:
        out = cli("--base-url", url, "--api-key", ADMIN)
    assert out.exit_code == 1 and "not what this CLI reads" in out.output
