"""Choosing each next token: llama.cpp's samplers, driven from Python once per token.

A request gets its own sampler chain (logit bias, penalties, top-k, top-p, min-p, temperature, then a
random draw, or greedy at temperature 0). A grammar, if any, is checked the way llama.cpp's own server
does it: the chain picks a token from the unconstrained logits, the grammar checks that one token, and
only if it is refused is the token picked again under the grammar's mask. Checking one token is cheap;
masking the 49k-token vocabulary is not (tens of milliseconds per token, more than decoding), so the
mask is applied to the 256 most likely tokens (after logit bias) plus end-of-generation, then to the
4096 most likely, and to the whole vocabulary only when none of those is allowed. With greedy
decoding the pick is the same as under a full mask (the most likely allowed token is among the most
likely tokens whenever any is); when sampling, the draw is among the allowed tokens of that top set
(top-k keeps 40 anyway).

Log probabilities are those of the model (log-softmax of the raw logits, before bias, temperature or
grammar, as vLLM reports by default), computed only when asked for.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.gguf_server.errors import EngineError

CANDIDATES = (256, 4096)
"""How many of the most likely tokens the grammar's mask is applied to, in turn, when it refuses the
unconstrained pick; then the whole vocabulary."""


class GrammarRejected(EngineError):
    status = 400

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()


class TokenSampler:
    def __init__(self, llama: Any, *, temperature: float, top_p: float, seed: int | None,
                 presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                 logit_bias: tuple[tuple[int, float], ...] = (), grammar: str | None = None,
                 grammar_param: str = "response_format", logprobs: int | None = None) -> None:
        import llama_cpp

        self._ll = llama_cpp
        self._llama = llama
        self._n_vocab = n = int(llama.n_vocab())
        self._logprobs = logprobs
        self.resampled = 0
        """Tokens the grammar refused, so picked again under the grammar's mask."""
        self._chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params())
        self._grammar: Any = None
        add = self._add
        bias = [(t, b) for t, b in logit_bias if 0 <= t < n]
        if bias:
            arr: Any = (llama_cpp.llama_logit_bias * len(bias))()
            for i, (t, b) in enumerate(bias):
                arr[i].token = t
                arr[i].bias = -math.inf if b <= -100 else b  # OpenAI: -100 bans the token
            add(llama_cpp.llama_sampler_init_logit_bias(n, len(bias), arr))
        if presence_penalty or frequency_penalty:
            add(llama_cpp.llama_sampler_init_penalties(n, 64, 1.0, frequency_penalty,
                                                       presence_penalty))
        if temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(40))
            add(llama_cpp.llama_sampler_init_top_p(top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(0.05, 1))
            add(llama_cpp.llama_sampler_init_temp(temperature))
            add(llama_cpp.llama_sampler_init_dist(
                seed if seed is not None else llama_cpp.LLAMA_DEFAULT_SEED))
        if grammar is not None:
            g = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar.encode(),
                                                     b"root")
            if not g:
                self.close()
                raise GrammarRejected(f"Invalid '{grammar_param}': llama.cpp cannot use the "
                                      "grammar built from it.", grammar_param)
            self._grammar = g
        # The candidates: all tokens, rewritten from the logits before each pick.
        self._buf = (llama_cpp.llama_token_data * n)()
        self._view = np.ctypeslib.as_array(self._buf)
        self._ids = np.arange(n, dtype=np.int32)
        self._cur: Any = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._buf, llama_cpp.llama_token_data_p), size=n, selected=-1,
            sorted=False)
        self._bias = np.zeros(n, dtype=np.float32)
        for t, b in bias:
            self._bias[t] = -np.inf if b <= -100 else b
        vocab = llama._model.vocab
        self._eog = np.array(sorted({t for t in (llama_cpp.llama_vocab_eos(vocab),
                                                 llama_cpp.llama_vocab_eot(vocab)) if t >= 0}),
                             dtype=np.int64)
        self._one_buf: Any = (llama_cpp.llama_token_data * 1)()
        self._one: Any = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one_buf, llama_cpp.llama_token_data_p), size=1, selected=-1,
            sorted=False)

    def _add(self, smpl: Any) -> None:
        self._ll.llama_sampler_chain_add(self._chain, smpl)

    def _logits(self) -> Any:
        ptr = self._ll.llama_get_logits_ith(self._llama._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def _pick(self, logits: Any, masked: bool) -> int:
        """The chain's pick over all tokens, or with ``masked`` over those the grammar allows."""
        if masked:
            biased = -(logits + self._bias if self._bias.any() else logits)
            order = np.argpartition(biased, CANDIDATES[-1])[:CANDIDATES[-1]]
            order = order[np.argsort(biased[order], kind="stable")]
            for k in CANDIDATES:
                ids = np.union1d(order[:k], self._eog).astype(np.int32)
                token = self._apply(ids, logits[ids], masked=True)
                if token is not None:
                    return token
        token = self._apply(self._ids, logits, masked=masked)
        assert token is not None, "the grammar allows no token"
        return token

    def _apply(self, ids: Any, logits: Any, *, masked: bool) -> int | None:
        ll, cur = self._ll, self._cur
        size = len(ids)
        view = self._view[:size]
        view["id"] = ids
        view["logit"] = logits
        view["p"] = 0.0
        cur.data = ctypes.cast(self._buf, ll.llama_token_data_p)  # samplers may move it
        cur.size, cur.selected, cur.sorted = size, -1, False
        ref = ctypes.byref(cur)
        if masked:
            ll.llama_sampler_apply(self._grammar, ref)
            if not np.isfinite(self._view["logit"][:size]).any():
                return None
        ll.llama_sampler_apply(self._chain, ref)
        return int(cur.data[cur.selected].id)

    def _allowed(self, token: int) -> bool:
        one = self._one
        self._one_buf[0].id, self._one_buf[0].logit, self._one_buf[0].p = token, 0.0, 0.0
        one.data = ctypes.cast(self._one_buf, self._ll.llama_token_data_p)
        one.size, one.selected, one.sorted = 1, -1, False
        self._ll.llama_sampler_apply(self._grammar, ctypes.byref(one))
        return bool(math.isfinite(one.data[0].logit))

    def sample(self) -> tuple[int, TokenLogprob | None]:
        """The next token after the last one evaluated, and its log probability if asked for."""
        logits = self._logits()
        token = self._pick(logits, masked=False)
        if self._grammar is not None:
            if not self._allowed(token):
                self.resampled += 1
                token = self._pick(logits, masked=True)
            self._ll.llama_sampler_accept(self._grammar, token)
        self._ll.llama_sampler_accept(self._chain, token)
        return token, (self._logprob(logits, token) if self._logprobs is not None else None)

    def _logprob(self, logits: Any, token: int) -> TokenLogprob:
        x = logits.astype(np.float64)
        m = float(x.max())
        lse = m + math.log(float(np.exp(x - m).sum()))
        k = min(self._logprobs or 0, self._n_vocab)
        top: tuple[tuple[bytes, float], ...] = ()
        if k:
            idx = np.argpartition(-x, k - 1)[:k]
            idx = idx[np.argsort(-x[idx], kind="stable")]
            top = tuple((self._piece(int(i)), float(x[i] - lse)) for i in idx)
        return TokenLogprob(self._piece(token), float(x[token] - lse), top)

    def _piece(self, token: int) -> bytes:
        return bytes(self._llama.detokenize([token]))

    def close(self) -> None:
        if self._chain is not None:
            self._ll.llama_sampler_free(self._chain)
            self._chain = None
        if self._grammar is not None:
            self._ll.llama_sampler_free(self._grammar)
            self._grammar = None
