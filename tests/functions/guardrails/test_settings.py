import pytest
from pydantic import ValidationError

from functions.guardrails.settings import GuardrailSettings


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_GUARDRAILS_MODERATION", "azure")
    monkeypatch.setenv("LLMP_GUARDRAILS_HOLDBACK_CHARS", "128")
    s = GuardrailSettings()
    assert (s.moderation, s.holdback_chars, s.injection) == ("azure", 128, "combined")
    monkeypatch.setenv("LLMP_GUARDRAILS_INJECTION", "heuristic")
    assert GuardrailSettings().injection == "heuristic"


def test_window_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_GUARDRAILS_HOLDBACK_CHARS", "100000")
    with pytest.raises(ValidationError):
        GuardrailSettings()
