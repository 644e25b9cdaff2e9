"""Long texts are analysed in worker processes, with a real time limit.

Presidio and spaCy are Python and C code that hold the GIL: a long analysis in a thread of the
gateway process slows every other thread of it, the event loop included, however the threads are
pooled. So texts longer than ``bulk_chars`` go to a small pool of worker processes (``pebble``),
each with its own Presidio and spaCy (loaded once per worker, ~2 s and ~300 MB): a long prompt
then competes for a CPU core, as any process does, not for this process's interpreter. A call that
runs past ``timeout_s``, or whose request gave up, has its worker killed (and a new one started),
so a runaway analysis cannot hold the lane; a thread could only be abandoned, still computing.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from typing import TYPE_CHECKING

from functions.guardrails.findings import Span

if TYPE_CHECKING:
    from pebble import ProcessPool

    from functions.guardrails.pii import PresidioAnalyzer

_worker: PresidioAnalyzer | None = None
"""The analyzer of a worker process (set by its initializer; never used in the gateway process)."""


def _init(spacy_model: str) -> None:
    global _worker
    from functions.guardrails.pii import PresidioAnalyzer

    _worker = PresidioAnalyzer(spacy_model, cache_size=0)
    _worker.load_now()


def _analyze(texts: list[str], ner: bool) -> list[list[Span]]:
    assert _worker is not None, "not a worker process"
    return _worker.analyze_now(texts, ner)


def _ready() -> bool:
    return _worker is not None


class ProcessLane:
    def __init__(self, spacy_model: str, timeout_s: float, processes: int = 1) -> None:
        self.spacy_model, self.timeout_s, self.processes = spacy_model, timeout_s, processes

    @functools.cached_property
    def pool(self) -> ProcessPool:
        from pebble import ProcessPool

        return ProcessPool(max_workers=self.processes, initializer=_init,
                           initargs=(self.spacy_model,),
                           context=multiprocessing.get_context("spawn"))

    def start(self) -> None:
        """Start the workers loading now (in the background), not on the first long text."""
        for _ in range(self.processes):
            self.pool.schedule(_ready)

    async def analyze(self, texts: list[str], ner: bool) -> list[list[Span]]:
        future = self.pool.schedule(_analyze, args=(texts, ner), timeout=self.timeout_s)
        try:
            return await asyncio.wrap_future(future)
        finally:  # given up (the check's timeout): its worker is killed if still at it
            future.cancel()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if "pool" in self.__dict__:
            self.pool.stop()  # type: ignore[no-untyped-call]
            self.pool.join(timeout=5)
