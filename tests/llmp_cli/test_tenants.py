"""``llmp tenants`` and ``llmp usage report`` against the real Postgres."""

import json
import re
import time
import uuid

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
def test_tenants_create_update_list() -> None:
    name = "cli-" + uuid.uuid4().hex[:6]
    out = runner.invoke(app, ["tenants", "create", name, "--model", "mock", "--model", "mock-*",
                              "--rpm", "60", "--budget", "25", "--entra-role", "App.X"])
    assert out.exit_code == 0, out.output
    assert "models=mock,mock-* rpm=60 tpm=- budget=25.0" in out.output
    out = runner.invoke(app, ["tenants", "update", name, "--tpm", "1000", "--clear", "rpm",
                              "--on-redis-down", "closed"])
    assert out.exit_code == 0, out.output
    assert "rpm=- tpm=1000" in out.output and "redis-down=closed" in out.output
    listed = runner.invoke(app, ["tenants", "list"])
    assert name in listed.output and "entra-roles=App.X" in listed.output
    again = runner.invoke(app, ["tenants", "create", name])
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["tenants", "update", name, "--clear", "colour"])
    assert bad.exit_code != 0


@pytest.mark.usefixtures("env")
def test_key_options_and_usage_report(gateway_url: str) -> None:
    name = "cli-" + uuid.uuid4().hex[:6]
    out = runner.invoke(app, ["keys", "create", "--tenant", name, "--model", "mock", "--rpm", "5",
                              "--role", "admin"])
    assert out.exit_code == 0, out.output
    key = out.output.strip().splitlines()[-1]
    h = {"authorization": f"Bearer {key}"}
    r = httpx.post(f"{gateway_url}/v1/chat/completions", headers=h, json={
        "model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7})
    assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "5"
    assert httpx.get(f"{gateway_url}/v1/admin/tenants", headers=h).status_code == 200
    deadline = time.monotonic() + 10
    while True:
        report = runner.invoke(app, ["usage", "report", "--tenant", name, "--json"])
        assert report.exit_code == 0, report.output
        data = json.loads(report.output)
        if data["by_model"]:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert data["by_model"][0]["completion_tokens"] == 7 and data["tenant"] == name
    text = runner.invoke(app, ["usage", "report", "--tenant", name])
    assert re.search(r"mock\s+1\s+5\s+7", text.output), text.output
    assert "total cost" in text.output
    bad = runner.invoke(app, ["keys", "create", "--tenant", name, "--role", "root"])
    assert bad.exit_code != 0


@pytest.mark.usefixtures("env")
def test_update_retention_and_cache_policy(tmp_path: "pytest.TempPathFactory", postgres_url: str
                                           ) -> None:
    import asyncio
    from pathlib import Path

    from functions.db import Database

    name = "cli-" + uuid.uuid4().hex[:6]
    assert runner.invoke(app, ["tenants", "create", name]).exit_code == 0
    policy = Path(str(tmp_path)) / "cache.json"
    policy.write_text(json.dumps({"ttl_s": 120, "semantic": {"enabled": True, "threshold": 0.9}}))
    out = runner.invoke(app, ["tenants", "update", name, "--retention-days", "7",
                              "--cache-policy", str(policy)])
    assert out.exit_code == 0, out.output

    async def row() -> tuple[object, ...]:
        db = Database(postgres_url, min_size=0, max_size=1)
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT retention_days, cache_policy FROM tenants WHERE name = %s", (name,))
            got = await cur.fetchone()
        await db.aclose()
        assert got is not None
        return tuple(got)

    days, stored = asyncio.run(row())
    assert days == 7 and stored["ttl_s"] == 120 and stored["semantic"]["threshold"] == 0.9  # type: ignore[index]
    policy.write_text('{"ttl_s": -1}')
    bad = runner.invoke(app, ["tenants", "update", name, "--cache-policy", str(policy)])
    assert bad.exit_code == 2 and "invalid cache policy" in bad.output
