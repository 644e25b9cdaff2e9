"""vLLM's load, read from its Prometheus ``/metrics``: requests waiting for a batch slot, requests
running, and how full the KV cache is. For the router (pick the least loaded replica) and for dashboards.

Series are renamed between vLLM releases (``gpu_cache_usage_perc`` became ``kv_cache_usage_perc``;
some scrapers turn ``:`` into ``_``), so each reading has a list of known names, tried in order; a
reading none of them gives is ``None`` (unknown), never 0. Several series of one name (one per model or
engine: labels ``model_name``, ``engine``) are summed for counts and maxed for the cache fraction.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from functions.errors import UpstreamRejected

WAITING = ("vllm:num_requests_waiting", "vllm_num_requests_waiting")
RUNNING = ("vllm:num_requests_running", "vllm_num_requests_running")
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm_kv_cache_usage_perc",
            "vllm:gpu_cache_usage_perc", "vllm_gpu_cache_usage_perc",  # vLLM < 0.10
            "vllm:cpu_cache_usage_perc", "vllm_cpu_cache_usage_perc")
METRICS_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class VllmLoad:
    """One reading of a vLLM server's load; a field is ``None`` when the server did not report it."""

    waiting: int | None
    running: int | None
    kv_cache_usage: float | None
    """Fraction of KV-cache blocks in use, 0..1."""
    at: float = 0.0
    """``time.monotonic()`` of the reading."""

    @property
    def known(self) -> bool:
        return self.waiting is not None or self.running is not None

    @property
    def in_flight(self) -> int | None:
        """Requests the server holds (waiting + running), if it reported either."""
        if not self.known:
            return None
        return (self.waiting or 0) + (self.running or 0)


class MetricsUnavailable(Exception):
    """``/metrics`` could not be read (unreachable, not 200, or not Prometheus text)."""


def parse_samples(text: str) -> dict[str, list[float]]:
    """Prometheus text exposition → name → the values of its series (labels dropped)."""
    out: dict[str, list[float]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if (brace := line.find("{")) >= 0:
            name, rest = line[:brace], line[line.rfind("}") + 1:]
        else:
            name, _, rest = line.partition(" ")
        fields = rest.split()
        if not name or not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        out.setdefault(name.strip(), []).append(value)
    return out


def _first(samples: Mapping[str, list[float]], names: Iterable[str]) -> list[float] | None:
    for n in names:
        if values := samples.get(n):
            return values
    return None


def parse_load(text: str, at: float | None = None) -> VllmLoad:
    samples = parse_samples(text)
    waiting, running, kv = _first(samples, WAITING), _first(samples, RUNNING), _first(samples, KV_CACHE)
    usage = max(kv) if kv else None
    if usage is not None and usage > 1.0:  # a percentage, whatever the name says
        usage /= 100.0
    return VllmLoad(waiting=round(sum(waiting)) if waiting else None,
                    running=round(sum(running)) if running else None,
                    kv_cache_usage=usage, at=time.monotonic() if at is None else at)


async def read_load(client: httpx.AsyncClient, base_url: str,
                    timeout_s: float = METRICS_TIMEOUT_S) -> VllmLoad:
    """GET ``{base_url}/metrics`` and parse it; ``MetricsUnavailable`` if it cannot be read."""
    try:
        r = await client.get(base_url.rstrip("/") + "/metrics", timeout=timeout_s)
    except httpx.HTTPError as e:
        raise MetricsUnavailable(f"{base_url}/metrics: {type(e).__name__}") from e
    if r.status_code != 200:
        raise MetricsUnavailable(f"{base_url}/metrics answered HTTP {r.status_code}")
    return parse_load(r.text)


# -- vLLM's 400s, in OpenAI's words ----------------------------------------------------------------

_CONTEXT = re.compile(r"maximum context length|maximum model length|context length is|"
                      r"longer than the maximum|model's context is", re.IGNORECASE)
_NOT_PARAMS = frozenset({"model", "messages", "prompt", "stream", "stream_options"})


def refine_rejection(e: UpstreamRejected, endpoint: str, body: Mapping[str, Any]) -> UpstreamRejected:
    """vLLM answers every refusal with ``code`` = the HTTP status (an int) and mostly no ``param``:
    say ``context_length_exceeded`` (param ``messages``/``prompt``) for a too-long request, and name
    the request field the message names, as OpenAI does."""
    message = str(e.message)
    code = e.code if isinstance(e.code, str) else None
    param = e.param if isinstance(e.param, str) and e.param else None
    if code == "context_length_exceeded" or _CONTEXT.search(message):
        # vLLM's param is "input_tokens", not a request field; llmp's GGUF server names none
        code = "context_length_exceeded"
        param = "messages" if endpoint == "chat/completions" else "prompt"
    elif param is None or param not in body:
        param = next((k for k in body if k not in _NOT_PARAMS
                      and re.search(rf"\b{re.escape(k)}\b", message)), None) or param
    if (code, param) == (e.code, e.param):
        return e
    return UpstreamRejected(message, status=e.status, param=param, code=code)
