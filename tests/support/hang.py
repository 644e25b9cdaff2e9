"""Backends that fail the way real ones do under trouble, for failover tests and benchmarks: a
loopback TCP server that accepts connections and then

- ``silent``: reads the request and never answers (a hung process, a full accept queue behind a
  proxy, a node that lost its disk);
- ``headers``: answers the status line and headers of a streamed 200 (``text/event-stream``) and
  then stalls before the first byte of the body (a server that hangs after routing the request);
- ``reset``: resets the connection (TCP RST) once the request arrived (a crashed worker).

Real sockets, not a mocked transport: the client's connect, read and pool timeouts all run.

    with never_answers() as url:             # "http://127.0.0.1:PORT"
        ...
    with hang_server("headers") as hs:       # hs.url, hs.connections, hs.requests
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["silent", "headers", "reset"]

STREAM_HEADERS = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                  b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")


@dataclass
class HangServer:
    url: str
    mode: Mode
    connections: int = 0
    """Connections accepted so far."""
    requests: int = 0
    """Connections on which a whole request head (up to the blank line) arrived."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _count(self, *, request: bool) -> None:
        with self._lock:
            if request:
                self.requests += 1
            else:
                self.connections += 1


async def _read_head(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                             ConnectionError):
        await reader.readuntil(b"\r\n\r\n")
        return True
    return False


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    # linger on, timeout 0: close() sends RST instead of FIN
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _serve(hs: HangServer, started: threading.Event, stop: asyncio.Event,
                 bound: list[int]) -> None:
    open_writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hs._count(request=False)
        open_writers.add(writer)
        try:
            if await _read_head(reader):
                hs._count(request=True)
            if hs.mode == "reset":
                _reset(writer)
                return
            if hs.mode == "headers":
                writer.write(STREAM_HEADERS)
                await writer.drain()
            await stop.wait()  # hold the connection open, answer nothing more
        except ConnectionError:
            pass
        finally:
            open_writers.discard(writer)
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    bound.append(server.sockets[0].getsockname()[1])
    started.set()
    async with server:
        await stop.wait()
        server.close()
        for w in list(open_writers):
            w.transport.abort()


@contextlib.contextmanager
def hang_server(mode: Mode = "silent") -> Iterator[HangServer]:
    """A misbehaving server on a free loopback port, run from a thread until the block ends."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    bound: list[int] = []
    hs = HangServer("", mode)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(_serve(hs, started, stop, bound))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"hang-{mode}", daemon=True)
    thread.start()
    started.wait(10)
    if errors or not bound:
        raise RuntimeError(f"hang server did not start: {errors}")
    hs.url = f"http://127.0.0.1:{bound[0]}"
    try:
        yield hs
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@contextlib.contextmanager
def never_answers() -> Iterator[str]:
    """The URL of a server that accepts connections and never answers."""
    with hang_server("silent") as hs:
        yield hs.url


@contextlib.contextmanager
def stalls_after_headers() -> Iterator[str]:
    """The URL of a server that sends a streamed 200's headers, then nothing."""
    with hang_server("headers") as hs:
        yield hs.url


@contextlib.contextmanager
def resets() -> Iterator[str]:
    """The URL of a server that resets each connection once the request arrived."""
    with hang_server("reset") as hs:
        yield hs.url

LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close() sends a reset, as a crashed process's connections do."""


class FreezableProxy:
    """A TCP forwarder in front of a real server that a test can freeze (new and open connections
    stop getting answers: the server "hangs") or kill (every connection reset, the port closed:
    the server "died")."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.frozen = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._socks.append(client)
            if self.frozen.is_set():
                continue  # held, never answered
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.frozen.is_set():  # hold what arrived; send nothing on
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def kill(self) -> None:
        self._listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                s.close()


@contextlib.contextmanager
def freezable_proxy(target_url: str) -> Iterator[FreezableProxy]:
    proxy = FreezableProxy(target_url)
    try:
        yield proxy
    finally:
        proxy.kill()
