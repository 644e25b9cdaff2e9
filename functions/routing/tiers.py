"""Tier choice: a request naming a route (``auto``) goes to one of the route's tiers.

Hard rules first, in the route's order (cheapest first), each skipping the tiers it rules out:

1. the key and tenant may use the tier (``rule:allowed``);
2. the tier serves what the request needs (:func:`functions.capabilities.refusal`; reason
   ``rule:capability:<name>``, e.g. ``rule:capability:tools``);
3. the prompt (estimated as the token limits estimate it) plus ``max_tokens`` fits the tier's
   context (``rule:context``);
4. the tier's price per 1K tokens is within the tenant's ceiling (``rule:cost``).

Among the tiers left, a :class:`Classifier` (default: :class:`KnnClassifier`, nearest neighbours over
the operator's labelled prompts) picks one (``classifier:<tier>``), else the route's default
(``default``). A classifier that fails (the embedding tier down) never fails the request: the default
tier, counted in ``llmp_route_classifier_failures``. The answer is a :class:`TierChoice`: the chosen
tier, then the other tiers the rules allow as fallbacks (larger ones first, then smaller).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.capabilities import refusal
from functions.errors import PermissionDenied
from functions.limits import estimate_prompt_tokens
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from functions.routing.plan import TierChoice
from models.catalog import Catalog, TierRoute, load_examples

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from functions.auth import Principal
    from functions.metrics import GatewayMetrics
    from functions.rag.embedder import TextEmbedder
    from functions.tenants import TenantRecord

log = logging.getLogger(__name__)


class TierSettings(BaseSettings):
    """Tier choice (``LLMP_TIERS_*``); the router's replica choice has its own
    (:class:`functions.routing.settings.RoutingSettings`)."""

    model_config = SettingsConfigDict(env_prefix="LLMP_TIERS_", extra="ignore", frozen=True)

    classifier_timeout_s: float = Field(2.0, gt=0)
    """Longest wait for the classifier (one embedding call); past it, the route's default tier."""
    answer_tokens: int = Field(256, gt=0)
    """Room for the answer the context rule keeps when a request sets no ``max_tokens``."""
    max_prompt_chars: int = Field(2000, gt=0)
    """The classifier embeds the end of the last user turn, at most this many characters (the
    embedding model reads 254 tokens of it anyway)."""


class Classifier(Protocol):
    """Picks a tier of a route for a prompt; None when it cannot tell (the route's default)."""

    async def classify(self, route: TierRoute, text: str) -> str | None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Index:
    labels: tuple[str, ...]
    vectors: npt.NDArray[np.float32]


class KnnClassifier:
    """The ``k`` labelled prompts most similar to the request's (cosine over normalized embeddings)
    vote for their tier, each with its similarity; prompts less similar than ``threshold`` do not
    vote. The largest vote wins (a tie: the larger tier). The examples are embedded once per
    process, on first use, and kept: in a task of their own, which a request that stops waiting
    (its classifier timeout) does not cancel, so a slow first embedding still completes for the
    requests after it; a failed one is tried again on the next request."""

    def __init__(self, embedder: Callable[[], TextEmbedder], base_dir: Path) -> None:
        self._embedder, self._base_dir = embedder, base_dir
        self._indexes: dict[str, _Index] = {}
        self._building: dict[str, asyncio.Task[_Index]] = {}

    async def classify(self, route: TierRoute, text: str) -> str | None:
        if route.classifier is None or not text.strip():
            return None
        index = await self._index(route)
        query = (await self._embedder().embed([text]))[0]
        sims = index.vectors @ query
        k = min(route.classifier.k, len(index.labels))
        votes: dict[str, float] = {}
        for i in sims.argsort()[::-1][:k]:
            if sims[i] >= route.classifier.threshold:
                votes[index.labels[i]] = votes.get(index.labels[i], 0.0) + float(sims[i])
        if not votes:
            return None
        order = {t: n for n, t in enumerate(route.tiers)}
        return max(votes, key=lambda t: (votes[t], order[t]))

    async def aclose(self) -> None:
        for task in self._building.values():
            task.cancel()
        await asyncio.gather(*self._building.values(), return_exceptions=True)

    async def _index(self, route: TierRoute) -> _Index:
        if (index := self._indexes.get(route.alias)) is not None:
            return index
        task = self._building.get(route.alias)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._building[route.alias] = asyncio.ensure_future(self._build(route))
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _build(self, route: TierRoute) -> _Index:
        examples = await asyncio.to_thread(load_examples, route, self._base_dir)
        labels = tuple(t for t, prompts in examples.items() for _ in prompts)
        vectors = await self._embedder().embed([p for ps in examples.values() for p in ps])
        index = self._indexes[route.alias] = _Index(labels, vectors)
        log.info("route examples embedded", extra={"route": route.alias, "examples": len(labels)})
        return index


def _retrieve(task: asyncio.Task[_Index]) -> None:
    """A build nobody waits for any more still has its failure read (and logged once)."""
    if not task.cancelled() and (e := task.exception()) is not None:
        log.warning("route examples not embedded", extra={"error": type(e).__name__})


def prompt_text(req: SamplingParams, max_chars: int) -> str:
    """What the classifier reads: the last user turn of a chat, the (first) text prompt of a
    completion; its end, when long (the question usually comes last)."""
    text = ""
    if isinstance(req, ChatCompletionRequest):
        text = next((m.text(" ") for m in reversed(req.messages) if m.role == "user"), "")
    elif isinstance(req, CompletionRequest):
        text = next(iter(req.prompts), "")
    return text[-max_chars:]


TenantLookup = Callable[[str], Awaitable["TenantRecord"]]


class TierChooser:
    def __init__(self, catalog: Catalog, classifier: Classifier, tenants: TenantLookup,
                 metrics: GatewayMetrics, settings: TierSettings | None = None) -> None:
        self._catalog, self._classifier, self._tenants = catalog, classifier, tenants
        self._metrics = metrics
        self._settings = settings or TierSettings()

    async def aclose(self) -> None:
        await self._classifier.aclose()

    async def choose(self, alias: str, req: SamplingParams, principal: Principal) -> TierChoice:
        route = self._catalog.route(alias)
        if route is None:
            return TierChoice.requested(alias)
        tenant = await self._tenants(principal.tenant_id) if principal.tenant_id else None
        skipped = {t: why for t in route.tiers if (why := self._rule(t, req, principal, tenant))}
        allowed = [t for t in route.tiers if t not in skipped]
        if not allowed:
            return self._nothing_allowed(route, skipped)
        if len(allowed) == 1 or len(route.tiers) == 1:
            chosen = allowed[0]
            reason = next(iter(skipped.values()), "default")
        else:
            chosen, reason = await self._classified(route, req, allowed, skipped)
        choice = TierChoice(_with_fallbacks(chosen, allowed), reason, route.alias)
        self._metrics.route_decisions.labels(route.alias, chosen, reason).inc()
        return choice

    def _rule(self, alias: str, req: SamplingParams, principal: Principal,
              tenant: TenantRecord | None) -> str | None:
        from functions.tenants import model_allowed

        spec = self._catalog.by_alias[alias]
        if not model_allowed(alias, tenant.allowed_models if tenant else None,
                             principal.allowed_models):
            return "rule:allowed"
        if (refused := refusal(spec, req)) is not None:
            return f"rule:capability:{refused.capability}"
        answer = req.max_tokens or getattr(req, "max_completion_tokens", None)
        if estimate_prompt_tokens(req) + (answer or self._settings.answer_tokens) \
                > spec.context_length:
            return "rule:context"
        ceiling = tenant.max_price_per_1k if tenant else None
        if ceiling is not None and ((price := spec.price.per_1k) is None
                                    or Decimal(str(price)) > ceiling):
            return "rule:cost"
        return None

    def _nothing_allowed(self, route: TierRoute, skipped: dict[str, str]) -> TierChoice:
        """No tier passes: refuse a price ceiling here; otherwise the largest tier, whose own
        check then refuses the request with its usual error (403, 400 naming the parameter), or
        which comes nearest to fitting a long prompt."""
        within = [t for t in route.tiers if skipped[t] != "rule:cost"]  # never above the ceiling
        if not within:
            raise PermissionDenied(f"No tier of the route '{route.alias}' is within this tenant's "
                                   "price ceiling.", param="model", code="price_ceiling")
        last = within[-1]
        if all(skipped[t] == "rule:context" for t in within):
            last = max(within, key=lambda t: self._catalog.by_alias[t].context_length)
        self._metrics.route_decisions.labels(route.alias, last, skipped[last]).inc()
        return TierChoice((last,), skipped[last], route.alias)

    async def _classified(self, route: TierRoute, req: SamplingParams, allowed: Sequence[str],
                          skipped: dict[str, str]) -> tuple[str, str]:
        pick, why = None, "default"
        try:
            pick = await asyncio.wait_for(
                self._classifier.classify(route, prompt_text(req, self._settings.max_prompt_chars)),
                self._settings.classifier_timeout_s)
        except Exception as e:  # noqa: BLE001 - never a failed request: the default tier
            self._metrics.route_classifier_failures.labels(route.alias, type(e).__name__).inc()
            log.warning("route classifier failed; default tier", extra={
                "route": route.alias, "error": type(e).__name__})
        if pick is not None and pick in route.tiers:
            why = f"classifier:{pick}"
        target = pick if pick in route.tiers else route.default_tier
        if target in allowed:
            return target, why
        # the pick is ruled out: the next larger tier the rules allow, else the largest allowed
        later = route.tiers[route.tiers.index(target) + 1:]
        return next((t for t in later if t in allowed), allowed[-1]), skipped[target]


def _with_fallbacks(chosen: str, allowed: Sequence[str]) -> tuple[str, ...]:
    i = list(allowed).index(chosen)
    return (chosen, *allowed[i + 1:], *reversed(allowed[:i]))
