"""Prometheus metrics of one GGUF server (its own registry: no process-global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from models.gguf_server.engine import Finished


class Metrics:
    def __init__(self, in_flight: Callable[[], float]) -> None:
        self.registry = r = CollectorRegistry()
        self.swaps = Counter("llmp_gguf_swaps", "Model versions swapped into service.", registry=r)
        self.swap_failures = Counter("llmp_gguf_swap_failures", "Versions rejected, by reason.",
                                     ["reason"], registry=r)
        self.download_bytes = Counter("llmp_gguf_download_bytes", "Bytes downloaded from Blob.",
                                      registry=r)
        self.download_seconds = Counter("llmp_gguf_download_seconds", "Seconds spent downloading.",
                                        registry=r)
        self.prompt_tokens = Counter("llmp_gguf_prompt_tokens", "Prompt tokens evaluated.", registry=r)
        self.completion_tokens = Counter("llmp_gguf_completion_tokens", "Tokens generated.",
                                         registry=r)
        self.decode_seconds = Counter("llmp_gguf_decode_seconds",
                                      "Seconds from first to last token, summed over requests.",
                                      registry=r)
        self.constrained = Counter("llmp_gguf_constrained_sequences",
                                   "Answers decoded under a grammar (JSON, tool calls).",
                                   registry=r)
        self.resampled = Counter("llmp_gguf_grammar_resampled_tokens",
                                 "Tokens the grammar refused, picked again under its mask.",
                                 registry=r)
        self.tokens_per_second = Gauge("llmp_gguf_tokens_per_second",
                                       "Decode rate of the last finished request.", registry=r)
        self.model_info = Gauge("llmp_gguf_model_info", "The model version in service (value 1).",
                                ["alias", "version", "sha256"], registry=r)
        g = Gauge("llmp_gguf_requests_in_flight", "Requests being decoded or waiting for a slot.",
                  registry=r)
        g.set_function(in_flight)

    def set_model(self, alias: str, version: str, sha256: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(alias, version, sha256 or "").set(1)

    def finished(self, f: Finished) -> None:
        self.prompt_tokens.inc(f.prompt_tokens)
        self.completion_tokens.inc(f.completion_tokens)
        if f.constrained:
            self.constrained.inc()
            self.resampled.inc(f.resampled)
        if f.decode_seconds > 0 and f.completion_tokens > 1:
            self.decode_seconds.inc(f.decode_seconds)
            self.tokens_per_second.set((f.completion_tokens - 1) / f.decode_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
