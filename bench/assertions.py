"""What every benchmark checks about what it measured: a row named "cache miss" was a miss, a row
named "gateway over the mock" was answered by the mock, and so on. A benchmark whose requests were
not what its rows name fails loudly (:func:`run_main`: a message and exit status 2), rather than
printing numbers of something else (as ``bench/overhead.py`` once did, timing cache hits).

Used by every benchmark under ``bench/`` that has a gateway row; one module, no copies.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Callable, Mapping
from itertools import count

import httpx

EXIT_MISMATCH = 2


class BenchMismatch(AssertionError):
    """A request was not what the benchmark row it is counted in says it is."""


def expect_headers(r: httpx.Response, expected: Mapping[str, str], what: str) -> None:
    """Raise :class:`BenchMismatch` unless each expected header has the expected value (a value
    of ``""`` means: the header must be absent)."""
    wrong = {h: r.headers.get(h) for h, v in expected.items() if (r.headers.get(h) or "") != v}
    if wrong:
        got = ", ".join(f"{h}: {v!r}" for h, v in wrong.items())
        want = ", ".join(f"{h}: {v!r}" for h, v in expected.items() if h in wrong)
        raise BenchMismatch(f"{what}: expected {want}, got {got} (HTTP {r.status_code}, "
                            f"{r.request.method} {r.request.url})")


def miss(backend: str) -> dict[str, str]:
    """Headers of a gateway answer that ran the model behind ``backend`` (a cache miss)."""
    return {"x-cache": "miss", "x-llmp-backend": backend, "x-llmp-cache": ""}


def hit(how: str = "exact") -> dict[str, str]:
    """Headers of a gateway answer replayed from the response cache."""
    return {"x-cache": "hit", "x-llmp-backend": "cache", "x-llmp-cache": how}


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise BenchMismatch(message)


_LETTERS = string.ascii_lowercase


def letter_tag(n: int, width: int = 6) -> str:
    """``n`` written in letters (``aaaaab`` ...): unique text per request without digits or hex,
    which the PII detectors would take for numbers, ids or keys."""
    out = []
    for _ in range(width):
        n, r = divmod(n, 26)
        out.append(_LETTERS[r])
    if n:
        raise ValueError("letter tag too short")
    return "".join(reversed(out))


class Tags:
    """Unique letter tags for a run: a random prefix (so that runs against the same Redis never
    meet) and a counter."""

    def __init__(self) -> None:
        import secrets

        self.prefix = "".join(secrets.choice(_LETTERS) for _ in range(4))
        self._n = count()

    def next(self) -> str:
        return self.prefix + letter_tag(next(self._n))


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.M)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the Prometheus samples called ``name`` whose labels include ``labels``."""
    total = 0.0
    for m in _SAMPLE.finditer(text):
        if m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def gateway_metric(base_url: str, name: str, **labels: str) -> float:
    """One counter of a running gateway (``GET /metrics``)."""
    r = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False)
    r.raise_for_status()
    return metric(r.text, name, **labels)


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; a :class:`BenchMismatch` ends it with a clear message and exit
    status 2 instead of a table."""
    try:
        main()
    except BenchMismatch as e:
        print(f"\nBENCHMARK INVALID: {e}\nNo numbers are reported: the requests were not what "
              "the rows name.", file=sys.stderr, flush=True)
        sys.exit(EXIT_MISMATCH)
