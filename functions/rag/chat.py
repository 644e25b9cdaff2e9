"""The chat call site of RAG: ``req, rag = await apply_rag(gw, principal, req)`` in ``generate.py``.

``apply_rag`` retrieves passages for the last user message from the knowledge base named in the
request's ``rag`` field, passes their text to the untrusted-content check (the prompt-injection
guardrail's hook; no check by default), and returns the augmented request with a :class:`Citations`
that adds the ``rag`` object to the answer: on the body (non-streamed), on the first chunk (streamed).
Requests without ``rag`` get the request back unchanged and :data:`NO_RAG`, which changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import orjson

from functions.backends.base import Completion
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.rag import prompt
from functions.rag.retrieval import Passage

if TYPE_CHECKING:
    from functions.auth import Principal
    from functions.gateway import Gateway

R = TypeVar("R", bound=SamplingParams)


class UntrustedContentCheck(Protocol):
    """Checks retrieved text before it reaches a model (the prompt-injection guardrail). Raise an
    :class:`~functions.errors.LlmpError` to refuse the request; return to let it through."""

    async def __call__(self, texts: Sequence[str], principal: Principal) -> None: ...


async def no_check(texts: Sequence[str], principal: Principal) -> None:
    return None


class Citations:
    """What a RAG answer adds to the response: the ``rag`` object."""

    def __init__(self, info: dict[str, Any] | None) -> None:
        self.info = info

    def body(self, completion: Completion) -> bytes:
        if self.info is None:
            return completion.content
        return orjson.dumps({**completion.body, "rag": self.info})

    def stream(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The events with ``rag`` added to the first chunk; without retrieval, the same events
        (no extra layer on the stream)."""
        return events if self.info is None else self._stream(events, self.info)

    @staticmethod
    async def _stream(events: AsyncIterator[bytes], info: dict[str, Any]) -> AsyncIterator[bytes]:
        first = True
        async for data in events:
            if first:
                data = _with_info(data, info)
            first = False
            yield data


NO_RAG = Citations(None)


def _with_info(data: bytes, info: dict[str, Any]) -> bytes:
    """Add ``rag`` to the first chunk of the first SSE event (left as is if it is not a chunk)."""
    head, sep, rest = data.partition(b"\n\n")
    if not head.startswith(b"data: {"):
        return data
    try:
        chunk = orjson.loads(head[6:])
    except orjson.JSONDecodeError:
        return data
    if not isinstance(chunk, dict) or "choices" not in chunk:
        return data
    return b"data: " + orjson.dumps({**chunk, "rag": info}) + sep + rest


def question(req: ChatCompletionRequest) -> str:
    users = [m for m in req.messages if m.role == "user"]
    return prompt.text_of(users[-1]) if users else prompt.text_of(req.messages[-1])


def citation(n: int, p: Passage) -> dict[str, Any]:
    return {"index": n, "document_id": p.doc_id, "title": p.title, "chunk": p.chunk,
            "heading": p.heading, "score": round(p.score, 4), "text": p.text}


async def apply_rag(gw: Gateway, principal: Principal, req: R,
                    check_untrusted: UntrustedContentCheck = no_check) -> tuple[R, Citations]:
    if not isinstance(req, ChatCompletionRequest) or req.rag is None:
        return req, NO_RAG
    opts = req.rag
    spec = gw.dispatcher.model(req.model)  # an unknown model is a 404 before any retrieval
    service = gw.rag
    passages = await service.retrieve(principal.tenant_id, opts.kb, question(req), opts.top_k,
                                      opts.mode, opts.min_score)
    room = prompt.budget(req, spec.context_length, service.settings.context_tokens)
    passages = prompt.fit(passages, room)
    await check_untrusted([p.body for p in passages], principal)
    info: dict[str, Any] = {"kb": opts.kb, "context": "retrieved" if passages else "none",
                            "citations": [citation(i, p) for i, p in enumerate(passages, 1)]}
    if not passages:
        empty = await service.is_empty(principal.tenant_id, opts.kb)
        info["note"] = (f"The knowledge base '{opts.kb}' has no documents" if empty else
                        f"No passage of the knowledge base '{opts.kb}' was relevant enough"
                        ) + "; the answer was generated without retrieved context."
    augmented = prompt.augment(req, opts.kb, passages)
    return cast(R, augmented), Citations(info)
