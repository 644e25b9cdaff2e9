"""A streaming response that always runs its cleanup, shared by the gateway and the model servers.

Starlette runs a body iterator's ``finally`` only if it started iterating it. When the client is gone
before the first byte (``send`` fails on the headers), it never starts, and whatever the handler opened
before returning (an upstream stream, a model lease, a decoding slot) would be held until it ends on
its own. This response runs ``on_close`` once the response is over, however it ended.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    def __init__(self, content: AsyncIterable[bytes], *, on_close: Callable[[], Awaitable[None]],
                 media_type: str = "text/event-stream",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()
