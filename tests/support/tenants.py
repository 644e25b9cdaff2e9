"""Tenants with keys and settings, and calls through the gateway, for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from functions.cache.policies import CachePolicyStore
from functions.cache.policy import CachePolicy
from functions.db import Database
from functions.guardrails.policies import PolicyStore
from functions.guardrails.policy import GuardrailPolicy
from functions.keys import KeyStore


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


def make_tenant(postgres_url: str, prefix: str = "t", *, guardrails: dict[str, Any] | None = None,
                cache: dict[str, Any] | None = None, retention_days: int | None = None) -> Tenant:
    return asyncio.run(create_tenant(postgres_url, prefix, guardrails=guardrails, cache=cache,
                                     retention_days=retention_days))


async def create_tenant(postgres_url: str, prefix: str = "t", *,
                        guardrails: dict[str, Any] | None = None,
                        cache: dict[str, Any] | None = None,
                        retention_days: int | None = None) -> Tenant:
    """A new tenant (unique name) with one key and the settings given."""
    db = Database(postgres_url, min_size=0, max_size=1)
    try:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        rec, key = await KeyStore(db).create(name)
        if guardrails is not None:
            await PolicyStore(db, 0).set(name, GuardrailPolicy.model_validate(guardrails))
        if cache is not None:
            await CachePolicyStore(db, 0).set(name, CachePolicy.model_validate(cache))
        if retention_days is not None:
            async with db.connection() as conn:
                await conn.execute("UPDATE tenants SET retention_days = %s WHERE id = %s",
                                   (retention_days, rec.tenant_id))
        return Tenant(str(rec.tenant_id), name, key)
    finally:
        await db.aclose()


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    text: str
    body: dict[str, Any] | None = None
    """The whole answer, or the error body."""
    chunks: list[dict[str, Any]] | None = None
    """A stream's events, ``[DONE]`` excluded."""

    @property
    def error(self) -> dict[str, Any] | None:
        if self.body is not None and "error" in self.body:
            return dict(self.body["error"])
        for c in self.chunks or []:
            if "error" in c:
                return dict(c["error"])
        return None


def chat(url: str, tenant: Tenant, content: str | list[dict[str, Any]], *, stream: bool = False,
         model: str = "mock-echo", headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    """One chat completion (temperature 0 unless given): the text, headers and events."""
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    body = {"model": model, "messages": messages, "stream": stream, "temperature": 0, **extra}
    body = {k: v for k, v in body.items() if v is not None}
    h = {**tenant.auth, **(headers or {})}
    if not stream:
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=h, timeout=60)
        data = r.json()
        text = data["choices"][0]["message"]["content"] if r.status_code == 200 else ""
        return Reply(r.status_code, r.headers, text, data)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=h, timeout=60) as r:
        if r.status_code != 200:
            r.read()
            return Reply(r.status_code, r.headers, "", r.json())
        lines = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]", lines
    chunks = [json.loads(ln) for ln in lines[:-1]]
    text = "".join((ch.get("delta") or {}).get("content") or "" for c in chunks
                   for ch in c.get("choices") or [])
    return Reply(200, r.headers, text, None, chunks)


def letter_tag(n: int = 10) -> str:
    """A random tag of letters only, to make a prompt unique. Hex digits could form a run of digits
    that the PII guardrail takes for an account number, and a request with findings is never cached."""
    import uuid

    return uuid.uuid4().hex[:n].translate(str.maketrans("0123456789", "ghijklmnop"))
