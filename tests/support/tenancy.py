"""Tenants and keys made for one test each (unique names), straight in Postgres."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from functions.db import Database
from functions.keys import KeyStore
from functions.tenants import TenantRecord, TenantStore


async def new_tenant(db_url: str, key: dict[str, Any] | None = None, **fields: Any
                     ) -> tuple[TenantRecord, str]:
    """A tenant with ``fields`` and one API key (``key``: its options); returns both."""
    db = Database(db_url, min_size=0, max_size=1)
    try:
        rec = await TenantStore(db).create("t-" + uuid.uuid4().hex[:10], **fields)
        _, api_key = await KeyStore(db).create(rec.name, **(key or {}))
    finally:
        await db.aclose()
    return rec, api_key


def tenant_with_key(db_url: str, key: dict[str, Any] | None = None, **fields: Any
                    ) -> tuple[TenantRecord, str]:
    return asyncio.run(new_tenant(db_url, key, **fields))


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
