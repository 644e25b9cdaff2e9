"""Model backends: one small interface, one implementation per kind of server, and a registry."""

from functions.backends.base import Backend, Completion, UpstreamStream
from functions.backends.registry import BACKEND_TYPES, build_backend

__all__ = ["BACKEND_TYPES", "Backend", "Completion", "UpstreamStream", "build_backend"]
