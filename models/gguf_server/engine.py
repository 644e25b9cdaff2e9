"""The decoding engine: a pool of slots, each a llama.cpp context over the same mmapped GGUF file.

A request takes a free slot (or waits in a bounded queue), is decoded in a worker thread (llama.cpp
releases the GIL), and its tokens reach the event loop one by one. Cancellation (client gone) is seen
between two tokens. Each slot keeps its KV cache, so a request that shares a prompt prefix with the last
one on that slot skips re-evaluating it.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.gguf_server.errors import ContextTooLong, EngineError, NotReady, Overloaded
from models.gguf_server.sampler import GrammarRejected, TokenLogprob, TokenSampler
from models.gguf_server.slots import PoolFull, Slot, SlotPool
from models.gguf_server.stops import StopMatcher


class InvalidTokens(EngineError):
    status = 400


__all__ = ["CHATML", "ContextTooLong", "Delta", "Engine", "EngineError", "Event", "Finished",
           "GrammarRejected", "NotReady", "Overloaded", "Prompt", "Sampling", "Started",
           "TokenLogprob"]

log = logging.getLogger(__name__)


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""Used for models whose GGUF carries no chat template and were published without one."""


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs; a bias of -100 or less bans the token."""
    grammar: str | None = None
    """GBNF the answer must match (JSON, tool calls); see grammars.py."""
    grammar_param: str = "response_format"
    """The request parameter the grammar came from (named in errors)."""
    logprobs: int | None = None
    """None: no log probabilities; k: each token's, with the k most likely alternatives."""


@dataclass(frozen=True, slots=True)
class Started:
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    index: int = 0
    """Which of the request's ``n`` sequences."""
    logprobs: tuple[TokenLogprob, ...] = ()
    """The tokens whose text this delta completes (when log probabilities were asked for)."""


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    decode_seconds: float = 0.0
    """From the first generated token to the last."""
    index: int = 0
    resampled: int = 0
    """Tokens the grammar refused (picked again under its mask)."""
    constrained: bool = False
    """Whether a grammar constrained the answer."""


Event = Started | Delta | Finished


@dataclass(frozen=True, slots=True)
class Prompt:
    """Either chat messages (formatted with the model's chat template) or raw text."""

    messages: list[dict[str, Any]] | None = None
    text: str | None = None

    @property
    def key(self) -> str:
        """A string whose prefixes follow the prompt's: slots are chosen by it (see slots.py)."""
        if self.messages is None:
            return self.text or ""
        return "".join(f"\x1e{m.get('role')}\x1f{m.get('content')}" for m in self.messages)


class _Collect:
    """An ``emit`` that gathers the deltas and sends them as one, just before ``Finished``."""

    def __init__(self, emit: Callable[[Event | BaseException], None]) -> None:
        self._emit = emit
        self._parts: list[str] = []
        self._logprobs: list[TokenLogprob] = []
        self._index = 0

    def __call__(self, item: Event | BaseException) -> None:
        if isinstance(item, Delta):
            self._parts.append(item.text)
            self._logprobs.extend(item.logprobs)
            self._index = item.index
            return
        if isinstance(item, Finished) and (self._parts or self._logprobs):
            self._emit(Delta("".join(self._parts), item.index, tuple(self._logprobs)))
        self._emit(item)


class Engine:
    def __init__(self, model_path: Path, *, slots: int, threads: int, n_ctx: int,
                 n_batch: int, max_queue: int, chat_template: str | None = None,
                 flash_attn: bool = False) -> None:
        self.model_path = model_path
        self.n_ctx = n_ctx
        self._n_slots, self._threads, self._n_batch = slots, threads, n_batch
        self._active = 0
        self._active_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._flash_attn = flash_attn
        self._max_queue = max_queue
        self._llamas: list[Any] = []
        self._pool: SlotPool | None = None
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="slot")
        self._formatter: Any = None
        self._chat_template = chat_template

    def load(self) -> None:
        """Load every slot (blocking; call from a thread)."""
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        started = time.perf_counter()
        for _ in range(self._n_slots):  # appended one by one, so close() frees a partial load
            # Each slot may use every thread; _fit_threads shares them among active requests.
            self._llamas.append(Llama(model_path=str(self.model_path), n_ctx=self.n_ctx,
                                      n_batch=self._n_batch, n_threads=self._threads,
                                      n_threads_batch=self._threads, use_mmap=True, verbose=False,
                                      flash_attn=self._flash_attn))
        first = self._llamas[0]
        template = self._chat_template or first.metadata.get("tokenizer.chat_template")
        if not template:
            log.warning("the model has no chat template; using ChatML (publish it with one)",
                        extra={"path": str(self.model_path)})
            template = CHATML
        if template:
            model = first._model
            eos, bos = model.token_eos(), model.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "")
        log.info("model loaded", extra={"path": str(self.model_path), "slots": self._n_slots,
                                        "threads": self._threads,
                                        "seconds": round(time.perf_counter() - started, 2)})

    def activate(self) -> None:
        """Open the slots to requests (after :meth:`load`)."""
        self._pool = SlotPool(self._llamas, self._max_queue)

    def close(self) -> None:
        """Free the contexts (idempotent; safe from two threads at once)."""
        with self._close_lock:
            self._pool = None
            self._executor.shutdown(wait=True, cancel_futures=True)
            llamas, self._llamas = self._llamas, []
            for llama in llamas:
                llama.close()

    @property
    def slots(self) -> int:
        return self._n_slots

    def load_report(self) -> tuple[int, int]:
        """(sequences decoding, requests queued for a slot): what the gateway routes on."""
        pool = self._pool
        return (pool.busy, pool.waiting) if pool is not None else (0, 0)

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        """The model's tokens of ``text`` (reads the vocabulary only: safe beside decoding)."""
        if not self._llamas:
            raise NotReady("The model is still loading.")
        return list(self._llamas[0].tokenize(text.encode(), add_bos=add_special,
                                             special=add_special))

    def detokenize(self, tokens: list[int]) -> str:
        if not self._llamas:
            raise NotReady("The model is still loading.")
        n = int(self._llamas[0].n_vocab())
        if any(not 0 <= t < n for t in tokens):
            raise InvalidTokens(f"Token ids must be between 0 and {n - 1}.")
        return bytes(self._llamas[0].detokenize(tokens)).decode("utf-8", errors="replace")

    async def generate(self, prompt: Prompt, sampling: Sampling,
                       cancel: threading.Event | None = None, *, stream: bool = True, n: int = 1
                       ) -> AsyncIterator[Event]:
        """Decode in a slot; yields ``Started``, then ``Delta``s, then ``Finished``. With
        ``stream=False`` the text comes as one ``Delta`` at the end: no event-loop wake-up per
        token for an answer nobody reads before it is whole.

        ``n`` sequences decode at once, one per slot (taken together, or waited for together):
        one ``Started``, then each sequence's ``Delta``s and ``Finished`` carry its ``index``.
        A seeded request gives sequence i the seed ``seed + i``."""
        cancel = cancel or threading.Event()
        pool = self._pool
        if pool is None:
            raise NotReady("The model is still loading.")
        if n > self._n_slots:
            raise EngineError(f"n={n} needs {n} slots; this server has {self._n_slots}.")
        try:
            slots = await pool.acquire_many(prompt.key, n)
        except PoolFull as e:
            raise Overloaded(str(e)) from None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()

        def emit(item: Event | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        for i, slot in enumerate(slots):
            s = sampling if i == 0 or sampling.seed is None else replace(
                sampling, seed=(sampling.seed + i) & 0xFFFFFFFF)
            future = loop.run_in_executor(self._executor, self._decode, slot.llama, prompt, s,
                                          cancel, _Collect(emit) if not stream else emit, i)
            future.add_done_callback(_releaser(pool, slot))  # once the thread is done with it
        started, finished = False, 0
        try:
            while finished < n:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Started):
                    if started:
                        continue
                    started = True
                elif isinstance(item, Finished):
                    finished += 1
                yield item
        finally:
            cancel.set()

    def _tokens(self, llama: Any, prompt: Prompt) -> list[int]:
        if prompt.messages is not None:
            if self._formatter is None:
                raise EngineError("This model has no chat template; use /v1/completions.")
            text = self._formatter(messages=prompt.messages).prompt
            return list(llama.tokenize(text.encode(), add_bos=False, special=True))
        return list(llama.tokenize((prompt.text or "").encode(), add_bos=True, special=False))

    def _decode(self, llama: Any, prompt: Prompt, s: Sampling, cancel: threading.Event,
                emit: Callable[[Event | BaseException], None], index: int = 0) -> None:
        with self._active_lock:
            self._active += 1
        try:
            self._decode_unsafe(llama, prompt, s, cancel, emit, index)
        except BaseException as e:  # noqa: BLE001 - every failure reaches the request
            emit(e if isinstance(e, EngineError) else EngineError(f"decoding failed: {e}"))
        finally:
            with self._active_lock:
                self._active -= 1

    def _fit_threads(self, llama: Any, current: int) -> int:
        """Share the CPU threads among the requests decoding now: one request alone gets them
        all, N requests get threads // N each (re-checked between tokens)."""
        want = max(1, self._threads // max(1, self._active))
        if want != current:
            llama._ctx.set_n_threads(want, want)
        return want

    def _decode_unsafe(self, llama: Any, prompt: Prompt, s: Sampling, cancel: threading.Event,
                       emit: Callable[[Event | BaseException], None], index: int = 0) -> None:
        import llama_cpp

        tokens = self._tokens(llama, prompt)
        n_prompt = len(tokens)
        if n_prompt >= self.n_ctx:
            raise ContextTooLong(f"The prompt has {n_prompt} tokens; this model's context is "
                                 f"{self.n_ctx} tokens.")
        sampler = TokenSampler(llama, temperature=s.temperature, top_p=s.top_p, seed=s.seed,
                               presence_penalty=s.presence_penalty,
                               frequency_penalty=s.frequency_penalty, logit_bias=s.logit_bias,
                               grammar=s.grammar, grammar_param=s.grammar_param,
                               logprobs=s.logprobs)
        try:
            emit(Started(n_prompt))
            budget = min(s.max_tokens, self.n_ctx - n_prompt)
            vocab = llama._model.vocab
            threads = self._fit_threads(llama, 0)
            _prefill(llama, tokens)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            stops = StopMatcher(s.stop)
            n, reason, hit = 0, "length", False
            first = last = 0.0
            pending: list[TokenLogprob] = []
            while True:
                if cancel.is_set():
                    reason = "cancelled"
                    break
                threads = self._fit_threads(llama, threads)
                tok, lp = sampler.sample()
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    reason = "stop"
                    break
                n += 1
                last = time.perf_counter()
                first = first or last
                if lp is not None:
                    pending.append(lp)
                text, hit = stops.feed(decoder.decode(llama.detokenize([tok])))
                if text:
                    emit(Delta(text, index, tuple(pending)))
                    pending.clear()
                if hit:
                    reason = "stop"
                    break
                if n >= budget:
                    break
                llama.eval([tok])
            if not hit and reason != "cancelled":
                tail = stops.flush() + decoder.decode(b"", final=True)
                if tail or pending:
                    emit(Delta(tail, index, tuple(pending)))
            emit(Finished(reason, n_prompt, n, (last - first) if first else 0.0, index,
                          sampler.resampled, s.grammar is not None))
        finally:
            sampler.close()


def _releaser(pool: SlotPool, slot: Slot) -> Callable[[Any], None]:
    return lambda _: pool.release(slot)


def _prefill(llama: Any, tokens: list[int]) -> None:
    """Evaluate the prompt, reusing the slot's KV cache for the prefix it shares with the last
    one (at least the last prompt token is evaluated again: its logits pick the first token)."""
    cached = llama.input_ids[: llama.n_tokens]
    m = min(len(cached), len(tokens))
    diff = np.flatnonzero(cached[:m] != np.asarray(tokens[:m], dtype=cached.dtype))
    reuse = min(int(diff[0]) if len(diff) else m, len(tokens) - 1)
    if reuse > 0 and llama._ctx.kv_cache_seq_rm(-1, reuse, -1):
        llama.n_tokens = reuse
    else:
        llama.reset()
        reuse = 0
    llama.eval(tokens[reuse:])
