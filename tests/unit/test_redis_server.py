"""engine.runtime.redis_server starts a real server, persists through the AOF, and leaves no orphan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from engine.runtime.redis_server import EmbeddedRedis, find_redis_server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_embedded_redis_serves_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    pid = server.pid
    assert pid is not None and url.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(url)
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
    server.stop()
    assert not _alive(pid)


def test_embedded_redis_restart_keeps_data_via_aof(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.rpush("candles", "a", "b")
        client.execute_command("BGREWRITEAOF")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.lrange("candles", 0, -1) == [b"a", b"b"]
        client.close()


def test_start_returns_only_after_the_aof_is_loaded(tmp_path: Path) -> None:
    """A restart on a big append-only file: INFO answers while Redis loads it, other commands fail
    with BusyLoadingError; start() must not return before the load is over (a daemon restarted
    after kill -9 died on its first command, found by bench.soak_crash)."""
    with EmbeddedRedis(tmp_path, appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        for chunk in range(40):
            pipe = client.pipeline(transaction=False)
            for n in range(5_000):
                pipe.rpush(f"candles:{chunk % 8}", f"{chunk}:{n}:" + "x" * 40)
            pipe.execute()
        client.close()
        server.stop()
        server.start()
        client = redis.Redis.from_url(server.url)
        assert client.xgroup_create("account", "pump", id="0", mkstream=True)  # not BusyLoadingError
        assert sum(client.llen(f"candles:{k}") for k in range(8)) == 200_000
        client.close()


def test_find_redis_server_returns_an_executable() -> None:
    path = find_redis_server()
    assert os.access(path, os.X_OK)


def test_embedded_redis_refuses_a_taken_port(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "a") as first:
        second = EmbeddedRedis(tmp_path / "b", port=first.port, startup_timeout_secs=3)
        with pytest.raises(Exception, match="redis-server"):
            second.start()


def test_embedded_redis_accepts_a_relative_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with EmbeddedRedis("state/redis") as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
    assert (tmp_path / "state" / "redis" / "redis.log").is_file()
