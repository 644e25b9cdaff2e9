"""Wait until every GGUF server pod of an alias reports a model version on ``/health``.

    python pipelines/scripts/wait_model_version.py --alias smollm2-135m --version 2025...-abc --timeout 900

Pods are found by the label ``llmp.io/alias`` in the namespace; each one's ``/health`` is read from
inside the pod (``kubectl exec``, so the NetworkPolicies that admit only the gateway stay closed).
Exit 0 when all report the version, 1 on timeout (the model pipeline then rolls the alias back).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

Run = Callable[[Sequence[str]], str]

HEALTH = ("python", "-c", "import urllib.request as u; "
          "print(u.urlopen('http://127.0.0.1:8081/health', timeout=5).read().decode())")


def kubectl(args: Sequence[str]) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def pods(run: Run, namespace: str, alias: str) -> list[str]:
    out = run(["get", "pods", "-n", namespace, "-l", f"llmp.io/alias={alias}",
               "--field-selector=status.phase=Running", "-o", "json"])
    items = json.loads(out)["items"]
    return [p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")]


def versions(run: Run, namespace: str, names: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            health = json.loads(run(["exec", "-n", namespace, name, "-c", "gguf-server", "--", *HEALTH]))
            out[name] = health.get("version")
        except (subprocess.SubprocessError, ValueError):
            out[name] = None  # still loading (503) or not reachable yet
    return out


def wait(run: Run, namespace: str, alias: str, version: str, timeout_s: float, poll_s: float = 10.0,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    deadline = clock() + timeout_s
    while True:
        seen = versions(run, namespace, pods(run, namespace, alias))
        behind = {p: v for p, v in seen.items() if v != version}
        print(f"{len(seen) - len(behind)}/{len(seen)} pods serve {version}"
              + (f"; waiting for {behind}" if behind else ""), flush=True)
        if seen and not behind:
            return True
        if clock() >= deadline:
            return False
        sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alias", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--namespace", default="llmp-models")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds")
    args = ap.parse_args(argv)
    if wait(kubectl, args.namespace, args.alias, args.version, args.timeout):
        return 0
    print(f"timed out: not every {args.alias} server serves {args.version}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
