import pytest

from functions.errors import InvalidRequest, PermissionDenied
from functions.guardrails.policy import GuardrailPolicy


def test_defaults_block_ssn_and_cards_and_mask_contacts() -> None:
    p = GuardrailPolicy()
    assert p.pii.entities["US_SSN"] == p.pii.entities["CREDIT_CARD"] == "block"
    assert {p.pii.entities[e] for e in ("EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON")} == {"mask"}
    assert p.injection.action == "block" and p.on_error == "refuse"


def test_model_section_overrides_the_tenant_policy() -> None:
    p = GuardrailPolicy.model_validate({"models": {"big": {"pii": {"entities": {"PERSON": "allow"}}}}})
    assert p.resolve("big", None).pii.entities["PERSON"] == "allow"
    assert p.resolve("big", None).pii.entities["EMAIL_ADDRESS"] == "mask"  # merged, not replaced
    assert p.resolve("small", None).pii.entities["PERSON"] == "mask"


def test_request_may_override_only_what_the_policy_allows() -> None:
    p = GuardrailPolicy(overridable=["pii.restore", "pii.entities.EMAIL_ADDRESS"])
    r = p.resolve("m", {"pii": {"restore": False, "entities": {"EMAIL_ADDRESS": "allow"}}})
    assert r.pii.restore is False and r.pii.entities["EMAIL_ADDRESS"] == "allow"
    with pytest.raises(PermissionDenied, match=r"pii\.entities\.US_SSN"):
        p.resolve("m", {"pii": {"entities": {"US_SSN": "allow"}}})
    with pytest.raises(PermissionDenied):
        GuardrailPolicy().resolve("m", {"enabled": False})


def test_bad_override_values_are_a_clear_400() -> None:
    p = GuardrailPolicy(overridable=["pii"])
    with pytest.raises(InvalidRequest, match=r"pii\.entities\.EMAIL_ADDRESS"):
        p.resolve("m", {"pii": {"entities": {"EMAIL_ADDRESS": "shred"}}})
