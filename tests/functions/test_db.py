from __future__ import annotations

import pytest

from functions.db import Database, apply_migrations, migration_files
from functions.errors import DependencyUnavailable


def test_migrations_are_numbered_sql_files() -> None:
    names = [n for n, _ in migration_files()]
    assert names == sorted(names) and names[0].startswith("0001_")


async def test_migrations_apply_once(postgres_url: str) -> None:
    db = Database(postgres_url, min_size=0, max_size=1)
    async with db.connection() as conn:  # first use applied them already
        assert await apply_migrations(conn) == []
        cur = await conn.execute("SELECT count(*) FROM schema_migrations")
        row = await cur.fetchone()
        assert row is not None and row[0] == len(migration_files())
    await db.check()
    await db.aclose()


async def test_unreachable_database_is_dependency_unavailable(dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    db = Database(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout_s=1)
    with pytest.raises(DependencyUnavailable, match="database"):
        await db.check()
    await db.aclose()
