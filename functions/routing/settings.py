"""Settings of the router (``LLMP_ROUTING_*``); per-tier overrides live in the catalog
(``routing:`` of a model entry, :class:`models.catalog.RoutingSpec`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RoutingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMP_ROUTING_", extra="ignore")

    poll_s: float = Field(1.0, gt=0)
    """How often every backend's load, version and health are read (GGUF ``/health``, vLLM
    ``/metrics``): one light GET per backend per interval, by one task per gateway process."""
    poll_timeout_s: float = Field(0.5, gt=0)
    """A poll not answered in this time counts as a failure of that backend (a hung server
    accepts connections and never answers: this is how it is found between requests)."""
    first_poll_wait_s: float = Field(0.3, ge=0)
    """A new gateway process waits at most this long for the first poll of an alias's backends
    before it routes, so its first request is routed on real load."""
    snapshot_ttl_s: float = Field(5.0, gt=0)
    """A load reading older than this is ignored (the gateway's own in-flight count remains)."""
    ttfb_s: float = Field(20.0, gt=0)
    """Default time-to-first-byte limit: a stream whose first event has not come by then, or a
    whole answer whose headers have not, is abandoned and retried on another replica (a tier
    may set its own, ``routing.ttfb_s``)."""
    whole_tokens_per_s: float = Field(2.0, gt=0)
    """A whole (non-streamed) answer may take ``ttfb_s + max_tokens / whole_tokens_per_s``:
    the server sends nothing before it has the whole answer."""
    max_retries: int = Field(2, ge=0)
    """Other replicas (or tiers) tried after the first failed, before the first token."""
    retry_ratio: float = Field(0.2, ge=0)
    """Retry budget: retries may be at most this share of requests over the last 10 s (plus
    ``retry_min_per_s``), per alias, so a failing tier is not hammered."""
    retry_min_per_s: float = Field(2.0, ge=0)
    breaker_failures: int = Field(3, ge=1)
    """Consecutive failures (requests or polls) that open a backend's breaker."""
    breaker_open_s: float = Field(5.0, gt=0)
    """First open period; each failed half-open probe doubles it, up to ``breaker_max_open_s``."""
    breaker_max_open_s: float = Field(60.0, gt=0)
    affinity_ttl_s: float = Field(900.0, gt=0)
    """How long a conversation stays pinned to the replica that holds its prefix."""
    affinity_max_load: float = Field(1.0, gt=0)
    """A pinned replica is used while its load per slot is below this (1.0: it has a free
    slot); above it the conversation moves to the best replica and is pinned there."""
    affinity_min_messages: int = Field(3, ge=1)
    """Without a ``conversation_id``, a chat request is pinned by its first two messages once it
    has at least this many (a conversation past its first turn)."""
    shared_sync_s: float = Field(1.0, gt=0)
    """Breaker and drain state shared through Redis is re-read this often (a trip or a drain is
    written at once; other instances see it within this interval)."""
