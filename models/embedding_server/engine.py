"""The model and its batching.

:class:`Encoder` wraps one sentence-transformers model: it tokenizes (fast tokenizer, no special
tokens: the ids a client may send as a token array) and embeds token id lists, adding the model's
special tokens itself, so a text and its token array give the same vector.

:class:`Batcher` keeps the model off the event loop: one worker thread runs the model (torch uses
every core of its own), and requests that arrive while it runs are coalesced into the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any


class Busy(Exception):
    """More inputs are waiting than ``max_queue_inputs``: 503, another replica may serve."""


class Encoder:
    """Normalized sentence embeddings of token id lists, in length-sorted batches."""

    def __init__(self, path: Path, batch_size: int = 64, threads: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.model.eval()
        self.tokenizer = tok = self.model.tokenizer
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        dim, max_len = get_dim(), self.model.max_seq_length
        if dim is None or max_len is None:
            raise ValueError(f"{path}: the model gives no embedding dimension or max_seq_length")
        self.dim = int(dim)
        self._prefix, self._suffix = _special_tokens(tok)
        self.max_tokens = int(max_len) - len(self._prefix) - len(self._suffix)
        self.vocab_size = len(tok)
        self._pad = int(tok.pad_token_id or 0)
        self._token_types = "token_type_ids" in tok.model_input_names
        self.batch_size = batch_size

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        ids: list[list[int]] = self.tokenizer(list(texts), add_special_tokens=False,
                                              verbose=False)["input_ids"]
        return ids

    def encode(self, ids: Sequence[Sequence[int]]) -> Vectors:
        import numpy as np

        torch = self._torch
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                seqs = [[*self._prefix, *ids[i], *self._suffix] for i in rows]
                width = max(len(s) for s in seqs)
                input_ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, s in enumerate(seqs):
                    input_ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
                    mask[r, :len(s)] = 1
                features = {"input_ids": input_ids, "attention_mask": mask}
                if self._token_types:
                    features["token_type_ids"] = torch.zeros_like(input_ids)
                emb = self.model(features)["sentence_embedding"]
                emb = torch.nn.functional.normalize(emb.float(), p=2, dim=1)
                out[rows] = emb.numpy()
        return out


def _special_tokens(tok: Any) -> tuple[list[int], list[int]]:
    """What the tokenizer puts before and after a text's ids (``[CLS]`` and ``[SEP]`` for BERT)."""
    plain = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a")["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return list(full[:i]), list(full[i + len(plain):])
    raise ValueError("cannot tell the tokenizer's special tokens")


@dataclass(slots=True)
class _Job:
    ids: Sequence[Sequence[int]]
    future: asyncio.Future[Vectors]


class Batcher:
    """One model call at a time, in a one-thread executor; whatever requests wait when it is free
    go into the next call together (up to ``max_batch_inputs`` inputs). No timer: a request alone
    runs at once, so coalescing costs nothing at low load."""

    def __init__(self, encode: Callable[[Sequence[Sequence[int]]], Vectors], max_batch_inputs: int,
                 max_queue_inputs: int, on_call: Callable[[int], None] | None = None) -> None:
        self._encode = encode
        self._on_call = on_call
        self._max_batch = max_batch_inputs
        self._max_queue = max_queue_inputs
        self._pending: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self._task: asyncio.Task[None] | None = None
        self.queued_inputs = 0
        self.running_inputs = 0
        self.calls = 0

    @property
    def in_flight(self) -> int:
        return self.queued_inputs + self.running_inputs

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(Busy("the server is stopping"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def embed(self, ids: Sequence[Sequence[int]]) -> Vectors:
        if self.queued_inputs and self.queued_inputs + len(ids) > self._max_queue:
            raise Busy(f"{self.queued_inputs} inputs are waiting for the model")
        job = _Job(ids, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self.queued_inputs += len(ids)
        self._wake.set()
        return await job.future

    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        total = 0
        while self._pending and (not jobs or total + len(self._pending[0].ids) <= self._max_batch):
            job = self._pending.popleft()
            self.queued_inputs -= len(job.ids)
            if job.future.done():  # the client left while it waited
                continue
            jobs.append(job)
            total += len(job.ids)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                jobs = self._take()
                if not jobs:
                    continue
                ids = [seq for job in jobs for seq in job.ids]
                self.running_inputs = len(ids)
                self.calls += 1
                if self._on_call is not None:
                    self._on_call(len(ids))
                try:
                    vectors = await loop.run_in_executor(self._executor, self._encode, ids)
                except Exception as e:  # noqa: BLE001 - each waiting request gets the error
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(e)
                    continue
                finally:
                    self.running_inputs = 0
                start = 0
                for job in jobs:
                    end = start + len(job.ids)
                    if not job.future.done():
                        job.future.set_result(vectors[start:end])
                    start = end
