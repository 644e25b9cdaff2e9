"""The service on its own Qdrant folder: the cross-encoder stage, the untrusted-content hook, and a
write that fails half-way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from functions.auth import Principal
from functions.errors import PermissionDenied
from functions.gateway import Gateway
from functions.protocol.chat import ChatCompletionRequest
from functions.rag.chat import apply_rag
from functions.rag.embedder import resolve_model_dir
from functions.rag.errors import RagUnavailable
from functions.rag.service import RagService
from functions.rag.settings import DEFAULT_EMBEDDING_MODEL, RagSettings
from functions.rag.store import StoredChunk
from functions.settings import GatewaySettings

DOCS = {"vacation.md": b"# Vacation\nEmployees get 27 days of paid vacation a year.",
        "coffee.txt": b"Coffee beans are ordered from Ristretto Roasters every month.",
        "badges.txt": b"Lost badges are reported to the security desk at extension 4242."}
PRINCIPAL = Principal("tenant-a", "a", "key-a")


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cross-encoder built on the MiniLM weights with an untrained (seeded) head: its scores mean
    nothing, but it runs the real ``CrossEncoder`` code path offline."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(str(resolve_model_dir(DEFAULT_EMBEDDING_MODEL)), num_labels=1, device="cpu",
                 local_files_only=True).save(str(path))
    return str(path)


async def test_cross_encoder_orders_the_second_stage(tmp_path: Path, cross_encoder: str) -> None:
    svc = RagService(RagSettings(qdrant_path=tmp_path, reranker_model=cross_encoder))
    try:
        for name, data in DOCS.items():
            await svc.ingest("t", "kb", name, data)
        assert svc.default_mode == "rerank"
        got = await svc.retrieve("t", "kb", "How many vacation days?", min_score=-1)
        assert svc.reranker is not None
        expected = svc.reranker.score("How many vacation days?", [p.body for p in got])
        assert [p.rank_score for p in got] == pytest.approx(expected)
        assert [p.rank_score for p in got] == sorted((p.rank_score for p in got), reverse=True)
    finally:
        await svc.aclose()


@pytest.fixture
async def gateway(gateway_settings: GatewaySettings, tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(gateway_settings, rag_settings=RagSettings(qdrant_path=tmp_path))
    for name, data in DOCS.items():
        await gw.rag.ingest(PRINCIPAL.tenant_id, "kb", name, data)
    yield gw
    await gw.aclose()


def chat(content: str) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "mock", "messages": [{"role": "user", "content": content}], "rag": {"kb": "kb"}})


async def test_retrieved_text_goes_through_the_untrusted_content_check(gateway: Gateway) -> None:
    seen: list[str] = []

    async def record(texts: Sequence[str], principal: Principal) -> None:
        assert principal is PRINCIPAL
        seen.extend(texts)

    req, rag = await apply_rag(gateway, PRINCIPAL, chat("Where do I report a lost badge?"), record)
    assert rag.info is not None and rag.info["citations"][0]["document_id"] == "badges.txt"
    assert seen[0] == "Lost badges are reported to the security desk at extension 4242."
    assert req.rag is None

    async def refuse(texts: Sequence[str], principal: Principal) -> None:
        raise PermissionDenied("A retrieved passage looks like a prompt injection.")

    with pytest.raises(PermissionDenied):
        await apply_rag(gateway, PRINCIPAL, chat("Where do I report a lost badge?"), refuse)


async def test_a_failed_write_leaves_the_previous_version(gateway: Gateway,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    svc = gateway.rag
    store = svc.store
    real_upsert = store.upsert

    def half_then_fail(chunks: Sequence[StoredChunk]) -> None:
        real_upsert(chunks[: len(chunks) // 2])
        raise OSError("connection reset")

    monkeypatch.setattr(store, "upsert", half_then_fail)
    changed = b"# Vacation\n" + b"Employees get 30 days of paid vacation a year. " * 80
    with pytest.raises(RagUnavailable):
        await svc.ingest(PRINCIPAL.tenant_id, "kb", "vacation.md", changed)
    monkeypatch.undo()
    docs = {d["document_id"]: d for d in await svc.documents(PRINCIPAL.tenant_id, "kb")}
    assert docs["vacation.md"]["chunks"] == 1
    assert await store.call(store.count, store.filter(PRINCIPAL.tenant_id, "kb", "vacation.md")) == 1
    hits = await svc.retrieve(PRINCIPAL.tenant_id, "kb", "vacation days", min_score=-1)
    assert all("30 days" not in p.text for p in hits)


async def test_a_missing_embedding_model_is_503(tmp_path: Path) -> None:
    svc = RagService(RagSettings(qdrant_path=tmp_path, embedding_model=str(tmp_path / "nope")))
    with pytest.raises(RagUnavailable):
        await svc.retrieve("t", "kb", "q")
    await svc.aclose()
