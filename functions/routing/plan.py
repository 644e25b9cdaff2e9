"""What routing decided for one request, before a replica is picked."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TierChoice:
    tiers: tuple[str, ...]
    """Catalog aliases to try in order: the first is the chosen tier, the rest are fallbacks when
    every replica of the one before is down or full."""
    reason: str = "requested"
    """Why the first tier: ``requested`` (the client named an alias), ``rule:<name>`` (a hard rule:
    capability, context, cost), ``classifier:<label>``, ``default``."""
    route: str | None = None
    """The route the client named (for example ``auto``); None for a plain alias."""

    @classmethod
    def requested(cls, alias: str) -> TierChoice:
        return cls((alias,))
