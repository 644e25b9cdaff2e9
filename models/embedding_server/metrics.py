"""Prometheus metrics of one embedding server (its own registry: no process-global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, in_flight: Callable[[], float]) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("llmp_embedding_requests", "Embedding requests answered, by status.",
                                ["status"], registry=r)
        self.inputs = Counter("llmp_embedding_inputs", "Inputs embedded.", registry=r)
        self.tokens = Counter("llmp_embedding_tokens", "Input tokens embedded.", registry=r)
        self.model_calls = Counter("llmp_embedding_model_calls",
                                   "Model calls (concurrent requests are coalesced into one).",
                                   registry=r)
        self.batch_inputs = Histogram("llmp_embedding_batch_inputs", "Inputs per model call.",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
                                      registry=r)
        self.seconds = Histogram("llmp_embedding_request_seconds", "Time to answer a request.",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=r)
        g = Gauge("llmp_embedding_inputs_in_flight", "Inputs being embedded or waiting for the model.",
                  registry=r)
        g.set_function(in_flight)

    def render(self) -> bytes:
        return generate_latest(self.registry)
