"""Bounded worker pools, one per kind of blocking work.

CPU-bound and blocking calls leave the event loop for a thread of their own kind's pool: the
guardrails' detectors, RAG parsing and ranking, the in-process embedder and Qdrant each have theirs,
so one kind of work (a large upload being parsed, a long prompt analysed) cannot queue every other
kind behind it, as it did in the one default pool of ``asyncio.to_thread``. Each pool has a fixed
number of threads, started on first use (never at import) and owned by the object that uses it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerPool:
    def __init__(self, name: str, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"the {name} pool needs at least one worker")
        self.name, self.workers = name, workers

    @functools.cached_property
    def executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix=f"llmp-{self.name}")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of the pool's threads (with the caller's context variables, as
        ``asyncio.to_thread``). Cancelling the await does not stop a call that has begun: it runs
        to its end, holding one of the pool's threads, never another pool's."""
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(ctx.run, fn, *args))

    def close(self) -> None:
        if "executor" in self.__dict__:
            self.executor.shutdown(wait=False, cancel_futures=True)
