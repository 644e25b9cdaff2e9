"""Prompt-injection detection behind one small interface.

:class:`HeuristicInjectionDetector` (the default) scores text with weighted patterns in five families:
instruction override, role manipulation, system-prompt extraction, jailbreak personas, and encoded or
obfuscated payloads (base64 that decodes to an attack, invisible or bidi characters, look-alike
letters). The text is normalised first (NFKC, invisible characters removed, common Cyrillic/Greek
look-alikes folded to Latin), so tricks that hide an attack from the patterns raise the score instead.
:class:`PromptShieldsDetector` asks Azure AI Content Safety Prompt Shields. The learned detector and
its combination with these heuristics are in :mod:`functions.guardrails.injection_model`.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from azure.ai.contentsafety.aio import ContentSafetyClient


@dataclass(frozen=True, slots=True)
class InjectionScore:
    score: float
    """0 (benign) to 1 (certain attack)."""
    categories: dict[str, int] = field(default_factory=dict)
    """Which families matched, and how often (no text)."""
    parts: dict[str, float] = field(default_factory=dict)
    """A combined detector's parts, by name (``heuristic``, ``learned``): the policy may ask for
    the heuristics alone."""
    degraded: str | None = None
    """Why a part of a combined detector could not score (the score is then the others')."""


class InjectionDetector(Protocol):
    name: str

    async def score(self, prompts: Sequence[str], documents: Sequence[str]) -> InjectionScore:
        """``prompts``: what users wrote; ``documents``: untrusted content (tool results,
        retrieved passages) that must not carry instructions either."""
        ...


_I = re.IGNORECASE
_TARGET = (r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|"
           r"polic(?:y|ies)|system (?:message|prompt)|constraints|programming|context)")
PATTERNS: dict[str, list[tuple[re.Pattern[str], float]]] = {
    "instruction_override": [
        (re.compile(r"\b(?:ignore|disregard|forget|bypass|override|skip)\b[^.\n]{0,40}?\b(?:all|any|"
                    r"every|the|your|previous|prior|above|earlier|preceding|original|initial)\b"
                    r"[^.\n]{0,30}?\b" + _TARGET, _I), 0.8),
        (re.compile(r"\b(?:do not|don't|never)\s+(?:follow|obey|comply with)\b[^.\n]{0,30}" + _TARGET,
                    _I), 0.7),
        (re.compile(r"\bnew (?:instructions?|rules|task)\s*:", _I), 0.5),
        (re.compile(r"\b(?:from now on|henceforth|starting now)\b[^.\n]{0,40}\b(?:you (?:will|must|"
                    r"are|shall)|respond|answer|act)\b", _I), 0.5),
    ],
    "role_manipulation": [
        (re.compile(r"\byou are (?:now|no longer)\b", _I), 0.5),
        (re.compile(r"\b(?:act|behave|respond) as (?:if you (?:were|are) )?(?:an? )?(?:unrestricted|"
                    r"unfiltered|uncensored|evil|rogue|different) ", _I), 0.7),
        (re.compile(r"\bpretend (?:to be|you are|that you)\b", _I), 0.4),
        (re.compile(r"^\s*(?:system|assistant)\s*:\s*(?:you|from now|ignore|new)\b",
                    _I | re.MULTILINE), 0.75),  # a fake turn that speaks to the model
        (re.compile(r"<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|\[/?(?:INST|SYS)\]|"
                    r"<</?SYS>>", _I), 0.8),  # chat-template tokens have no place in user text
    ],
    "prompt_extraction": [
        (re.compile(r"\b(?:reveal|show|print|display|output|repeat|tell me|give me|leak|dump|"
                    r"what (?:is|are|were))\b[^.\n]{0,30}\b(?:your|the)\s+(?:(?:full|entire|exact|"
                    r"original|initial|hidden|secret)\s+)*(?:system\s+)?(?:prompt|instructions|"
                    r"rules|guidelines|configuration)\b", _I), 0.75),
        (re.compile(r"\brepeat (?:everything|the (?:text|words)) (?:above|before)\b", _I), 0.7),
    ],
    "jailbreak_persona": [
        (re.compile(r"\bDAN\b"), 0.6),  # the persona's name is upper case; "Dan" is a name
        (re.compile(r"\bdo anything now\b", _I), 0.7),
        (re.compile(r"\b(?:developer|god|jailbreak|unrestricted|sudo|admin) mode\b", _I), 0.7),
        (re.compile(r"\b(?:jailbreak|jailbroken)\b", _I), 0.5),
        (re.compile(r"\bwithout (?:any )?(?:restrictions|filters|limits|censorship|moral|ethic)", _I),
         0.5),
        (re.compile(r"\bno (?:restrictions|filters|rules|limits)\b[^.\n]{0,20}\b(?:apply|anymore)", _I),
         0.5),
    ],
}

_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4}){6,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_CONFUSABLES = str.maketrans({  # Cyrillic and Greek letters that look Latin
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y",
    "\u0445": "x", "\u0456": "i", "\u0458": "j", "\u0455": "s", "\u0501": "d", "\u0261": "g",
    "\u04bb": "h", "\u04cf": "l", "\u03bf": "o", "\u03b1": "a", "\u03b5": "e", "\u03b9": "i",
    "\u03bd": "v", "\u03c4": "t", "\u0391": "A", "\u0395": "E", "\u0399": "I", "\u039f": "O",
    "\u0422": "T", "\u0410": "A", "\u0415": "E", "\u041e": "O", "\u0420": "P", "\u0421": "C",
    "\u0425": "X", "\u0406": "I",
})
_LATIN = re.compile(r"[A-Za-z]")


def normalize(text: str) -> tuple[str, dict[str, int]]:
    """NFKC, invisible characters removed, look-alikes folded; reports which tricks were found."""
    tricks: dict[str, int] = {}
    if n := len(_INVISIBLE.findall(text)):
        tricks["invisible_characters"] = n
        text = _INVISIBLE.sub("", text)
    folded = unicodedata.normalize("NFKC", text)
    if folded != text and any(ord(c) > 0x2000 for c in text):
        tricks["compatibility_characters"] = 1
    mixed = folded.translate(_CONFUSABLES)
    if mixed != folded and _LATIN.search(folded):
        tricks["homoglyphs"] = 1
    return mixed, tricks


def decoded_payloads(text: str) -> list[str]:
    """Base64 runs that decode to readable text."""
    out = []
    for m in _BASE64.finditer(text):
        try:
            raw = base64.b64decode(m.group(0), validate=True)
        except (binascii.Error, ValueError):
            continue
        s = raw.decode("utf-8", "ignore")
        if s and sum(c.isprintable() or c.isspace() for c in s) / len(s) > 0.9:
            out.append(s)
    return out


def _match(text: str, categories: dict[str, int]) -> list[float]:
    weights = []
    for category, patterns in PATTERNS.items():
        for pattern, weight in patterns:
            if hits := len(pattern.findall(text)):
                categories[category] = categories.get(category, 0) + hits
                weights.append(weight)
    return weights


def heuristic_score(text: str) -> InjectionScore:
    categories: dict[str, int] = {}
    norm, tricks = normalize(text)
    weights = _match(norm, categories)
    obfuscated = bool(tricks) and bool(weights) and not _match(text, {})
    for payload in decoded_payloads(norm):
        inner = _match(normalize(payload)[0], {})
        if inner:
            categories["encoded_payload"] = categories.get("encoded_payload", 0) + 1
            weights.extend(min(1.0, w + 0.2) for w in inner)
    if obfuscated:  # an attack that only shows once the tricks are undone
        categories["obfuscation"] = sum(tricks.values())
        weights.append(0.6)
    elif tricks.get("invisible_characters", 0) >= 3:
        categories["obfuscation"] = tricks["invisible_characters"]
        weights.append(0.3)
    miss = 1.0
    for w in weights:
        miss *= 1.0 - w
    return InjectionScore(round(1.0 - miss, 4), categories)


class HeuristicInjectionDetector:
    name = "heuristic_injection"
    cpu_bound = True
    """Its body computes: run in the guardrails' pool, off the event loop."""

    async def score(self, prompts: Sequence[str], documents: Sequence[str]) -> InjectionScore:
        best = InjectionScore(0.0)
        merged: dict[str, int] = {}
        for text in (*prompts, *documents):
            s = heuristic_score(text)
            for k, v in s.categories.items():
                merged[k] = merged.get(k, 0) + v
            if s.score > best.score:
                best = s
        return InjectionScore(best.score, merged)


class PromptShieldsDetector:
    """Azure AI Content Safety Prompt Shields (``text:shieldPrompt``), called through the SDK's
    pipeline (auth, retries, timeouts); an attack in the prompt or any document scores 1."""

    name = "prompt_shields"
    API_VERSION = "2024-09-01"

    def __init__(self, client: ContentSafetyClient) -> None:
        self._client = client

    async def score(self, prompts: Sequence[str], documents: Sequence[str]) -> InjectionScore:
        from azure.core.rest import HttpRequest

        req = HttpRequest("POST", f"/text:shieldPrompt?api-version={self.API_VERSION}",
                          json={"userPrompt": "\n".join(prompts), "documents": list(documents)})
        resp = await self._client.send_request(req)
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        cats: dict[str, int] = {}
        if body.get("userPromptAnalysis", {}).get("attackDetected"):
            cats["user_prompt_attack"] = 1
        if n := sum(bool(d.get("attackDetected")) for d in body.get("documentsAnalysis", [])):
            cats["document_attack"] = n
        return InjectionScore(1.0 if cats else 0.0, cats)
