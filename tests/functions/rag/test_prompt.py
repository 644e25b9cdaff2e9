"""The prompt: token budget, fitting passages, the system message, citations on the answer."""

from __future__ import annotations

import orjson

from functions.backends.base import Completion
from functions.protocol.chat import ChatCompletionRequest
from functions.rag import prompt
from functions.rag.chat import NO_RAG, Citations, _with_info
from functions.rag.retrieval import Passage


def req(**kw: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "q?"}], "rag": {"kb": "kb"}, **kw})


def passage(i: int, text: str) -> Passage:
    return Passage(f"d{i}", f"Doc {i}", 0, "", text, 0.5, 0.5)


def test_budget_is_capped_by_the_model_context() -> None:
    assert prompt.budget(req(), 100_000, 3000) == 3000
    assert prompt.budget(req(max_tokens=1000), 2048, 3000) == 2048 - 1000 - 5 - prompt.TEMPLATE_TOKENS
    assert prompt.budget(req(max_tokens=4000), 2048, 3000) == 0


def test_fit_skips_what_does_not_fit() -> None:
    ps = [passage(1, "a" * 300), passage(2, "b" * 3000), passage(3, "c" * 30)]
    assert [p.doc_id for p in prompt.fit(ps, 150)] == ["d1", "d3"]


def test_augment_merges_into_the_system_message_and_drops_rag() -> None:
    r = req(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q?"}])
    out = prompt.augment(r, "kb", [passage(1, "Fact one.")])
    assert out.rag is None and len(out.messages) == 2
    system = prompt.text_of(out.messages[0])
    assert system.startswith("Be brief.\n\nAnswer the question") and "[1] Doc 1\nFact one." in system
    assert "rag" not in out.upstream_body("m")
    none = prompt.augment(req(), "kb", [])
    assert none.messages[0].role == "system" and "no passage" in prompt.text_of(none.messages[0])


def test_rag_is_never_sent_upstream() -> None:
    assert "rag" not in req().upstream_body("m")


async def test_citations_on_body_and_first_chunk() -> None:
    info = {"kb": "kb", "citations": []}
    c = Completion(b'{"id":"x"}', {"id": "x"}, {})
    assert orjson.loads(Citations(info).body(c)) == {"id": "x", "rag": info}
    assert NO_RAG.body(c) == b'{"id":"x"}'

    async def events():  # type: ignore[no-untyped-def]
        yield b'data: {"id":"x","choices":[]}\n\ndata: {"id":"y","choices":[]}\n\n'
        yield b'data: {"id":"z","choices":[]}\n\n'

    out = [b async for b in Citations(info).stream(events())]
    first, second = out[0].split(b"\n\n")[:2]
    assert orjson.loads(first[6:])["rag"] == info and b"rag" not in second and b"rag" not in out[1]
    assert _with_info(b"data: [DONE]\n\n", info) == b"data: [DONE]\n\n"
