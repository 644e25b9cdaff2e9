"""What decoding can fail with; ``status`` is the HTTP status the server answers."""

from __future__ import annotations


class EngineError(Exception):
    status = 500
    param: str | None = None
    code: str | None = None


class ContextTooLong(EngineError):
    status = 400
    code = "context_length_exceeded"


class NotReady(EngineError):
    status = 503


class Overloaded(EngineError):
    status = 503
