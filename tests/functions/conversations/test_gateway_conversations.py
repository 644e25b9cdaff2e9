"""Conversations through the real gateway: the API, history in chat completions (streamed or not),
masked values kept masked, isolation between tenants, and a client that leaves mid-stream."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.servers import wait_idle
from tests.support.tenants import Tenant, chat, letter_tag, make_tenant

EMAIL, EMAIL2 = "dana.white@contoso.com", "bob.stone@fabrikam.com"


@pytest.fixture(scope="module")
def alice(postgres_url: str) -> Tenant:
    return make_tenant(postgres_url, "conv-a")


@pytest.fixture(scope="module")
def bob(postgres_url: str) -> Tenant:
    return make_tenant(postgres_url, "conv-b")


def create(url: str, t: Tenant, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/conversations", json=body, headers=t.auth)
    assert r.status_code == 200, r.text
    return dict(r.json())


def get(url: str, t: Tenant, conv_id: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/conversations/{conv_id}", headers=t.auth)


def messages(url: str, t: Tenant, conv_id: str) -> list[tuple[str, str]]:
    r = get(url, t, conv_id)
    assert r.status_code == 200, r.text
    return [(m["role"], m["content"]) for m in r.json()["messages"]]


def test_create_list_get_delete_export(gateway_url: str, postgres_url: str) -> None:
    t = make_tenant(postgres_url, "conv-api")
    first = create(gateway_url, t, title="first", metadata={"app": "x"})
    second = httpx.post(f"{gateway_url}/v1/conversations", headers=t.auth).json()  # no body
    assert (first["object"], first["title"], first["metadata"]) == ("conversation", "first",
                                                                      {"app": "x"})
    page = httpx.get(f"{gateway_url}/v1/conversations?limit=1", headers=t.auth).json()
    assert ([c["id"] for c in page["data"]], page["has_more"]) == ([second["id"]], True)
    page2 = httpx.get(f"{gateway_url}/v1/conversations",
                      params={"limit": 1, "after": page["last_id"]}, headers=t.auth).json()
    assert ([c["id"] for c in page2["data"]], page2["has_more"]) == ([first["id"]], False)
    chat(gateway_url, t, "hello there", conversation_id=first["id"])
    got = get(gateway_url, t, first["id"]).json()
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("user", "hello there"), ("assistant", "hello there")]
    export = httpx.get(f"{gateway_url}/v1/conversations/export", headers=t.auth)
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(ln) for ln in export.text.splitlines()]
    assert [c["id"] for c in lines] == [first["id"], second["id"]]
    assert lines[0]["messages"][1]["content"] == "hello there"
    deleted = httpx.delete(f"{gateway_url}/v1/conversations/{first['id']}", headers=t.auth)
    assert deleted.json() == {"id": first["id"], "object": "conversation.deleted", "deleted": True}
    assert get(gateway_url, t, first["id"]).status_code == 404
    bad = httpx.get(f"{gateway_url}/v1/conversations?limit=0", headers=t.auth)
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "limit")
    assert httpx.get(f"{gateway_url}/v1/conversations").status_code == 401


def test_tenant_b_can_never_see_or_touch_tenant_a(gateway_url: str, alice: Tenant,
                                                  bob: Tenant) -> None:
    conv = create(gateway_url, alice, title="private")
    chat(gateway_url, alice, "the plan is secret", conversation_id=conv["id"])
    assert get(gateway_url, bob, conv["id"]).status_code == 404
    r = httpx.delete(f"{gateway_url}/v1/conversations/{conv['id']}", headers=bob.auth)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "conversation_not_found")
    listed = httpx.get(f"{gateway_url}/v1/conversations?limit=100", headers=bob.auth).json()
    assert conv["id"] not in [c["id"] for c in listed["data"]]
    export = httpx.get(f"{gateway_url}/v1/conversations/export", headers=bob.auth).text
    assert conv["id"] not in export and "secret" not in export
    used = chat(gateway_url, bob, "dump:messages", conversation_id=conv["id"])
    assert (used.status, used.error and used.error["code"]) == (404, "conversation_not_found")
    assert messages(gateway_url, alice, conv["id"]) == [("user", "the plan is secret"),
                                                        ("assistant", "the plan is secret")]
    assert chat(gateway_url, alice, "x", conversation_id="not-a-uuid").status == 404


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_history_is_prepended_and_new_turns_stored(gateway_url: str, alice: Tenant,
                                                   stream: bool) -> None:
    conv = create(gateway_url, alice)["id"]
    chat(gateway_url, alice, "first question", conversation_id=conv, stream=stream)
    r = chat(gateway_url, alice, [{"role": "system", "content": "be brief"},
                                  {"role": "user", "content": "dump:messages"}],
             conversation_id=conv, stream=stream)
    assert r.status == 200, r.body
    assert json.loads(r.text) == [["system", "be brief"], ["user", "first question"],
                                  ["assistant", "first question"], ["user", "dump:messages"]]
    assert messages(gateway_url, alice, conv) == [
        ("user", "first question"), ("assistant", "first question"), ("user", "dump:messages"),
        ("assistant", r.text)]


def test_masked_values_stay_masked_and_placeholders_do_not_collide(gateway_url: str,
                                                                    alice: Tenant) -> None:
    conv = create(gateway_url, alice)["id"]
    one = chat(gateway_url, alice, f"Please write to {EMAIL} today.", conversation_id=conv)
    assert one.text == f"Please write to {EMAIL} today."  # restored for the caller
    two = chat(gateway_url, alice, f"Also copy {EMAIL2} on it.", conversation_id=conv,
               stream=True)
    assert two.text == f"Also copy {EMAIL2} on it."
    stored = messages(gateway_url, alice, conv)
    assert stored == [
        ("user", "Please write to <EMAIL_ADDRESS_1> today."),
        ("assistant", "Please write to <EMAIL_ADDRESS_1> today."),
        ("user", "Also copy <EMAIL_ADDRESS_2> on it."),
        ("assistant", "Also copy <EMAIL_ADDRESS_2> on it.")]
    seen = chat(gateway_url, alice, "dump:messages", conversation_id=conv)
    assert EMAIL not in seen.text and "<EMAIL_ADDRESS_1>" in seen.text  # what the model saw


def test_history_is_cut_to_the_context(gateway_url: str, alice: Tenant) -> None:
    conv = create(gateway_url, alice)["id"]
    long = "word " * 300  # ~500 estimated tokens a message, ~1000 a turn
    for i in range(3):
        chat(gateway_url, alice, f"{i} {long}", conversation_id=conv)
    # mock models have 4096 tokens of context; 1500 kept for the answer leaves room for 2 turns
    r = chat(gateway_url, alice, "dump:messages", conversation_id=conv, max_tokens=1500)
    seen = json.loads(r.text)
    assert [m[1][:1] for m in seen[:-1]] == ["1", "1", "2", "2"]


def test_a_cached_answer_is_stored_in_the_conversation(gateway_url: str, alice: Tenant) -> None:
    text = f"cached turn {letter_tag()}"
    chat(gateway_url, alice, text)  # stored in the cache, no conversation
    conv = create(gateway_url, alice)["id"]
    r = chat(gateway_url, alice, text, conversation_id=conv, stream=True)
    assert r.headers["x-cache"] == "hit"  # no history yet: the same messages as before
    assert messages(gateway_url, alice, conv) == [("user", text), ("assistant", text)]


@pytest.mark.slow
def test_a_client_gone_mid_stream_stores_nothing(gateway_url: str, gguf_url: str,
                                                  postgres_url: str) -> None:
    t = make_tenant(postgres_url, "conv-gone", guardrails={"enabled": False})
    conv = create(gateway_url, t)["id"]
    body = {"model": "smollm2-135m", "stream": True, "max_tokens": 400, "temperature": 0,
            "conversation_id": conv,
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}]}
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, headers=t.auth,
                      timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 4:
                break
    wait_idle(gguf_url)
    time.sleep(0.3)
    assert messages(gateway_url, t, conv) == []
