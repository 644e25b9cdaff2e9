"""Shared helpers of the deployment checks: repository paths, parsed Terraform, rendered overlays."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
AKS = ROOT / "aks"
PIPELINES = ROOT / "pipelines"
ENVIRONMENTS = ("dev", "prod")


def clean(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of string literals (keys too) and adds bookkeeping keys: drop
    them, so "\"x\"" reads "x" and an expression stays "${...}"."""
    if isinstance(value, dict):
        return {unquote(k): clean(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return unquote(value)


@functools.cache
def parse_tf(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return clean(hcl2.load(f))  # type: ignore[no-any-return]


def tf_dir(path: Path) -> dict[str, list[Any]]:
    """All top-level blocks of a Terraform directory, merged by block type."""
    merged: dict[str, list[Any]] = {}
    for f in sorted(path.glob("*.tf")):
        for key, blocks in parse_tf(f).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def tfvars(env: str) -> dict[str, Any]:
    return parse_tf(TERRAFORM / "environments" / env / "terraform.tfvars")


def resources(path: Path, rtype: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for block in tf_dir(path).get("resource", []):
        for name, body in block.get(rtype, {}).items():
            out[name] = body
    return out


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and ${} around expressions."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH (the deployment checks need it)")
    return path


@functools.cache
def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run([tool("kubectl"), "kustomize", str(AKS / "overlays" / overlay)],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"{kind}/{name} not rendered")
