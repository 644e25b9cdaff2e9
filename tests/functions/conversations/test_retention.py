"""The retention timer, called as the Functions host would call it."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import azure.functions as func
from azure.functions.timer import TimerRequest

from functions.blueprint import build_blueprint
from functions.conversations.settings import ConversationSettings
from functions.conversations.store import ConversationStore
from functions.db import Database
from functions.gateway import Gateway
from functions.settings import GatewaySettings
from tests.support.tenants import make_tenant


def timer_function(gw: Gateway) -> Any:
    app = func.FunctionApp()
    app.register_functions(build_blueprint(gw))
    fn = next(f for f in app.get_functions() if f.get_function_name() == "conversation_retention")
    return fn.get_user_function()


def test_the_timer_deletes_expired_conversations_in_batches(postgres_url: str) -> None:
    short = make_tenant(postgres_url, "ret-short", retention_days=7)
    default = make_tenant(postgres_url, "ret-default")

    async def run() -> None:
        db = Database(postgres_url, min_size=0, max_size=1)
        store = ConversationStore(db)
        old = [(await store.create(short.id, None, {})).id for _ in range(5)]
        recent = (await store.create(short.id, None, {})).id
        default_old = (await store.create(default.id, None, {})).id
        default_recent = (await store.create(default.id, None, {})).id

        async def age(ids: list[UUID], days: int) -> None:
            async with db.connection() as conn:
                await conn.execute("UPDATE conversations SET updated_at = now() - make_interval("
                                   "days => %s) WHERE id = ANY(%s)", (days, ids))

        await age(old, 8)
        await age([recent], 6)
        await age([default_old], 31)
        await age([default_recent], 29)
        gw = Gateway(GatewaySettings(database_url=postgres_url),
                     conversation_settings=ConversationSettings(retention_days=30,
                                                                retention_batch=2))
        await timer_function(gw)(TimerRequest(past_due=False))
        assert gw.metrics.conversations_expired._value.get() >= 6
        await gw.aclose()
        async with db.connection() as conn:
            cur = await conn.execute("SELECT id FROM conversations WHERE id = ANY(%s)",
                                     ([*old, recent, default_old, default_recent],))
            left = {r[0] for r in await cur.fetchall()}
        assert left == {recent, default_recent}
        await db.aclose()

    asyncio.run(run())
