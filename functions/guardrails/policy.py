"""A tenant's guardrail policy: what each finding leads to (allow, mask, block or flag).

Stored with the tenant (``tenants.guardrail_policy``, JSON); a ``models`` section overrides parts of it
per model alias, and a request may override the keys the policy lists in ``overridable`` through the
``guardrails`` extension field of its body. Everything else in a request override is refused (403).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.errors import InvalidRequest, PermissionDenied

Action = Literal["allow", "mask", "block", "flag"]
"""allow: nothing happens; mask: replaced by a placeholder; block: the request is refused;
flag: passed on unchanged and recorded in the audit table."""

DEFAULT_PII: dict[str, Action] = {
    # High risk: refused outright.
    "US_SSN": "block", "CREDIT_CARD": "block", "US_ITIN": "block",
    # Identifying but often needed by the task: masked with reversible placeholders.
    "PERSON": "mask", "EMAIL_ADDRESS": "mask", "PHONE_NUMBER": "mask", "IBAN_CODE": "mask",
    "IP_ADDRESS": "mask", "US_BANK_NUMBER": "mask", "US_PASSPORT": "mask",
    "US_DRIVER_LICENSE": "mask", "CRYPTO": "mask", "MEDICAL_LICENSE": "mask",
    # Low risk: recorded only.
    "URL": "flag",
}

DEFAULT_MODERATION: dict[str, Action] = {
    "hate": "block", "violence": "block", "self_harm": "block", "sexual": "block",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PiiPolicy(_Model):
    entities: dict[str, Action] = Field(default_factory=lambda: dict(DEFAULT_PII))
    min_score: float = Field(0.4, ge=0, le=1)
    """Findings scored below this are ignored (Presidio's scores: patterns 0.3-1.0, raised by 0.35
    and to at least 0.6 when a context word such as "phone" is near them; NER 0.85; a name marked
    by a cue, "Dear ...", 0.6). A phone number without context scores 0.4."""
    restore: bool = True
    """Put the masked values back into the answer for the caller (the model only saw placeholders)."""


class InjectionPolicy(_Model):
    threshold: float = Field(0.7, ge=0, le=1)
    """The score from which a text is an injection. With the combined detector the score is
    ``1 - (1 - heuristic) * (1 - learned)``; the learned part reads 0.7 at its operating point
    (2% false positives on its validation texts): lower to catch more, raise to flag fewer."""
    action: Literal["allow", "block", "flag"] = "block"
    classifier: bool = True
    """Use the learned detector's part of a combined score (false: the heuristics alone)."""
    on_classifier_error: Literal["heuristics", "refuse"] = "heuristics"
    """When the learned detector cannot score: go on with the heuristics (counted in
    ``llmp_guardrail_failures_total{detector="learned_injection"}``), or refuse (503)."""


class ModerationPolicy(_Model):
    categories: dict[str, Action] = Field(default_factory=lambda: dict(DEFAULT_MODERATION))
    min_severity: int = Field(4, ge=0, le=7)
    """Azure AI Content Safety severities run 0-7; the local rules report 0 or 6."""


class OutputPolicy(_Model):
    pii: bool = True
    moderation: bool = True
    on_violation: Literal["mask", "error"] = "mask"
    """mask: the violating text is replaced (PII by ``<TYPE>``, moderated text by ``[removed]``) and
    the answer goes on; error: the answer ends with a ``content_filter`` error (an error event then
    ``[DONE]`` in a stream). A finding whose action is ``block`` always ends the answer."""
    max_chars: int | None = Field(None, gt=0)
    """Answers longer than this are cut, with ``finish_reason: "length"``."""
    validate_json: bool = True
    """When ``response_format`` asks for JSON, an answer that is not valid JSON is an error."""


class GuardrailPolicy(_Model):
    enabled: bool = True
    pii: PiiPolicy = PiiPolicy()
    injection: InjectionPolicy = InjectionPolicy()
    moderation: ModerationPolicy = ModerationPolicy()
    output: OutputPolicy = OutputPolicy()
    on_error: Literal["refuse", "allow"] = "refuse"
    """A guardrail that fails or times out refuses the request (503) unless this says ``allow``."""
    overridable: list[str] = Field(default_factory=list)
    """Dotted keys a request may override, e.g. ``pii.restore`` or ``pii.entities.EMAIL_ADDRESS``;
    a key also allows everything under it."""
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per model alias: a partial policy merged over this one."""

    def resolve(self, model: str, request_override: dict[str, Any] | None) -> GuardrailPolicy:
        """The policy for one request: the model's section, then the request's allowed overrides."""
        data = self.model_dump(exclude={"models"})
        if model in self.models:
            data = _merge(data, self.models[model])
        if request_override:
            for path in _leaf_paths(request_override):
                if not any(path == k or path.startswith(k + ".") for k in self.overridable):
                    raise PermissionDenied(
                        f"The guardrail setting '{path}' cannot be overridden by a request under "
                        "this tenant's policy.", param="guardrails", code="guardrail_override_denied")
            data = _merge(data, request_override)
        try:
            return GuardrailPolicy.model_validate(data)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InvalidRequest(f"Invalid guardrail setting '{where}': {err['msg']}.",
                                 param="guardrails") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _leaf_paths(d: dict[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for k, v in d.items():
        p = f"{prefix}{k}"
        paths.extend(_leaf_paths(v, p + ".") if isinstance(v, dict) and v else [p])
    return paths
