"""engine.runtime.redis_runtime: a configured URL is used as is; otherwise a private server with AOF."""

from __future__ import annotations

import os
from pathlib import Path

import redis

from engine.runtime.redis_runtime import RedisRuntime, RedisSettings
from engine.runtime.redis_server import EmbeddedRedis


def test_configured_url_is_used_and_nothing_started(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    settings = RedisSettings.from_env(
        {"AI_QUANT_REDIS_URL": redis_server.url, "AI_QUANT_STATE_DIR": str(tmp_path)}
    )
    with RedisRuntime(settings) as runtime:
        assert runtime.url == redis_server.url and not runtime.embedded
        assert runtime.client().ping()
    assert not (tmp_path / "redis").exists()


def test_unset_url_starts_private_server_with_aof_under_state_dir(tmp_path: Path) -> None:
    settings = RedisSettings.from_env({"AI_QUANT_STATE_DIR": str(tmp_path), "AI_QUANT_REDIS_PREFIX": "e1"})
    runtime = RedisRuntime(settings)
    url = runtime.start()
    assert runtime.embedded and url.startswith("redis://127.0.0.1:")
    client = runtime.client()
    assert client.config_get("appendonly")["appendonly"] == "yes"
    pid = int(client.info("server")["process_id"])
    assert runtime.child_env() == {"AI_QUANT_REDIS_URL": url, "AI_QUANT_REDIS_PREFIX": "e1"}
    client.set("k", "v")
    client.close()
    runtime.stop()
    assert (tmp_path / "redis").is_dir()
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        assert state == "Z"
    except (ProcessLookupError, FileNotFoundError):
        pass
    again = RedisRuntime(settings)
    again.start()
    assert redis.Redis.from_url(again.url).get("k") == b"v"  # the AOF kept it: no backfill redo
    again.stop()
