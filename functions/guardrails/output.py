"""Output guardrails on a whole answer and on a stream.

A stream holds back only what could still become a finding (:mod:`functions.guardrails.holdback`):
the word being written and a trailing run of words a finding could continue through (numbers,
capitalised words), at most ``holdback_chars``. Everything before it is released at once, word by
word: analysed together with the tail of the text already released (context words, and a finding
that would cross the release point), masked or refused, its placeholders restored. Tool calls the
model makes are checked too: whole in a whole answer, and in a stream held back until each call is
complete (:class:`_Calls`). Other delta fields pass unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from functions.errors import LlmpError, as_llmp_error, sse_error
from functions.guardrails.engine import OutputKind, RequestGuard
from functions.guardrails.findings import Span
from functions.guardrails.holdback import plain, release_point
from functions.guardrails.masking import safe_cut

Checked = Callable[[str], None]
"""Told each piece of the answer as the guardrails let it through, before placeholders are
restored (restored values are raw PII): what history and the cache may store."""
CheckedCalls = Callable[[list[dict[str, Any]]], None]
"""Told the answer's tool calls as checked, before placeholders are restored (whole calls, in
order, each one once: all of them for a whole answer, each batch completed in a stream). Not called
when the guard does not check tool calls (:attr:`RequestGuard.checks_tool_calls`): the calls sent are
then the model's own."""

SENTENCE_CHARS = 512
"""Most of the sentence being written that moderation sees with each released piece."""


def _content(choice: dict[str, Any], kind: OutputKind) -> str | None:
    if kind == "chat":
        holder = choice.get("message") or choice.get("delta") or {}
        value = holder.get("content")
    else:
        value = choice.get("text")
    return value if isinstance(value, str) else None


def _with_content(choice: dict[str, Any], kind: OutputKind, text: str, key: str) -> dict[str, Any]:
    if kind == "chat":
        return {**choice, key: {**(choice.get(key) or {}), "content": text}}
    return {**choice, "text": text}


async def check_completion(guard: RequestGuard, body: dict[str, Any], kind: OutputKind,
                           response_format: dict[str, Any] | None,
                           on_checked: Checked | None = None,
                           on_checked_calls: CheckedCalls | None = None) -> dict[str, Any]:
    """A non-streamed answer: checked, cut to ``max_chars``, validated, placeholders restored
    (``on_checked`` gets the checked text before restoring, ``on_checked_calls`` the checked tool
    calls)."""
    if not guard.active:
        return body
    choices = []
    for choice in body.get("choices") or []:
        text = _content(choice, kind)
        if text is not None:
            limit = guard.policy.output.max_chars if guard.checks_output else None
            if limit is not None and len(text) > limit:
                text, choice = text[:limit], {**choice, "finish_reason": "length"}
            original = text
            if guard.checks_output:
                text = await guard.check_text(text)
                if text != original and choice.get("logprobs"):
                    # the tokens' logprobs would show what was just masked or cut
                    choice = {**choice, "logprobs": None}
            checked, text = text, guard.restore(text)
            if choice.get("finish_reason") != "length":  # a cut answer is not invalid JSON
                guard.validate_json(text, response_format)
            if on_checked is not None:
                on_checked(checked)
            choice = _with_content(choice, kind, text, "message")
        if kind == "chat":
            choice = await _checked_calls(guard, choice, on_checked_calls)
        choices.append(choice)
    return {**body, "choices": choices}


async def _checked_calls(guard: RequestGuard, choice: dict[str, Any],
                         on_checked: CheckedCalls | None) -> dict[str, Any]:
    """``message.tool_calls`` with each call's arguments checked and restored
    (:meth:`RequestGuard.check_arguments`); ``on_checked`` gets them before restoring."""
    message = choice.get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(message, dict) or not isinstance(calls, list) or not guard.checks_tool_calls:
        return choice
    pairs = [await _checked_call(guard, call) for call in calls]
    if on_checked is not None:
        on_checked([checked for checked, _ in pairs])
    out = [restored for _, restored in pairs]
    return {**choice, "message": {**message, "tool_calls": out}} if out != calls else choice


async def _checked_call(guard: RequestGuard, call: Any) -> tuple[Any, Any]:
    """(the call as checked, the same with placeholders restored)."""
    fn = call.get("function") if isinstance(call, dict) else None
    args = fn.get("arguments") if isinstance(fn, dict) else None
    if not isinstance(fn, dict) or not isinstance(args, str):
        return call, call
    checked, restored = await guard.check_arguments(args)

    def with_args(a: str) -> Any:
        return call if a == args else {**call, "function": {**fn, "arguments": a}}

    return with_args(checked), with_args(restored)


class _Calls:
    """The tool calls of a stream, held back whole: a call's deltas are collected (by ``index``)
    and sent as one delta, arguments checked, once the call is complete (the next call begins, the
    choice finishes or the stream ends). So a value split across argument fragments is always seen
    whole, nothing of a call is sent before it is checked, and the arguments the client reassembles
    are the checked JSON. The hold is per call, bounded by the answer's ``max_tokens``; clients
    cannot run a call before its arguments are complete anyway."""

    def __init__(self, guard: RequestGuard, on_checked: CheckedCalls | None) -> None:
        self.guard, self.on_checked = guard, on_checked
        self.held: dict[int, dict[str, Any]] = {}

    def take(self, deltas: list[Any]) -> None:
        for d in deltas:
            if not isinstance(d, dict):
                continue
            index = int(d.get("index") or 0)
            slot = self.held.setdefault(index, {"index": index})
            for k, v in d.items():
                if k == "function" and isinstance(v, dict):
                    fn = slot.setdefault("function", {})
                    for fk, fv in v.items():
                        if fk in ("name", "arguments") and isinstance(fv, str):
                            fn[fk] = fn.get(fk, "") + fv
                        else:
                            fn[fk] = fv
                elif k != "index" and v is not None:
                    slot[k] = v

    async def hold(self, chunk: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
        """Take a chunk's tool-call deltas: (the chunk without them, the calls now complete and
        checked, whether the chunk carried nothing else)."""
        choice = chunk["choices"][0]
        delta = choice.get("delta") or {}
        deltas = delta.get("tool_calls")
        ready: list[dict[str, Any]] = []
        held = False
        if isinstance(deltas, list):
            indices = [int(d.get("index") or 0) for d in deltas if isinstance(d, dict)]
            if indices:  # calls before the first index named are complete
                ready = await self.complete(before=min(indices))
            self.take(deltas)
            delta = {k: v for k, v in delta.items() if k != "tool_calls"}
            chunk = {**chunk, "choices": [{**choice, "delta": delta}]}
            held = not delta
        if choice.get("finish_reason") is not None:
            ready += await self.complete()
        return chunk, ready, held

    async def complete(self, before: int | None = None) -> list[dict[str, Any]]:
        """The held calls with an index below ``before`` (all when None), checked; removed."""
        done = sorted(i for i in self.held if before is None or i < before)
        out, checked = [], []
        for i in done:
            pair = await _checked_call(self.guard, self.held.pop(i))
            checked.append(pair[0])
            out.append(pair[1])
        if checked and self.on_checked is not None:
            self.on_checked(checked)
        return out


class _Window:
    """The part of a streamed answer not yet released (:mod:`functions.guardrails.holdback` says
    how much must wait), and the tail of what was released, analysed with it as context."""

    def __init__(self, guard: RequestGuard, hold: int) -> None:
        self.guard, self.hold = guard, hold
        self.pending = ""
        self.sent = 0
        self.context = ""
        """The end of the released text, as the model wrote it (at most ``hold`` characters, from
        a word start): a finding's context words, and a finding the release point would split."""
        self.sentence = ""
        """The released text of the sentence being written: moderation sees it with each piece
        (moderation rules, like a classifier, need the phrase, not one word)."""

    async def release(self, final: bool) -> tuple[str, str]:
        """(checked text, the same with placeholders restored): the next piece to send."""
        if not self.pending:
            return "", ""
        checks = self.guard.checks_output
        if final:
            cut = len(self.pending)
        elif not checks:  # only placeholders to restore: hold an unfinished one
            cut = safe_cut(self.pending, len(self.pending))
        else:
            cut = release_point(self.pending, self.hold)
        if cut <= 0:
            return "", ""
        spans: list[Span] = []
        if checks and not plain(self.pending[:cut]):
            n = len(self.context)
            found = await self.guard.output_spans(self.context + self.pending)
            for s in found:
                if s.end <= n:
                    continue  # in the released text: checked when it was released
                # a finding begun in the released text (never, by the hold rule; defensively):
                # its remainder is masked
                s = Span(s.entity, max(0, s.start - n), s.end - n, s.score)
                if s.start < cut < s.end:  # never release part of a finding
                    cut = s.start
                spans.append(s)
            if cut <= 0:
                return "", ""
        raw, self.pending = self.pending[:cut], self.pending[cut:]
        out = raw
        if checks:
            out = await self.guard.check_text(raw, [s for s in spans if s.end <= cut],
                                              self.sentence)
            self._remember(raw)
        return out, self.guard.restore(out)

    def _remember(self, raw: str) -> None:
        tail = self.context + raw
        if len(tail) > self.hold:
            start = len(tail) - self.hold
            space = next((i for i in range(start, len(tail)) if tail[i - 1].isspace()), len(tail))
            tail = tail[space:]
        self.context = tail
        end = max(raw.rfind("."), raw.rfind("\n"), raw.rfind("!"), raw.rfind("?"))
        if end >= 0:
            self.sentence = raw[end + 1:]
        else:
            self.sentence += raw
        self.sentence = self.sentence[-SENTENCE_CHARS:]


async def guard_stream(guard: RequestGuard, events: AsyncIterator[bytes], kind: OutputKind,
                       hold: int, response_format: dict[str, Any] | None,
                       on_error: Callable[[LlmpError], None] | None = None,
                       on_checked: Checked | None = None,
                       on_checked_calls: CheckedCalls | None = None) -> AsyncIterator[bytes]:
    """Apply the output guardrails to an SSE stream of OpenAI chunks (one choice). A violation or a
    failing check ends the stream with an error event and ``[DONE]`` (``on_error`` is told).
    ``on_checked`` gets each piece sent, as checked and before placeholders are restored;
    ``on_checked_calls`` each batch of tool calls sent, likewise."""

    def sent(checked: str, restored: str, released: str) -> None:
        if on_checked is None or not released:
            return
        if released != restored:  # cut to max_chars: cut the checked text alike
            checked = released if checked == restored else checked[:safe_cut(checked,
                                                                               len(released))]
        on_checked(checked)

    win = _Window(guard, hold if guard.checks_output else 0)
    wants_json = guard.active and guard.policy.output.validate_json and (
        (response_format or {}).get("type") in ("json_object", "json_schema"))
    answer: list[str] = []
    limit = guard.policy.output.max_chars if guard.checks_output else None
    last: dict[str, Any] | None = None
    calls = _Calls(guard, on_checked_calls) if kind == "chat" and guard.checks_tool_calls else None
    out: list[bytes] = []
    failed = False  # the backend sent an error event: the answer is incomplete, not invalid JSON
    cut = False  # the answer ran out of tokens: incomplete, not invalid JSON (as OpenAI answers)
    no_logprobs = guard.withholds_stream_logprobs
    called = False  # the model called tools: an answer without content is not invalid JSON
    try:
        async for raw in events:
            out = []
            for event in raw.split(b"\n\n"):
                if not event.startswith(b"data: "):
                    continue
                data = event[6:]
                if data == b"[DONE]":
                    if calls is not None and last is not None and (rest := await calls.complete()):
                        out.append(_calls_event(last, rest))
                    checked, tail = await win.release(final=True)
                    if tail and last is not None:
                        out.append(_event(last, kind, tail))
                        answer.append(tail)
                        sent(checked, tail, tail)
                    if wants_json and not failed and not cut and not (
                            called and not "".join(answer)):
                        guard.validate_json("".join(answer), response_format)
                    out.append(b"data: [DONE]\n\n")
                    continue
                chunk = orjson.loads(data)
                if "error" in chunk and "choices" not in chunk:
                    failed = True
                    if calls is not None and last is not None and (rest := await calls.complete()):
                        out.append(_calls_event(last, rest))
                    _, tail = await win.release(final=True)
                    if tail and last is not None:
                        out.append(_event(last, kind, tail))
                    out.append(b"data: " + data + b"\n\n")
                    continue
                choices = chunk.get("choices") or []
                if not choices:  # the usage chunk
                    out.append(b"data: " + data + b"\n\n")
                    continue
                choice = choices[0]
                if no_logprobs and choice.get("logprobs") is not None:
                    choice = {**choice, "logprobs": None}
                    chunk = {**chunk, "choices": [choice, *choices[1:]]}
                text = _content(choice, kind)
                finish = choice.get("finish_reason")
                cut = cut or finish == "length"
                held = False  # the chunk carried only tool-call deltas, now held
                called = called or bool(kind == "chat" and (choice.get("delta") or {}).get(
                    "tool_calls"))
                if calls is not None:
                    chunk, ready, held = await calls.hold(chunk)
                    choice = chunk["choices"][0]
                    if ready:
                        out.append(_calls_event(chunk, ready))
                if text:
                    win.pending += text
                checked, restored = await win.release(final=finish is not None)
                released = restored
                if limit is not None and win.sent + len(released) >= limit:
                    released = released[:max(0, limit - win.sent)]
                    choice, finish, win.pending = {**choice, "finish_reason": "length"}, "length", ""
                    chunk = {**chunk, "choices": [choice]}
                win.sent += len(released)
                answer.append(released)
                sent(checked, restored, released)
                last = chunk
                other = kind == "chat" and any(k != "content" for k in (choice.get("delta") or {}))
                if released or finish is not None or other or (
                        text is None and not win.pending and not held):
                    out.append(_event(chunk, kind, released))
                if finish == "length" and limit is not None and win.sent >= limit:
                    out.append(b"data: [DONE]\n\n")
                    yield b"".join(out)
                    return
            if out:
                yield b"".join(out)
    except Exception as e:  # noqa: BLE001 - a violation or a failing check ends the stream
        err = as_llmp_error(e)
        if on_error is not None:
            on_error(err)
        yield b"".join(out) + sse_error(err)  # what was checked and released before it, then the error


def _calls_event(chunk: dict[str, Any], calls: list[dict[str, Any]]) -> bytes:
    """A chunk sending complete, checked tool calls (the envelope of ``chunk``)."""
    head = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
    choice = {"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}
    return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"


def _event(chunk: dict[str, Any], kind: OutputKind, text: str) -> bytes:
    choice = chunk["choices"][0]
    if _content(choice, kind) is not None or text:
        choice = _with_content(choice, kind, text, "delta")
    return b"data: " + orjson.dumps({**chunk, "choices": [choice]}) + b"\n\n"
