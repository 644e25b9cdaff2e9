"""Build the configured detectors (nothing loads or connects here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.guardrails.bulk import ProcessLane
from functions.guardrails.engine import Detectors
from functions.guardrails.injection import (
    HeuristicInjectionDetector,
    InjectionDetector,
    PromptShieldsDetector,
)
from functions.guardrails.injection_model import CombinedInjectionDetector
from functions.guardrails.moderation import AzureModerator, Moderator, RuleModerator
from functions.guardrails.pii import PresidioAnalyzer
from functions.guardrails.settings import GuardrailSettings

if TYPE_CHECKING:
    from azure.ai.contentsafety.aio import ContentSafetyClient


def content_safety_client(s: GuardrailSettings) -> ContentSafetyClient:
    from azure.ai.contentsafety.aio import ContentSafetyClient
    from azure.core.credentials import AzureKeyCredential
    from azure.core.credentials_async import AsyncTokenCredential

    if not s.content_safety_endpoint:
        raise ValueError("LLMP_GUARDRAILS_CONTENT_SAFETY_ENDPOINT is required for the Azure "
                         "detectors")
    credential: AzureKeyCredential | AsyncTokenCredential
    if s.content_safety_key:
        credential = AzureKeyCredential(s.content_safety_key)
    else:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return ContentSafetyClient(s.content_safety_endpoint, credential)


def build_detectors(s: GuardrailSettings) -> Detectors:
    client = content_safety_client(s) if "azure" in (s.injection, s.moderation) else None
    injection: InjectionDetector
    if client and s.injection == "azure":
        injection = PromptShieldsDetector(client)
    elif s.injection == "combined":
        injection = CombinedInjectionDetector()
    else:
        injection = HeuristicInjectionDetector()
    moderation: Moderator = (AzureModerator(client) if client and s.moderation == "azure"
                             else RuleModerator())
    lane = ProcessLane(s.spacy_model, s.timeout_s, s.bulk_processes) if s.bulk_processes else None
    pii = PresidioAnalyzer(s.spacy_model, s.analysis_cache_size, workers=s.workers,
                           bulk_chars=s.bulk_chars, lane=lane)
    return Detectors(pii, injection, moderation)
