"""The backend interface. vLLM and llama.cpp servers both speak the OpenAI protocol; the
differences (what parameters they accept, how they report health) live in the implementations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Endpoint = Literal["chat/completions", "completions", "embeddings"]


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole (non-streamed) answer: the backend's bytes, passed on as they are, and the parse."""

    content: bytes
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    """Backend headers the gateway passes on (see ``FORWARDED_HEADERS``)."""


FORWARDED_HEADERS = ("x-llmp-model-version",)
"""Backend response headers passed on to the client: the model version that answered."""

LOAD_HEADER = "x-llmp-load"
"""The load a GGUF server reports on every answer (``active=N;queued=N;slots=N``): read by the
router, never passed on to the client."""


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll of a backend: whether it serves, its load (active, queued, slots) if it said,
    and the model version in service."""

    ok: bool
    active: int | None = None
    queued: int | None = None
    slots: int | None = None
    version: str | None = None


class UpstreamStream(Protocol):
    """An opened stream: the data payloads of its SSE events, ``[DONE]`` excluded, in batches of
    what arrived together."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def batches(self) -> AsyncIterator[list[bytes]]: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    name: str
    served_model: str | None

    def check(self, endpoint: Endpoint, body: dict[str, Any]) -> None:
        """Raise ``InvalidRequest`` for what this kind of server cannot do."""

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion: ...

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> UpstreamStream: ...

    async def healthy(self) -> bool: ...

    async def poll(self, timeout_s: float) -> PollResult:
        """Health, load and version in one light request (the router's periodic poll)."""
        ...
