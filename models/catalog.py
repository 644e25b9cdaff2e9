"""The model catalog (``models/catalog.yaml``), validated at start-up.

One alias names a tier (``gguf``, ``vllm`` or ``embedding``), its backends (tried in order, with
fallback before the first token), its context length and its price per 1K tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")

Tier = Literal["gguf", "vllm", "embedding"]

Capability = Literal["chat", "completions", "tools", "json_schema", "logprobs", "embeddings",
                     "echo", "suffix", "token_input", "vision", "audio_input"]

_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Price(_Frozen):
    input_per_1k: float = Field(0.0, ge=0)
    output_per_1k: float = Field(0.0, ge=0)
    gpu_hour: float | None = Field(None, ge=0)
    """Self-hosted tiers may price by GPU time instead: the cost is then the request's measured
    backend seconds at this hourly price, and the per-1K prices are ignored."""

    def cost(self, prompt_tokens: int, completion_tokens: int, gpu_seconds: float = 0.0) -> float:
        if self.gpu_hour is not None:
            return gpu_seconds * self.gpu_hour / 3600
        return (prompt_tokens * self.input_per_1k + completion_tokens * self.output_per_1k) / 1000


class BackendSpec(_Frozen):
    name: str = Field(min_length=1)
    url: HttpUrl
    served_model: str | None = None
    """The model name the server expects; defaults to the alias."""
    api_key_env: str | None = None
    """Name of an env var holding a bearer token for this backend (never the token itself)."""

    @property
    def base_url(self) -> str:
        return str(self.url).rstrip("/")


class GGUFSpec(_Frozen):
    file: str = Field(min_length=1)
    slots: int = Field(4, ge=1, le=64)


class Capabilities(_Frozen):
    """What a model's servers really serve; the gateway refuses a request needing anything else
    (400 naming the parameter) before it reaches a backend. Defaults follow the tier."""

    chat: bool = True
    completions: bool = True
    tools: bool = True
    json_schema: bool = True
    """``response_format`` ``json_object`` and ``json_schema`` (enforced while decoding)."""
    logprobs: bool = True
    embeddings: bool = False
    echo: bool = False
    """``/v1/completions`` ``echo`` (the prompt repeated before the answer)."""
    suffix: bool = False
    """``/v1/completions`` ``suffix`` (fill in the middle)."""
    token_input: bool = False
    """Prompts or inputs given as token ids of the model's tokenizer."""
    vision: bool = False
    """Image and file content parts."""
    audio_input: bool = False
    max_n: int = Field(1, ge=1, le=128)
    """Choices per request (``n``)."""
    embedding_dimensions: int | None = Field(None, ge=1)
    """Length of an embedding vector (embedding models)."""
    matryoshka: bool = False
    """The embedding model was trained so that a prefix of its vector is an embedding: a request's
    ``dimensions`` below ``embedding_dimensions`` is then served; otherwise only the native size."""

    def has(self, name: Capability) -> bool:
        return bool(getattr(self, name))


TIER_CAPABILITIES: Mapping[Tier, Capabilities] = {
    "gguf": Capabilities(),
    "vllm": Capabilities(max_n=16, echo=True, token_input=True),
    "embedding": Capabilities(chat=False, completions=False, tools=False, json_schema=False,
                              logprobs=False, embeddings=True, token_input=True),
}


class RoutingSpec(_Frozen):
    """Per-tier routing overrides (``routing:`` of a model entry); unset: ``LLMP_ROUTING_*``."""

    ttfb_s: float | None = Field(None, gt=0)
    """Time-to-first-byte limit of this tier: a replica that has not started answering by then
    is abandoned and the request retried elsewhere (a large model's first token takes longer)."""
    max_retries: int | None = Field(None, ge=0)


class ModelSpec(_Frozen):
    alias: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    description: str = ""
    tier: Tier
    context_length: int = Field(gt=0)
    price: Price = Price()
    backends: tuple[BackendSpec, ...] = Field(min_length=1)
    gguf: GGUFSpec | None = None
    capabilities: Capabilities | None = None
    """Left out: the tier's defaults (:data:`TIER_CAPABILITIES`); given: replaces them whole."""
    routing: RoutingSpec = RoutingSpec()
    enabled: bool = True
    """``false`` leaves the model out of the catalog (e.g. ``${LLMP_VLLM_ENABLED:-false}`` for a
    tier that exists only in Azure)."""

    @cached_property
    def caps(self) -> Capabilities:
        if self.capabilities is not None:
            return self.capabilities
        default = TIER_CAPABILITIES[self.tier]
        if self.gguf is not None:  # a GGUF server decodes at most one choice per slot
            return default.model_copy(update={"max_n": self.gguf.slots})
        return default

    @field_validator("backends")
    @classmethod
    def _unique_backend_names(cls, v: tuple[BackendSpec, ...]) -> tuple[BackendSpec, ...]:
        names = [b.name for b in v]
        if len(set(names)) != len(names):
            raise ValueError("backend names must be unique within a model")
        return v


class Catalog(_Frozen):
    models: tuple[ModelSpec, ...] = Field(min_length=1)

    @field_validator("models")
    @classmethod
    def _unique_aliases(cls, v: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        aliases = [m.alias for m in v]
        dupes = sorted({a for a in aliases if aliases.count(a) > 1})
        if dupes:
            raise ValueError(f"duplicate model aliases: {', '.join(dupes)}")
        return v

    @cached_property
    def by_alias(self) -> Mapping[str, ModelSpec]:
        return {m.alias: m for m in self.models}

    def get(self, alias: str) -> ModelSpec | None:
        return self.by_alias.get(alias)


def expand_env(text: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset variable without a default is an error."""

    def repl(m: re.Match[str]) -> str:
        name, default = m.group("name"), m.group("default")
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise CatalogError(f"catalog refers to ${{{name}}}, which is not set")

    return _ENV_REF.sub(repl, text)


def _expand_values(data: Any, env: Mapping[str, str]) -> Any:
    if isinstance(data, str):
        return expand_env(data, env)
    if isinstance(data, list):
        return [_expand_values(v, env) for v in data]
    if isinstance(data, dict):
        return {k: _expand_values(v, env) for k, v in data.items()}
    return data


def parse_catalog(text: str, env: Mapping[str, str] | None = None) -> Catalog:
    """Parse YAML, then expand ``${VAR}`` in string values (never in comments or keys)."""
    try:
        data = _expand_values(yaml.safe_load(text), os.environ if env is None else env)
    except yaml.YAMLError as e:
        raise CatalogError(f"catalog is not valid YAML: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        data = {**data, "models": [m for m in data["models"]
                                   if not isinstance(m, dict) or _enabled(m.get("enabled", True))]}
    try:
        return Catalog.model_validate(data)
    except ValidationError as e:
        raise CatalogError(f"catalog is invalid: {e}") from e


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


def load_catalog(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Catalog:
    p = Path(path) if path else DEFAULT_CATALOG
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError(f"cannot read catalog {p}: {e}") from e
    return parse_catalog(text, env)
