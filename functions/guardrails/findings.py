"""What the detectors report. A finding names a type and a position, never the text it covers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class Span:
    """A PII finding inside one text: ``entity`` over ``text[start:end]``."""

    entity: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Decision:
    """One audited decision: a detector's findings of one stage and the action taken.

    ``types`` maps an entity type or category to how many times it was found; no raw value is kept,
    so nothing downstream (audit rows, logs, metrics) can leak one."""

    stage: Stage
    detector: str
    action: str
    types: dict[str, int]
    score: float | None = None
