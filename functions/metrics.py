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
        self.cache_lookups = Counter(
            "llmp_cache_lookups", "Response cache lookups by kind (exact, semantic) and result.",
            ["kind", "result"], registry=self.registry)
        self.cache_stores = Counter(
            "llmp_cache_stores", "Answers offered to the response cache, by result.",
            ["result"], registry=self.registry)
        self.cache_unavailable = Counter(
            "llmp_cache_unavailable", "Cache operations bypassed because Redis (or the embedder) "
            "failed; the request was served without the cache.", ["op"], registry=self.registry)
        self.history_failures = Counter(
            "llmp_history_failures", "Conversation history that could not be loaded or stored.",
            ["op"], registry=self.registry)
        self.conversations_expired = Counter(
            "llmp_conversations_expired", "Conversations deleted by the retention timer.",
            registry=self.registry)
        self.replica_picks = Counter(
            "llmp_replica_picks", "Requests answered by a model, by tier, replica and why that "
            "replica (affinity, load, probe, only, untried, panic).",
            ["tier", "backend", "pick"], registry=self.registry)
        self.route_retries = Counter(
            "llmp_route_retries", "Replicas (or tiers) tried again before the first token.",
            ["tier"], registry=self.registry)

        self.route_decisions = Counter(
            "llmp_route_decisions", "Requests naming a route, by route, chosen tier and reason "
            "(requested, rule:..., classifier:<tier>, default).", ["route", "tier", "reason"],
            registry=self.registry)
        self.route_classifier_failures = Counter(
            "llmp_route_classifier_failures", "Route classifications that failed or timed out "
            "(the request went to the route's default tier).", ["route", "error"],
            registry=self.registry)
        self.routed_requests = Counter(
            "llmp_routed_requests", "Answered requests by route (empty: a model named directly), "
            "tier and reason, with their cost in llmp_routed_cost.", ["route", "tier", "reason"],
            registry=self.registry)
        self.routed_cost = Counter(
            "llmp_routed_cost", "Cost of answered requests by route, tier and reason (catalog "
            "currency).", ["route", "tier", "reason"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
