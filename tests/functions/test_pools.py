"""Bounded worker pools: work leaves the event loop for the pool's own threads, and no more of
them than it was given."""

import asyncio
import contextvars
import threading

import pytest

from functions.pools import WorkerPool

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_calls_run_in_the_pools_threads_with_the_callers_context() -> None:
    pool = WorkerPool("test", 2)

    async def go() -> list[tuple[str, str]]:
        VAR.set("caller")
        return await asyncio.gather(*(pool.run(lambda: (threading.current_thread().name,
                                                        VAR.get())) for _ in range(8)))

    out = asyncio.run(go())
    pool.close()
    assert {name.rsplit("_", 1)[0] for name, _ in out} == {"llmp-test"}
    assert len({name for name, _ in out}) <= 2 and {v for _, v in out} == {"caller"}


def test_a_pool_is_bounded_and_separate() -> None:
    """Two busy threads in one pool leave another pool free."""
    busy, other = WorkerPool("busy", 2), WorkerPool("other", 1)
    release = threading.Event()

    async def go() -> str:
        blocked = [asyncio.ensure_future(busy.run(release.wait)) for _ in range(3)]
        result = await asyncio.wait_for(other.run(lambda: "free"), 5)
        assert not any(b.done() for b in blocked)
        release.set()
        await asyncio.gather(*blocked)
        return result

    assert asyncio.run(go()) == "free"
    busy.close()
    other.close()
    with pytest.raises(ValueError):
        WorkerPool("none", 0)
