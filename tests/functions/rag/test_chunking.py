"""Chunks by tokens with overlap, along headings and sentences."""

from __future__ import annotations

import itertools

from functions.rag.chunking import chunk_sections, sentences
from functions.rag.parsing import Section


def words(text: str) -> int:
    return len(text.split())


def test_sentences_split_on_ends_and_lines() -> None:
    assert sentences("One. Two? Three!\nFour: five") == ["One.", "Two?", "Three!", "Four:", "five"]


def test_chunks_respect_size_and_overlap() -> None:
    text = " ".join(f"Sentence number {i} has six words." for i in range(40))
    chunks = chunk_sections([Section("", text)], size=30, overlap=12, count=words)
    assert len(chunks) > 5
    assert all(words(c.text) <= 30 for c in chunks)
    for a, b in itertools.pairwise(chunks):  # each chunk starts with the previous one's tail
        assert b.text.split(".")[0] in a.text
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert "Sentence number 39" in chunks[-1].text


def test_chunks_never_cross_headings() -> None:
    chunks = chunk_sections([Section("A", "alpha one. alpha two."), Section("B", "beta.")],
                            size=100, overlap=10, count=words)
    assert [(c.heading, c.text) for c in chunks] == [("A", "alpha one. alpha two."), ("B", "beta.")]
    assert chunks[1].embed_text == "B\nbeta."


def test_a_long_sentence_is_split_between_words() -> None:
    chunks = chunk_sections([Section("", " ".join(["word"] * 100))], size=20, overlap=0, count=words)
    assert all(words(c.text) <= 20 for c in chunks)
    assert sum(words(c.text) for c in chunks) == 100
