"""Cache keys: tenant, model alias, model version and a hash of the normalized request.

The request is normalized to what the model sees (the body sent upstream, after input guardrails and
history) minus what does not change the answer (``stream``, ``stream_options``, ``user``); text parts
become plain strings. The resolved guardrail policy is part of the key, so an answer checked under
one policy is never replayed under another. Keys hold hashes only: never a prompt or a value.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams

PREFIX = "llmp:cache:"
IGNORED = ("stream", "stream_options", "user")


def normalized(req: SamplingParams) -> dict[str, Any]:
    body = req.upstream_body(req.model)
    for k in IGNORED:
        body.pop(k, None)
    if isinstance(req, ChatCompletionRequest):
        body["messages"] = [_message(m) for m in body["messages"]]
    return body


def _message(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("content")
    if isinstance(content, list):
        m = {**m, "content": "".join(p.get("text", "") for p in content)}
    return m


def digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def request_hash(tenant_id: str, endpoint: str, req: SamplingParams, policy_fp: str) -> str:
    return digest(tenant_id, endpoint, policy_fp, normalized(req))


def entry_key(tenant_id: str, alias: str, version: str, rhash: str) -> str:
    return f"{PREFIX}{tenant_id}:{alias}:{version or '-'}:{rhash}"


def version_key(alias: str) -> str:
    return f"{PREFIX}version:{alias}"


def semantic_partition(tenant_id: str, endpoint: str, req: ChatCompletionRequest, policy_fp: str
                       ) -> str | None:
    """The partition of a single-turn chat request (system/developer messages and one user
    message), or None: the key of everything but the user's text (model, system prompt, tools,
    sampling parameters, guardrail policy)."""
    body = normalized(req)
    messages = body.pop("messages")
    users = [m for m in messages if m["role"] == "user"]
    if len(users) != 1 or messages[-1] is not users[0] or any(
            m["role"] not in ("system", "developer", "user") for m in messages):
        return None
    system = [m for m in messages if m["role"] != "user"]
    return digest("semantic", tenant_id, endpoint, policy_fp, system, body)


def last_user_text(req: ChatCompletionRequest) -> str:
    return [m for m in req.messages if m.role == "user"][-1].text()
