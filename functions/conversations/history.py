"""Stage 4: a request naming a ``conversation_id`` gets the stored history prepended, cut to fit the
model's context, and its new turns are appended once the answer is complete.

Order within the request: its own system/developer messages first (instructions are sent with each
request and never stored), then the history, then its other messages. Tokens are estimated (one
token per 3 bytes of UTF-8 plus 4 per message: above the real count for English, about right for
CJK, so truncation errs on the safe side); an answer's own completion token count is stored with it.
The oldest messages go first; history never starts with an assistant or tool message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from functions.cache.entry import Answer
from functions.conversations.store import ConversationStore, Message, parse_id
from functions.errors import DependencyUnavailable
from functions.metrics import GatewayMetrics
from functions.protocol.chat import ChatCompletionRequest, ChatMessage

if TYPE_CHECKING:
    from functions.guardrails.masking import Masker

MESSAGE_OVERHEAD = 4
INSTRUCTIONS = ("system", "developer")


def estimate_tokens(text: str) -> int:
    return MESSAGE_OVERHEAD + (len(text.encode()) + 2) // 3


def _text(m: ChatMessage) -> str:
    return m.text()


def _extra(m: ChatMessage) -> dict[str, Any] | None:
    extra = m.model_dump(include={"tool_calls", "tool_call_id", "name"}, exclude_none=True)
    return extra or None


def truncate(history: Sequence[Message], budget: int) -> list[Message]:
    """The newest messages whose tokens fit ``budget``, starting at a user message."""
    kept: list[Message] = []
    used = 0
    for m in reversed(history):
        if used + m.tokens > budget:
            break
        kept.append(m)
        used += m.tokens
    kept.reverse()
    while kept and kept[0].role != "user":
        kept.pop(0)
    return kept


def unavailable() -> DependencyUnavailable:
    return DependencyUnavailable(
        "Conversation history is unavailable (the database cannot be reached). Retry later, or "
        "send the whole conversation in 'messages' without 'conversation_id'.",
        code="conversation_store_unavailable")


class History:
    """The conversation part of one request."""

    def __init__(self, store: ConversationStore, metrics: GatewayMetrics, tenant_id: str,
                 conversation_id: UUID, stored: list[Message]) -> None:
        self.store, self.metrics = store, metrics
        self.tenant_id, self.conversation_id, self.stored = tenant_id, conversation_id, stored
        self.used: list[Message] = []
        self.new: list[Message] = []

    @classmethod
    async def load(cls, store: ConversationStore, metrics: GatewayMetrics, tenant_id: str,
                   raw_id: str, max_messages: int) -> History:
        conversation_id = parse_id(raw_id)
        try:
            stored = await store.history(tenant_id, conversation_id, max_messages)
        except DependencyUnavailable as e:
            metrics.history_failures.labels("load").inc()
            raise unavailable() from e
        return cls(store, metrics, tenant_id, conversation_id, stored)

    def reserve(self, masker: Masker) -> None:
        """New placeholders of this request are numbered after those in the history."""
        masker.reserve([m.content for m in self.stored])

    def apply(self, req: ChatCompletionRequest, context_length: int, reserve_tokens: int
              ) -> ChatCompletionRequest:
        """``req`` (already through the input guardrails) with the history that fits."""
        lead = [m for m in req.messages if m.role in INSTRUCTIONS]
        rest = [m for m in req.messages if m.role not in INSTRUCTIONS]
        self.new = [Message(m.role, _text(m), estimate_tokens(_text(m)), _extra(m)) for m in rest]
        answer = req.max_completion_tokens or req.max_tokens or min(reserve_tokens,
                                                                     context_length // 4)
        own = sum(estimate_tokens(_text(m)) for m in req.messages)
        self.used = truncate(self.stored, context_length - answer - own)
        past = [ChatMessage.model_validate(m.as_openai()) for m in self.used]
        return req.model_copy(update={"messages": [*lead, *past, *rest]})

    async def append(self, answer: Answer, model: str) -> None:
        """Store the request's new turns and the answer (as checked, placeholders kept)."""
        tokens = answer.completion_tokens or estimate_tokens(answer.text)
        extra = {"tool_calls": answer.tool_calls} if answer.tool_calls else None
        turns = [*self.new, Message("assistant", answer.text, tokens, extra)]
        try:
            await self.store.append(self.tenant_id, self.conversation_id, turns, model)
        except DependencyUnavailable as e:
            self.metrics.history_failures.labels("append").inc()
            raise DependencyUnavailable(
                "The answer could not be saved to the conversation (the database cannot be "
                "reached); the conversation is unchanged. Retry later.",
                code="conversation_store_unavailable") from e
