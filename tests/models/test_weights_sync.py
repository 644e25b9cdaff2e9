"""Versioned weights folders in Blob (Azurite, the real SDK) and their verified, atomic local sync."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from models.blob_store import BlobSettings, ModelStore, VerificationFailed
from models.weights_sync import CURRENT, WeightsStore, main

pytestmark = pytest.mark.slow  # Azurite


@pytest.fixture
async def store(azurite: str) -> AsyncIterator[WeightsStore]:
    s = WeightsStore(ModelStore.from_settings(
        BlobSettings(connection_string=azurite, container="w" + uuid.uuid4().hex[:10])))
    yield s
    await s.aclose()


def folder(root: Path, tag: str, big: int = 300_000) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(f'{{"tag": "{tag}"}}')
    (root / "model.safetensors").write_bytes(tag.encode() * big)
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "tokenizer.json").write_text(f"tok-{tag}")
    return root


def contents(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


async def test_sync_downloads_verifies_and_points_current(store: WeightsStore, tmp_path: Path) -> None:
    src = folder(tmp_path / "v1", "one")
    wv = await store.publish("big", src)
    assert {f.path for f in wv.files} == {"config.json", "model.safetensors", "tokenizer/tokenizer.json"}
    dest = tmp_path / "cache"
    r = await store.sync("big", dest)
    assert r.downloaded and r.version == wv.version
    assert contents(dest / CURRENT) == contents(src)
    assert (dest / CURRENT).resolve() == (dest / "versions" / wv.version).resolve()
    again = await store.sync("big", dest)  # already complete: nothing downloaded
    assert not again.downloaded and again.version == wv.version


async def test_bad_checksum_leaves_the_old_version_in_place(store: WeightsStore,
                                                           tmp_path: Path) -> None:
    v1 = await store.publish("big", folder(tmp_path / "v1", "one"))
    dest = tmp_path / "cache"
    await store.sync("big", dest)
    v2 = await store.publish("big", folder(tmp_path / "v2", "two"))
    # the blob is overwritten after publishing (same size, other bytes): the list's SHA-256 differs
    await store.container.get_blob_client(f"big/weights/{v2.version}/model.safetensors").upload_blob(
        b"x" * 900_000, overwrite=True)
    with pytest.raises(VerificationFailed, match="sha256"):
        await store.sync("big", dest)
    assert (dest / CURRENT).resolve().name == v1.version
    assert contents(dest / CURRENT) == contents(tmp_path / "v1")
    assert sorted(p.name for p in (dest / "versions").iterdir()) == [v1.version]  # no partial left

    # a truncated file fails on its size, also without touching current
    await store.container.get_blob_client(f"big/weights/{v2.version}/model.safetensors").upload_blob(
        b"two" * 1000, overwrite=True)
    with pytest.raises(VerificationFailed, match="size"):
        await store.sync("big", dest)
    assert (dest / CURRENT).resolve().name == v1.version


async def test_a_reader_never_sees_a_half_written_folder(store: WeightsStore, tmp_path: Path) -> None:
    versions = {"one": folder(tmp_path / "v1", "one", big=2_000_000),
                "two": folder(tmp_path / "v2", "two", big=2_000_000)}
    expected = {tag: contents(p) for tag, p in versions.items()}
    await store.publish("big", versions["one"])
    dest = tmp_path / "cache"
    await store.sync("big", dest)
    await store.publish("big", versions["two"])

    seen: list[str] = []
    bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            d = (dest / CURRENT).resolve()  # what a starting vLLM does: open the folder it names
            got = contents(d)
            tag = next((t for t, c in expected.items() if c == got), None)
            if tag is None:
                bad.append(f"{d.name}: {sorted(got)}")
            else:
                seen.append(tag)

    t = threading.Thread(target=reader)
    t.start()
    try:
        await store.sync("big", dest)
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        t.join(10)
    assert not bad
    assert seen[0] == "one" and seen[-1] == "two"


async def test_pinned_version_rollback_and_pruning(store: WeightsStore, tmp_path: Path) -> None:
    v1 = await store.publish("big", folder(tmp_path / "v1", "one", big=10))
    v2 = await store.publish("big", folder(tmp_path / "v2", "two", big=10))
    v3 = await store.publish("big", folder(tmp_path / "v3", "three", big=10))
    ptr = await store.pointer("big")
    assert ptr is not None and ptr.current == v3.version and ptr.history == [v1.version, v2.version]
    dest = tmp_path / "cache"
    for v in (v1, v2, v3):
        await store.sync("big", dest, version=v.version, keep=2)
    assert sorted(p.name for p in (dest / "versions").iterdir()) == [v2.version, v3.version]
    r = await store.sync("big", dest, version=v1.version, keep=2)  # a pinned rollback
    assert r.downloaded and (dest / CURRENT).resolve().name == v1.version
    assert v1.version in {p.name for p in (dest / "versions").iterdir()}  # current is never pruned
    with pytest.raises(LookupError):
        await store.sync("big", dest, version="nope")


def test_cli_sync(azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMP_BLOB_CONNECTION_STRING", azurite)
    monkeypatch.setenv("LLMP_BLOB_CONTAINER", "c" + uuid.uuid4().hex[:10])
    assert main(["sync", "big", str(tmp_path / "cache")]) == 1  # nothing published yet
    assert main(["publish", "big", str(folder(tmp_path / "v1", "one", big=10))]) == 0
    assert main(["sync", "big", str(tmp_path / "cache")]) == 0
    assert "downloaded" in capsys.readouterr().out
    assert contents(tmp_path / "cache" / CURRENT) == contents(tmp_path / "v1")
