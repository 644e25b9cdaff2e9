import pytest

from functions.gateway import Gateway
from functions.settings import GatewaySettings


def test_construction_builds_nothing() -> None:
    gw = Gateway(GatewaySettings(database_url="postgresql://x", redis_url="redis://x"))
    assert not {"http", "redis", "db", "dispatcher", "catalog"} & set(gw.__dict__)


async def test_clients_are_built_on_first_use_and_closed() -> None:
    gw = Gateway(GatewaySettings(database_url="postgresql://x", redis_url="redis://x"))
    assert gw.dispatcher.model("smollm2-135m").tier == "gguf"
    assert "http" in gw.__dict__
    await gw.aclose()
    assert gw.http.is_closed


def test_missing_urls_say_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    gw = Gateway(GatewaySettings())
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        _ = gw.db
    assert gw.redis is None  # local mode runs without the Redis caches
