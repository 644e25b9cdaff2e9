"""The semantic cache: the real embedder (all-MiniLM-L6-v2 from PyPI), the Redis index, and hits
through the gateway for tenants that turn it on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.asyncio import Redis

from functions.cache.semantic import MODEL, Embedder, SemanticIndex
from tests.support.tenants import Tenant, chat, letter_tag, make_tenant

pytestmark = pytest.mark.slow  # loads torch and the model (a few seconds)

Q1 = "What is the capital city of France?"
Q2 = "Which city is the capital of France?"
OTHER = "How do I bake sourdough bread at home?"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def test_the_model_ships_in_a_package() -> None:
    from functions.rag.embedder import resolve_model_dir

    assert (resolve_model_dir(MODEL) / "model.safetensors").is_file()


async def test_similar_questions_are_close(embedder: Embedder) -> None:
    a, b, c = [await embedder.embed(t) for t in (Q1, Q2, OTHER)]
    assert a.shape == (384,) and abs(float(np.linalg.norm(a)) - 1) < 1e-3
    assert float(a @ b) > 0.9
    assert float(a @ c) < 0.3


async def test_index_finds_the_nearest_above_the_threshold(embedder: Embedder,
                                                            redis: Redis) -> None:
    index = SemanticIndex(redis, max_entries=3)
    pkey = f"llmp:cache:sem:test:{uuid.uuid4().hex}"
    await index.add(pkey, await embedder.embed(OTHER), "key-bread", 60)
    await index.add(pkey, await embedder.embed(Q1), "key-paris", 60)
    found = await index.nearest(pkey, await embedder.embed(Q2), 0.9)
    assert found is not None and found[0] == "key-paris" and found[1] > 0.9
    assert await index.nearest(pkey, await embedder.embed("Tell me a joke"), 0.9) is None
    for i in range(3):
        await index.add(pkey, await embedder.embed(f"filler {i}"), f"k{i}", 60)
    assert await redis.llen(pkey) == 3  # bounded: the oldest go
    assert 0 < await redis.ttl(pkey) <= 60


@pytest.fixture(scope="module")
def semantic_tenant(postgres_url: str) -> Tenant:
    return make_tenant(postgres_url, "sem", cache={"semantic": {"enabled": True, "threshold": 0.9}})


def test_a_paraphrase_is_a_hit_for_the_same_tenant_only(gateway_url: str, postgres_url: str,
                                                        semantic_tenant: Tenant) -> None:
    system = {"role": "system", "content": f"Answer briefly. [{letter_tag()}]"}
    first = chat(gateway_url, semantic_tenant, [system, {"role": "user", "content": Q1}])
    assert first.headers["x-cache"] == "miss"
    second = chat(gateway_url, semantic_tenant, [system, {"role": "user", "content": Q2}],
                  stream=True)
    assert (second.headers["x-cache"], second.headers["x-llmp-cache"]) == ("hit", "semantic")
    assert second.text == first.text == Q1  # the echo of the first question: its answer
    other_system = {"role": "system", "content": "Answer at length."}
    assert chat(gateway_url, semantic_tenant, [other_system, {"role": "user", "content": Q2}]
                ).headers["x-cache"] == "miss"  # another system prompt: another partition
    other = make_tenant(postgres_url, "sem-other",
                        cache={"semantic": {"enabled": True, "threshold": 0.9}})
    assert chat(gateway_url, other, [system, {"role": "user", "content": Q2}]
                ).headers["x-cache"] == "miss"
    unrelated = chat(gateway_url, semantic_tenant, [system, {"role": "user", "content": OTHER}])
    assert (unrelated.headers["x-cache"], unrelated.text) == ("miss", OTHER)


def test_only_single_turn_requests_without_findings(gateway_url: str,
                                                    semantic_tenant: Tenant) -> None:
    turns = [{"role": "user", "content": Q1}, {"role": "assistant", "content": "Paris."},
             {"role": "user", "content": "And of Spain?"}]
    chat(gateway_url, semantic_tenant, turns)
    turns[-1]["content"] = "And what about Spain?"
    assert chat(gateway_url, semantic_tenant, turns).headers["x-cache"] == "miss"
    pii = "Tell dana.white@contoso.com what the capital city of France is."
    chat(gateway_url, semantic_tenant, pii)
    again = chat(gateway_url, semantic_tenant, pii.replace("Tell", "Please tell"))
    assert again.headers["x-cache"] == "miss"


def test_semantic_off_by_default(gateway_url: str, postgres_url: str) -> None:
    t = make_tenant(postgres_url, "sem-off")
    chat(gateway_url, t, f"{Q1} [{letter_tag()}]")
    assert chat(gateway_url, t, f"{Q2} [{letter_tag()}]").headers["x-cache"] == "miss"
