"""What a stream holds back: only a suffix a finding could still extend into."""

import pytest

from functions.guardrails.holdback import continues, plain, release_point
from functions.guardrails.pii import PresidioAnalyzer


@pytest.mark.parametrize(("text", "held"), [
    ("the refund was approved ", ""),
    ("the refund was appro", "appro"),  # the word being written
    ("write to dana.white@cont", "dana.white@cont"),
    ("call 425 555 01", "425 555 01"),  # a number that may go on
    ("call 425-555-0173 ", "425-555-0173 "),
    ("call 425-555-0173 ext ", "425-555-0173 ext "),
    ("card 4111 1111 1111 1111 and", "4111 1111 1111 1111 and"),  # "and" may not be finished
    ("card 4111 1111 1111 1111 and ", ""),  # ended by a word no finding holds
    ("account GB82 WEST 1234 ", "GB82 WEST 1234 "),
    ("signed by Maria Lopez ", "Maria Lopez "),
    ("signed by Maria de la ", "Maria de la "),
    ("hello <PERSON_", "<PERSON_"),
    ("hello <PERSON_1>, ", "<PERSON_1>, "),  # capitalised: a name may follow
    ("Dear Ada, ", "Dear Ada, "),
    ("ok, (", "("),
    ("", ""),
    ("   ", ""),
])
def test_held_suffix(text: str, held: str) -> None:
    assert text[release_point(text, 96):] == held


def test_the_hold_is_capped_at_a_word_boundary() -> None:
    text = "x " + "Name " * 40
    cut = release_point(text, 96)
    assert len(text) - cut <= 96 and text[cut - 1] == " " and text[cut] == "N"


def test_a_word_longer_than_the_cap_is_cut_outside_a_placeholder() -> None:
    text = "a" * 200
    assert release_point(text, 96) == 104
    text = "b" * 100 + "<PERSON_1"
    assert release_point(text, 96) == 13
    assert release_point(text, 5) == 100  # never inside the unfinished placeholder


@pytest.mark.parametrize(("word", "expected"), [
    ("the", False), ("approved,", False), ("Maria", True), ("(425)", True), ("-", True),
    ("WEST", True), ("van", True), ("Ext.", True), ("x", True), ("i", False), ("\u201cMaria", True),
])
def test_continues(word: str, expected: bool) -> None:
    assert continues(word) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("the refund was approved, so it can go ahead ", True),
    ("it's (mostly) done; thanks! ", True),
    ("the day. ", False), ("call 911 ", False), ("ask Maria ", False), ("x@y ", False),
    ("see http ", True), ("see http: ", False), ("de la ", False), ("<p ", False),
])
def test_plain(text: str, expected: bool) -> None:
    assert plain(text) is expected


def test_no_finding_in_plain_text(analyzer: PresidioAnalyzer) -> None:
    """What :func:`plain` lets through without an analysis: the analyzer finds nothing there."""
    import asyncio
    import json
    from pathlib import Path

    rows = [json.loads(x) for x in (Path(__file__).parents[2] / "data" / "pii.jsonl").read_text(
        ).splitlines() if x.strip()]
    runs = []
    for row in rows:
        words = [w for w in row["text"].split() if plain(w + " ")]
        if words:
            runs.append(" ".join(words))
    assert runs
    assert asyncio.run(analyzer.analyze(runs)) == [[] for _ in runs]
