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


@pytest.mark.parametrize("word", ["word", "Word", "12"])
def test_hold_back_is_bounded(rails: Guardrails, word: str) -> None:
    """Text is released while the answer is still arriving, never more than the cap behind (a run
    of capitalised words or numbers could be one finding: it is held, up to the cap)."""
    g = guard(rails)
    pieces = split3(f"{word} " * 100)
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
    assert max(seen) <= 96 + 3
    if word == "word":  # nothing could become a finding: one word (and a chunk) behind at most
        assert max(seen) <= len("word ") + 3


def content_events(g: RequestGuard, pieces: list[str]) -> list[str]:
    async def collect() -> list[bytes]:
        return [b async for b in guard_stream(g, _events(sse(pieces)), "chat", 96, None)]

    out = []
    for raw in asyncio.run(collect()):
        for e in raw.split(b"\n\n"):
            if e.startswith(b"data: {"):
                c = orjson.loads(e[6:])
                if c.get("choices") and c["choices"][0].get("delta", {}).get("content"):
                    out.append(c["choices"][0]["delta"]["content"])
    return out


def test_plain_words_are_released_word_by_word(rails: Guardrails) -> None:
    """Each token that begins a word releases the word before it (checked): a chat UI shows the
    answer as it is written, not in bursts."""
    words = ["the", "refund", "was", "approved", "and", "the", "money", "should", "arrive", "in",
             "three", "to", "five", "days"]
    pieces = [words[0], *(" " + w for w in words[1:])]
    events = content_events(guard(rails), pieces)
    assert events == [w + " " for w in words[:-1]] + [words[-1]]


def test_a_run_that_could_be_a_finding_is_held_until_it_ends(rails: Guardrails) -> None:
    """A number or a run of capitalised words is held until a word that no finding holds ends it
    (that word is known to be finished when the next one begins), then checked whole."""
    pieces = ["Call", " Maria", " Lopez", " at", " 425", " 555", " 0173", " today", " please"]
    events = content_events(guard(rails, pii={"entities": {"PERSON": "mask",
                                                           "PHONE_NUMBER": "mask"}}), pieces)
    assert events == ["Call <PERSON> at ", "<PHONE_NUMBER> today ", "please"]


MATRIX = {
    "EMAIL_ADDRESS": "You can write to dana.white@contoso.com about the refund.",
    "PHONE_NUMBER": "Please call her phone at (425) 555-0173 about the refund.",
    "US_SSN": "Her social security number is 536-22-8745 on the form.",
    "CREDIT_CARD": "The card on file is 4111 1111 1111 1111 and it works.",
    "IBAN_CODE": "Send it to the account GB82 WEST 1234 5698 7654 32 today.",
    "IP_ADDRESS": "The server answered from 192.168.10.24 this morning.",
    "PERSON": "The file was signed by Maria Lopez yesterday afternoon.",
    "CRYPTO": "Pay to wallet 1BoatSLRHtKNngkdXEeobR76b53LETtpyT as agreed.",
    "US_ITIN": "Her itin is 912-70-1234 for taxes.",
    "MEDICAL_LICENSE": "The medical license is AB1234563 on the record.",
    "US_PASSPORT": "Her passport number is 912803456 for the trip.",
    "US_BANK_NUMBER": "The bank account number is 945245696 at the branch.",
    "US_DRIVER_LICENSE": "Her driver license is H12345678 in the state.",
    "URL": "The form is at https://contoso.com/forms/refund?id=7 for you.",
}


@pytest.mark.parametrize("entity", sorted(MATRIX))
def test_every_finding_split_at_every_offset_is_masked(rails: Guardrails, entity: str) -> None:
    """Each entity type, its value split across two chunks at every offset (and the whole answer
    in 3-character chunks): never released in part, always masked whole."""
    text = MATRIX[entity]
    g = guard(rails, pii={"entities": {e: "mask" for e in MATRIX}})
    (whole,) = asyncio.run(rails.detectors.pii.analyze([text]))
    (span,) = [s for s in whole if s.entity == entity]
    expected = text[:span.start] + f"<{entity}>" + text[span.end:]
    value = text[span.start:span.end]
    splits = [[text[:span.start + k], text[span.start + k:]] for k in range(1, len(value))]
    splits += [split3(" " * k + text) for k in range(3)]
    for pieces in splits:
        out, _ = run_stream(guard(rails, pii={"entities": {e: "mask" for e in MATRIX}}), pieces)
        assert out.lstrip() == expected, pieces
    assert g.policy.pii.entities[entity] == "mask"


@pytest.mark.parametrize("at", range(1, len("<PERSON_1>")))
def test_a_placeholder_split_at_every_offset_is_restored(rails: Guardrails, at: int) -> None:
    g = guard(rails)
    g.masker.placeholder("PERSON", "Ada Lovelace")
    text = "Dear <PERSON_1>, welcome aboard."
    i = text.index("<") + at
    out, _ = run_stream(g, [text[:i], text[i:]])
    assert out == "Dear Ada Lovelace, welcome aboard."


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


def test_moderation_of_a_stream_reads_the_sentence_not_the_word(rails: Guardrails) -> None:
    """Released word by word, the phrase is still moderated whole (the sentence so far is read
    with each piece); a flag is recorded once, not once per word after it."""
    bad = "Fine. Step one: here is how to build a pipe bomb at home with household items. Done."
    words = bad.split(" ")
    pieces = [words[0], *(" " + w for w in words[1:])]
    text, chunks = run_stream(guard(rails), pieces)
    assert chunks[-1]["error"]["code"] == "content_filter" and "bomb" not in text
    g = guard(rails, moderation={"categories": {"violence": "flag"}})
    text, _ = run_stream(g, pieces)
    assert text == bad and g._decisions == 1


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


def tool_completion(*arguments: str) -> dict[str, Any]:
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "send", "arguments": a}}
             for i, a in enumerate(arguments)]
    return {"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": calls}}]}


def out_args(body: dict[str, Any]) -> list[Any]:
    return [orjson.loads(c["function"]["arguments"])
            for c in body["choices"][0]["message"]["tool_calls"]]


ARGS = '{"to": "dana.white@contoso.com", "subject": "Refund \\"approved\\"", "n": 2}'


def test_whole_tool_call_arguments_are_checked(rails: Guardrails) -> None:
    out = asyncio.run(check_completion(guard(rails), tool_completion(ARGS, "{}"), "chat", None))
    assert out_args(out) == [{"to": "<EMAIL_ADDRESS>", "subject": 'Refund "approved"', "n": 2}, {}]
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"]) == ("c0", "send")
    with pytest.raises(OutputBlocked, match="US_SSN"):
        asyncio.run(check_completion(guard(rails), tool_completion('{"ssn": "536-22-8745"}'),
                                     "chat", None))
    with pytest.raises(OutputBlocked, match="violence"):
        asyncio.run(check_completion(guard(rails), tool_completion(
            '{"note": "here is how to build a pipe bomb at home"}'), "chat", None))
    same = tool_completion('{"city": "Paris"}')
    assert asyncio.run(check_completion(guard(rails), same, "chat", None)) == same


def test_placeholders_in_whole_tool_arguments_are_restored(rails: Guardrails) -> None:
    g = guard(rails)
    g.masker.placeholder("PERSON", 'Ada "the Countess" Lovelace')
    out = asyncio.run(check_completion(g, tool_completion('{"to": "<PERSON_1>"}'), "chat", None))
    assert out_args(out) == [{"to": 'Ada "the Countess" Lovelace'}]  # escaped, still JSON
    kept = guard(rails, pii={"restore": False})
    kept.masker.placeholder("PERSON", "Ada Lovelace")
    out = asyncio.run(check_completion(kept, tool_completion('{"to": "<PERSON_1>"}'), "chat", None))
    assert out_args(out) == [{"to": "<PERSON_1>"}]


def tool_sse(arguments: list[str], content: str | None = None) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({"id": "x", "model": "m", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"

    out = [chunk({"role": "assistant", "content": content})]
    for i, args in enumerate(arguments):
        out.append(chunk({"tool_calls": [{"index": i, "id": f"c{i}", "type": "function",
                                          "function": {"name": "send", "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
                for p in split3(args)]
    usage = b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
    return [*out, chunk({}, "tool_calls"), usage, b"data: [DONE]\n\n"]


def run_tool_stream(g: RequestGuard, arguments: list[str]) -> tuple[list[dict[str, Any]],
                                                                    list[dict[str, Any]]]:
    """(the calls as a client reassembles them, every chunk)."""
    async def collect() -> bytes:
        return b"".join([b async for b in guard_stream(g, _events(tool_sse(arguments)), "chat", 96,
                                                       None)])

    events = [e[6:] for e in asyncio.run(collect()).split(b"\n\n") if e.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for d in (c.get("choices") or [{}])[0].get("delta", {}).get("tool_calls") or []:
            slot = calls.setdefault(d["index"], {"id": None, "name": "", "arguments": ""})
            slot["id"] = d.get("id") or slot["id"]
            slot["name"] += d.get("function", {}).get("name") or ""
            slot["arguments"] += d.get("function", {}).get("arguments") or ""
    return [calls[i] for i in sorted(calls)], chunks


def test_streamed_tool_arguments_split_across_fragments_are_masked(rails: Guardrails) -> None:
    calls, chunks = run_tool_stream(guard(rails), [ARGS, '{"note": "mail bob@contoso.com"}'])
    assert [(c["id"], c["name"]) for c in calls] == [("c0", "send"), ("c1", "send")]
    assert [orjson.loads(c["arguments"]) for c in calls] == [
        {"to": "<EMAIL_ADDRESS>", "subject": 'Refund "approved"', "n": 2},
        {"note": "mail <EMAIL_ADDRESS>"}]
    assert "dana" not in orjson.dumps(chunks).decode()
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


def test_streamed_tool_arguments_with_blocked_pii_end_the_stream(rails: Guardrails) -> None:
    calls, chunks = run_tool_stream(guard(rails), ['{"ssn": "536-22-8745", "ok": true}'])
    assert chunks[-1]["error"]["code"] == "content_filter" and "US_SSN" in chunks[-1]["error"]["message"]
    assert "8745" not in orjson.dumps(chunks).decode() and calls == []


def test_streamed_placeholders_in_arguments_are_restored(rails: Guardrails) -> None:
    g = guard(rails, output={"pii": False, "moderation": False})
    g.masker.placeholder("EMAIL_ADDRESS", "dana.white@contoso.com")
    calls, _ = run_tool_stream(g, ['{"to": "<EMAIL_ADDRESS_1>", "body": "line\\nnext \\u00e9"}'])
    assert orjson.loads(calls[0]["arguments"]) == {"to": "dana.white@contoso.com",
                                                   "body": "line\nnext \u00e9"}


def test_tool_calls_pass_untouched_when_nothing_checks_them(rails: Guardrails) -> None:
    g = guard(rails, output={"pii": False, "moderation": False, "max_chars": 10})
    calls, chunks = run_tool_stream(g, [ARGS])
    assert calls[0]["arguments"] == ARGS
    assert sum(1 for c in chunks if "tool_calls" in ((c.get("choices") or [{}])[0].get("delta") or {})) > 3


def test_a_tool_call_answer_is_not_invalid_json(rails: Guardrails) -> None:
    fmt = {"type": "json_object"}
    for g in (guard(rails), guard(rails, output={"pii": False, "moderation": False})):
        async def collect(g: RequestGuard = g) -> bytes:
            return b"".join([b async for b in guard_stream(g, _events(tool_sse(['{"a": 1}'])),
                                                           "chat", 96, fmt)])

        assert b'"error"' not in asyncio.run(collect())
    asyncio.run(check_completion(guard(rails), tool_completion('{"a": 1}'), "chat", fmt))


def test_on_checked_calls_gets_the_calls_before_restoring(rails: Guardrails) -> None:
    """What history may store: the calls as checked, placeholders kept (never the raw values)."""
    g = guard(rails)
    g.masker.placeholder("EMAIL_ADDRESS", "dana.white@contoso.com")
    raw = '{"to": "<EMAIL_ADDRESS_1>", "cc": "bob@contoso.com"}'
    whole: list[list[dict[str, Any]]] = []
    out = asyncio.run(check_completion(g, tool_completion(raw), "chat", None, None, whole.append))
    assert out_args(out) == [{"to": "dana.white@contoso.com", "cc": "<EMAIL_ADDRESS>"}]
    assert [orjson.loads(c["function"]["arguments"]) for c in whole[0]] == [
        {"to": "<EMAIL_ADDRESS_1>", "cc": "<EMAIL_ADDRESS>"}]
    streamed: list[list[dict[str, Any]]] = []

    async def collect() -> bytes:
        return b"".join([b async for b in guard_stream(g, _events(tool_sse([raw, "{}"])), "chat", 96,
                                                       None, None, None, streamed.append)])

    assert b"dana.white@contoso.com" in asyncio.run(collect())
    got = [c for batch in streamed for c in batch]
    assert [(c["index"], c["id"]) for c in got] == [(0, "c0"), (1, "c1")]
    assert orjson.loads(got[0]["function"]["arguments"]) == {"to": "<EMAIL_ADDRESS_1>",
                                                             "cc": "<EMAIL_ADDRESS>"}


LOGPROBS = {"content": [{"token": "dana", "logprob": -0.1, "bytes": None, "top_logprobs": []}]}


def whole(text: str, **choice: Any) -> dict[str, Any]:
    return {"id": "x", "choices": [{"index": 0, "finish_reason": "stop", "logprobs": LOGPROBS,
                                    "message": {"role": "assistant", "content": text}, **choice}]}


def test_logprobs_of_a_masked_answer_are_withheld(rails: Guardrails) -> None:
    masked = asyncio.run(check_completion(guard(rails), whole(ANSWER), "chat", None))
    assert "dana.white" not in orjson.dumps(masked).decode()
    assert masked["choices"][0]["logprobs"] is None
    clean = "The refund can go ahead this week, and the file looks in order."
    kept = asyncio.run(check_completion(guard(rails), whole(clean), "chat", None))
    assert kept["choices"][0]["logprobs"] == LOGPROBS  # nothing masked: nothing withheld


def test_streamed_logprobs_are_not_sent_while_the_output_is_checked(rails: Guardrails) -> None:
    def with_logprobs(items: list[bytes]) -> list[bytes]:
        out = []
        for item in items:
            data = item[6:].strip()
            if data != b"[DONE]" and (chunk := orjson.loads(data))["choices"]:
                chunk["choices"][0]["logprobs"] = LOGPROBS
                item = b"data: " + orjson.dumps(chunk) + b"\n\n"
            out.append(item)
        return out

    def stream(g: RequestGuard) -> list[dict[str, Any]]:
        async def collect() -> bytes:
            events = _events(with_logprobs(sse(split3("A plain answer about kettles."))))
            return b"".join([b async for b in guard_stream(g, events, "chat", 96, None)])

        raw = asyncio.run(collect())
        return [orjson.loads(e[6:]) for e in raw.split(b"\n\n")
                if e.startswith(b"data: ") and e != b"data: [DONE]"]

    checked = guard(rails)
    assert checked.withholds_stream_logprobs
    assert all(c["choices"][0].get("logprobs") is None for c in stream(checked) if c["choices"])
    unchecked = guard(rails, output={"pii": False, "moderation": False})
    assert not unchecked.withholds_stream_logprobs


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_answer_cut_by_max_tokens_is_passed_on(rails: Guardrails, stream: bool) -> None:
    fmt = {"type": "json_object"}
    if not stream:
        body = whole('{"city": "Par', finish_reason="length")
        out = asyncio.run(check_completion(guard(rails), body, "chat", fmt))
        assert out["choices"][0]["finish_reason"] == "length"
        with pytest.raises(OutputBlocked):  # complete but not JSON: still refused
            asyncio.run(check_completion(guard(rails), whole('{"city": "Par'), "chat", fmt))
        return
    items = sse(['{"city"', ': "Par'])
    items[-3] = items[-3].replace(b'"finish_reason":"stop"', b'"finish_reason":"length"')

    async def collect() -> bytes:
        return b"".join([b async for b in guard_stream(guard(rails), _events(items), "chat", 96,
                                                       fmt)])

    raw = asyncio.run(collect())
    assert b'"error"' not in raw and b'"finish_reason":"length"' in raw
