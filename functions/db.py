"""Postgres through a psycopg 3 async pool, opened on first use; plain-SQL migrations.

Migrations are the files in ``functions/migrations`` applied in name order, each once, recorded in
``schema_migrations``, under an advisory lock so that many instances starting together apply each once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from functions.errors import DependencyUnavailable

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6C6C6D70  # "llmp"
OPEN_RETRY_S = 2.0
"""After a failed connect, callers fail fast for this long instead of each waiting its own timeout."""


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("functions") / "migrations"
    files = sorted((f.name, f.read_text(encoding="utf-8")) for f in folder.iterdir()
                   if f.name.endswith(".sql"))
    return files


async def apply_migrations(conn: psycopg.AsyncConnection[TupleRow]) -> list[str]:
    """Apply pending migrations; returns the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        cur = await conn.execute("SELECT name FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for name, sql in migration_files():
            if name in done:
                continue
            await conn.execute(sql.encode())
            await conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
    if applied:
        log.info("migrations applied", extra={"migrations": applied})
    return applied


class Database:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = 5.0,
                 migrate: bool = True) -> None:
        self._url = url
        self._min, self._max, self._timeout = min_size, max_size, timeout_s
        self._migrate = migrate
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] | None = None
        self._lock = asyncio.Lock()
        self._down_until = 0.0

    async def _open(self) -> AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]:
        async with self._lock:
            if self._pool is None:
                if time.monotonic() < self._down_until:  # a failed open is not retried at once by
                    raise DependencyUnavailable("The database is unavailable.")  # every caller
                pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] = AsyncConnectionPool(
                    self._url, min_size=self._min, max_size=self._max, timeout=self._timeout,
                    kwargs={"autocommit": True, "connect_timeout": max(1, int(self._timeout))},
                    open=False, reconnect_timeout=30)
                try:
                    await pool.open(wait=True, timeout=self._timeout)
                    if self._migrate:
                        async with pool.connection() as conn:
                            await apply_migrations(conn)
                except BaseException as e:  # cancelled too: never leave a half-open pool behind
                    await pool.close()
                    if isinstance(e, psycopg.Error | PoolTimeout):
                        self._down_until = time.monotonic() + OPEN_RETRY_S
                        raise DependencyUnavailable("The database is unavailable.") from e
                    raise
                self._pool = pool
            return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        pool = self._pool or await self._open()
        try:
            async with pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise DependencyUnavailable("The database is unavailable.") from e

    async def check(self) -> None:
        async with self.connection() as conn:
            await conn.execute("SELECT 1")

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
