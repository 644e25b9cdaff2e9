"""Which slot a request decodes in.

A request takes the free slot whose last prompt shares the longest prefix with its own, so the KV cache
that slot kept is reused (llama.cpp then evaluates only the new suffix); on a tie, the slot used most
recently (its buffers are warm). With no free slot the request waits, first come first served, in a
queue of at most ``max_queue``; beyond that it is refused at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


class PoolFull(Exception):
    status = 503


@dataclass(eq=False)
class Slot:
    llama: Any
    last_key: str = ""
    released_at: float = 0.0


def _shared(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))  # noqa: RUF071 - characters, not path parts


class SlotPool:
    def __init__(self, llamas: list[Any], max_queue: int) -> None:
        self._free = [Slot(x) for x in llamas]
        self._waiters: deque[asyncio.Future[Slot]] = deque()
        self._max_queue = max_queue

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, key: str) -> Slot:
        if self._free:
            return self._take(key)
        if len(self._waiters) >= self._max_queue:
            raise PoolFull("The model server is at capacity; retry shortly.")
        fut: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            slot = await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # handed over just as the waiter left
            raise
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
        slot.last_key = key
        return slot

    def _take(self, key: str) -> Slot:
        best = max(self._free, key=lambda s: (_shared(s.last_key, key), s.released_at))
        self._free.remove(best)
        best.last_key = key
        return best

    def release(self, slot: Slot) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(slot)
                return
        slot.released_at = time.monotonic()
        self._free.append(slot)
