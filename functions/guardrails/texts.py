"""Where the text of a request lives, and how to put checked text back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from functions.protocol.chat import ChatCompletionRequest, TextPart
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from functions.protocol.embeddings import EmbeddingRequest

R = TypeVar("R", bound=SamplingParams | EmbeddingRequest)


@dataclass(frozen=True, slots=True)
class InputText:
    text: str
    role: str
    """``user``, ``tool``, ``system``, ``developer``, ``assistant``; a completion prompt is ``user``."""
    message: int
    part: int | None = None


def input_texts(req: SamplingParams | EmbeddingRequest) -> list[InputText]:
    out: list[InputText] = []
    if isinstance(req, ChatCompletionRequest):
        for i, m in enumerate(req.messages):
            if isinstance(m.content, str):
                out.append(InputText(m.content, m.role, i))
            elif isinstance(m.content, list):
                out.extend(InputText(p.text, m.role, i, j) for j, p in enumerate(m.content))
    elif isinstance(req, CompletionRequest):
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        out.extend(InputText(p, "user", i) for i, p in enumerate(prompts))
    elif isinstance(req, EmbeddingRequest):  # strings are user text; token arrays carry none
        out.extend(InputText(t, "user", i) for i, t in enumerate(req.texts or []))
    return out


def replace_texts(req: R, texts: list[str]) -> R:
    """``req`` with the texts :func:`input_texts` found replaced, in the same order."""
    items = input_texts(req)
    if all(t.text == n for t, n in zip(items, texts, strict=True)):
        return req
    if isinstance(req, ChatCompletionRequest):
        messages = list(req.messages)
        for item, new in zip(items, texts, strict=True):
            m = messages[item.message]
            content: Any
            if item.part is None:
                content = new
            else:
                content = list(m.content) if isinstance(m.content, list) else []
                content[item.part] = TextPart(type="text", text=new)
            messages[item.message] = m.model_copy(update={"content": content})
        return req.model_copy(update={"messages": messages})
    if isinstance(req, CompletionRequest):
        return req.model_copy(update={"prompt": texts[0] if isinstance(req.prompt, str) else texts})
    if isinstance(req, EmbeddingRequest):
        return req.model_copy(update={"input": texts[0] if isinstance(req.input, str) else texts})
    return req
