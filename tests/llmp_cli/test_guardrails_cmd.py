import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmp_cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _db(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)


def test_set_show_reset(tmp_path: Path) -> None:
    assert runner.invoke(app, ["keys", "create", "--tenant", "cli-policy"]).exit_code == 0
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"pii": {"entities": {"PERSON": "block"}}, "overridable": ["pii"]}))
    r = runner.invoke(app, ["guardrails", "set", "--tenant", "cli-policy", str(f)])
    assert r.exit_code == 0, r.output
    shown = json.loads(runner.invoke(app, ["guardrails", "show", "--tenant", "cli-policy"]).output)
    assert shown["pii"]["entities"] == {"PERSON": "block"} and shown["overridable"] == ["pii"]
    assert runner.invoke(app, ["guardrails", "set", "--tenant", "cli-policy", "--reset"]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["guardrails", "show", "--tenant", "cli-policy"]).output)
    assert shown == json.loads(runner.invoke(app, ["guardrails", "defaults"]).output)


def test_bad_policy_and_unknown_tenant(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{"pii": {"entities": {"PERSON": "explode"}}}')
    r = runner.invoke(app, ["guardrails", "set", "--tenant", "x", str(f)])
    assert r.exit_code == 2 and "invalid policy" in r.output
    f.write_text("{}")
    assert runner.invoke(app, ["guardrails", "set", "--tenant", "nobody", str(f)]).exit_code == 1
    assert runner.invoke(app, ["guardrails", "show", "--tenant", "nobody"]).exit_code == 1
