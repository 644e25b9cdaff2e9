"""Parse an upload into a title and sections (heading, text): plain text, Markdown, HTML, PDF.

Every parser returns normalized text (Unicode NFC, collapsed whitespace, no control characters);
sections carry the heading they sit under, which the chunker keeps with each chunk.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath

from functions.rag.errors import UnreadableDocument, UnsupportedDocument


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    text: str


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    title: str
    sections: tuple[Section, ...]


KINDS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
         ".html": "html", ".htm": "html", ".pdf": "pdf"}
MEDIA_TYPES = {"text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown",
               "text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANKS = re.compile(r"\n{3,}")
_NO_SPACE_BEFORE = re.compile(r" ([.,;:!?)])")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def kind_of(filename: str, media_type: str | None) -> str:
    """The parser for a file: by extension, else by media type; unsupported is a 400."""
    kind = KINDS.get(PurePosixPath(filename).suffix.lower())
    if kind is None and media_type:
        kind = MEDIA_TYPES.get(media_type.split(";")[0].strip().lower())
    if kind is None:
        raise UnsupportedDocument(
            f"Unsupported file type for '{filename}': send text (.txt), Markdown (.md), HTML (.html) "
            "or PDF (.pdf).", param="filename")
    return kind


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def parse(filename: str, data: bytes, media_type: str | None = None) -> ParsedDocument:
    kind = kind_of(filename, media_type)
    stem = PurePosixPath(filename).stem or filename
    if kind == "pdf":
        doc = _pdf(data, stem)
    else:
        text = _decode(data, filename)
        doc = {"text": _text, "markdown": _markdown, "html": _html}[kind](text, stem)
    sections = tuple(s for s in doc.sections if s.text)
    if not sections:
        raise UnreadableDocument(f"'{filename}' contains no text to index.", param="file")
    return ParsedDocument(doc.title, sections)


def _decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableDocument(f"'{filename}' is not valid UTF-8 text.", param="file") from None


def _text(text: str, stem: str) -> ParsedDocument:
    return ParsedDocument(stem, (Section("", normalize(text)),))


def _markdown(text: str, stem: str) -> ParsedDocument:
    sections: list[Section] = []
    heading, title = "", ""
    lines: list[str] = []
    for line in text.splitlines():
        m = _MD_HEADING.match(line)
        if m:
            sections.append(Section(heading, normalize("\n".join(lines))))
            heading, lines = m.group(2).strip(), []
            title = title or (heading if len(m.group(1)) == 1 else "")
        else:
            lines.append(line)
    sections.append(Section(heading, normalize("\n".join(lines))))
    return ParsedDocument(title or stem, tuple(sections))


def _html(text: str, stem: str) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name != "head":
            tag.decompose()
    title_tag = soup.find("title")
    title = normalize(title_tag.get_text(" ")) if title_tag else ""
    if title_tag:
        title_tag.decompose()
    sections: list[Section] = []
    heading = ""
    parts: list[str] = []
    body = soup.body or soup
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "th",
                             "blockquote", "dt", "dd"]):
        if el.find_parent(["p", "li", "pre", "td", "th", "blockquote", "dt", "dd"]) is not None:
            continue  # nested in a block already taken whole
        text_ = _NO_SPACE_BEFORE.sub(r"\1", normalize(el.get_text(" ")))
        if el.name in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            sections.append(Section(heading, "\n".join(parts)))
            heading, parts = text_, []
            title = title or (text_ if el.name == "h1" else "")
        elif text_:
            parts.append(text_)
    sections.append(Section(heading, "\n".join(parts)))
    if not any(s.text for s in sections):  # no block elements: take the whole text
        sections = [Section("", normalize(body.get_text("\n")))]
    return ParsedDocument(title or stem, tuple(sections))


def _pdf(data: bytes, stem: str) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        pages = [normalize(p.extract_text() or "") for p in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as e:
        raise UnreadableDocument(f"The PDF could not be read: {type(e).__name__}.",
                                 param="file") from None
    title = normalize(str(meta_title)) if meta_title else stem
    return ParsedDocument(title, tuple(Section(f"page {i}", t) for i, t in enumerate(pages, 1)))
