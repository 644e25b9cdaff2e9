"""Stage 1's last check: a prompt that cannot fit the model's context is refused before any
expensive stage (guardrails, retrieval, the cache, a backend) runs, with OpenAI's
``context_length_exceeded``.

The gateway has no tokenizer for every model, so it counts a floor: no tokenizer served here spells
more than :data:`BYTES_PER_TOKEN` bytes per token on average (English runs at about 4 bytes a token,
code and other languages at fewer), so a prompt of ``n`` bytes is at least ``n / 8`` tokens. A
prompt refused here is too long for certain; one that passes and still does not fit is refused
exactly by the backend, which counts with the model's own tokenizer (the same code). A token prompt
(``/v1/completions`` with token ids) is counted exactly. A conversation's stored history is added
later and cut to fit (``functions/conversations/history.py``): only what the client sent counts.
"""

from __future__ import annotations

import orjson

from functions.errors import ContextLengthExceeded
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest

BYTES_PER_TOKEN = 8


def prompt_tokens_floor(req: SamplingParams) -> int:
    """Fewest tokens the prompt can have (the longest prompt of a batch of completions)."""
    if isinstance(req, CompletionRequest):
        if req.token_prompt:
            p = req.prompt
            return max(len(x) for x in p) if isinstance(p[0], list) else len(p)  # type: ignore[arg-type]
        longest = max((len(t.encode("utf-8", "surrogatepass")) for t in req.prompts), default=0)
        return (longest + len((req.suffix or "").encode("utf-8", "surrogatepass"))) // BYTES_PER_TOKEN
    if isinstance(req, ChatCompletionRequest):
        body = orjson.dumps(req.model_dump(include={"messages", "tools"}, exclude_none=True))
        return len(body) // BYTES_PER_TOKEN
    return 0


def check_context(req: SamplingParams, context_length: int) -> None:
    """Refuse (400 ``context_length_exceeded``) a prompt that cannot fit ``context_length``."""
    floor = prompt_tokens_floor(req)
    if floor < context_length:
        return
    param = "messages" if isinstance(req, ChatCompletionRequest) else "prompt"
    raise ContextLengthExceeded(
        f"This model's maximum context length is {context_length} tokens, but the {param} is at "
        f"least {floor} tokens long. Reduce the length of the {param}.", param=param)
