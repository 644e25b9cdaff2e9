"""The gateway's Prometheus metrics, in a registry owned by the :class:`~functions.gateway.Gateway`
(no process-global registry), served on ``GET /metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.guardrail_decisions = Counter(
            "llmp_guardrail_decisions", "Guardrail decisions by stage, detector and action.",
            ["stage", "detector", "action"], registry=self.registry)
        self.guardrail_failures = Counter(
            "llmp_guardrail_failures", "Guardrail checks that raised or timed out.",
            ["stage", "detector", "reason"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
