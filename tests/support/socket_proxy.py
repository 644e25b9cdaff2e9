"""A Unix-socket forwarder that a test can cut: "the database went down" for everything connected
through it, without stopping the real server other tests share (pgserver listens on a Unix socket:
``.s.PGSQL.5432`` in the directory named by the URL's ``host``)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit


class SocketProxy:
    def __init__(self, target: str, listen: str) -> None:
        self.target, self.path = target, listen
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(listen)
        self.listener.listen(16)
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._cut = True
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._socks.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


@contextlib.contextmanager
def postgres_proxy(url: str, folder: Path) -> Iterator[tuple[str, SocketProxy]]:
    """A URL for the same pgserver database through a proxy in ``folder``, and the proxy."""
    parts = urlsplit(url)
    host = parse_qs(parts.query)["host"][0]
    proxy = SocketProxy(f"{host}/.s.PGSQL.5432", str(folder / ".s.PGSQL.5432"))
    try:
        yield urlunsplit(parts._replace(query=f"host={folder}")), proxy
    finally:
        proxy.close()
