"""The model catalog (``models/catalog.yaml``), validated at start-up.

One alias names a tier (``gguf``, ``vllm`` or ``embedding``), its backends (tried in order, with
fallback before the first token), its context length and its price per 1K tokens.

A route (``routes:``, e.g. ``auto``) is an alias that names no model: the gateway picks one of its
tiers per request (``functions/routing/tiers.py``; docs/routing.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

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

    @property
    def per_1k(self) -> float | None:
        """The larger of the input and output prices per 1K tokens; None for a tier priced by GPU
        time, whose price per token is not known before the request runs."""
        if self.gpu_hour is not None:
            return None
        return max(self.input_per_1k, self.output_per_1k)

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


TEMPLATES_DIR = Path(__file__).with_name("templates")


class GGUFSpec(_Frozen):
    file: str = Field(min_length=1)
    """A path, ``package:DIST`` or ``assemble:MODULE`` (:func:`models.local_files.resolve_model_file`)."""
    slots: int = Field(4, ge=1, le=64)
    chat_template: str | None = None
    """For a GGUF without a chat template: a Jinja file, by name in ``models/templates/`` or a path;
    published with the model (it is then part of the version)."""

    @property
    def chat_template_path(self) -> Path | None:
        if self.chat_template is None:
            return None
        return TEMPLATES_DIR / Path(self.chat_template).expanduser()


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


class ClassifierSpec(_Frozen):
    """The route's classifier: k nearest neighbours over the embeddings of prompts the operator
    labelled with a tier (``examples``, a YAML file: ``{tier alias: [prompt, ...]}``)."""

    examples: str = Field(min_length=1)
    """The labelled prompts; a path relative to the catalog file, or absolute."""
    k: int = Field(5, ge=1, le=100)
    threshold: float = Field(0.5, ge=-1, le=1)
    """Neighbours less similar (cosine) than this do not vote; none left: the route's default."""


class TierRoute(_Frozen):
    alias: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    description: str = ""
    tiers: tuple[str, ...] = Field(min_length=1)
    """Model aliases, cheapest first; a hard rule moves a request to a later (larger) one."""
    default: str | None = None
    """The tier when the classifier is unsure or fails; left out: the last (largest) tier."""
    classifier: ClassifierSpec | None = None
    """Left out: every request the rules allow goes to the default tier."""
    enabled: bool = True
    disabled_tiers: tuple[str, ...] = ()
    """Tiers of the route whose models the catalog disabled (filled in when it is loaded): left
    out of ``tiers``, and their labelled examples ignored."""

    @property
    def default_tier(self) -> str:
        return self.default or self.tiers[-1]

    @model_validator(mode="after")
    def _consistent(self) -> TierRoute:
        if len(set(self.tiers)) != len(self.tiers):
            raise ValueError(f"route {self.alias!r} names a tier twice")
        if self.default is not None and self.default not in self.tiers:
            raise ValueError(f"route {self.alias!r}: default {self.default!r} is not one of its tiers")
        return self


class Catalog(_Frozen):
    models: tuple[ModelSpec, ...] = Field(min_length=1)
    routes: tuple[TierRoute, ...] = ()

    @field_validator("models")
    @classmethod
    def _unique_aliases(cls, v: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        aliases = [m.alias for m in v]
        dupes = sorted({a for a in aliases if aliases.count(a) > 1})
        if dupes:
            raise ValueError(f"duplicate model aliases: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _routes_name_models(self) -> Catalog:
        names = [r.alias for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError("duplicate route aliases")
        for r in self.routes:
            if r.alias in self.by_alias:
                raise ValueError(f"route {r.alias!r} has the alias of a model")
            for t in r.tiers:
                spec = self.by_alias.get(t)
                if spec is None:
                    raise ValueError(f"route {r.alias!r} names {t!r}, which is not a model")
                if not (spec.caps.chat or spec.caps.completions):
                    raise ValueError(f"route {r.alias!r}: {t!r} does not generate text")
        return self

    @cached_property
    def by_alias(self) -> Mapping[str, ModelSpec]:
        return {m.alias: m for m in self.models}

    @cached_property
    def by_route(self) -> Mapping[str, TierRoute]:
        return {r.alias: r for r in self.routes}

    def get(self, alias: str) -> ModelSpec | None:
        return self.by_alias.get(alias)

    def route(self, alias: str) -> TierRoute | None:
        return self.by_route.get(alias)


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
        off = {m.get("alias") for m in data["models"]
               if isinstance(m, dict) and not _enabled(m.get("enabled", True))}
        data = {**data, "models": [m for m in data["models"]
                                   if not isinstance(m, dict) or m.get("alias") not in off]}
        if isinstance(data.get("routes"), list):
            data["routes"] = _enabled_routes(data["routes"], off)
    try:
        return Catalog.model_validate(data)
    except ValidationError as e:
        raise CatalogError(f"catalog is invalid: {e}") from e


def _enabled_routes(routes: list[Any], off: set[Any]) -> list[Any]:
    """Routes without their disabled tiers; a route left with none, or disabled, is left out.
    A default naming a disabled tier falls back to the largest tier left."""
    out = []
    for r in routes:
        if not isinstance(r, dict) or not isinstance(r.get("tiers"), list):
            out.append(r)
            continue
        tiers = [t for t in r["tiers"] if t not in off]
        if (r["tiers"] and not tiers) or not _enabled(r.get("enabled", True)):
            continue
        out.append({**r, "tiers": tiers, "disabled_tiers": [t for t in r["tiers"] if t in off],
                    **({"default": None} if r.get("default") in off else {})})
    return out


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


def load_catalog(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Catalog:
    """Read and validate the catalog, and the labelled examples its routes' classifiers name."""
    p = Path(path) if path else DEFAULT_CATALOG
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogError(f"cannot read catalog {p}: {e}") from e
    catalog = parse_catalog(text, env)
    for r in catalog.routes:
        if r.classifier is not None:
            load_examples(r, p.parent)
    return catalog


def examples_path(route: TierRoute, base_dir: Path) -> Path:
    assert route.classifier is not None
    return base_dir / Path(route.classifier.examples).expanduser()


def load_examples(route: TierRoute, base_dir: Path) -> dict[str, tuple[str, ...]]:
    """A route's labelled prompts, ``{tier: prompts}``: every label one of the route's tiers, or a
    tier the catalog disabled (its prompts are then left out)."""
    path = examples_path(route, base_dir)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CatalogError(f"route {route.alias!r}: cannot read examples {path}: {e}") from e
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) and x.strip()
                                                               for x in v)
            for k, v in data.items()):
        raise CatalogError(f"route {route.alias!r}: {path} must map tier aliases to lists of "
                           "prompts")
    out = {k: tuple(v) for k, v in data.items() if k in route.tiers}
    unknown = sorted(set(data) - set(route.tiers) - set(route.disabled_tiers))
    if unknown:
        raise CatalogError(f"route {route.alias!r}: {path} labels prompts with "
                           f"{', '.join(unknown)}, not tiers of the route")
    if not any(out.values()):
        raise CatalogError(f"route {route.alias!r}: {path} has no labelled prompts")
    return out
