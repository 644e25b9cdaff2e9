"""``llmp rag``: a client of the gateway's knowledge-base endpoints."""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from llmp_cli.main import app
from tests.support.pdf import make_pdf

runner = CliRunner()


def test_ingest_a_folder_then_list_and_delete(gateway_url: str, api_key: str, tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "faq.md").write_text("# FAQ\nThe wifi password rotates weekly.\n")
    (tmp_path / "docs" / "sub" / "guide.pdf").write_bytes(make_pdf([["The printer is on floor 3."]]))
    (tmp_path / "docs" / "sub" / "big.txt").write_text("Rule of the archive. " * 1200)  # > sync limit
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")  # not a supported type: skipped
    args = ["--kb", "cli-kb", "--base-url", gateway_url, "--api-key", api_key]

    out = runner.invoke(app, ["rag", "ingest", str(tmp_path / "docs"), *args])
    assert out.exit_code == 1, out.output  # one file failed
    assert "3 created" in out.output and "1 failed" in out.output
    assert "broken.pdf" in out.output

    (tmp_path / "docs" / "broken.pdf").unlink()
    again = runner.invoke(app, ["rag", "ingest", str(tmp_path / "docs"), *args])
    assert again.exit_code == 0, again.output
    assert "3 unchanged" in again.output

    listed = runner.invoke(app, ["rag", "list", *args])
    assert "faq.md" in listed.output and "sub-guide.pdf" in listed.output
    r = httpx.post(f"{gateway_url}/v1/rag/kbs/cli-kb/query", json={"query": "Where is the printer?"},
                   headers={"authorization": f"Bearer {api_key}"})
    assert r.json()["data"][0]["document_id"] == "sub-guide.pdf"

    deleted = runner.invoke(app, ["rag", "delete", *args])
    assert deleted.exit_code == 0, deleted.output
    assert runner.invoke(app, ["rag", "list", *args]).stdout == ""


def test_ingest_with_a_bad_key_fails(gateway_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("text")
    out = runner.invoke(app, ["rag", "ingest", str(tmp_path / "a.txt"), "--kb", "x", "--base-url",
                              gateway_url, "--api-key", "sk-llmp-wrong"])
    assert out.exit_code == 1 and "Incorrect API key" in out.output
