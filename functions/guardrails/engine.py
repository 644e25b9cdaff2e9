"""Stages 3 and 8 of the pipeline: input guardrails before the model, output guardrails after it.

:class:`Guardrails` (one per gateway) owns the detectors; :meth:`Guardrails.begin` gives a
:class:`RequestGuard` for one request, which checks and rewrites the input, then checks the answer,
whole or as a stream. Every decision goes to the audit log and the metrics as it is taken. A detector
that raises or times out refuses the request with 503 unless the policy says ``on_error: allow``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from functions.errors import GuardrailBlocked, GuardrailUnavailable, InputTooLarge, OutputBlocked
from functions.guardrails import jsontext
from functions.guardrails.audit import AuditLog, AuditRecord
from functions.guardrails.findings import Decision, Span, Stage
from functions.guardrails.injection import InjectionDetector
from functions.guardrails.masking import Masker, redact
from functions.guardrails.moderation import Moderator
from functions.guardrails.pii import PiiAnalyzer
from functions.guardrails.policy import Action, GuardrailPolicy
from functions.guardrails.texts import InputText, input_texts, replace_texts, units
from functions.metrics import GatewayMetrics
from functions.pools import WorkerPool
from functions.protocol.common import SamplingParams
from functions.protocol.embeddings import EmbeddingRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound=SamplingParams | EmbeddingRequest)
NER_ENTITIES = ("PERSON", "LOCATION")
LOAD_TIMEOUT_S = 60.0
"""Loading Presidio and spaCy (about 2 s, once per process) is not held to a check's timeout."""


@dataclass(frozen=True, slots=True)
class Detectors:
    pii: PiiAnalyzer
    injection: InjectionDetector
    moderation: Moderator


class Guardrails:
    """``workers``/``bulk_chars``: the pools where detectors marked ``cpu_bound`` run (an ``async
    def`` whose body computes would hold the event loop, and its timeout could not fire); the PII
    analyzer has its own. ``max_chars``: most text one request may send through the input checks."""

    def __init__(self, detectors: Detectors, audit: AuditLog | None, metrics: GatewayMetrics,
                 timeout_s: float, holdback_chars: int, *, max_chars: int = 262_144,
                 workers: int = 2, bulk_chars: int = 16_384) -> None:
        self.detectors = detectors
        self.audit = audit
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.holdback_chars = holdback_chars
        self.max_chars = max_chars
        self.bulk_chars = bulk_chars
        self.pool = WorkerPool("guardrails", workers)
        self.bulk = WorkerPool("guardrails-bulk", 1)

    def close(self) -> None:
        """Stop the pools' idle threads (a call under way runs to its end)."""
        self.pool.close()
        self.bulk.close()
        close = getattr(self.detectors.pii, "close", None)
        if callable(close):
            close()

    async def detect(self, detector: object, texts: Sequence[str],
                     call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``call(*args)`` on ``texts``: when the detector says it is ``cpu_bound``, in a pool (on
        an event loop of its own): :attr:`pool`, or :attr:`bulk` for more than ``bulk_chars``
        characters, so long texts queue behind each other, never in front of short ones. Else
        here (it awaits I/O: a remote service)."""
        if getattr(detector, "cpu_bound", False):
            pool = self.bulk if sum(len(t) for t in texts) > self.bulk_chars else self.pool
            return await pool.run(_run, call, *args)
        return await call(*args)

    def begin(self, policy: GuardrailPolicy, *, tenant_id: str, request_id: str,
              model: str) -> RequestGuard:
        return RequestGuard(self, policy, tenant_id=tenant_id, request_id=request_id, model=model)


class RequestGuard:
    """The guardrails of one request. Holds the request's :class:`Masker` (placeholders and the
    values behind them), which lives and dies with the request."""

    def __init__(self, rails: Guardrails, policy: GuardrailPolicy, *, tenant_id: str,
                 request_id: str, model: str) -> None:
        self.rails = rails
        self.policy = policy
        self.masker = Masker()
        self._tenant_id, self._request_id, self._model = tenant_id, request_id, model
        self._decisions = 0

    @property
    def active(self) -> bool:
        return self.policy.enabled

    @property
    def has_findings(self) -> bool:
        """Any decision was taken for this request so far (PII masked, flagged or redacted,
        anything flagged, a check skipped on error): such a request is never cached."""
        return self._decisions > 0

    # -- input ------------------------------------------------------------------------------------

    async def check_input(self, req: R) -> R:
        """Refuse the request (400) or return it with PII masked as the policy says. Every text
        that reaches the model is checked (:mod:`functions.guardrails.texts`): PII everywhere;
        injection in what users write (prompts) and in tool results and tool descriptions
        (untrusted documents); moderation in user and tool content."""
        if not self.active:
            return req
        items = input_texts(req)
        if not items:
            return req
        size = sum(len(i.text) for i in items)
        if size > self.rails.max_chars:
            raise InputTooLarge(
                f"The request has {size} characters of text to check; the guardrails accept at "
                f"most {self.rails.max_chars} per request. Send less text, or split the request.",
                param="input" if isinstance(req, EmbeddingRequest) else _param(items[0]))
        parts = units(items)
        spans = await self._pii_spans("input", [u.text for u in parts])
        await self._check_injection("input", [u.text for u in parts if u.prompt],
                                    [u.text for u in parts if u.document])
        await self._check_moderation("input", [u.text for u in parts if u.moderated])
        if spans is None:  # analysis failed and the policy lets the request through
            return req
        per_item: list[list[Span]] = [[] for _ in items]
        for unit, found in zip(parts, spans, strict=True):
            texts = [items[i].text for i in unit.items]
            for i, mine in zip(unit.items, jsontext.split(found, unit.starts, texts), strict=True):
                per_item[i] = mine
        return replace_texts(req, self._apply_input_pii(items, per_item))

    async def check_untrusted(self, documents: Sequence[str]) -> None:
        """Retrieved or tool content entering the prompt: refused if it carries an injection."""
        if self.active and documents:
            await self._check_injection("input", [], documents)

    def _apply_input_pii(self, items: Sequence[InputText], spans: list[list[Span]]) -> list[str]:
        found: dict[str, dict[str, int]] = {}
        kept: list[list[Span]] = []
        blocked_in: str | None = None
        for item, per_text in zip(items, spans, strict=True):
            mine = []
            for s in per_text:
                action = self._pii_action(s)
                if action != "allow":
                    found.setdefault(action, {})
                    found[action][s.entity] = found[action].get(s.entity, 0) + 1
                if action == "mask":
                    mine.append(s)
                if action == "block" and blocked_in is None:
                    blocked_in = _param(item)
            kept.append(mine)
        for act, types in found.items():
            self._decide("input", "presidio", act, types)
        if "block" in found:
            names = ", ".join(sorted(found["block"]))
            raise GuardrailBlocked(
                f"The request contains sensitive data ({names}) that this platform does not accept. "
                "Remove it and try again.", param=blocked_in or "messages", code="pii_blocked")
        return [self.masker.mask(item.text, m) for item, m in zip(items, kept, strict=True)]

    # -- output -----------------------------------------------------------------------------------

    @property
    def checks_output(self) -> bool:
        o = self.policy.output
        return self.active and (o.pii or o.moderation or o.max_chars is not None)

    @property
    def withholds_stream_logprobs(self) -> bool:
        """Streamed logprobs arrive with each chunk, ahead of the check of the text they spell:
        while the output is checked for PII or moderated, they are not sent."""
        o = self.policy.output
        return self.checks_output and (o.pii or o.moderation)

    @property
    def transforms_output(self) -> bool:
        return self.checks_output or self.restores

    @property
    def restores(self) -> bool:
        return self.active and self.policy.pii.restore and bool(self.masker)

    async def output_spans(self, text: str) -> list[Span]:
        """PII findings in a piece of the answer (none when output PII checks are off, or the
        analysis failed and the policy lets the answer through)."""
        if not self.policy.output.pii:
            return []
        spans = await self._pii_spans("output", [text])
        return spans[0] if spans else []

    async def check_text(self, text: str, spans: list[Span] | None = None,
                         context: str = "") -> str:
        """Check a piece of the answer (``spans``: its PII findings if already known; ``context``:
        the part of its sentence already released, which moderation reads with it): return it
        with violations masked, or raise :class:`OutputBlocked`. Placeholders are not restored."""
        if self.policy.output.pii:
            found = await self.output_spans(text) if spans is None else spans
            text = self._apply_output_pii(text, found)
        if self.policy.output.moderation:
            text = await self._check_output_moderation(text, context)
        return text

    def restore(self, text: str) -> str:
        return self.masker.restore(text) if self.restores else text

    def _apply_output_pii(self, text: str, spans: list[Span]) -> str:
        masked = self._output_pii_decisions(spans)
        return redact(text, masked) if masked else text

    def _output_pii_decisions(self, spans: list[Span]) -> list[Span]:
        """Audit the answer's findings and return those to mask (``<TYPE>``), or raise
        :class:`OutputBlocked` for one the policy blocks."""
        found: dict[str, dict[str, int]] = {}
        masked: list[Span] = []
        for s in spans:
            action = self._pii_action(s)
            if action == "allow":
                continue
            if action == "mask" and self.policy.output.on_violation == "error":
                action = "block"
            found.setdefault(action, {})[s.entity] = found.get(action, {}).get(s.entity, 0) + 1
            if action == "mask":
                masked.append(s)
        for act, types in found.items():
            self._decide("output", "presidio", act, types)
        if "block" in found:
            names = ", ".join(sorted(found["block"]))
            raise OutputBlocked(f"The answer was withheld: it contained sensitive data ({names}).")
        return masked

    @property
    def checks_tool_calls(self) -> bool:
        """Tool-call arguments the model writes are checked (PII, moderation) or restored."""
        o = self.policy.output
        return self.active and (o.pii or o.moderation or self.restores)

    async def check_arguments(self, raw: str) -> tuple[str, str]:
        """The arguments of a tool call the model made (a JSON text), as (checked, and the same
        with placeholders restored): PII masked with ``<TYPE>`` or refused as in the answer's
        text, moderated, and still the same JSON (only string values and keys change; an integer
        that is masked becomes a string). Moderation refuses rather than masks: a tool call with a
        part removed is not the call the model meant."""
        if not self.checks_tool_calls or not raw:
            return raw, raw
        doc = jsontext.Document(raw)
        texts = [leaf.text for leaf in doc.leaves]
        view, starts = jsontext.join(texts)
        o = self.policy.output
        if o.pii:
            masked = self._output_pii_decisions(await self.output_spans(view))
            texts = [redact(t, spans) if spans else t
                     for t, spans in zip(texts, jsontext.split(masked, starts, texts), strict=True)]
        if o.moderation:
            hits = await self._moderation_hits("output", [view])
            if hits and set(hits) != {"flag"}:
                names = ", ".join(sorted({c for types in hits.values() for c in types}))
                raise OutputBlocked(f"The answer was withheld by content moderation ({names}).")
        return doc.replaced(texts), doc.replaced([self.restore(t) for t in texts])

    async def _check_output_moderation(self, text: str, context: str = "") -> str:
        if context and await self._moderated_already(context + text, context):
            return text
        hits = await self._moderation_hits("output", [context + text])
        if not hits:
            return text
        action = "block" if "block" in hits or self.policy.output.on_violation == "error" else (
            "mask" if "mask" in hits else "flag")
        if action == "block":
            names = ", ".join(sorted({c for types in hits.values() for c in types}))
            raise OutputBlocked(f"The answer was withheld by content moderation ({names}).")
        return "[removed by content moderation]" if action == "mask" else text

    async def _moderated_already(self, text: str, context: str) -> bool:
        """``text`` (``context`` and a new piece) would be moderated only for what ``context``,
        already released, carries: that was decided when it was released, not again now."""
        m, mod = self.policy.moderation, self.rails.detectors.moderation
        if all(a == "allow" for a in m.categories.values()):
            return False
        whole = await self._guarded("output", mod.name,
                                    self.rails.detect(mod, [text], mod.moderate, [text]))
        if not whole or all(sev < m.min_severity for sev in whole.values()):
            return True  # nothing to act on at all
        before = await self._guarded("output", mod.name,
                                     self.rails.detect(mod, [context], mod.moderate,
                                                       [context]))
        return {c for c, sev in whole.items() if sev >= m.min_severity} <= {
            c for c, sev in (before or {}).items() if sev >= m.min_severity}

    def validate_json(self, text: str, response_format: dict[str, Any] | None) -> None:
        """When ``response_format`` asks for JSON, the complete answer must be valid JSON (and
        match the schema of ``json_schema``)."""
        kind = (response_format or {}).get("type")
        if not self.active or not self.policy.output.validate_json or kind not in (
                "json_object", "json_schema"):
            return
        import orjson

        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._decide("output", "json", "block", {"invalid_json": 1})
            raise OutputBlocked("The model's answer is not valid JSON, as response_format requires.",
                                code="invalid_json_output") from None
        schema = ((response_format or {}).get("json_schema") or {}).get("schema")
        if kind == "json_schema" and isinstance(schema, dict):
            import jsonschema

            error = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(schema).iter_errors(value))
            if error is not None:
                self._decide("output", "json", "block", {"schema_mismatch": 1})
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                raise OutputBlocked(f"The model's answer does not match the JSON schema at {where}.",
                                    code="invalid_json_output")

    # -- shared -----------------------------------------------------------------------------------

    def _pii_action(self, s: Span) -> Action:
        p = self.policy.pii
        if s.score < p.min_score:
            return "allow"
        return p.entities.get(s.entity, "allow")

    async def _pii(self, texts: list[str]) -> list[list[Span]]:
        """Runs inside the check's timeout; the models are loaded before (see ``_pii_spans``)."""
        ents = self.policy.pii.entities
        ner = any(ents.get(e, "allow") != "allow" for e in NER_ENTITIES)
        return await self.rails.detectors.pii.analyze(texts, ner=ner)

    async def _pii_spans(self, stage: Stage, texts: list[str]) -> list[list[Span]] | None:
        if await self._guarded(stage, "presidio", self._load(), LOAD_TIMEOUT_S) is None:
            return None  # failed, and the policy lets the request through
        return await self._guarded(stage, "presidio", self._pii(texts))

    async def _load(self) -> bool:
        await self.rails.detectors.pii.load()
        return True

    async def _check_injection(self, stage: Stage, prompts: Sequence[str],
                               documents: Sequence[str]) -> None:
        p = self.policy.injection
        if p.action == "allow" or not (prompts or documents):
            return
        det = self.rails.detectors.injection
        result = await self._guarded(stage, det.name, self.rails.detect(
            det, [*prompts, *documents], det.score, prompts, documents))
        if result is None:
            return
        if result.degraded:
            self._classifier_failed(stage, result.degraded)
        score = result.score
        if not p.classifier and "heuristic" in result.parts:
            score = result.parts["heuristic"]
        if score < p.threshold:
            return
        categories = result.categories
        if not p.classifier:
            categories = {k: v for k, v in categories.items() if k != "classifier"}
        self._decide(stage, det.name, p.action, categories, score)
        if p.action == "block":
            kinds = ", ".join(sorted(categories)) or "prompt injection"
            raise GuardrailBlocked(
                f"The request was refused: it looks like a prompt injection ({kinds}; score "
                f"{score:.2f}). Rephrase it without instructions aimed at the model.",
                param="messages", code="prompt_injection_detected")

    def _classifier_failed(self, stage: Stage, reason: str) -> None:
        """The learned part of a combined injection detector could not score: counted and logged
        like any failed guardrail; the heuristics' score stands unless the policy refuses."""
        detector = "learned_injection"
        self.rails.metrics.guardrail_failures.labels(stage, detector, reason).inc()
        log.error("guardrail failed", extra={"stage": stage, "detector": detector, "reason": reason,
                                             "tenant_id": self._tenant_id,
                                             "request_id": self._request_id})
        refuse = self.policy.injection.on_classifier_error == "refuse"
        self._decide(stage, detector, "error_refused" if refuse else "error_allowed", {})
        if refuse:
            raise GuardrailUnavailable(
                "A safety check could not be completed, so the request was refused. Try again "
                "later.")

    async def _check_moderation(self, stage: Stage, texts: Sequence[str]) -> None:
        hits = await self._moderation_hits(stage, texts)
        if "block" in hits or "mask" in hits:  # masking a whole input message means refusing it
            names = ", ".join(sorted({*hits.get("block", {}), *hits.get("mask", {})}))
            raise GuardrailBlocked(f"The request was refused by content moderation ({names}).",
                                   param="messages", code="content_filter")

    async def _moderation_hits(self, stage: Stage, texts: Sequence[str]) -> dict[str, dict[str, int]]:
        m = self.policy.moderation
        if not texts or all(a == "allow" for a in m.categories.values()):
            return {}
        mod = self.rails.detectors.moderation
        severities = await self._guarded(stage, mod.name, self.rails.detect(
            mod, texts, mod.moderate, texts))
        hits: dict[str, dict[str, int]] = {}
        for cat, sev in (severities or {}).items():
            action = m.categories.get(cat, "allow")
            if sev >= m.min_severity and action != "allow":
                hits.setdefault(action, {})[cat] = sev
        for act, types in hits.items():
            self._decide(stage, mod.name, act, {c: 1 for c in types}, float(max(types.values())))
        return hits

    async def _guarded(self, stage: Stage, detector: str, call: Awaitable[T],
                       timeout_s: float | None = None) -> T | None:
        """Run a detector with the timeout; a failure refuses (503) or, if the policy allows,
        is recorded and skipped (None)."""
        try:
            return await asyncio.wait_for(call, timeout_s or self.rails.timeout_s)
        except Exception as e:  # any failure inside a guardrail fails closed
            reason = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
            self.rails.metrics.guardrail_failures.labels(stage, detector, reason).inc()
            log.error("guardrail failed", extra={"stage": stage, "detector": detector,
                                                 "reason": reason, "tenant_id": self._tenant_id,
                                                 "request_id": self._request_id})
            allow = self.policy.on_error == "allow"
            self._decide(stage, detector, "error_allowed" if allow else "error_refused", {})
            if allow:
                return None
            raise GuardrailUnavailable(
                "A safety check could not be completed, so the request was refused. Try again "
                "later.") from e

    def _decide(self, stage: Stage, detector: str, action: str, types: dict[str, int],
                score: float | None = None) -> None:
        self._decisions += 1
        self.rails.metrics.guardrail_decisions.labels(stage, detector, action).inc()
        if self.rails.audit is not None:
            self.rails.audit.record(AuditRecord(self._tenant_id, self._request_id, self._model,
                                                Decision(stage, detector, action, types, score)))


def _run(call: Callable[..., Awaitable[T]], *args: Any) -> T:
    async def main() -> T:
        return await call(*args)

    return asyncio.run(main())


def _param(item: InputText) -> str:
    """The request parameter a text came from (for an error's ``param``)."""
    if item.where == "tools":
        return "tools"
    if item.where == "suffix":
        return "suffix"
    return "messages"


OutputKind = Literal["chat", "text"]
