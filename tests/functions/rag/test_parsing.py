"""Parsing: text, Markdown, HTML, PDF; unsupported and unreadable files."""

from __future__ import annotations

import pytest

from functions.rag.errors import UnreadableDocument, UnsupportedDocument
from functions.rag.parsing import Section, kind_of, normalize, parse
from tests.support.pdf import make_pdf


def test_markdown_sections_follow_headings() -> None:
    doc = parse("guide.md", b"# Guide\nintro\n\n## Install\nrun   make\n\n## Use\n\n\n\nrun it\n")
    assert doc.title == "Guide"
    assert doc.sections == (Section("Guide", "intro"), Section("Install", "run make"),
                            Section("Use", "run it"))


def test_html_drops_scripts_and_keeps_headings() -> None:
    html = (b"<html><head><title>Policies</title><style>p{}</style></head><body>"
            b"<h1>Travel</h1><p>Book <b>trains</b>.</p><script>evil()</script>"
            b"<ul><li>under 4 hours</li></ul><h2>Hotels</h2><p>Up to 120 EUR.</p></body></html>")
    doc = parse("p.html", html)
    assert doc.title == "Policies"
    assert doc.sections == (Section("Travel", "Book trains.\nunder 4 hours"),
                            Section("Hotels", "Up to 120 EUR."))


def test_pdf_pages_become_sections() -> None:
    doc = parse("r.pdf", make_pdf([["Line one (a)."], ["Page two."]], title="Report"))
    assert doc.title == "Report"
    assert doc.sections == (Section("page 1", "Line one (a)."), Section("page 2", "Page two."))


def test_text_is_normalized() -> None:
    assert parse("n.txt", "\ufeffa\u0000b\r\n\tc  d".encode()).sections == (Section("", "ab\nc d"),)
    assert normalize("e\u0301") == "\u00e9"


def test_kind_by_extension_then_media_type() -> None:
    assert kind_of("x.MD", None) == "markdown"
    assert kind_of("upload", "application/pdf; q=1") == "pdf"
    with pytest.raises(UnsupportedDocument) as e:
        kind_of("sheet.xlsx", "application/octet-stream")
    assert e.value.status == 400


@pytest.mark.parametrize(("name", "data"), [
    ("bad.pdf", b"%PDF-1.4 truncated"),
    ("bad.pdf", make_pdf([["x"]])[:150]),
    ("latin.txt", "caf\u00e9".encode("latin-1")),
    ("empty.md", b"#   \n\n"),
])
def test_unreadable_is_422(name: str, data: bytes) -> None:
    with pytest.raises(UnreadableDocument) as e:
        parse(name, data)
    assert e.value.status == 422
