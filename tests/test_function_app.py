"""``import function_app`` must stay light: the Functions host gives a worker 30 s to start."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["llama_cpp", "torch", "presidio_analyzer", "presidio_anonymizer", "spacy",
         "sentence_transformers", "psycopg", "redis", "numpy", "azure.ai.contentsafety", "jsonschema",
         "prometheus_client", "qdrant_client", "transformers", "pypdf", "bs4"]


def test_import_loads_no_heavy_library() -> None:
    code = ("import sys, json, function_app; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("name", ["host.json", "local.settings.example.json"])
def test_functions_config_files(name: str) -> None:
    data = json.loads((Path(__file__).parent.parent / name).read_text())
    if name == "host.json":
        assert data["extensions"]["http"]["routePrefix"] == ""
    else:
        assert data["Values"]["PYTHON_ENABLE_INIT_INDEXING"] == "1"
