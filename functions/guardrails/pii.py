"""PII detection with Presidio: spaCy NER plus Presidio's pattern recognizers, fully offline.

Pattern recognizers (cards, SSNs, e-mail, phones, IBANs, ...) run through Presidio's analyzer over
the whole text. NER (PERSON, LOCATION) runs only on the sentences that could hold a name (see
:func:`candidate_segments`): spaCy's model costs ~10 ms per KB on one core, the patterns ~2.

The engine (spaCy model, recognizers) is built on first use, once per :class:`PresidioAnalyzer` (one
per gateway process), in a worker thread so the event loop never waits for it. Findings of recently
seen texts are kept in a bounded LRU keyed by a SHA-256 of the text (spans only, no text), so the
earlier turns a chat client re-sends are not analysed again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from functions.guardrails import recognizers as rules
from functions.guardrails.findings import Span
from functions.pools import WorkerPool

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

    from functions.guardrails.bulk import ProcessLane

SUPPORTED = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "US_ITIN", "IBAN_CODE",
    "IP_ADDRESS", "URL", "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "CRYPTO",
    "MEDICAL_LICENSE", "LOCATION",
)
"""The entity types the gateway analyses (Presidio's country-specific recognizers outside the US,
such as UK_NHS, are left out: they mostly misfire on phone numbers)."""


class PiiAnalyzer(Protocol):
    async def load(self) -> None:
        """Load models if not loaded yet (idempotent; not counted in a check's timeout)."""
        ...

    async def analyze(self, texts: Sequence[str], *, ner: bool = True) -> list[list[Span]]:
        """Every finding of every supported type in each text, whatever its score. ``ner=False``
        runs the pattern recognizers only (no PERSON/LOCATION; several times faster)."""
        ...


class PresidioAnalyzer:
    """Analyses run in this analyzer's own bounded pool (:class:`functions.pools.WorkerPool`,
    ``workers`` threads) for up to ``bulk_chars`` characters; longer ones in ``lane``'s worker
    processes (:mod:`functions.guardrails.bulk`), or without one in a thread of their own, so a
    long prompt queues behind other long prompts, never in front of a short one. The cache holds
    the short texts' findings."""

    def __init__(self, spacy_model: str, cache_size: int = 4096, *, workers: int = 2,
                 bulk_chars: int = 16_384, lane: ProcessLane | None = None) -> None:
        self._spacy_model = spacy_model
        self._engine: AnalyzerEngine | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, list[Span]] = OrderedDict()
        self._cache_size = cache_size
        self._pool = WorkerPool("pii", workers)
        self._bulk = WorkerPool("pii-bulk", 1)
        self._bulk_chars = bulk_chars
        self._lane = lane

    async def analyze(self, texts: Sequence[str], *, ner: bool = True) -> list[list[Span]]:
        texts = list(texts)
        if sum(len(t) for t in texts) <= self._bulk_chars:
            return await self._pool.run(self._analyze_many, texts, ner)
        if self._lane is not None:
            return await self._lane.analyze(texts, ner)
        return await self._bulk.run(self._analyze_many, texts, ner)

    async def load(self) -> None:
        if self._engine is None:
            await self._bulk.run(self._get_engine)
            if self._lane is not None:
                self._lane.start()

    def load_now(self) -> None:
        """:meth:`load`, in this thread (a worker process's initializer)."""
        self._get_engine()

    def analyze_now(self, texts: list[str], ner: bool) -> list[list[Span]]:
        """:meth:`analyze`, in this thread (a worker process)."""
        return self._analyze_many(texts, ner)

    def close(self) -> None:
        self._pool.close()
        self._bulk.close()
        if self._lane is not None:
            self._lane.close()

    def _analyze_many(self, texts: list[str], ner: bool) -> list[list[Span]]:
        return [self._analyze_one(t, ner) for t in texts]

    def _analyze_one(self, text: str, ner: bool) -> list[Span]:
        if not text.strip():
            return []
        key = hashlib.sha256(b"ner:%d:" % ner + text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        engine = self._get_engine()
        results = engine.analyze(text, language="en", entities=list(PATTERN_ENTITIES),
                                 nlp_artifacts=_tokens_only(engine, text))
        found = [Span(r.entity_type, r.start, r.end, float(r.score)) for r in results
                 if _plausible(text, r.entity_type, r.start, r.end)]
        if ner:
            found += _ner_spans(engine, text)
        spans = _resolve_overlaps(found)
        if self._cache_size:
            with self._lock:
                self._cache[key] = spans
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return spans

    def _get_engine(self) -> AnalyzerEngine:
        with self._lock:
            if self._engine is None:
                engine = _build_engine(self._spacy_model)
                _first_analysis(engine)
                self._engine = engine
            return self._engine


NER_LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION",
              "FAC": "LOCATION"}
NER_SCORE = 0.85
PATTERN_ENTITIES = tuple(e for e in SUPPORTED if e not in ("PERSON", "LOCATION"))
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n+|$)")
_CAPITALIZED = re.compile("\\b[A-Z][\\w'\u2019-]*")


def candidate_segments(text: str, stop_words: frozenset[str] | set[str]) -> list[tuple[int, int]]:
    """Spans of ``text`` worth running NER on: runs of sentences with a capitalized word that is
    not an ordinary sentence opener ("The", "We", "Please" are stop words). Names and places are
    capitalized; sentences without such a word are skipped (NER rarely finds lowercase names), which
    is what makes long prompts affordable."""
    segs: list[tuple[int, int]] = []
    for m in _SENTENCE.finditer(text):
        words = _CAPITALIZED.findall(m.group(0))
        if not words:
            continue
        lead = m.group(0).lstrip()
        first_is_opener = lead.startswith(words[0]) and words[0].lower() in stop_words
        if len(words) > 1 or not first_is_opener:
            if segs and segs[-1][1] == m.start():
                segs[-1] = (segs[-1][0], m.end())
            else:
                segs.append((m.start(), m.end()))
    return segs


def _ner_spans(engine: AnalyzerEngine, text: str) -> list[Span]:
    nlp: Any = engine.nlp_engine
    model = nlp.nlp["en"]
    segs = candidate_segments(text, model.Defaults.stop_words)
    stop = model.Defaults.stop_words
    spans: list[Span] = []
    for (start, _), doc in zip(segs, model.pipe(text[a:b] for a, b in segs), strict=True):
        cued = [(a, b) for a, b in rules.cued_names(doc.text, stop)
                if all(_cue_wins(doc.text[a:b], e.label_) for e in doc.ents
                       if a < e.end_char and b > e.start_char)]
        for e in doc.ents:
            label = NER_LABELS.get(e.label_)
            if not label or any(a < e.end_char and b > e.start_char for a, b in cued):
                continue
            if label != "PERSON" or rules.plausible_name(e.text):
                spans.append(Span(label, start + e.start_char, start + e.end_char, NER_SCORE))
        spans.extend(Span("PERSON", start + a, start + b, rules.NAME_RULE_SCORE) for a, b in cued)
    return spans


_NAME_SHAPED = frozenset({"ORG", "GPE", "NORP", "FAC", "LOC", "PRODUCT", "WORK_OF_ART", "PERSON"})


def _cue_wins(name: str, label: str) -> bool:
    """Where spaCy labelled a cued name (the small model calls most unfamiliar names after "Dear"
    or "spoke with" an organisation), the cue wins for a first-and-last-name shape; a single word
    is left to spaCy, and a date or a number is never a name."""
    return label == "PERSON" or (label in _NAME_SHAPED and len(name.split()) >= 2)


def _plausible(text: str, entity: str, start: int, end: int) -> bool:
    """Pattern findings that cannot be what they say: a URL that stops inside a word ("notes.mp"
    of "notes.mp3" is a file name), a phone number of fewer than 7 digits ("Batch 393431")."""
    if entity == "URL":
        return end >= len(text) or not text[end].isalnum()
    if entity == "PHONE_NUMBER":
        return sum(c.isdigit() for c in text[start:end]) >= 7
    return True


WARM_UP = ("Maria Lopez (maria.lopez@contoso.com, 192.168.0.1) paid with 4111 1111 1111 1111 from "
           "GB82 WEST 1234 5698 7654 32; see https://contoso.com/a. Call 425-555-0107, "
           "(425) 555-0199, 425.555.0123, +1 425 555 0100, +44 20 7946 0958, 020 7946 0958, "
           "+49 30 901820, +91 98765 43210, +972 3 123 4567 or +55 11 91234 5678. SSN 536-22-8745.")
"""Every recognizer, and phone numbers in the formats and regions the phone recognizer tries
(phonenumbers compiles each region's patterns on first use)."""


def _first_analysis(engine: AnalyzerEngine) -> None:
    """The first analysis in a process costs ~0.5 s more than the next (phone metadata, spaCy's
    first pipe, regexes compiled on first use): paid at load, not by the first request (it was
    most of a stream's added time to first token)."""
    engine.analyze(WARM_UP, language="en", entities=list(PATTERN_ENTITIES),
                   nlp_artifacts=_tokens_only(engine, WARM_UP))
    _ner_spans(engine, WARM_UP)


def _tokens_only(engine: AnalyzerEngine, text: str) -> Any:
    from presidio_analyzer.nlp_engine import NlpArtifacts

    nlp: Any = engine.nlp_engine
    doc = nlp.nlp["en"].make_doc(text)
    return NlpArtifacts(entities=[], tokens=doc, tokens_indices=[], lemmas=[],
                        nlp_engine=engine.nlp_engine, language="en", scores=[])


def _resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the best finding where findings overlap (higher score, then longer)."""
    kept: list[Span] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)


def _build_engine(spacy_model: str) -> AnalyzerEngine:
    import spacy
    from presidio_analyzer import (
        AnalyzerEngine,
        Pattern,
        PatternRecognizer,
        RecognizerRegistry,
        RecognizerResult,
    )
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer
    from tldextract import TLDExtract

    class _LeanSpacy(SpacyNlpEngine):
        """Only what the recognizers read: entities. No parser, tagger or lemmatizer (Presidio
        uses lemmas only for context words, matched on the raw text below instead)."""

        def load(self) -> None:
            self.nlp = {"en": spacy.load(  # type: ignore[assignment]
                spacy_model, exclude=["parser", "tagger", "attribute_ruler", "lemmatizer"])}

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> NlpArtifacts:
            entities, scores = self._get_updated_entities(
                doc.ents, self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[], lemmas=[],
                                nlp_engine=self, language=language, scores=scores)

    class _WindowContext(ContextAwareEnhancer):
        """Raise a pattern finding's score when one of its recognizer's context words ("ssn",
        "phone", "card", ...) is a word in a window of the raw text around it (48 characters before,
        32 after: :func:`rules.context_hits`), linear in the findings (Presidio's lemma
        enhancer walks every token per finding). A context word lifts a finding to at least 0.6,
        above the 0.4 of a number that several recognizers could claim (nine digits: an SSN, a
        passport, a phone number), so the one whose context is there wins."""

        def __init__(self) -> None:
            super().__init__(context_similarity_factor=0.35, min_score_with_context_similarity=0.6,
                             context_prefix_count=5, context_suffix_count=0)

        def enhance_using_context(self, text: str, raw_results: list[Any], nlp_artifacts: Any,
                                  recognizers: list[Any], context: list[str] | None = None
                                  ) -> list[Any]:
            words = {r.id: [w.lower() for w in (r.context or [])] for r in recognizers}
            key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
            for r in raw_results:
                ctx = words.get((r.recognition_metadata or {}).get(key), [])
                if ctx and rules.context_hits(text, r.start, r.end, ctx):
                    r.score = min(1.0, max(r.score + self.context_similarity_factor,
                                           self.min_score_with_context_similarity))
            return raw_results

    class _OfflineEmail(EmailRecognizer):
        """Presidio checks an address's domain with tldextract, whose default downloads the public
        suffix list: use the snapshot bundled with tldextract instead."""

        _tld = TLDExtract(suffix_list_urls=(), cache_dir=None)

        def validate_result(self, pattern_text: str) -> bool:
            return self._tld(pattern_text.rpartition("@")[2]).suffix != ""

    class _Cards(CreditCardRecognizer):
        """Current issuer ranges (2-series Mastercard, Maestro, 19-digit Visa):
        :func:`rules.card_number`."""

        def __init__(self) -> None:
            super().__init__(patterns=[Pattern("card (IIN and Luhn)", rules.CARD_CANDIDATE,
                                               0.3)])

        def validate_result(self, pattern_text: str) -> bool:
            return rules.card_number(pattern_text)

    nanp = PatternRecognizer(supported_entity="PHONE_NUMBER", name="NanpPhoneRecognizer",
                             patterns=[Pattern("NANP", rules.NANP, rules.NANP_SCORE)],
                             context=rules.PHONE_CONTEXT)

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # it lists every language skipped
    nlp = _LeanSpacy(models=[{"lang_code": "en", "model_name": spacy_model}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    keep: list[Any] = [r for r in registry.recognizers  # NER runs separately (_ner_spans)
                       if set(r.supported_entities) & set(PATTERN_ENTITIES)
                       and type(r).__name__ not in ("EmailRecognizer", "SpacyRecognizer",
                                                    "CreditCardRecognizer")]
    for r in keep:
        if type(r).__name__ == "PhoneRecognizer":
            r.context = list(rules.PHONE_CONTEXT)  # Presidio's list has "number" (see there)
        if type(r).__name__ == "IbanRecognizer":
            # The registry loads it case-insensitive, so a lower-case word after an IBAN ("ES26
            # ... each month") is read as one more group and the checksum fails: IBANs are upper
            # case (the recognizer's own default).
            r.global_regex_flags &= ~re.IGNORECASE
    registry.recognizers = [*keep, _OfflineEmail(), _Cards(), nanp]
    return AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"],
                          context_aware_enhancer=_WindowContext())
