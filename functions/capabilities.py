"""Checked right after parsing, before any expensive stage: a request needing something its model
does not serve (``ModelSpec.caps``) is a 400 naming the parameter, and never reaches a backend."""

from __future__ import annotations

from functions.errors import InvalidRequest
from functions.protocol.chat import MEDIA_PARTS, AudioPart, ChatCompletionRequest, CustomTool
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from models.catalog import Capability, ModelSpec


class CapabilityRefused(InvalidRequest):
    """A 400 naming the parameter; ``capability`` names what the model lacks (``tools``,
    ``json_schema``, ``max_n``, ...), for the tier chooser's reasons."""

    def __init__(self, spec: ModelSpec, param: str, what: str, capability: str) -> None:
        super().__init__(f"The model '{spec.alias}' ({spec.tier} tier) does not serve {what}.",
                         param=param, code="unsupported_parameter")
        self.capability = capability


def _refuse(spec: ModelSpec, param: str, what: str, capability: str) -> CapabilityRefused:
    return CapabilityRefused(spec, param, what, capability)


def refusal(spec: ModelSpec, req: SamplingParams) -> CapabilityRefused | None:
    """What :func:`check` would raise for this model, or None if it serves the request."""
    try:
        check(spec, req)
    except CapabilityRefused as e:
        return e
    return None


def check(spec: ModelSpec, req: SamplingParams) -> None:
    caps = spec.caps
    if isinstance(req, ChatCompletionRequest):
        _chat(spec, req)
    elif isinstance(req, CompletionRequest):
        _completion(spec, req)
    if (req.n or 1) > caps.max_n:
        raise _refuse(spec, "n", f"more than {caps.max_n} choice(s) per request", "max_n")


def _need(spec: ModelSpec, cap: Capability, param: str, what: str) -> None:
    if not spec.caps.has(cap):
        raise _refuse(spec, param, what, cap)


def _chat(spec: ModelSpec, req: ChatCompletionRequest) -> None:
    _need(spec, "chat", "model", "chat completions")
    if req.uses_tools:
        _need(spec, "tools", "tools", "tool calls")
    for i, tool in enumerate(req.tools or []):
        if isinstance(tool, CustomTool):
            raise _refuse(spec, f"tools[{i}]", "custom (free-form) tools; declare a function tool",
                          "function_tools")
    if req.json_mode:
        _need(spec, "json_schema", "response_format", "JSON output formats")
    if req.logprobs or req.top_logprobs:
        _need(spec, "logprobs", "logprobs", "logprobs")
    for i, m in enumerate(req.messages):
        if not isinstance(m.content, list):
            continue
        for j, part in enumerate(m.content):
            if isinstance(part, MEDIA_PARTS):
                cap: Capability = "audio_input" if isinstance(part, AudioPart) else "vision"
                _need(spec, cap, f"messages[{i}].content[{j}]", f"'{part.type}' content parts")


def _completion(spec: ModelSpec, req: CompletionRequest) -> None:
    _need(spec, "completions", "model", "text completions")
    if req.echo:
        _need(spec, "echo", "echo", "'echo'")
    if req.suffix is not None:
        _need(spec, "suffix", "suffix", "'suffix' (fill in the middle)")
    if req.logprobs is not None:
        _need(spec, "logprobs", "logprobs", "logprobs")
    if req.token_prompt:
        _need(spec, "token_input", "prompt", "prompts given as token ids")
