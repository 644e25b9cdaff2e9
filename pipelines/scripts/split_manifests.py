"""Split a rendered overlay (``kubectl kustomize aks/overlays/ENV``) into the GGUF server Deployments,
which the app pipeline rolls out as a canary, and everything else, which it applies directly.

    python pipelines/scripts/split_manifests.py rendered.yaml out/   # out/gguf.yaml, out/platform.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

COMPONENT = "gguf-server"


def is_gguf_deployment(doc: dict[str, Any]) -> bool:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    return doc.get("kind") == "Deployment" and labels.get("app.kubernetes.io/component") == COMPONENT


def split(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    gguf = [d for d in docs if is_gguf_deployment(d)]
    rest = [d for d in docs if not is_gguf_deployment(d)]
    if not gguf:
        raise SystemExit("no GGUF server Deployment in the rendered manifests")
    return gguf, rest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rendered", type=Path)
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args(argv)
    gguf, rest = split(args.rendered.read_text())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "gguf.yaml").write_text(yaml.safe_dump_all(gguf, sort_keys=False))
    (args.out_dir / "platform.yaml").write_text(yaml.safe_dump_all(rest, sort_keys=False))
    print(f"{len(gguf)} GGUF Deployment(s), {len(rest)} other objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
