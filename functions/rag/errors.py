"""RAG's typed errors; ``functions.errors`` maps them like every other :class:`LlmpError`."""

from __future__ import annotations

from functions.errors import DependencyUnavailable, LlmpError


class UnsupportedDocument(LlmpError):
    """A file type the parser does not read (400)."""

    status, type, code = 400, "invalid_request_error", "unsupported_file_type"


class UnreadableDocument(LlmpError):
    """A supported type whose content cannot be read: a corrupt PDF, no text at all (422)."""

    status, type, code = 422, "invalid_request_error", "unreadable_document"


class RagUnavailable(DependencyUnavailable):
    """Qdrant (or the embedder) cannot serve: 503 for RAG requests only."""

    code = "rag_unavailable"
