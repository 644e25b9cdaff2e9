"""tests/support/hang.py: each misbehaving server fails a real HTTP client the way it says."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.support.hang import hang_server, never_answers, resets, stalls_after_headers

BODY = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True}


def test_never_answers_times_out_the_read_not_the_connect() -> None:
    with hang_server("silent") as hs:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{hs.url}/v1/chat/completions", json=BODY,
                       timeout=httpx.Timeout(0.3, connect=2))
        assert hs.connections == 1 and hs.requests == 1


def test_stalls_after_headers_gives_a_200_and_no_body() -> None:
    with stalls_after_headers() as url, httpx.stream("POST", f"{url}/v1/chat/completions", json=BODY,
                      timeout=httpx.Timeout(0.3, connect=2)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        with pytest.raises(httpx.ReadTimeout):
            next(r.iter_raw())


def test_resets_the_connection() -> None:
    with resets() as url, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=2)


def test_connections_are_counted_and_the_port_is_freed() -> None:
    with never_answers() as url:
        port = int(url.rsplit(":", 1)[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
        for s in socks:
            s.close()
    with pytest.raises(OSError):  # nothing listens once the block has ended
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with hang_server("headers") as hs:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", int(hs.url.rsplit(":", 1)[1])), 2) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
                assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")
        assert (hs.connections, hs.requests) == (2, 2)
