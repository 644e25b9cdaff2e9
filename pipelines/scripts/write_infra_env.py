"""Write ``aks/overlays/ENV/infra.env`` from ``terraform output -json`` (the ``k8s_values`` output).

    terraform -chdir=terraform/environments/dev output -json > tf.json
    python pipelines/scripts/write_infra_env.py tf.json aks/overlays/dev/infra.env --image-tag 1234

Every key already in the file must get a value from Terraform, and no value may stay ``unset``: a
deployment with a missing identity or address would fail later and less clearly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

UNSET = "unset"
IMAGE = "llmp-gguf-server"
EMBEDDING_IMAGE = "llmp-embedding-server"


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def values(outputs: dict[str, dict[str, object]], image_tag: str) -> dict[str, str]:
    try:
        k8s = outputs["k8s_values"]["value"]
    except KeyError:
        raise SystemExit("terraform output has no k8s_values (apply the environment first)") from None
    assert isinstance(k8s, dict)
    vals = {k: str(v) for k, v in k8s.items()}
    vals["GGUF_IMAGE"] = f"{vals['ACR_LOGIN_SERVER']}/{IMAGE}:{image_tag}"
    vals["EMBEDDING_IMAGE"] = f"{vals['ACR_LOGIN_SERVER']}/{EMBEDDING_IMAGE}:{image_tag}"
    return vals


def render(keys: list[str], vals: dict[str, str], header: str) -> str:
    missing = [k for k in keys if k not in vals]
    if missing:
        raise SystemExit(f"terraform output k8s_values lacks {', '.join(missing)}")
    unset = [k for k in keys if UNSET in vals[k]]
    if unset:
        raise SystemExit(f"values still unset: {', '.join(unset)}")
    return header + "".join(f"{k}={vals[k]}\n" for k in keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outputs", type=Path, help="terraform output -json")
    ap.add_argument("env_file", type=Path, help="aks/overlays/ENV/infra.env (rewritten)")
    ap.add_argument("--image-tag", required=True, help="tag of the GGUF server image in ACR")
    args = ap.parse_args(argv)
    keys = list(read_env(args.env_file))
    vals = values(json.loads(args.outputs.read_text()), args.image_tag)
    header = "# Written by pipelines/scripts/write_infra_env.py from terraform output k8s_values.\n"
    args.env_file.write_text(render(keys, vals, header))
    print(f"wrote {len(keys)} values to {args.env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
