"""Model weights folders (vLLM: safetensors, config, tokenizer) in Azure Blob Storage, versioned, and
their sync to a local folder: verified file by file, swapped in atomically.

Layout in the models container (beside the GGUF layout of ``models/blob_store.py``):

- ``<alias>/weights/<version>/<path>``: the files of one immutable version (blob metadata ``sha256``);
- ``<alias>/weights/<version>.json``: that version's file list (path, size, sha256), written after
  every file: a version without it is not published;
- ``<alias>/weights.json``: the alias pointer: the version in service and the history.

Locally (the vLLM pod's cache volume, or ``.cache/``)::

    <dest>/versions/<version>/   complete, verified versions only (renamed in from a temporary folder)
    <dest>/current -> versions/<version>   swapped by an atomic rename of a new symlink

A reader of ``current`` or of ``versions/<version>`` never sees a half-written folder; a file whose
size or SHA-256 differs from the list fails the sync and leaves ``current`` where it was.

    python -m models.weights_sync publish ALIAS FOLDER       # upload a new version, point at it
    python -m models.weights_sync sync ALIAS DEST [--version V] [--keep N]   # the init container
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
from pydantic import BaseModel, Field

from models.blob_store import (
    CHUNK,
    BlobSettings,
    BlobUnavailable,
    ModelStore,
    VerificationFailed,
    file_sha256,
)

log = logging.getLogger(__name__)

POINTER = "weights.json"
CURRENT = "current"


class WeightsFile(BaseModel):
    path: str
    size: int = Field(ge=0)
    sha256: str = Field(min_length=64, max_length=64)


class WeightsVersion(BaseModel):
    alias: str
    version: str
    files: list[WeightsFile]
    published_at: str


class WeightsPointer(BaseModel):
    alias: str
    current: str
    history: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SyncResult:
    version: str
    path: Path
    downloaded: bool
    """False when the version was already complete locally."""


def _safe_relpath(p: str) -> str:
    pure = PurePosixPath(p)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise VerificationFailed(f"unsafe path in the weights list: {p!r}")
    return str(pure)


def folder_files(folder: Path) -> list[WeightsFile]:
    out = []
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.name.startswith(".llmp-"):
            out.append(WeightsFile(path=f.relative_to(folder).as_posix(), size=f.stat().st_size,
                                   sha256=file_sha256(f)))
    return out


def new_version_name(files: list[WeightsFile]) -> str:
    h = hashlib.sha256(orjson.dumps([f.model_dump() for f in files])).hexdigest()
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + h[:12]


class WeightsStore:
    """Versioned weights folders in the models container (the ``ModelStore`` client underneath)."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.container = store.container

    @classmethod
    def from_settings(cls, s: BlobSettings) -> WeightsStore:
        return cls(ModelStore.from_settings(s))

    async def aclose(self) -> None:
        await self.store.aclose()

    async def _read_json(self, name: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            stream = await self.store._call(self.container.get_blob_client(name).download_blob())
            return orjson.loads(await self.store._call(stream.readall()))
        except ResourceNotFoundError:
            return None

    async def pointer(self, alias: str) -> WeightsPointer | None:
        data = await self._read_json(f"{alias}/{POINTER}")
        return None if data is None else WeightsPointer.model_validate(data)

    async def version(self, alias: str, version: str) -> WeightsVersion | None:
        data = await self._read_json(f"{alias}/weights/{version}.json")
        return None if data is None else WeightsVersion.model_validate(data)

    async def publish(self, alias: str, folder: Path, *, point: bool = True) -> WeightsVersion:
        """Upload every file of ``folder`` as a new version, then its list, then (``point``) the
        pointer: a reader following the pointer only ever finds complete versions."""
        files = await asyncio.to_thread(folder_files, folder)
        if not files:
            raise ValueError(f"{folder} has no files")
        version = new_version_name(files)
        await self.store.ensure_container()
        for f in files:
            with (folder / f.path).open("rb") as data:
                await self.store._call(
                    self.container.get_blob_client(f"{alias}/weights/{version}/{f.path}").upload_blob(
                        data, length=f.size, overwrite=True, max_concurrency=4,
                        metadata={"sha256": f.sha256, "size": str(f.size)}))
        wv = WeightsVersion(alias=alias, version=version, files=files,
                            published_at=datetime.now(UTC).isoformat())
        await self._write_json(f"{alias}/weights/{version}.json", wv.model_dump())
        if point:
            await self.point(alias, version)
        return wv

    async def point(self, alias: str, version: str) -> None:
        if await self.version(alias, version) is None:
            raise LookupError(f"{alias} has no published weights version {version}")
        old = await self.pointer(alias)
        history = [*old.history, old.current][-20:] if old and old.current != version else (
            old.history if old else [])
        await self._write_json(f"{alias}/{POINTER}",
                               WeightsPointer(alias=alias, current=version, history=history).model_dump())

    async def _write_json(self, name: str, body: Any) -> None:
        await self.store._call(self.container.get_blob_client(name).upload_blob(
            orjson.dumps(body, option=orjson.OPT_INDENT_2), overwrite=True))

    async def sync(self, alias: str, dest: Path, version: str | None = None, keep: int = 2
                   ) -> SyncResult:
        """Make ``dest/versions/<version>`` a verified copy of the version (the pointer's when
        ``version`` is None) and point ``dest/current`` at it; keep ``keep`` versions."""
        if version is None:
            ptr = await self.pointer(alias)
            if ptr is None:
                raise LookupError(f"{alias} has no {POINTER} in Blob: publish a weights folder first")
            version = ptr.current
        wv = await self.version(alias, version)
        if wv is None:
            raise LookupError(f"{alias} has no published weights version {version}")
        versions = dest / "versions"
        final = versions / version
        downloaded = False
        if not final.is_dir():
            await self._download(wv, versions)
            downloaded = True
        swap_current(dest, version)
        await asyncio.to_thread(prune, dest, keep)
        log.info("weights in place", extra={"alias": alias, "version": version,
                                            "downloaded": downloaded})
        return SyncResult(version, final, downloaded)

    async def _download(self, wv: WeightsVersion, versions: Path) -> None:
        versions.mkdir(parents=True, exist_ok=True)
        tmp = versions / f".{wv.version}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for f in wv.files:
                target = tmp / _safe_relpath(f.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                await self._download_file(f"{wv.alias}/weights/{wv.version}/{f.path}", f, target)
            try:
                os.rename(tmp, versions / wv.version)  # atomic; the folder appears whole
            except OSError:
                if not (versions / wv.version).is_dir():  # not "another pod got there first"
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    async def _download_file(self, blob: str, f: WeightsFile, target: Path) -> None:
        client = self.container.get_blob_client(blob)
        digest, have = hashlib.sha256(), 0
        with target.open("wb") as out:
            while have < f.size:
                length = min(CHUNK * 4, f.size - have)
                stream = await self.store._call(client.download_blob(offset=have, length=length,
                                                                     max_concurrency=4))
                data = await self.store._call(stream.readall())
                if not data:
                    break
                await asyncio.to_thread(out.write, data)
                digest.update(data)
                have += len(data)
        if have != f.size:
            raise VerificationFailed(f"{f.path}: size {have} != {f.size}")
        if digest.hexdigest() != f.sha256:
            raise VerificationFailed(f"{f.path}: sha256 {digest.hexdigest()[:12]}… != {f.sha256[:12]}…")


def swap_current(dest: Path, version: str) -> None:
    """Point ``dest/current`` at ``versions/<version>`` with one rename (readers see old or new)."""
    link = dest / CURRENT
    tmp = dest / f".{CURRENT}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(Path("versions") / version)
    os.replace(tmp, link)


def prune(dest: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` versions (never the current one), and stale partials."""
    versions = dest / "versions"
    current = (dest / CURRENT).resolve().name if (dest / CURRENT).exists() else None
    done = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name, reverse=True)
    for p in done[max(1, keep):]:
        if p.name != current:
            shutil.rmtree(p, ignore_errors=True)


async def _main(args: argparse.Namespace) -> int:
    store = WeightsStore.from_settings(BlobSettings())
    try:
        if args.cmd == "publish":
            wv = await store.publish(args.alias, Path(args.folder))
            print(f"published {args.folder} as {args.alias} weights {wv.version}")
        else:
            r = await store.sync(args.alias, Path(args.dest), args.version or None, args.keep)
            print(f"{args.alias} weights {r.version} at {r.path}"
                  f" ({'downloaded' if r.downloaded else 'already here'})")
        return 0
    finally:
        await store.aclose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.weights_sync")
    sub = p.add_subparsers(dest="cmd", required=True)
    pub = sub.add_parser("publish")
    pub.add_argument("alias")
    pub.add_argument("folder")
    s = sub.add_parser("sync")
    s.add_argument("alias")
    s.add_argument("dest")
    s.add_argument("--version", default=os.environ.get("LLMP_WEIGHTS_VERSION"))
    s.add_argument("--keep", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        return asyncio.run(_main(args))
    except (BlobUnavailable, VerificationFailed, LookupError) as e:
        print(f"weights sync failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
