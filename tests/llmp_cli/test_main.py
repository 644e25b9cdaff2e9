"""``llmp keys`` against the real Postgres and Redis."""

import re

import httpx
import pytest
from typer.testing import CliRunner

from llmp_cli.main import app

runner = CliRunner()


@pytest.fixture
def env(postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("REDIS_URL", redis_url)


@pytest.mark.usefixtures("env")
def test_create_list_revoke(gateway_url: str) -> None:
    out = runner.invoke(app, ["keys", "create", "--tenant", "cli-team", "--name", "ci",
                              "--expires-in-days", "30"])
    assert out.exit_code == 0, out.output
    key = out.output.strip().splitlines()[-1]
    assert key.startswith("sk-llmp-")
    key_id = re.search(r"created key (\S+)", out.output).group(1)  # type: ignore[union-attr]
    h = {"authorization": f"Bearer {key}"}
    assert httpx.get(f"{gateway_url}/v1/models", headers=h).status_code == 200  # now cached

    listed = runner.invoke(app, ["keys", "list", "--tenant", "cli-team"])
    assert key_id in listed.output and "active" in listed.output and key not in listed.output

    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert httpx.get(f"{gateway_url}/v1/models", headers=h).status_code == 401  # cache dropped


@pytest.mark.usefixtures("env")
def test_revoke_unknown_key_fails() -> None:
    out = runner.invoke(app, ["keys", "revoke", "00000000-0000-0000-0000-000000000000"])
    assert out.exit_code == 1


@pytest.mark.usefixtures("env")
def test_bad_tenant_name_is_refused() -> None:
    out = runner.invoke(app, ["keys", "create", "--tenant", "bad name"])
    assert out.exit_code != 0
