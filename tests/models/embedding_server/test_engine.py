"""The batcher: off the event loop, concurrent requests coalesced, a bounded queue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from models.embedding_server.engine import Batcher, Busy


def slow_encode(calls: list[int], delay: float = 0.05):  # type: ignore[no-untyped-def]
    def encode(ids: Sequence[Sequence[int]]) -> np.ndarray:
        assert threading.current_thread() is not threading.main_thread()
        calls.append(len(ids))
        time.sleep(delay)
        return np.asarray([[float(s[0]), 0.0] for s in ids], dtype=np.float32)

    return encode


async def test_waiting_requests_are_coalesced_and_answered_in_order() -> None:
    calls: list[int] = []
    b = Batcher(slow_encode(calls), max_batch_inputs=100, max_queue_inputs=100)
    b.start()
    try:
        results = await asyncio.gather(*(b.embed([[i], [i + 100]]) for i in range(6)))
    finally:
        await b.aclose()
    for i, r in enumerate(results):
        assert r[:, 0].tolist() == [i, i + 100]
    assert len(calls) < 6 and sum(calls) == 12  # the first ran alone, the rest together


async def test_a_call_takes_at_most_max_batch_inputs() -> None:
    calls: list[int] = []
    b = Batcher(slow_encode(calls, 0.01), max_batch_inputs=3, max_queue_inputs=100)
    b.start()
    try:
        await asyncio.gather(*(b.embed([[i], [i]]) for i in range(5)))
    finally:
        await b.aclose()
    assert max(calls) <= 3 or calls.count(max(calls)) == 1  # one oversized request runs alone
    assert sum(calls) == 10


async def test_a_full_queue_is_busy() -> None:
    calls: list[int] = []
    b = Batcher(slow_encode(calls, 0.2), max_batch_inputs=10, max_queue_inputs=4)
    b.start()
    try:
        first = asyncio.ensure_future(b.embed([[1]]))
        await asyncio.sleep(0.05)  # running now
        waiting = asyncio.ensure_future(b.embed([[2]] * 4))
        await asyncio.sleep(0)
        with pytest.raises(Busy):
            await b.embed([[3]])
        await asyncio.gather(first, waiting)
    finally:
        await b.aclose()


async def test_a_model_error_reaches_every_waiting_request() -> None:
    def broken(ids: Sequence[Sequence[int]]) -> np.ndarray:
        raise RuntimeError("boom")

    b = Batcher(broken, 10, 10)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await b.embed([[1]])
    finally:
        await b.aclose()
