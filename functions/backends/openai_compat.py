"""Backends that speak the OpenAI HTTP protocol over one pooled ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from functions.backends.base import (
    FORWARDED_HEADERS,
    LOAD_HEADER,
    Completion,
    Endpoint,
    PollResult,
)
from functions.backends.vllm import MetricsUnavailable, VllmLoad, read_load, refine_rejection
from functions.errors import (
    BackendBusy,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    LlmpError,
    UpstreamRejected,
)
from models.catalog import BackendSpec

DRAIN_S = 0.1


def transport_error(name: str, e: httpx.HTTPError) -> LlmpError:
    """Map an httpx failure to the domain: unreachable (503), too slow (504) or broken (502)."""
    if isinstance(e, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        return BackendUnavailable(f"Model backend {name} is unreachable.")
    if isinstance(e, httpx.TimeoutException):
        return BackendTimeout(f"Model backend {name} did not answer in time.")
    return BackendError(f"Model backend {name} failed: {type(e).__name__}.")


def status_error(name: str, status: int, content: bytes) -> LlmpError:
    message, param, code = f"Model backend {name} answered HTTP {status}.", None, None
    try:
        err = orjson.loads(content).get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            param, code = err.get("param"), err.get("code")
        elif isinstance(err, str):
            message = err
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if status in (429, 503):  # full: another replica may answer
        return BackendBusy(f"Model backend {name} is unavailable (HTTP {status}).")
    if status in (502, 504):  # down behind a proxy: another backend may answer
        return BackendUnavailable(f"Model backend {name} is unavailable (HTTP {status}).")
    if status in (401, 403):  # the gateway's credentials for the backend, not the client's
        return BackendError(f"Model backend {name} refused the gateway's credentials (HTTP {status}).")
    if status >= 500:
        return BackendError(f"Model backend {name} failed (HTTP {status}).")
    if status == 404:
        status = 400  # the gateway knows the alias; a backend 404 means a misrouted model name
    return UpstreamRejected(message, status=status, param=param, code=code)


class SSEStream:
    """Data payloads of a ``text/event-stream`` response, split on blank lines without decoding."""

    def __init__(self, name: str, response: httpx.Response) -> None:
        self._name, self._response = name, response
        self.headers = forwarded(response)

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """Each network read's complete events, together: one write downstream per read, with no
        wait for more (a token that arrived alone leaves alone)."""
        buf, done = b"", False
        pieces = self._response.aiter_raw().__aiter__()
        try:
            while not done:
                piece = await anext(pieces, None)
                if piece is None:
                    break
                buf = (buf + piece).replace(b"\r\n", b"\n")  # SSE allows CRLF line ends
                batch: list[bytes] = []
                while not done and (end := buf.find(b"\n\n")) >= 0:
                    event, buf = buf[:end], buf[end + 2:]
                    data = _event_data(event)
                    if data == b"[DONE]":
                        done = True
                    elif data is not None:
                        batch.append(data)
                if batch:
                    yield batch
        except httpx.HTTPError as e:
            raise transport_error(self._name, e) from e
        if not done:
            raise BackendError(f"Model backend {self._name} ended the stream early.")
        await self._drain(pieces)

    async def _drain(self, pieces: AsyncIterator[bytes]) -> None:
        """Read what follows ``[DONE]`` (normally just the end of the body) so the keep-alive
        connection goes back to the pool; a backend that keeps the stream open gets 0.1 s."""
        with contextlib.suppress(httpx.HTTPError, TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                async for _ in pieces:
                    pass

    async def aclose(self) -> None:
        await self._response.aclose()


def forwarded(r: httpx.Response) -> dict[str, str]:
    """The headers passed on, and the load header (the dispatcher reads it and drops it)."""
    return {h: v for h in (*FORWARDED_HEADERS, LOAD_HEADER) if (v := r.headers.get(h)) is not None}


def _event_data(event: bytes) -> bytes | None:
    lines = [ln[5:].lstrip(b" ") for ln in event.split(b"\n")
             if ln.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


class OpenAICompatBackend:
    """A server of the OpenAI protocol at ``{url}/v1``."""

    kind = "openai"

    def __init__(self, spec: BackendSpec, client: httpx.AsyncClient, read_timeout_s: float) -> None:
        self.name = spec.name
        self.url = spec.base_url
        self.served_model = spec.served_model
        self._base = spec.base_url + "/v1/"
        self._client = client
        self._read_timeout = read_timeout_s
        # one Timeout and one parsed URL per endpoint, not one of each per request
        self._timeout_obj = httpx.Timeout(client.timeout.connect, read=read_timeout_s,
                                          write=read_timeout_s, pool=client.timeout.pool)
        self._urls: dict[str, httpx.URL] = {}
        # identity: the SSE relay reads raw bytes, so the body must not be compressed
        self._headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if spec.api_key_env:
            token = os.environ.get(spec.api_key_env)
            if not token:
                raise ValueError(f"backend {spec.name}: {spec.api_key_env} is not set")
            self._headers["authorization"] = f"Bearer {token}"

    def check(self, endpoint: Endpoint, body: dict[str, Any]) -> None:
        """Nothing: what a model serves is its catalog entry's capabilities, checked by the gateway
        before any stage (:mod:`functions.capabilities`)."""

    def _timeout(self) -> httpx.Timeout:
        return self._timeout_obj

    def _url(self, endpoint: Endpoint) -> httpx.URL:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = httpx.URL(self._base + endpoint)
        return url

    async def _post(self, url: httpx.URL | str, body: Any) -> httpx.Response:
        """POST a JSON body; a transport failure or a non-200 answer becomes a domain error."""
        try:
            r = await self._client.post(url, content=orjson.dumps(body), headers=self._headers,
                                        timeout=self._timeout())
        except httpx.HTTPError as e:
            raise transport_error(self.name, e) from e
        if r.status_code != 200:
            raise status_error(self.name, r.status_code, r.content)
        return r

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        r = await self._post(self._url(endpoint), body)
        try:
            parsed = orjson.loads(r.content)
        except orjson.JSONDecodeError as e:
            raise BackendError(f"Model backend {self.name} sent invalid JSON.") from e
        return Completion(r.content, parsed, forwarded(r))

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> SSEStream:
        request = self._client.build_request("POST", self._url(endpoint), content=orjson.dumps(body),
                                             headers=self._headers, timeout=self._timeout())
        try:
            r = await self._client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise transport_error(self.name, e) from e
        if r.status_code != 200:
            try:
                content = await r.aread()
            except httpx.HTTPError:
                content = b""
            finally:
                await r.aclose()
            raise status_error(self.name, r.status_code, content)
        return SSEStream(self.name, r)

    async def healthy(self) -> bool:
        return (await self.poll(2.0)).ok

    async def poll(self, timeout_s: float) -> PollResult:
        """``GET /health``: 200 when it serves; llmp's GGUF server adds its load and version."""
        try:
            r = await self._client.get(self._base.removesuffix("v1/") + "health", timeout=timeout_s)
        except httpx.TimeoutException:
            return PollResult(False, answered=False)
        except httpx.HTTPError:
            return PollResult(False)
        if r.status_code in (404, 405):
            return PollResult(True)  # a server without /health: up, load unknown
        if r.status_code != 200:
            return PollResult(False)
        try:
            body = orjson.loads(r.content)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return PollResult(True)
        raw = body.get("load")
        load: dict[str, Any] = raw if isinstance(raw, dict) else {}
        version = body.get("version")

        def num(key: str) -> int | None:
            v = load.get(key)
            return v if isinstance(v, int) and v >= 0 else None

        return PollResult(True, num("active"), num("queued"), num("slots"),
                          version if isinstance(version, str) else None)


class LlamaCppBackend(OpenAICompatBackend):
    """llmp's GGUF server (llama-cpp-python): tools, JSON schemas, logprobs, logit_bias and ``n``
    are served by the server itself (grammar-constrained decoding; see docs/models.md)."""

    kind = "gguf"


class VllmBackend(OpenAICompatBackend):
    """vLLM's OpenAI server: full sampling surface, tools where the model's parser allows."""

    kind = "vllm"

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> Completion:
        try:
            return await super().complete(endpoint, body)
        except UpstreamRejected as e:
            raise refine_rejection(e, endpoint, body) from e

    async def open_stream(self, endpoint: Endpoint, body: dict[str, Any]) -> SSEStream:
        try:
            return await super().open_stream(endpoint, body)
        except UpstreamRejected as e:
            raise refine_rejection(e, endpoint, body) from e

    async def load(self) -> VllmLoad:
        """The server's queue, running requests and KV-cache use (``functions/backends/vllm.py``)."""
        return await read_load(self._client, self._base.removesuffix("v1/"))

    async def poll(self, timeout_s: float) -> PollResult:
        """vLLM's ``/metrics``: requests running and waiting, and the KV cache's use, turned into
        slots (the running requests at which the KV cache would be full); ``/health`` alone when
        the metrics cannot be read."""
        try:
            load = await read_load(self._client, self._base.removesuffix("v1/"), timeout_s=timeout_s)
        except MetricsUnavailable:
            return await super().poll(timeout_s)  # no metrics (a proxy, an old build): is it up?
        if not load.known:
            return PollResult(True)
        running, waiting = load.running or 0, load.waiting or 0
        kv = load.kv_cache_usage
        if waiting:
            slots = max(1, running)
        elif kv and kv > 0.01 and running:
            slots = max(running, int(running / kv))
        else:
            slots = max(16, running + 1)
        return PollResult(True, running, waiting, slots)
