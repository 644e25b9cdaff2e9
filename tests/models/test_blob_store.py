"""The Blob layout, publishing and downloads, against Azurite with the real azure-storage-blob SDK."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from models.blob_store import (
    BlobSettings,
    BlobUnavailable,
    DiskFull,
    ModelStore,
    VerificationFailed,
    azurite_connection_string,
)


@pytest.fixture
async def store(azurite: str) -> AsyncIterator[ModelStore]:
    s = ModelStore.from_settings(BlobSettings(connection_string=azurite,
                                              container="t" + uuid.uuid4().hex[:10]))
    await s.ensure_container()
    yield s
    await s.aclose()


def model_file(tmp_path: Path, content: bytes, name: str = "m.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


async def test_publish_points_the_alias(store: ModelStore, tmp_path: Path) -> None:
    content = b"GGUF" + b"a" * 5000
    mv = await store.publish("cheap", model_file(tmp_path, content), n_ctx=512)
    assert mv.sha256 == hashlib.sha256(content).hexdigest() and mv.size == len(content)
    cur = await store.current("cheap")
    assert cur is not None
    assert (cur.version, cur.blob, cur.n_ctx) == (mv.version, mv.blob, 512)
    assert cur.blob == f"cheap/versions/{mv.version}.gguf"
    assert await store.aliases() == ["cheap"]
    assert await store.current("other") is None


async def test_last_written_pointer_wins(store: ModelStore, tmp_path: Path) -> None:
    v1 = await store.publish("a", model_file(tmp_path, b"one"))
    await asyncio.sleep(1.1)  # Last-Modified has one-second resolution
    inplace = await store.publish("a", model_file(tmp_path, b"two"), in_place=True)
    cur = await store.current("a")
    assert cur is not None and cur.version == inplace.version and cur.blob == "a/model.gguf"
    assert cur.etag
    await asyncio.sleep(1.1)
    v3 = await store.publish("a", model_file(tmp_path, b"three"))
    cur = await store.current("a")
    assert cur is not None and cur.version == v3.version != v1.version


async def test_rollback(store: ModelStore, tmp_path: Path) -> None:
    v1 = await store.publish("r", model_file(tmp_path, b"one"))
    with pytest.raises(LookupError):
        await store.rollback("r")
    v2 = await store.publish("r", model_file(tmp_path, b"two"))
    assert (await store.current("r")).version == v2.version  # type: ignore[union-attr]
    back = await store.rollback("r")
    assert back.version == v1.version
    assert (await store.current("r")).version == v1.version  # type: ignore[union-attr]


async def test_download_verifies_and_renames(store: ModelStore, tmp_path: Path) -> None:
    content = bytes(range(256)) * 1000
    mv = await store.publish("d", model_file(tmp_path, content))
    dest = tmp_path / "cache" / "d.gguf"
    assert await store.download(mv, dest) == dest
    assert dest.read_bytes() == content
    assert not list(dest.parent.glob("*.part"))


async def test_download_resumes_a_partial_file(store: ModelStore, tmp_path: Path) -> None:
    content = b"x" * 100_000 + b"y" * 100_000
    mv = await store.publish("p", model_file(tmp_path, content))
    dest = tmp_path / "cache" / "p.gguf"
    dest.parent.mkdir()
    dest.with_suffix(".gguf.part").write_bytes(content[:150_000])
    before = store.stats.bytes
    await store.download(mv, dest)
    assert dest.read_bytes() == content
    assert store.stats.bytes - before == 50_000


async def test_sha_mismatch_is_rejected(store: ModelStore, tmp_path: Path) -> None:
    mv = await store.publish("s", model_file(tmp_path, b"real"))
    forged = replace(mv, sha256="0" * 64)
    dest = tmp_path / "c" / "s.gguf"
    with pytest.raises(VerificationFailed, match="sha256"):
        await store.download(forged, dest)
    assert not dest.exists() and not dest.with_suffix(".gguf.part").exists()


async def test_truncated_is_rejected(store: ModelStore, tmp_path: Path) -> None:
    mv = await store.publish("t", model_file(tmp_path, b"short"))
    with pytest.raises(VerificationFailed, match="size"):
        await store.download(replace(mv, size=mv.size + 10), tmp_path / "c" / "t.gguf")


async def test_disk_full_is_refused_before_downloading(store: ModelStore, tmp_path: Path) -> None:
    mv = await store.publish("f", model_file(tmp_path, b"data"))
    with pytest.raises(DiskFull):
        await store.download(mv, tmp_path / "c" / "f.gguf", min_free_bytes=1 << 62)


async def test_unreachable_blob_storage(dead_url: str) -> None:
    port = int(dead_url.rsplit(":", 1)[1])
    store = ModelStore.from_settings(BlobSettings(connection_string=azurite_connection_string(port),
                                                  timeout_s=2))
    with pytest.raises(BlobUnavailable):
        await store.current("x")
    await store.aclose()


def test_settings_need_a_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMP_BLOB_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("LLMP_BLOB_ACCOUNT_URL", raising=False)
    assert not BlobSettings().configured
    with pytest.raises(BlobUnavailable, match="LLMP_BLOB"):
        ModelStore.from_settings(BlobSettings())


async def test_writes_in_the_same_second_still_order(store: ModelStore, tmp_path: Path) -> None:
    await store.publish("q", model_file(tmp_path, b"one"))
    inplace = await store.publish("q", model_file(tmp_path, b"two"), in_place=True)
    assert (await store.current("q")).version == inplace.version  # type: ignore[union-attr]
    again = await store.publish("q", model_file(tmp_path, b"three"))
    assert (await store.current("q")).version == again.version  # type: ignore[union-attr]


async def test_rollback_after_an_in_place_overwrite(store: ModelStore, tmp_path: Path) -> None:
    await store.publish("ri", model_file(tmp_path, b"v1"))
    v2 = await store.publish("ri", model_file(tmp_path, b"v2"))
    await store.publish("ri", model_file(tmp_path, b"v3"), in_place=True)
    back = await store.rollback("ri")
    assert back.version == v2.version  # the version before the in-place one, not before v2
    assert (await store.current("ri")).version == v2.version  # type: ignore[union-attr]


async def test_a_bad_resumed_head_is_downloaded_again(store: ModelStore, tmp_path: Path) -> None:
    content = b"a" * 100_000
    mv = await store.publish("h", model_file(tmp_path, content))
    dest = tmp_path / "cache" / "h.gguf"
    dest.parent.mkdir()
    dest.with_suffix(".gguf.part").write_bytes(b"X" * 50_000)  # a corrupt kept head
    await store.download(mv, dest)
    assert dest.read_bytes() == content


async def test_two_downloaders_sharing_a_cache_take_turns(store: ModelStore, tmp_path: Path,
                                                          azurite: str) -> None:
    content = bytes(range(256)) * 4000
    mv = await store.publish("two", model_file(tmp_path, content))
    other = ModelStore.from_settings(BlobSettings(connection_string=azurite,
                                                  container=store.container.container_name))
    dest = tmp_path / "shared" / "two.gguf"
    try:
        a, b = await asyncio.gather(store.download(mv, dest), other.download(mv, dest))
    finally:
        await other.aclose()
    assert a == b == dest and dest.read_bytes() == content
