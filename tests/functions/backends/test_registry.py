import httpx

from functions.backends import BACKEND_TYPES, build_backend
from functions.backends.embedding import EmbeddingBackend
from functions.backends.openai_compat import LlamaCppBackend, VllmBackend
from models.catalog import BackendSpec


async def test_each_tier_has_its_implementation() -> None:
    assert set(BACKEND_TYPES) == {"gguf", "vllm", "embedding"}
    spec = BackendSpec(name="x", url="http://127.0.0.1:1", served_model="m")  # type: ignore[arg-type]
    async with httpx.AsyncClient() as c:
        assert isinstance(build_backend("gguf", spec, c, 1), LlamaCppBackend)
        vllm = build_backend("vllm", spec, c, 1)
        assert isinstance(vllm, VllmBackend)
        assert vllm.served_model == "m"
        assert isinstance(build_backend("embedding", spec, c, 1), EmbeddingBackend)
