import pytest
from pydantic import ValidationError

from functions.settings import GatewaySettings


def test_reads_plain_database_and_redis_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db")
    monkeypatch.setenv("REDIS_URL", "redis://r")
    monkeypatch.setenv("LLMP_MAX_BODY_BYTES", "123")
    s = GatewaySettings()
    assert (s.database_url, s.redis_url, s.max_body_bytes) == ("postgresql://db", "redis://r", 123)


def test_azure_mode_refuses_local_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL, REDIS_URL must be set"):
        GatewaySettings(environment="azure")


def test_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(max_body_bytes=0)
