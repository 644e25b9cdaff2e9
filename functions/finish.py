"""Stage 9 for one request: once the answer is complete, store it in the cache and append the turns
to the conversation.

"Complete" means the client was sent the whole answer: a stream reached ``[DONE]`` without an error
event, or a whole answer passed the output guardrails. What is stored is the text as the guardrails
let it through, before placeholders are restored. A client that disconnects mid-stream stores
nothing: neither its user turn nor the partial answer (the conversation stays as the client last
saw it complete, and a retry of the same turn is not a duplicate). History is written before
``[DONE]`` (or before a whole answer is returned), so the client's next request sees it; if that
write fails, the client gets an error (503) instead of ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from functions.cache.entry import Answer, Kind, Recorder
from functions.errors import LlmpError, sse_error

if TYPE_CHECKING:
    from functions.cache.stage import CacheTurn
    from functions.conversations.history import History
    from functions.dispatch import StreamResult

_DONE = b"data: [DONE]\n\n"


class Finish:
    def __init__(self, kind: Kind, cache: CacheTurn, history: History | None) -> None:
        self.cache, self.history = cache, history
        self.recorder = Recorder(kind)
        self._completed = False

    @property
    def records(self) -> bool:
        return self.cache.can_store or self.history is not None

    def on_checked(self) -> Callable[[str], None] | None:
        """The output guardrails' hook: the answer's text comes from it, not from what is sent."""
        return self.recorder.hook().checked if self.records else None

    def on_checked_calls(self) -> Callable[[list[dict[str, Any]]], None] | None:
        """Likewise for the answer's tool calls (stored as checked, placeholders in place)."""
        return self.recorder.checked_calls if self.records else None

    def replayed(self, answer: Answer) -> None:
        """A cache hit: the answer is known, the finish only watches the replay end."""
        self.recorder.answer = answer
        self.recorder.hook()

    async def whole(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        if not self.records:
            await self.cache.seen(headers)
            return
        self.recorder.whole(dict(body))
        await self._complete(headers)

    async def stream(self, body: AsyncIterator[bytes], result: StreamResult
                     ) -> AsyncIterator[bytes]:
        if not self.records:
            await self.cache.seen(result.headers)
            async for raw in body:
                yield raw
            return
        rec = self.recorder
        async for raw in body:
            for event in raw.split(b"\n\n"):
                if event.startswith(b"data: "):
                    rec.event(event[6:])
            if rec.done and not (rec.failed or result.error or self._completed):
                self._completed = True
                try:
                    if rec.answer.usage is None and result.usage is not None:
                        u = result.usage
                        rec.answer.usage = {"prompt_tokens": u.prompt_tokens,
                                            "completion_tokens": u.completion_tokens,
                                            "total_tokens": u.prompt_tokens + u.completion_tokens}
                    await self._complete(result.headers)
                except LlmpError as e:
                    result.error = e
                    at = raw.rfind(_DONE)
                    raw = raw[:at] + sse_error(e)
            yield raw

    async def _complete(self, headers: Mapping[str, str]) -> None:
        answer = self.recorder.answer
        await self.cache.store(answer, headers)
        if self.history is not None:
            await self.history.append(answer, self.cache.alias)
