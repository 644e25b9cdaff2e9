"""Content moderation behind one small interface.

:class:`RuleModerator` (the default, local) matches curated patterns per category and reports a
severity of 6 (Azure's "high") for a match; it is a baseline for the categories a policy names, not a
classifier. :class:`AzureModerator` calls Azure AI Content Safety text analysis (severities 0-7).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from azure.ai.contentsafety.aio import ContentSafetyClient

CATEGORIES = ("hate", "violence", "self_harm", "sexual")


class Moderator(Protocol):
    name: str

    async def moderate(self, texts: Sequence[str]) -> dict[str, int]:
        """The highest severity (0-7) found per category across ``texts``; 0 when clean."""
        ...


_I = re.IGNORECASE
RULES: dict[str, list[re.Pattern[str]]] = {
    "violence": [
        re.compile(r"\b(?:how (?:do|can) i|help me|ways? to|i (?:want|am going) to)\b[^.\n]{0,40}\b"
                   r"(?:kill|murder|stab|shoot|poison|strangle|behead)\b[^.\n]{0,30}\b(?:him|her|them|"
                   r"someone|people|my|a person|the)\b", _I),
        re.compile(r"\b(?:build|make|assemble)\b[^.\n]{0,20}\b(?:a )?(?:pipe )?(?:bomb|explosive "
                   r"device|ied)\b", _I),
        re.compile(r"\bmass (?:shooting|murder)\b[^.\n]{0,30}\b(?:plan|how)\b", _I),
    ],
    "self_harm": [
        re.compile(r"\b(?:how (?:do|can|should) i|best way to|ways? to|help me)\b[^.\n]{0,30}\b"
                   r"(?:kill myself|end my life|commit suicide|hurt myself|self[- ]harm)\b", _I),
        re.compile(r"\bi (?:want|am going|plan) to (?:kill myself|end my life|die)\b", _I),
    ],
    "hate": [
        re.compile(r"\b(?:all|those)\s+\w+\s+(?:are|should be)\s+(?:vermin|subhuman|animals|"
                   r"exterminated|wiped out)\b", _I),
        re.compile(r"\b(?:exterminate|eradicate|gas)\s+(?:all|the)\s+\w+s\b", _I),
    ],
    "sexual": [
        re.compile(r"\b(?:explicit|graphic)\s+(?:sex|sexual)\s+(?:story|scene|content)\b", _I),
        re.compile(r"\b(?:sexual|nude|naked)\b[^.\n]{0,30}\b(?:minor|child|children|underage|kid)s?\b",
                   _I),
    ],
}
RULE_SEVERITY = 6


class RuleModerator:
    name = "rules_moderation"
    cpu_bound = True
    """Its body computes: run in the guardrails' pool, off the event loop."""

    async def moderate(self, texts: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for text in texts:
            for category, patterns in RULES.items():
                if any(p.search(text) for p in patterns):
                    found[category] = RULE_SEVERITY
        return found


AZURE_CATEGORIES = {"Hate": "hate", "Violence": "violence", "SelfHarm": "self_harm",
                    "Sexual": "sexual"}


class AzureModerator:
    """Azure AI Content Safety ``analyze_text`` (the service takes at most 10k characters a call:
    longer texts are sent in pieces)."""

    name = "azure_content_safety"
    MAX_CHARS = 10_000

    def __init__(self, client: ContentSafetyClient) -> None:
        self._client = client

    async def moderate(self, texts: Sequence[str]) -> dict[str, int]:
        from azure.ai.contentsafety.models import AnalyzeTextOptions

        found: dict[str, int] = {}
        joined = "\n".join(t for t in texts if t.strip())
        for i in range(0, len(joined), self.MAX_CHARS):
            result = await self._client.analyze_text(
                AnalyzeTextOptions(text=joined[i:i + self.MAX_CHARS]))
            for item in result.categories_analysis:
                cat = AZURE_CATEGORIES.get(str(item.category), str(item.category).lower())
                found[cat] = max(found.get(cat, 0), item.severity or 0)
        return {k: v for k, v in found.items() if v > 0}
