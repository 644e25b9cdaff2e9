"""History: token estimate, truncation to the context, order of the final message list, and the
numbering of new placeholders after those in the history."""

from __future__ import annotations

from uuid import uuid4

import pytest

from functions.conversations.history import History, estimate_tokens, truncate
from functions.conversations.store import Message
from functions.guardrails.masking import Masker
from functions.metrics import GatewayMetrics
from functions.protocol.chat import ChatCompletionRequest


def msg(role: str, text: str, tokens: int = 10) -> Message:
    return Message(role, text, tokens)


def test_estimate_errs_above_the_real_count() -> None:
    assert estimate_tokens("") == 4
    assert estimate_tokens("a" * 300) == 4 + 100  # English: ~4 characters a token
    assert estimate_tokens("漢" * 30) == 4 + 30  # CJK: ~1 token a character (3 bytes)


def test_truncate_keeps_the_newest_and_starts_at_a_user_turn() -> None:
    turns = [msg("user", "u1"), msg("assistant", "a1"), msg("user", "u2"), msg("assistant", "a2")]
    assert truncate(turns, 40) == turns
    assert truncate(turns, 39) == turns[2:]  # a1 alone would lead: dropped with u1
    assert truncate(turns, 25) == turns[2:]
    assert truncate(turns, 15) == []  # only a2 fits: history never starts with an answer
    assert truncate(turns, 0) == []


def history(stored: list[Message]) -> History:
    return History(None, GatewayMetrics(), "t", uuid4(), stored)  # type: ignore[arg-type]


def test_apply_puts_instructions_first_then_history_then_the_new_turns() -> None:
    h = history([msg("user", "earlier question"), msg("assistant", "earlier answer")])
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "new question"}]})
    full = h.apply(req, context_length=4096, reserve_tokens=512)
    assert [(m.role, m.content) for m in full.messages] == [
        ("system", "be brief"), ("user", "earlier question"), ("assistant", "earlier answer"),
        ("user", "new question")]
    assert [m.role for m in h.new] == ["user"]  # instructions are not stored
    assert "conversation_id" not in full.upstream_body("m")


@pytest.mark.parametrize(("max_tokens", "kept"), [(None, 4), (3800, 2), (4000, 0)])
def test_apply_fits_the_context_minus_the_answer(max_tokens: int | None, kept: int) -> None:
    stored = [msg("user", "q", 100), msg("assistant", "a", 100)] * 2
    h = history(stored)
    req = ChatCompletionRequest.model_validate({"model": "m", "max_tokens": max_tokens,
                                                "messages": [{"role": "user", "content": "hi"}]})
    full = h.apply(req, context_length=4096, reserve_tokens=1024)
    assert len(full.messages) == kept + 1


def test_new_placeholders_are_numbered_after_the_history() -> None:
    m = Masker()
    history([msg("user", "mail <EMAIL_ADDRESS_2> and <PERSON_1>, not <EMAIL_ADDRESS>")]).reserve(m)
    assert m.placeholder("EMAIL_ADDRESS", "x@y.z") == "<EMAIL_ADDRESS_3>"
    assert m.placeholder("PERSON", "Dana") == "<PERSON_2>"
    assert m.placeholder("PHONE_NUMBER", "555") == "<PHONE_NUMBER_1>"
    assert m.restore("<EMAIL_ADDRESS_2> <EMAIL_ADDRESS_3>") == "<EMAIL_ADDRESS_2> x@y.z"
