"""The gateway's own PII rules beside Presidio's recognizers: what they miss on data nobody here wrote.

Measured on a generated corpus (``bench/pii_corpus.py``, Faker's values in ordinary sentences;
``bench/guardrails_quality.py``), each rule fixes a class of miss, never a list of values:

- **cards** (:func:`card_number`): Presidio's pattern knows only 3/4/5[0-5]/6 prefixes, so 2-series
  Mastercard (2221-2720) and Maestro (50, 56-58) were missed, and 19-digit Visa split badly. Any
  12-19 digit run (one separator style) is a card when its issuer prefix is one of the published IIN
  ranges and the Luhn check passes;
- **US phones** (:data:`NANP`): ``phonenumbers`` refuses numbers whose area code is unassigned, and an
  extension (``x123``) or a ``001-`` prefix loses the match. A North American number *shape*
  (area and exchange codes 2-9, separators, optional ``+1``/``001``/``1-`` and ``x``/``ext``) is
  a phone number whether or not the area code is assigned today;
- **context words** (:func:`context_hits`) are matched as whole words before *or after* a value:
  Presidio's lists hold short words ("us" for passports, "lic" for licences) that, as substrings,
  matched "use" and "applicant" and raised 9-digit numbers to passports and licences, and "... as my
  social security number" comes after the number;
- **names** (:func:`cued_names`, :func:`plausible_name`): spaCy's small model misses names in plain
  sentences ("Dear Maureen Walker,", "I spoke with Juul Wolters about..."). A run of capitalized
  words right after a cue (a greeting, a title, "my name is", a verb of speaking or meeting) or right
  before one ("... said") is a name unless spaCy calls that span something else (an organisation, a
  product, a date). spaCy's own PERSON findings with digits or colons (an IPv6 group, "Batch 7099")
  are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# -- cards --------------------------------------------------------------------------------------

CARD_CANDIDATE = r"\b\d(?:[ -]?\d){11,18}\b"
"""12 to 19 digits, optionally grouped; the issuer prefix and the checksum decide (below)."""

_IIN: list[tuple[str, str, tuple[int, ...]]] = [
    # (low, high) prefix bounds of the same length, and the lengths the network issues.
    ("4", "4", (13, 16, 19)),                     # Visa
    ("51", "55", (16,)), ("2221", "2720", (16,)),  # Mastercard
    ("34", "34", (15,)), ("37", "37", (15,)),      # American Express
    ("6011", "6011", (16, 17, 18, 19)), ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),                # Discover
    ("35", "35", (16, 17, 18, 19)),                # JCB (3528-3589 issued; the rest of 35 reserved)
    ("300", "305", (14, 15, 16, 17, 18, 19)), ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (14, 15, 16, 17, 18, 19)),        # Diners Club
    ("50", "50", tuple(range(12, 20))), ("56", "69", tuple(range(12, 20))),  # Maestro
    ("62", "62", (16, 17, 18, 19)),                # UnionPay
    ("2200", "2204", (16, 17, 18, 19)),            # Mir
]


def luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_number(text: str) -> bool:
    """A card number: one separator style at most, a published issuer range, a valid checksum."""
    if "-" in text and " " in text:
        return False
    digits = re.sub(r"[ -]", "", text)
    if not 12 <= len(digits) <= 19 or not luhn(digits):
        return False
    return any(lo <= digits[:len(lo)] <= hi and len(digits) in lengths for lo, hi, lengths in _IIN)


# -- phones -------------------------------------------------------------------------------------

NANP = (r"(?<![\w+])(?:(?:\+1|001)[-. ]?|1[-. ])?(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[-. ])[2-9]\d{2}[-. ]"
        r"\d{4}(?:\s?(?:x|ext\.?|extension)\s?\d{1,5})?(?![\w-])")
"""A North American number as people write it: separators required (a bare 10-digit run is left to
``phonenumbers``), optional country prefix and extension."""
NANP_SCORE = 0.6
PHONE_CONTEXT = ["phone", "telephone", "cell", "mobile", "call", "text", "dial", "reach", "contact",
                 "fax", "tel"]
"""Not "number": it is everyone's context word ("social security number", "card number"), and a
phone number that only "number" precedes would outscore the SSN it is."""


# -- context ------------------------------------------------------------------------------------

BEFORE, AFTER = 48, 32


def context_hits(text: str, start: int, end: int, words: Iterable[str]) -> bool:
    """Is one of ``words`` a whole word (a plural too) in the window before or after a finding?"""
    around = (text[max(0, start - BEFORE):start] + " \x00 " + text[end:end + AFTER]).lower()
    return any(re.search(rf"(?<![a-z0-9]){re.escape(w)}(?:s|es)?(?![a-z0-9])", around)
               for w in (w.strip().lower() for w in words) if w)


# -- names --------------------------------------------------------------------------------------

_PARTICLE = r"(?:van|von|der|den|de|da|das|do|dos|di|del|della|la|le|du|ten|ter|bin|al|y)"
_WORD = r"[A-Z\u00c0-\u00d6\u00d8-\u00de][a-z\u00df-\u00ff]+(?:['\u2019-][A-Z]?[a-z\u00df-\u00ff]+)*"
NAME = rf"{_WORD}(?:\s+(?:{_PARTICLE}\s+)?{_WORD}){{0,3}}"
_TITLE = (r"(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame|Madam|Herr|Frau|Mme|Mlle|M|Sig|Sig\.ra|Sra|Sr|"
          r"Dott|Ing|Fr|Rev)\.?")
_CUE_BEFORE = (
    r"(?:\b(?i:dear|hi|hello|hey|thanks(?: again)?,|thank you,|regards,|"
    r"cheers,|best,|sincerely,|name is|this is|i am|i'm|call me|"
    r"(?:met|meet|meeting|spoke|speak|talked|talk|chatted|emailed|called|phoned|texted|visited|"
    r"thanked|hired|fired|invited|introduced|interviewed|contacted|paid|asked|ask|tell|told|"
    r"remind|reminded|forward(?: (?:this|it))?|send(?: (?:this|it|the \w+))?|sent(?: (?:this|it|the "
    r"\w+))?|give(?: (?:this|it))?|gave(?: (?:this|it))?|signed|written|approved|reviewed|"
    r"authored|prepared|according|married|cc|attn|attention|landlord|tenant|manager|colleague|"
    r"client|customer|patient|doctor|lawyer|boss|wife|husband|son|daughter|mother|father|friend|"
    r"neighbou?r)(?: (?:with|to|by|for|from|on|up))?,?)\s+|(?<![\w.])" + _TITLE + r"\s+)"
)
_CUE_AFTER = (r"(?=,?\s+(?:said|says|wrote|writes|asked|told|called|thinks|mentioned|agreed|"
              r"approved|signed|replied|confirmed|will|would|from|has|had|is|was|joined|left|"
              r"sent|emailed|wants|needs)\b)")
CUED_BEFORE = re.compile(rf"{_CUE_BEFORE}(?:{_TITLE}\s+)?(?P<name>{NAME})")
CUED_AFTER = re.compile(rf"(?:^|(?<=[.!?]\s)|(?<=\n))(?P<name>{_WORD}(?:\s+(?:{_PARTICLE}\s+)?"
                        rf"{_WORD}){{1,3}}){_CUE_AFTER}")
_IS_PARTICLE = re.compile(_PARTICLE)
NAME_RULE_SCORE = 0.6
"""Below spaCy's 0.85 (spaCy's label wins where both speak), above the default ``min_score``."""

_NOT_NAMES = frozenset({
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january",
    "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "today", "tomorrow", "yesterday", "team", "everyone", "all", "support",
    "sales", "it", "hr", "customer", "service", "desk", "office", "department", "group", "company",
    "inc", "ltd", "llc", "gmbh", "corp", "bank", "university", "hospital", "street", "avenue",
    "road", "god", "sir", "madam", "mr", "mrs", "ms", "dr",
})


def cued_names(text: str, stop_words: frozenset[str] | set[str]) -> Iterator[tuple[int, int]]:
    """Spans of capitalized runs that a cue marks as a person's name (trailing words that are not
    names, "Dear Maria Monday", are dropped; a run with a non-name in it is no name)."""
    for pattern in (CUED_BEFORE, CUED_AFTER):
        for m in pattern.finditer(text):
            start, end = m.span("name")
            words = [(w.start() + start, w.end() + start, w.group().lower())
                     for w in re.finditer(r"\S+", text[start:end])]
            while words and (words[-1][2] in _NOT_NAMES or words[-1][2] in stop_words):
                words.pop()
            if words and not any((w in _NOT_NAMES or w in stop_words) and not _IS_PARTICLE.fullmatch(w)
                                 for _, _, w in words):
                yield words[0][0], words[-1][1]


_NAMELIKE = re.compile(r"[^\d:@/\\_=<>#%]+")


def plausible_name(span: str) -> bool:
    """spaCy calls some codes names (an IPv6 group, "Batch 7099", "A9630"): a name has no digits."""
    return bool(_NAMELIKE.fullmatch(span)) and any(c.isalpha() for c in span)
