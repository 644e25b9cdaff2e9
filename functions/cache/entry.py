"""An answer as the finish stage records it, as the cache stores it, and its replay.

What is recorded is what the output guardrails let through, before placeholders are restored: the
pieces of content in the order and cut they were sent (so a replayed stream has the same chunks),
the finish reason, usage, the model version and any tool calls.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Kind = Literal["chat", "text"]
WORD = re.compile(r"\S*\s*")


@dataclass(slots=True)
class Answer:
    kind: Kind
    pieces: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    version: str = ""
    """The model version that answered (``x-llmp-model-version`` or ``system_fingerprint``)."""
    fingerprint: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    chunks: list[dict[str, Any]] | None = None
    """Recorded from a stream: the choice of each chunk as the client got it (without ``index``
    and ``logprobs``), so a replay has the same chunks. None for a whole answer, which replays
    as a role chunk, one chunk per word and a finish chunk."""

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int | None:
        return (self.usage or {}).get("completion_tokens")

    def encode(self) -> bytes:
        return orjson.dumps(self)  # orjson writes a dataclass as asdict() would, 20x faster

    @classmethod
    def decode(cls, raw: bytes | str) -> Answer:
        data = orjson.loads(raw)
        return cls(**data)


class Recorder:
    """Builds an :class:`Answer` from the events a stream sends, or from a whole answer. Content
    comes from the guardrails' hook (:meth:`checked`) when the output guardrails run, since what
    the client receives then has placeholders restored."""

    def __init__(self, kind: Kind) -> None:
        self.answer = Answer(kind)
        self.hooked = False
        self.calls_hooked = False
        self.failed = False
        self.done = False
        self._calls: dict[int, dict[str, Any]] = {}

    def hook(self) -> Recorder:
        self.hooked = True
        return self

    def checked(self, piece: str) -> None:
        if piece:
            self.answer.pieces.append(piece)

    def checked_calls(self, calls: list[dict[str, Any]]) -> None:
        """Tool calls as the output guardrails checked them (placeholders not restored): what a
        conversation stores, never the restored values the client was sent."""
        self.calls_hooked = True
        self.answer.tool_calls = [*(self.answer.tool_calls or []), *calls]

    def event(self, data: bytes) -> None:
        """One SSE ``data:`` payload sent to the client."""
        if data == b"[DONE]":
            self.done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.failed = True
            return
        if not isinstance(chunk, dict) or "error" in chunk:
            self.failed = True
            return
        a = self.answer
        a.fingerprint = chunk.get("system_fingerprint") or a.fingerprint
        if isinstance(chunk.get("usage"), dict):
            a.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if a.chunks is None:
                a.chunks = []
            a.chunks.append({k: v for k, v in choice.items() if k not in ("index", "logprobs")})
            a.finish_reason = choice.get("finish_reason") or a.finish_reason
            delta = choice.get("delta") or {}
            text = delta.get("content") if a.kind == "chat" else choice.get("text")
            if isinstance(text, str) and text and not self.hooked:
                a.pieces.append(text)
            if not self.calls_hooked:
                for call in delta.get("tool_calls") or []:
                    self._tool_delta(call)

    def _tool_delta(self, call: dict[str, Any]) -> None:
        slot = self._calls.setdefault(int(call.get("index") or 0), {
            "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        slot["id"] = call.get("id") or slot["id"]
        fn = call.get("function") or {}
        slot["function"]["name"] += fn.get("name") or ""
        slot["function"]["arguments"] += fn.get("arguments") or ""
        self.answer.tool_calls = [self._calls[i] for i in sorted(self._calls)]

    def whole(self, body: dict[str, Any]) -> None:
        """A non-streamed answer (after the output guardrails; content from the hook if hooked)."""
        a = self.answer
        a.fingerprint = body.get("system_fingerprint")
        a.usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
        choice = (body.get("choices") or [{}])[0]
        a.finish_reason = choice.get("finish_reason")
        message = choice.get("message") or {}
        text = message.get("content") if a.kind == "chat" else choice.get("text")
        if isinstance(text, str) and text and not self.hooked:
            a.pieces.append(text)
        if not self.calls_hooked:
            a.tool_calls = message.get("tool_calls") or None
        self.done = True


def _split(text: str) -> list[str]:
    """A whole answer replayed as a stream: one chunk per word (with its trailing space)."""
    return [w for w in WORD.findall(text) if w]


def _head(answer: Answer, alias: str, stream: bool) -> dict[str, Any]:
    chat = answer.kind == "chat"
    obj = ("chat.completion.chunk" if stream else "chat.completion") if chat else "text_completion"
    head: dict[str, Any] = {"id": ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex,
                            "object": obj, "created": int(time.time()), "model": alias}
    if answer.fingerprint:
        head["system_fingerprint"] = answer.fingerprint
    return head


def replay_body(answer: Answer, alias: str) -> dict[str, Any]:
    choice: dict[str, Any]
    if answer.kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        choice = {"index": 0, "message": message, "finish_reason": answer.finish_reason,
                  "logprobs": None}
    else:
        choice = {"index": 0, "text": answer.text, "finish_reason": answer.finish_reason,
                  "logprobs": None}
    body = {**_head(answer, alias, False), "choices": [choice]}
    if answer.usage is not None:
        body["usage"] = answer.usage
    return body


def replay_events(answer: Answer, alias: str, include_usage: bool) -> bytes:
    """The SSE events of the live stream (the recorded chunks, or for an answer recorded whole: a
    role chunk, one chunk per word, the finish chunk), the usage chunk when asked for, ``[DONE]``."""
    head = _head(answer, alias, True)
    out = [b"data: " + orjson.dumps({**head, "choices": [{"index": 0, **c, "logprobs": None}]})
           + b"\n\n" for c in _chunks(answer)]
    if include_usage and answer.usage is not None:
        out.append(b"data: " + orjson.dumps({**head, "choices": [], "usage": answer.usage}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def _chunks(answer: Answer) -> list[dict[str, Any]]:
    if answer.chunks is not None:
        return answer.chunks
    words = _split(answer.text)
    if answer.kind == "text":
        return [*({"text": w, "finish_reason": None} for w in words),
                {"text": "", "finish_reason": answer.finish_reason}]
    out: list[dict[str, Any]] = [{"delta": {"role": "assistant", "content": ""},
                                  "finish_reason": None}]
    out += [{"delta": {"content": w}, "finish_reason": None} for w in words]
    if answer.tool_calls:
        calls = [{"index": i, **c} for i, c in enumerate(answer.tool_calls)]
        out.append({"delta": {"tool_calls": calls}, "finish_reason": None})
    out.append({"delta": {}, "finish_reason": answer.finish_reason})
    return out
