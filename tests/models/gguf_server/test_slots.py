import asyncio

import pytest

from models.gguf_server.slots import PoolFull, SlotPool


async def test_prefers_the_slot_with_the_longest_shared_prefix() -> None:
    pool = SlotPool(["a", "b", "c"], max_queue=0)
    a, b = await pool.acquire("system: be brief|user: hi"), await pool.acquire("translate this")
    pool.release(a)
    pool.release(b)
    again = await pool.acquire("system: be brief|user: hi|assistant: hello|user: more")
    assert again.llama == a.llama


async def test_else_the_most_recently_used_slot() -> None:
    pool = SlotPool(["a", "b"], max_queue=0)
    first = await pool.acquire("x")
    pool.release(first)
    assert (await pool.acquire("unrelated")).llama == first.llama


async def test_waiters_are_served_in_order_and_the_queue_is_bounded() -> None:
    pool = SlotPool(["only"], max_queue=2)
    held = await pool.acquire("k")
    w1 = asyncio.create_task(pool.acquire("1"))
    w2 = asyncio.create_task(pool.acquire("2"))
    await asyncio.sleep(0)
    assert pool.waiting == 2
    with pytest.raises(PoolFull):
        await pool.acquire("3")
    pool.release(held)
    got = await w1
    assert not w2.done()
    pool.release(got)
    assert (await w2).llama == "only"


async def test_a_cancelled_waiter_loses_nothing() -> None:
    pool = SlotPool(["only"], max_queue=1)
    held = await pool.acquire("k")
    waiter = asyncio.create_task(pool.acquire("w"))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    pool.release(held)
    assert pool.waiting == 0
    assert (await pool.acquire("next")).llama == "only"
