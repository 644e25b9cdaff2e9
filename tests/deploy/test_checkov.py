"""checkov over terraform/ (framework terraform) and aks/ (framework kustomize: base and every overlay
as rendered): zero failed checks, and every skip carries a written reason. checkov lives in its own
venv (`make tools`, .venv-tools) because it pins many packages of its own."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import ROOT

CHECKOV = Path(os.environ.get("LLMP_CHECKOV", ROOT / ".venv-tools/bin/checkov"))

pytestmark = pytest.mark.slow


def checkov(directory: str, framework: str) -> list[dict[str, Any]]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV} is missing: run `make tools`")
    r = subprocess.run([str(CHECKOV), "-d", directory, "--framework", framework, "--skip-download",
                        "--output", "json"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLOR": "1"})
    reports: list[dict[str, Any]] = []
    text, decoder, i = r.stdout, json.JSONDecoder(), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        reports.extend(doc if isinstance(doc, list) else [doc])
    assert reports, f"no checkov report (rc {r.returncode}):\n{r.stderr[-2000:]}"
    return reports


@pytest.mark.parametrize(("directory", "framework"), [("terraform", "terraform"), ("aks", "kustomize")])
def test_checkov(directory: str, framework: str) -> None:
    for report in checkov(directory, framework):
        summary = report["summary"]
        failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
        assert summary["failed"] == 0, f"checkov {framework} failed:\n" + "\n".join(map(str, failed))
        assert summary["passed"] > 50 and summary["parsing_errors"] == 0
        for c in report["results"]["skipped_checks"]:
            reason = (c["check_result"].get("suppress_comment") or "").strip()
            assert len(reason) > 20, f"{c['check_id']} on {c['resource']}: skip without a reason"
