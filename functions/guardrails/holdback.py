"""How much of a streamed answer must wait: only what could still become a finding.

A stream's text is released as soon as no finding could cross the release point, whatever the
model writes next. Every recognizer the gateway runs matches either one word (e-mail addresses,
URLs, IP addresses, crypto wallets, licence and passport numbers, placeholders such as
``<PERSON_1>``) or a run of words joined by spaces (phone numbers ``(425) 555 0100``, card numbers
``4111 1111 1111 1111``, SSNs ``536 22 8745``, IBANs ``GB82 WEST 1234 5698 7654 32``, and names and
places found by spaCy NER ``Maria de la Cruz``). A multi-word finding is made of words that hold a
digit, start with a capital letter, are name particles (``de``, ``van``) or phone extensions
(``ext``), or are bare punctuation (``-``, ``(``). So what is held back is:

- the word being written (no whitespace after it yet: ``maria.lo`` may become an address);
- before it, the trailing run of finished words of those kinds (a number that may go on, a run of
  capitalised words that may be a name).

Everything before that run ends with a finished word that no multi-word finding can contain, so no
finding can cross it: it is released at once, word by word. The hold is capped (``cap``, the
``holdback_chars`` setting): a run longer than that is released from its start, as the previous
fixed window did, so a single value longer than the cap could be split.
"""

from __future__ import annotations

import re

from functions.guardrails.masking import safe_cut

PARTICLES = frozenset({
    "al", "bin", "bint", "da", "das", "de", "del", "della", "den", "der", "di", "do", "dos", "du",
    "el", "ibn", "la", "le", "st", "ter", "van", "von", "y", "zu",
})
"""Lowercase words inside names (``Maria de la Cruz``, ``Ludwig van Beethoven``)."""
EXTENSIONS = frozenset({"x", "ext", "extn", "extension"})
"""Words a phone number's extension can follow (``425-555-0100 ext 12``)."""
_TRIM = ".,;:!?\"'()[]{}\u201c\u201d\u2018\u2019"
_PLAIN = re.compile(r"[a-z \n\t,;!?'\"()-]*")


def continues(word: str) -> bool:
    """A finished word that a finding could continue from, through the whitespace after it."""
    first = next((c for c in word if c.isalnum()), None)
    if first is None:  # bare punctuation: "-", "(", "+", "/"
        return True
    if first.isupper() or any(c.isdigit() for c in word):
        return True
    bare = word.strip(_TRIM).lower()
    return bare in PARTICLES or bare in EXTENSIONS


def plain(text: str) -> bool:
    """Lowercase ASCII words, spaces and light punctuation only (no digit, capital, ``@``, ``.``,
    ``:``, ``/``, ``_`` or ``<``): no recognizer matches such text, and (released after a word no
    finding continues from) it cannot be part of a finding; the analysis of such a piece is
    skipped. Names are capitalised: NER is not run on sentences without a capital either
    (:func:`functions.guardrails.pii.candidate_segments`)."""
    return _PLAIN.fullmatch(text) is not None and not any(
        w.strip(_TRIM) in PARTICLES or w.strip(_TRIM) in EXTENSIONS for w in text.split())


def release_point(text: str, cap: int) -> int:
    """The index up to which ``text`` (not yet released) can be released now: the start of the
    held suffix (see the module), or the first word boundary that keeps at most ``cap`` characters
    held (inside a word only for a word longer than ``cap``, never inside a placeholder)."""
    end = len(text)
    i = end
    while i and not text[i - 1].isspace():  # the word being written
        i -= 1
    floor = end - cap
    while i > max(0, floor):
        k = i
        while k and text[k - 1].isspace():
            k -= 1
        j = k
        while j and not text[j - 1].isspace():
            j -= 1
        if k == 0 or not continues(text[j:k]):
            break
        i = j
    if i >= floor:
        return i
    # held more than ``cap``: release up to the first word boundary inside the last ``cap`` chars
    p = floor
    while p < end and not (text[p - 1].isspace() and not text[p].isspace()):
        p += 1
    return p if p < end else safe_cut(text, floor)
