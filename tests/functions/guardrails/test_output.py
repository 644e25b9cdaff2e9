"""Output guardrails on whole answers and on streams (hold-back window, split values, restore)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from functions.errors import OutputBlocked
from functions.guardrails.engine import Guardrails, RequestGuard
from functions.guardrails.output import check_completion, guard_stream
from functions.guardrails.policy import GuardrailPolicy


def guard(rails: Guardrails, **policy: Any) -> RequestGuard:
    return rails.begin(GuardrailPolicy.model_validate(policy), tenant_id="t", request_id="r",
                       model="m")


def sse(pieces: list[str], kind: str = "chat") -> list[bytes]:
    def chunk(text: str | None, finish: str | None) -> bytes:
        if kind == "chat":
            choice: dict[str, Any] = {"index": 0, "delta": {} if text is None else {"content": text},
                                      "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish}
        return b"data: " + orjson.dumps({"id": "x", "model": "m", "choices": [choice]}) + b"\n\n"

    usage = b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
    return [chunk("", None), *(chunk(p, None) for p in pieces), chunk(None, "stop"), usage,
            b"data: [DONE]\n\n"]


async def _events(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def run_stream(g: RequestGuard, pieces: list[str], kind: str = "chat",
               response_format: dict[str, Any] | None = None) -> tuple[str, list[dict[str, Any]]]:
    async def collect() -> bytes:
        return b"".join([b async for b in guard_stream(g, _events(sse(pieces, kind)), kind,  # type: ignore[arg-type]
                                                       96, response_format)])

    raw = asyncio.run(collect())
    events = [e[6:] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join((c["choices"][0].get("delta", {}).get("content") or c["choices"][0].get("text") or "")
                   for c in chunks if c.get("choices"))
    return text, chunks


def split3(text: str) -> list[str]:
    return [text[i:i + 3] for i in range(0, len(text), 3)]


ANSWER = ("Thanks for asking. The customer is reachable by mail at dana.white@contoso.com and "
          "everything else in the file looks in order, so the refund can go ahead this week.")


def test_pii_split_across_chunks_is_masked(rails: Guardrails) -> None:
    text, chunks = run_stream(guard(rails), split3(ANSWER))
    assert "dana.white" not in text and "<EMAIL_ADDRESS>" in text
    assert text == ANSWER.replace("dana.white@contoso.com", "<EMAIL_ADDRESS>")
    assert chunks[-1]["usage"]["completion_tokens"] == 2  # the usage chunk passes unchanged
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_hold_back_is_bounded(rails: Guardrails) -> None:
    """Text is released while the answer is still arriving, never more than the window behind."""
    g = guard(rails)
    pieces = split3("word " * 100)
    seen: list[int] = []

    async def go() -> None:
        fed = 0
        async def src() -> AsyncIterator[bytes]:
            nonlocal fed
            for item in sse(pieces):
                fed += 1
                yield item
        out = 0
        async for b in guard_stream(g, src(), "chat", 96, None):
            for e in b.split(b"\n\n"):
                if e.startswith(b"data: {"):
                    c = orjson.loads(e[6:])
                    out += len((c["choices"] or [{}])[0].get("delta", {}).get("content") or "")
            received = sum(len(p) for p in pieces[:max(0, fed - 1)])
            seen.append(received - out)

    asyncio.run(go())
    assert max(seen) <= 96 + 24 + 3


def test_block_mid_stream_ends_with_error_event(rails: Guardrails) -> None:
    answer = "Sure, here it is: the card on file is 4111 1111 1111 1111 and it expires soon. " * 2
    text, chunks = run_stream(guard(rails), split3(answer))
    assert "4111" not in text
    assert chunks[-1]["error"]["code"] == "content_filter"
    assert "CREDIT_CARD" in chunks[-1]["error"]["message"]


def test_on_violation_error_turns_masks_into_an_error(rails: Guardrails) -> None:
    text, chunks = run_stream(guard(rails, output={"on_violation": "error"}), split3(ANSWER))
    assert "dana" not in text and chunks[-1]["error"]["code"] == "content_filter"


def test_placeholders_split_across_chunks_are_restored(rails: Guardrails) -> None:
    g = guard(rails, output={"pii": False, "moderation": False})
    g.masker.placeholder("PERSON", "Ada Lovelace")
    text, _ = run_stream(g, ["Dear <PER", "SON", "_1>, wel", "come."])
    assert text == "Dear Ada Lovelace, welcome."


def test_completions_streams_too(rails: Guardrails) -> None:
    text, _ = run_stream(guard(rails), split3(ANSWER), kind="text")
    assert "<EMAIL_ADDRESS>" in text and "dana" not in text


def test_max_chars_cuts_with_finish_reason_length(rails: Guardrails) -> None:
    text, chunks = run_stream(guard(rails, output={"max_chars": 50}), split3("abc " * 100))
    assert len(text) == 50
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_json_is_validated_at_the_end_of_a_stream(rails: Guardrails) -> None:
    fmt = {"type": "json_object"}
    good, _ = run_stream(guard(rails), split3('{"a": 1, "b": [1, 2]}'), response_format=fmt)
    assert orjson.loads(good) == {"a": 1, "b": [1, 2]}
    _, chunks = run_stream(guard(rails), split3('{"a": 1,'), response_format=fmt)
    assert chunks[-1]["error"]["code"] == "invalid_json_output"


def completion(text: str) -> dict[str, Any]:
    return {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}], "usage": {"total_tokens": 3}}


def test_whole_answers(rails: Guardrails) -> None:
    out = asyncio.run(check_completion(guard(rails), completion(ANSWER), "chat", None))
    assert out["choices"][0]["message"]["content"] == ANSWER.replace("dana.white@contoso.com",
                                                                     "<EMAIL_ADDRESS>")
    with pytest.raises(OutputBlocked, match="CREDIT_CARD"):
        asyncio.run(check_completion(guard(rails), completion("card 4111 1111 1111 1111"), "chat",
                                     None))
    cut = asyncio.run(check_completion(guard(rails, output={"max_chars": 5}), completion("abcdefgh"),
                                       "chat", None))
    assert cut["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "abcde"},
                                 "finish_reason": "length"}
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}}}
    asyncio.run(check_completion(guard(rails), completion('{"a": 1}'), "chat", schema))
    with pytest.raises(OutputBlocked, match="schema"):
        asyncio.run(check_completion(guard(rails), completion('{"a": "x"}'), "chat", schema))


def test_moderation_on_output(rails: Guardrails) -> None:
    bad = "Step one: here is how to build a pipe bomb at home with household items."
    with pytest.raises(OutputBlocked, match="violence"):
        asyncio.run(check_completion(guard(rails), completion(bad), "chat", None))
    masked = asyncio.run(check_completion(
        guard(rails, moderation={"categories": {"violence": "mask"}}), completion(bad), "chat", None))
    assert masked["choices"][0]["message"]["content"] == "[removed by content moderation]"


MASKED = ("Thanks for asking. The customer is reachable by mail at <EMAIL_ADDRESS_1> and "
          "everything else in the file looks in order, so the refund can go ahead this week.")


@pytest.mark.parametrize("max_chars", [None, 70])
def test_on_checked_gets_the_text_before_restoring(rails: Guardrails, max_chars: int | None) -> None:
    """What history and the cache store: checked, placeholders kept; cut like the sent text."""
    g = guard(rails, output={"max_chars": max_chars})
    g.masker.placeholder("EMAIL_ADDRESS", "dana.white@contoso.com")
    pieces: list[str] = []

    async def collect() -> bytes:
        return b"".join([b async for b in guard_stream(g, _events(sse(split3(MASKED))), "chat", 96,
                                                       None, None, pieces.append)])

    raw = asyncio.run(collect())
    assert b"dana.white@contoso.com" in raw or max_chars is not None
    stored = "".join(pieces)
    assert "dana.white" not in stored
    assert stored == (MASKED if max_chars is None else MASKED[:len(stored)])
    if max_chars is not None:
        assert len(stored) <= max_chars
    whole: list[str] = []
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": MASKED},
                         "finish_reason": "stop"}]}
    out = asyncio.run(check_completion(g, body, "chat", None, whole.append))
    sent = out["choices"][0]["message"]["content"]
    assert "dana.white@contoso.com" in sent or max_chars is not None
    assert whole == [MASKED[:max_chars] if max_chars else MASKED]


def test_a_backend_error_is_not_turned_into_a_json_error(rails: Guardrails) -> None:
    items = [*sse(split3('{"a": 1,'))[:-3],
             b'data: {"error": {"message": "backend exploded", "type": "server_error"}}\n\n',
             b"data: [DONE]\n\n"]

    async def collect() -> bytes:
        return b"".join([b async for b in guard_stream(guard(rails), _events(items), "chat", 96,
                                                       {"type": "json_object"})])

    events = [e[6:] for e in asyncio.run(collect()).split(b"\n\n") if e.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    errors = [orjson.loads(e)["error"] for e in events[:-1] if b'"error"' in e]
    assert [e["message"] for e in errors] == ["backend exploded"]
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in events[:-1] if b'"choices"' in e)
    assert text == '{"a": 1,'  # what arrived before the error is still sent
