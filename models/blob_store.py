"""GGUF models in Azure Blob Storage: the layout, publishing, the pointer of each alias, downloads.

Layout in the models container (see docs/models.md):

- ``<alias>/versions/<version>.gguf``: immutable versions, each with blob metadata ``sha256`` and
  ``size`` (and optional llama.cpp load parameters ``n_ctx``, ``chat_template_b64``);
- ``<alias>/manifest.json``: the alias pointer: the version in service and the history (for rollback);
- ``<alias>/model.gguf``: the in-place way: overwrite this blob (detected by its ETag).

Whichever pointer was written last, the manifest or the in-place blob, names the version in service, so
both ways an operator will try work, and the last write wins.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
IN_PLACE = "model.gguf"
CHUNK = 8 * 1024 * 1024

# Azurite's documented development account (public, fixed; only valid against the emulator).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


def azurite_connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};")


class BlobSettings(BaseSettings):
    """Where the models live (``LLMP_BLOB_*``): a connection string (Azurite, or keys where Entra auth
    is not possible) or an account URL used with ``DefaultAzureCredential`` (workload or managed
    identity)."""

    model_config = SettingsConfigDict(env_prefix="LLMP_BLOB_", extra="ignore", frozen=True)

    connection_string: str | None = None
    account_url: str | None = None
    container: str = "models"
    timeout_s: float = Field(30.0, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.account_url)


class BlobUnavailable(Exception):
    """Blob Storage could not be reached or refused the request."""


class PointerMoved(BlobUnavailable):
    """The in-place blob was overwritten during the download: the next poll takes the new one."""


class VerificationFailed(Exception):
    """A downloaded file is not the file its metadata describes (size or SHA-256)."""


class ResumeFailed(VerificationFailed):
    """A download resumed from a kept ``.part`` did not verify (the kept head may be bad)."""


class DiskFull(Exception):
    """Not enough free space in the model cache for a download."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    alias: str
    version: str
    blob: str
    sha256: str | None
    size: int
    n_ctx: int | None = None
    chat_template: str | None = None
    published_at: str | None = None
    etag: str | None = None
    """ETag of the pointer (manifest or in-place blob) that named this version."""


class Manifest(BaseModel):
    alias: str
    current: dict[str, Any]
    history: list[dict[str, Any]] = Field(default_factory=list)


def new_version_name(sha256: str) -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + sha256[:12]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


@dataclass
class DownloadStats:
    bytes: int = 0
    seconds: float = 0.0


@dataclass
class ModelStore:
    """The models container, through the async Azure SDK. Build with :meth:`from_settings`."""

    container: Any  # azure.storage.blob.aio.ContainerClient
    credential: Any = None
    stats: DownloadStats = field(default_factory=DownloadStats)

    @classmethod
    def from_settings(cls, s: BlobSettings) -> ModelStore:
        from azure.storage.blob.aio import ContainerClient, ExponentialRetry

        # The SDK's default retry waits 15 s before its first retry; the watcher has its own loop.
        kw: dict[str, Any] = {"connection_timeout": s.timeout_s, "read_timeout": s.timeout_s,
                              "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2,
                                                               retry_total=2)}
        if s.connection_string:
            return cls(ContainerClient.from_connection_string(s.connection_string, s.container, **kw))
        if not s.account_url:
            raise BlobUnavailable("neither LLMP_BLOB_CONNECTION_STRING nor LLMP_BLOB_ACCOUNT_URL is set")
        from azure.identity.aio import DefaultAzureCredential

        cred = DefaultAzureCredential()
        return cls(ContainerClient(s.account_url, s.container, credential=cred, **kw), cred)

    async def aclose(self) -> None:
        await self.container.close()
        if self.credential is not None:
            await self.credential.close()

    async def ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self._call(self.container.create_container())

    async def _call(self, aw: Any) -> Any:
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            return await aw
        except (ResourceNotFoundError, ResourceExistsError):
            raise
        except ResourceModifiedError as e:
            raise PointerMoved("the blob changed during the download") from e
        except (TimeoutError, ServiceRequestError, ServiceResponseError, HttpResponseError, OSError) as e:
            raise BlobUnavailable(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e

    # -- reading the pointer -----------------------------------------------------------------
    async def current(self, alias: str) -> ModelVersion | None:
        """The version in service for an alias: from the newer of its manifest and in-place blob."""
        from azure.core.exceptions import ResourceNotFoundError

        manifest_props = inplace_props = None
        with contextlib.suppress(ResourceNotFoundError):
            manifest_props = await self._call(
                self.container.get_blob_client(f"{alias}/{MANIFEST}").get_blob_properties())
        with contextlib.suppress(ResourceNotFoundError):
            inplace_props = await self._call(
                self.container.get_blob_client(f"{alias}/{IN_PLACE}").get_blob_properties())
        if inplace_props is not None and (manifest_props is None
                                          or _written(inplace_props) > _written(manifest_props)):
            return _from_inplace(alias, inplace_props)
        if manifest_props is None:
            return None
        manifest = await self.manifest(alias)
        if manifest is None:
            return None
        return replace(_version(alias, manifest.current), etag=manifest_props.etag)

    async def manifest(self, alias: str) -> Manifest | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            stream = await self._call(
                self.container.get_blob_client(f"{alias}/{MANIFEST}").download_blob())
            return Manifest.model_validate(orjson.loads(await self._call(stream.readall())))
        except ResourceNotFoundError:
            return None

    async def aliases(self) -> list[str]:
        names: set[str] = set()
        try:
            async for item in self.container.walk_blobs(delimiter="/"):
                names.add(item.name.rstrip("/"))
        except Exception as e:
            raise BlobUnavailable(f"{type(e).__name__}: {e}") from e
        return sorted(names)

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, alias: str, path: Path, *, in_place: bool = False,
                      n_ctx: int | None = None, chat_template: str | None = None,
                      progress: Callable[[int], None] | None = None) -> ModelVersion:
        sha = await asyncio.to_thread(file_sha256, path)
        size = path.stat().st_size
        version = new_version_name(sha)
        meta = {"sha256": sha, "size": str(size), "version": version, "written_at": _now()}
        if n_ctx:
            meta["n_ctx"] = str(n_ctx)
        if chat_template:  # header values cannot hold newlines: base64 in metadata
            meta["chat_template_b64"] = base64.b64encode(chat_template.encode()).decode()
        await self.ensure_container()
        blob = f"{alias}/{IN_PLACE}" if in_place else f"{alias}/versions/{version}.gguf"
        async def hook(done: int, total: int | None) -> None:  # the async SDK awaits its hook
            if progress is not None:
                progress(done)

        with path.open("rb") as f:
            await self._call(self.container.get_blob_client(blob).upload_blob(
                f, length=size, overwrite=True, metadata=meta, max_concurrency=4,
                progress_hook=hook))
        mv = ModelVersion(alias, version, blob, sha, size, n_ctx, chat_template,
                          datetime.now(UTC).isoformat())
        if not in_place:
            await self._point(alias, mv)
        return mv

    async def _point(self, alias: str, mv: ModelVersion, *, history: list[dict[str, Any]] | None = None
                     ) -> None:
        old = await self.manifest(alias)
        entry = {k: v for k, v in asdict(mv).items() if k not in ("alias", "etag")}
        hist = history if history is not None else ([*old.history, old.current] if old else [])
        body = Manifest(alias=alias, current=entry, history=hist[-20:])
        await self._call(self.container.get_blob_client(f"{alias}/{MANIFEST}").upload_blob(
            orjson.dumps(body.model_dump(), option=orjson.OPT_INDENT_2), overwrite=True,
            metadata={"written_at": _now()}))

    async def rollback(self, alias: str) -> ModelVersion:
        """Point the alias back at the version before the current one."""
        m = await self.manifest(alias)
        cur = await self.current(alias)
        if m is not None and cur is not None and _is_inplace(cur):
            # an in-place overwrite is newer than the manifest: its predecessor is the manifest's
            await self._point(alias, _version(alias, m.current), history=m.history)
            return _version(alias, m.current)
        if m is None or not m.history:
            raise LookupError(f"{alias} has no earlier version to roll back to")
        previous = m.history[-1]
        await self._point(alias, _version(alias, previous), history=m.history[:-1])
        return _version(alias, previous)

    # -- downloading ------------------------------------------------------------------------
    async def download(self, mv: ModelVersion, dest: Path, *, min_free_bytes: int = 0) -> Path:
        """Download to ``dest`` (chunked, resumable from ``dest.part``), verify size and SHA-256,
        then rename into place atomically. An existing ``dest`` is trusted: only verified files are
        ever renamed to it. Processes sharing the cache take turns (a lock file per version); a
        resumed download that fails verification is retried once from the start."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = await asyncio.to_thread(_lock, dest.with_suffix(dest.suffix + ".lock"))
        try:
            if dest.exists():
                return dest
            part = dest.with_suffix(dest.suffix + ".part")
            try:
                return await self._download(mv, dest, part, min_free_bytes)
            except ResumeFailed:  # the kept head was bad, not the blob: once more from zero
                return await self._download(mv, dest, part, min_free_bytes)
        finally:
            lock.close()  # closing the file releases the lock

    async def _download(self, mv: ModelVersion, dest: Path, part: Path, min_free_bytes: int
                        ) -> Path:
        have = part.stat().st_size if part.exists() else 0
        resumed = have > 0
        if have > mv.size:
            part.unlink()
            have, resumed = 0, False
        free = shutil.disk_usage(dest.parent).free
        if free - (mv.size - have) < min_free_bytes:
            raise DiskFull(f"{mv.size - have} bytes needed, {free} free, {min_free_bytes} kept free")
        client = self.container.get_blob_client(mv.blob)
        started, last_log = time.monotonic(), 0.0
        # The SHA-256 is computed as the bytes arrive (a resumed file's head is hashed first), so
        # verification costs no second pass over the file.
        digest = await asyncio.to_thread(_hash_prefix, part, have)
        try:
            with part.open("ab") as f:

                def write(data: bytes) -> None:
                    f.write(data)
                    digest.update(data)

                while have < mv.size:
                    length = min(CHUNK * 4, mv.size - have)
                    stream = await self._call(client.download_blob(
                        offset=have, length=length, max_concurrency=4,
                        **({"etag": mv.etag, "match_condition": _if_match()}
                           if _is_inplace(mv) and mv.etag else {})))
                    data = await self._call(stream.readall())
                    if not data:
                        break
                    await asyncio.to_thread(write, data)
                    have += len(data)
                    self.stats.bytes += len(data)
                    if time.monotonic() - last_log > 2:
                        last_log = time.monotonic()
                        log.info("downloading model", extra={
                            "alias": mv.alias, "version": mv.version, "bytes": have,
                            "total": mv.size})
        finally:
            self.stats.seconds += time.monotonic() - started
        size = part.stat().st_size
        if size != mv.size:
            part.unlink(missing_ok=True)
            raise VerificationFailed(f"size {size} != {mv.size} (truncated upload or download)")
        if mv.sha256:
            sha = digest.hexdigest()
            if sha != mv.sha256:
                part.unlink(missing_ok=True)
                if resumed:
                    raise ResumeFailed("resumed file did not verify")
                raise VerificationFailed(f"sha256 {sha[:12]}… != {mv.sha256[:12]}…")
        else:
            log.warning("model has no sha256 metadata; only its size was checked",
                        extra={"alias": mv.alias, "version": mv.version})
        os.replace(part, dest)
        return dest


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _written(props: Any) -> tuple[Any, str]:
    """When a pointer was written: Last-Modified (1 s resolution), then our microsecond stamp, so
    two writes in the same second still order (a blob written by another tool has no stamp)."""
    return props.last_modified, (props.metadata or {}).get("written_at", "")


def _lock(path: Path) -> Any:
    f = path.open("a")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _hash_prefix(path: Path, length: int) -> Any:
    h = hashlib.sha256()
    if length:
        with path.open("rb") as f:
            remaining = length
            while remaining and (block := f.read(min(CHUNK, remaining))):
                h.update(block)
                remaining -= len(block)
    return h


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


def _is_inplace(mv: ModelVersion) -> bool:
    return mv.blob.endswith("/" + IN_PLACE)


def _version(alias: str, d: dict[str, Any]) -> ModelVersion:
    return ModelVersion(alias=alias, version=d["version"], blob=d["blob"], sha256=d.get("sha256"),
                        size=int(d["size"]), n_ctx=d.get("n_ctx"), chat_template=d.get("chat_template"),
                        published_at=d.get("published_at"))


def _from_inplace(alias: str, props: Any) -> ModelVersion:
    meta = props.metadata or {}
    etag = str(props.etag).strip('"')
    sha = meta.get("sha256")
    version = meta.get("version") or ("inplace-" + (sha[:12] if sha else etag[-12:]))
    return ModelVersion(alias=alias, version=version, blob=f"{alias}/{IN_PLACE}", sha256=sha,
                        size=int(props.size), n_ctx=int(meta["n_ctx"]) if meta.get("n_ctx") else None,
                        chat_template=(base64.b64decode(meta["chat_template_b64"]).decode()
                                       if meta.get("chat_template_b64") else None),
                        published_at=props.last_modified.isoformat(), etag=props.etag)
