"""Tier choice: the hard rules (allowed, capability, context, price ceiling) in the route's order,
then the classifier over labelled examples embedded by the real embedding tier; a classifier that
fails or hangs leaves the request on the default tier."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.auth import Principal
from functions.errors import PermissionDenied
from functions.gateway import Gateway
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.completions import CompletionRequest
from functions.routing.plan import TierChoice
from functions.routing.tiers import TierSettings, prompt_text
from functions.settings import GatewaySettings
from tests.conftest import EMBEDDING_CAPS, ROUTE_EXAMPLES
from tests.support.tenancy import new_tenant

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def _model(alias: str, context: int = 2048, price: float = 0.01, **extra: Any) -> dict[str, Any]:
    return {"alias": alias, "tier": "gguf", "context_length": context,
            "price": {"input_per_1k": price / 2, "output_per_1k": price},
            "backends": [{"name": f"{alias}-a", "url": "http://127.0.0.1:9"}], **extra}


def _catalog(folder: Path, embedding_url: str, routes: list[dict[str, Any]]) -> Path:
    (folder / "examples.yaml").write_text(yaml.safe_dump(
        {"small": ROUTE_EXAMPLES["smollm2-135m"], "large": ROUTE_EXAMPLES["gemma3-270m"]}))
    models = [_model("small", price=0.01), _model("medium", 4096, price=0.02),
              _model("large", 8192, price=0.04),
              _model("notools", price=0.005, capabilities={"tools": False, "json_schema": False}),
              {**_model("gpu", 32768), "price": {"gpu_hour": 3.0}},
              {"alias": "all-minilm-l6-v2", "tier": "embedding", "context_length": 254,
               "capabilities": EMBEDDING_CAPS,
               "backends": [{"name": "embedding-a", "url": embedding_url}]}]
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump({"models": models, "routes": routes}))
    return path


ROUTES = [
    {"alias": "auto", "tiers": ["small", "large"], "default": "large",
     "classifier": {"examples": "examples.yaml", "k": 3, "threshold": 0.2}},
    {"alias": "plain", "tiers": ["small", "medium", "large"], "default": "small"},
    {"alias": "tools", "tiers": ["notools", "small"], "default": "notools"},
    {"alias": "by-gpu", "tiers": ["small", "gpu"], "default": "gpu"},
]


async def _gateway(folder: Path, embedding_url: str, routes: list[dict[str, Any]],
                   postgres_url: str | None = None, timeout_s: float = 10) -> Gateway:
    return Gateway(GatewaySettings(catalog_path=_catalog(folder, embedding_url, routes),
                                   database_url=postgres_url, redis_url=None),
                   tier_settings=TierSettings(classifier_timeout_s=timeout_s))


@pytest.fixture
async def gateway(tmp_path: Path, postgres_url: str, dead_url: str) -> AsyncIterator[Gateway]:
    """For the rules: no embedding tier runs (the rules never need it)."""
    gw = await _gateway(tmp_path, dead_url, ROUTES, postgres_url)
    yield gw
    await gw.aclose()


@pytest.fixture
async def classified(tmp_path: Path, embedding_url: str) -> AsyncIterator[Gateway]:
    gw = await _gateway(tmp_path, embedding_url, ROUTES)
    yield gw
    await gw.aclose()


def _chat(text: str = "Hi", **extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "auto", "messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": text}], **extra})


ANYONE = Principal(tenant_id="", tenant="", key_id="k")


async def test_a_model_alias_is_requested_as_is(gateway: Gateway) -> None:
    assert await gateway.tier_chooser.choose("small", _chat(), ANYONE) == TierChoice(("small",))


@pytest.mark.parametrize(("extra", "capability"), [
    ({"tools": TOOLS}, "tools"),
    ({"response_format": {"type": "json_object"}}, "json_schema"),
])
async def test_a_needed_capability_skips_the_tier_without_it(
        gateway: Gateway, extra: dict[str, Any], capability: str) -> None:
    choice = await gateway.tier_chooser.choose("tools", _chat(**extra), ANYONE)
    assert choice == TierChoice(("small",), f"rule:capability:{capability}", "tools")
    # without the need: the default (the tier without tools), the other tier its fallback
    assert await gateway.tier_chooser.choose("tools", _chat(), ANYONE) == TierChoice(
        ("notools", "small"), "default", "tools")


async def test_a_capability_no_tier_has_is_refused_by_the_usual_check(gateway: Gateway) -> None:
    req = _chat(n=9)  # every GGUF tier decodes at most 4 choices (its slots)
    choice = await gateway.tier_chooser.choose("plain", req, ANYONE)
    assert choice == TierChoice(("large",), "rule:capability:max_n", "plain")


async def test_a_long_prompt_goes_to_the_next_larger_tier(gateway: Gateway) -> None:
    chooser = gateway.tier_chooser
    short = await chooser.choose("plain", _chat("Summarize this."), ANYONE)
    assert short == TierChoice(("small", "medium", "large"), "default", "plain")
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 200  # ~2.3K tokens by estimate
    assert await chooser.choose("plain", _chat(long_prompt), ANYONE) == TierChoice(
        ("medium", "large"), "rule:context", "plain")
    # max_tokens counts: a short prompt asking for 3000 tokens does not fit in 2048 either
    assert (await chooser.choose("plain", _chat("Write.", max_tokens=3000), ANYONE)).tiers[0] \
        == "medium"
    huge = await chooser.choose("plain", _chat(long_prompt * 4), ANYONE)  # ~9K: fits nowhere
    assert huge == TierChoice(("large",), "rule:context", "plain")


async def test_fallbacks_are_the_larger_tiers_then_the_smaller(gateway: Gateway) -> None:
    from functions.routing.tiers import _with_fallbacks

    assert _with_fallbacks("medium", ["small", "medium", "large"]) == ("medium", "large", "small")
    assert _with_fallbacks("large", ["small", "medium", "large"]) == ("large", "medium", "small")


async def test_a_tenant_price_ceiling_skips_dearer_tiers(gateway: Gateway,
                                                         postgres_url: str) -> None:
    tenant, _ = await new_tenant(postgres_url, max_price_per_1k=Decimal("0.02"))
    who = Principal(tenant_id=str(tenant.tenant_id), tenant=tenant.name, key_id="k")
    chooser = gateway.tier_chooser
    long_prompt = "The quick brown fox jumps over the lazy dog. " * 200
    # medium (0.02) is within the ceiling, large (0.04) is not
    assert await chooser.choose("plain", _chat(long_prompt), who) == TierChoice(
        ("medium",), "rule:context", "plain")
    # a tier priced by GPU time has no price per token ahead: skipped under any ceiling
    assert await chooser.choose("by-gpu", _chat(), who) == TierChoice(("small",), "rule:cost", "by-gpu")
    cheap, _ = await new_tenant(postgres_url, max_price_per_1k=Decimal("0.001"))
    with pytest.raises(PermissionDenied, match="price ceiling"):
        await chooser.choose("plain", _chat(), Principal(str(cheap.tenant_id), cheap.name, "k"))


async def test_tiers_the_key_may_not_use_are_skipped(gateway: Gateway) -> None:
    who = Principal(tenant_id="", tenant="", key_id="k", allowed_models=("large", "medium"))
    assert await gateway.tier_chooser.choose("plain", _chat(), who) == TierChoice(
        ("medium", "large"), "rule:allowed", "plain")


@pytest.mark.slow
@pytest.mark.parametrize(("text", "tier"), [
    ("Hey, good evening to you!", "small"),
    ("Many thanks, you have been very kind.", "small"),
    ("Implement a binary search in JavaScript and explain its complexity.", "large"),
    ("Walk me through how TCP guarantees that bytes arrive in order.", "large"),
])
async def test_the_classifier_follows_the_labelled_examples(classified: Gateway, text: str,
                                                            tier: str) -> None:
    choice = await classified.tier_chooser.choose("auto", _chat(text), ANYONE)
    assert choice.tiers[0] == tier and choice.reason == f"classifier:{tier}"
    assert choice.tiers == ((tier, "large") if tier == "small" else (tier, "small"))


@pytest.mark.slow
async def test_a_prompt_like_no_example_goes_to_the_default(tmp_path: Path,
                                                            embedding_url: str) -> None:
    strict = [{**ROUTES[0], "default": "small",
               "classifier": {**ROUTES[0]["classifier"], "threshold": 0.95}}]
    gw = await _gateway(tmp_path, embedding_url, strict)
    try:
        # a prompt the rules decide needs no embedding at all: the embedder is not even built
        long_prompt = "The quick brown fox jumps over the lazy dog. " * 200
        assert (await gw.tier_chooser.choose("auto", _chat(long_prompt), ANYONE)).reason \
            == "rule:context"
        assert "text_embedder" not in gw.__dict__
        text = "Implement a binary search in JavaScript and explain its complexity."
        assert await gw.tier_chooser.choose("auto", _chat(text), ANYONE) == TierChoice(
            ("small", "large"), "default", "auto")
    finally:
        await gw.aclose()


def _failures(gw: Gateway, error: str) -> float:
    value = gw.metrics.registry.get_sample_value(
        "llmp_route_classifier_failures_total", {"route": "auto", "error": error})
    return value or 0.0


async def test_the_embedding_tier_down_means_the_default_tier(gateway: Gateway) -> None:
    for _ in range(2):  # not cached as a failure: tried again, and counted again
        choice = await gateway.tier_chooser.choose("auto", _chat("Hey there!"), ANYONE)
        assert choice == TierChoice(("large", "small"), "default", "auto")
    assert _failures(gateway, "RagUnavailable") == 2
    assert gateway.metrics.registry.get_sample_value("llmp_route_decisions_total", {
        "route": "auto", "tier": "large", "reason": "default"}) == 2


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_hung_embedding_tier_means_the_default_tier_in_time(tmp_path: Path,
                                                                    hung_url: str) -> None:
    gw = await _gateway(tmp_path, hung_url, ROUTES, timeout_s=0.3)
    try:
        started = asyncio.get_running_loop().time()
        choice = await gw.tier_chooser.choose("auto", _chat("Hey there!"), ANYONE)
        assert choice.reason == "default" and choice.tiers[0] == "large"
        assert asyncio.get_running_loop().time() - started < 2
        assert _failures(gw, "TimeoutError") == 1
    finally:
        await gw.aclose()


def test_the_classifier_reads_the_last_user_turn() -> None:
    chat = ChatCompletionRequest.model_validate({"model": "auto", "messages": [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"},
                                     {"type": "text", "text": "part"}]}]})
    assert prompt_text(chat, 100) == "second part"
    assert prompt_text(chat, 4) == "part"
    done = CompletionRequest.model_validate({"model": "auto", "prompt": ["one", "two"]})
    assert prompt_text(done, 100) == "one"
    assert prompt_text(CompletionRequest.model_validate({"model": "auto", "prompt": [1, 2]}),
                       100) == ""
