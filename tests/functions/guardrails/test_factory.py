import pytest

from functions.guardrails.factory import build_detectors
from functions.guardrails.injection import PromptShieldsDetector
from functions.guardrails.moderation import AzureModerator
from functions.guardrails.settings import GuardrailSettings


def test_factory_picks_the_configured_implementations() -> None:
    local = build_detectors(GuardrailSettings())
    assert local.moderation.name == "rules_moderation"
    assert local.injection.name == "combined_injection"
    assert build_detectors(GuardrailSettings(injection="heuristic")).injection.name == (
        "heuristic_injection")
    azure = build_detectors(GuardrailSettings(injection="azure", moderation="azure",
                                              content_safety_endpoint="https://cs.example",
                                              content_safety_key="k"))
    assert isinstance(azure.injection, PromptShieldsDetector)
    assert isinstance(azure.moderation, AzureModerator)
    with pytest.raises(ValueError, match="CONTENT_SAFETY_ENDPOINT"):
        build_detectors(GuardrailSettings(moderation="azure"))
