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
        self._total = len(llamas)
        self._waiters: deque[tuple[int, str, asyncio.Future[list[Slot]]]] = deque()
        self._max_queue = max_queue

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def busy(self) -> int:
        return self._total - len(self._free)

    async def acquire(self, key: str) -> Slot:
        return (await self.acquire_many(key, 1))[0]

    async def acquire_many(self, key: str, n: int) -> list[Slot]:
        """``n`` slots at once (a request with ``n`` choices): all or none, so two such requests
        never hold part each and wait for the rest."""
        if not self._waiters and len(self._free) >= n:
            return [self._take(key) for _ in range(n)]
        if len(self._waiters) >= self._max_queue:
            raise PoolFull("The model server is at capacity; retry shortly.")
        fut: asyncio.Future[list[Slot]] = asyncio.get_running_loop().create_future()
        entry = (n, key, fut)
        self._waiters.append(entry)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                for slot in fut.result():  # handed over just as the waiter left
                    self.release(slot)
            raise
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _take(self, key: str) -> Slot:
        best = max(self._free, key=lambda s: (_shared(s.last_key, key), s.released_at))
        self._free.remove(best)
        best.last_key = key
        return best

    def release(self, slot: Slot) -> None:
        slot.released_at = time.monotonic()
        self._free.append(slot)
        while self._waiters:  # first come, first served: the head waits for all it needs
            n, key, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if len(self._free) < n:
                return
            self._waiters.popleft()
            fut.set_result([self._take(key) for _ in range(n)])
