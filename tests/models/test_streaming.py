from collections.abc import AsyncIterator

import pytest
from starlette.requests import ClientDisconnect

from models.streaming import ClosingStreamingResponse


async def test_cleanup_runs_when_the_client_is_gone_before_the_first_byte() -> None:
    closed: list[bool] = []
    started: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"data: x\n\n"

    async def on_close() -> None:
        closed.append(True)

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        raise OSError("client went away")

    response = ClosingStreamingResponse(body(), on_close=on_close)
    with pytest.raises(ClientDisconnect):  # what Starlette makes of a failed send
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)  # type: ignore[arg-type]
    assert closed == [True]
    assert not started  # the body never ran: only on_close could clean up
