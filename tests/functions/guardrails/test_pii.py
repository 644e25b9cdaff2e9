import asyncio

import pytest

from functions.guardrails.pii import PresidioAnalyzer
from tests.functions.guardrails.conftest import labeled

ROWS = labeled("pii.jsonl")


@pytest.mark.parametrize("row", ROWS, ids=[r["text"][:40] for r in ROWS])
def test_labeled_examples(analyzer: PresidioAnalyzer, row: dict[str, object]) -> None:
    spans = asyncio.run(analyzer.analyze([str(row["text"])]))[0]
    found = {s.entity for s in spans if s.score >= 0.4 and s.entity != "LOCATION"}
    assert found == set(row["entities"])  # type: ignore[arg-type]


def test_pattern_only_mode_skips_names(analyzer: PresidioAnalyzer) -> None:
    text = "John Smith wrote to john@contoso.com"
    with_ner, patterns = asyncio.run(analyzer.analyze([text])), asyncio.run(
        analyzer.analyze([text], ner=False))
    assert {s.entity for s in with_ner[0]} >= {"PERSON", "EMAIL_ADDRESS"}
    assert {s.entity for s in patterns[0]} == {"EMAIL_ADDRESS"}


def test_email_check_works_offline(analyzer: PresidioAnalyzer) -> None:
    """tldextract's snapshot is used: an unknown TLD is not an address, a real one is."""
    spans = asyncio.run(analyzer.analyze(["a@b.notatld and c@d.co.uk"]))[0]
    assert [s.entity for s in spans if s.entity == "EMAIL_ADDRESS"] == ["EMAIL_ADDRESS"]


def test_results_are_cached_by_hash(analyzer: PresidioAnalyzer) -> None:
    text = "Call Anna at 425-555-0100 about the unique case 81723."
    first = asyncio.run(analyzer.analyze([text]))
    assert asyncio.run(analyzer.analyze([text])) == first
    assert all(isinstance(k, bytes) and text not in str(k) for k in analyzer._cache)


def test_ner_runs_only_where_a_name_could_be() -> None:
    from functions.guardrails.pii import candidate_segments

    stop = {"the", "we", "please"}
    text = "The numbers look fine. We met Ana Silva in Lisbon. the end. Maria called. Please wait."
    segs = [text[a:b].strip() for a, b in candidate_segments(text, stop)]
    assert segs == ["We met Ana Silva in Lisbon.", "Maria called."]


def test_a_name_in_a_long_prompt_is_found(analyzer: PresidioAnalyzer) -> None:
    filler = "The review covered revenue and hiring for the next release. " * 100
    text = filler + "Send it to Olivia Brown today. " + filler
    spans = asyncio.run(analyzer.analyze([text]))[0]
    assert [text[s.start:s.end] for s in spans if s.entity == "PERSON"] == ["Olivia Brown"]
