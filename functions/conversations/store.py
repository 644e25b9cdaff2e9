"""Conversations and their messages in Postgres. Every statement is scoped by tenant id: a
conversation of another tenant does not exist for the caller (404, like one never created)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from functions.db import Database
from functions.errors import NotFound


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    tokens: int
    extra: dict[str, Any] | None = None
    """``tool_calls``, ``tool_call_id``, ``name``: as in the OpenAI message."""
    model: str | None = None
    created_at: datetime | None = None

    def as_openai(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, **(self.extra or {})}


@dataclass(frozen=True, slots=True)
class Conversation:
    id: UUID
    title: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    messages: list[Message] | None = field(default=None)


def parse_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise not_found(raw) from None


def not_found(raw: object) -> NotFound:
    return NotFound(f"No conversation found with id '{raw}'.", param="conversation_id",
                    code="conversation_not_found")


_COLUMNS = "id, title, metadata, created_at, updated_at"
_MESSAGE_COLUMNS = "role, content, tokens, extra, model, created_at"


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant_id: str, title: str | None, metadata: dict[str, Any]
                     ) -> Conversation:
        async with self._db.connection() as conn:
            cur = await conn.execute(
                f"INSERT INTO conversations (tenant_id, title, metadata) VALUES (%s, %s, %s)"
                f" RETURNING {_COLUMNS}", (tenant_id, title, Jsonb(metadata)))
            row = await cur.fetchone()
        assert row is not None
        return Conversation(*row)

    async def page(self, tenant_id: str, limit: int, after: UUID | None
                   ) -> tuple[list[Conversation], bool]:
        """A page, newest first, after the conversation ``after``; and whether more follow."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM conversations WHERE tenant_id = %(t)s AND"
                " (%(after)s::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM"
                "  conversations WHERE id = %(after)s AND tenant_id = %(t)s))"
                " ORDER BY created_at DESC, id DESC LIMIT %(n)s",
                {"t": tenant_id, "after": after, "n": limit + 1})
            rows = await cur.fetchall()
        return [Conversation(*r) for r in rows[:limit]], len(rows) > limit

    async def get(self, tenant_id: str, conversation_id: UUID) -> Conversation:
        async with self._db.connection() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM conversations WHERE id = %s AND"
                                     " tenant_id = %s", (conversation_id, tenant_id))
            row = await cur.fetchone()
            if row is None:
                raise not_found(conversation_id)
            cur = await conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM conversation_messages WHERE conversation_id = %s"
                " ORDER BY id", (conversation_id,))
            messages = [Message(*m) for m in await cur.fetchall()]
        return Conversation(row[0], row[1], row[2], row[3], row[4], messages)

    async def delete(self, tenant_id: str, conversation_id: UUID) -> None:
        async with self._db.connection() as conn:
            cur = await conn.execute("DELETE FROM conversations WHERE id = %s AND tenant_id = %s",
                                     (conversation_id, tenant_id))
            if cur.rowcount == 0:
                raise not_found(conversation_id)

    async def history(self, tenant_id: str, conversation_id: UUID, limit: int) -> list[Message]:
        """The newest ``limit`` messages, oldest first, in one query."""
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "SELECT m.id, m.role, m.content, m.tokens, m.extra FROM conversations c"
                " LEFT JOIN LATERAL (SELECT id, role, content, tokens, extra"
                "  FROM conversation_messages WHERE conversation_id = c.id"
                "  ORDER BY id DESC LIMIT %s) m ON true"
                " WHERE c.id = %s AND c.tenant_id = %s", (limit, conversation_id, tenant_id))
            rows = await cur.fetchall()
        if not rows:
            raise not_found(conversation_id)
        return [Message(r[1], r[2], r[3], r[4]) for r in sorted(rows, key=lambda r: r[0])
                if r[0] is not None]

    async def append(self, tenant_id: str, conversation_id: UUID, messages: Sequence[Message],
                     model: str) -> None:
        """Add turns, in order, and mark the conversation active (one statement)."""
        rows = [{"role": m.role, "content": m.content, "tokens": m.tokens, "extra": m.extra}
                for m in messages]
        async with self._db.connection() as conn:
            cur = await conn.execute(
                "WITH c AS (UPDATE conversations SET updated_at = now()"
                "  WHERE id = %s AND tenant_id = %s RETURNING id)"
                " INSERT INTO conversation_messages (conversation_id, role, content, tokens, extra,"
                "  model)"
                " SELECT c.id, v.e->>'role', v.e->>'content', (v.e->>'tokens')::int,"
                "  nullif(v.e->'extra', 'null'::jsonb), %s"
                " FROM c, jsonb_array_elements(%s) WITH ORDINALITY AS v(e, n) ORDER BY v.n"
                " RETURNING conversation_id",
                (conversation_id, tenant_id, model, Jsonb(rows)))
            if rows and cur.rowcount == 0:
                raise not_found(conversation_id)

    async def export(self, tenant_id: str, page: int = 100) -> AsyncIterator[Conversation]:
        """Every conversation of the tenant with its messages, oldest first, a page at a time."""
        last: tuple[datetime, UUID] | None = None
        while True:
            async with self._db.connection() as conn:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM conversations WHERE tenant_id = %s AND"
                    " (%s::timestamptz IS NULL OR (created_at, id) > (%s, %s))"
                    " ORDER BY created_at, id LIMIT %s",
                    (tenant_id, last and last[0], last and last[0], last and last[1], page))
                convs = [Conversation(*r) for r in await cur.fetchall()]
                if not convs:
                    return
                cur = await conn.execute(
                    f"SELECT conversation_id, {_MESSAGE_COLUMNS} FROM conversation_messages"
                    " WHERE conversation_id = ANY(%s) ORDER BY id", ([c.id for c in convs],))
                by_conv: dict[UUID, list[Message]] = {}
                for r in await cur.fetchall():
                    by_conv.setdefault(r[0], []).append(Message(*r[1:]))
            for c in convs:
                yield Conversation(c.id, c.title, c.metadata, c.created_at, c.updated_at,
                                   by_conv.get(c.id, []))
            last = (convs[-1].created_at, convs[-1].id)

    async def purge_expired(self, default_days: int | None, batch: int, max_batches: int) -> int:
        """Delete conversations idle past their tenant's retention, ``batch`` rows per statement
        (short locks, no long transaction); returns how many."""
        deleted = 0
        for _ in range(max_batches):
            async with self._db.connection() as conn:
                cur = await conn.execute(
                    "DELETE FROM conversations WHERE id IN (SELECT c.id FROM conversations c"
                    "  JOIN tenants t ON t.id = c.tenant_id"
                    "  WHERE c.updated_at < now() - make_interval(days =>"
                    "   coalesce(t.retention_days, %s::int))"
                    "  ORDER BY c.updated_at LIMIT %s FOR UPDATE OF c SKIP LOCKED)",
                    (default_days, batch))
                deleted += cur.rowcount
            if cur.rowcount < batch:
                break
        return deleted
