"""Which Redis the process uses: `AI_QUANT_REDIS_URL` when set, else a private embedded server.

The embedded server (engine.runtime.redis_server.EmbeddedRedis) runs on loopback with append-only
persistence under `<AI_QUANT_STATE_DIR>/redis`, so a restart of the engine finds the candle cache
where it left it and does not redo the backfill. It is our child process and is stopped on exit.
Child processes (the sidecar) receive the chosen URL through `AI_QUANT_REDIS_URL`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from cluster.redis_layout import DEFAULT_PREFIX, RedisLayout
from engine.config.env import ConfigError, env_opt_str, env_str
from engine.config.shared import env_state_dir
from engine.runtime.redis_server import EmbeddedRedis

log = logging.getLogger(__name__)

REDIS_URL_ENV = "AI_QUANT_REDIS_URL"


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    url: str | None
    state_dir: Path
    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedisSettings:
        """Read AI_QUANT_REDIS_URL, AI_QUANT_STATE_DIR and AI_QUANT_REDIS_PREFIX."""
        url = env_opt_str(REDIS_URL_ENV, env)
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"{REDIS_URL_ENV}={url!r} is not a redis://, rediss:// or unix:// URL")
        prefix = env_str("AI_QUANT_REDIS_PREFIX", DEFAULT_PREFIX, env)
        if any(ch in prefix for ch in " \t:"):
            raise ConfigError(f"AI_QUANT_REDIS_PREFIX={prefix!r} must not contain spaces or ':'")
        return cls(url=url, state_dir=env_state_dir(env), prefix=prefix)


def make_client(url: str, **overrides: Any) -> redis.Redis:
    """A client with short timeouts, so a dead server shows up as an error within seconds."""
    options: dict[str, Any] = {
        "socket_timeout": 2.0,
        "socket_connect_timeout": 1.0,
        "health_check_interval": 10,
    }
    options.update(overrides)
    return redis.Redis.from_url(url, **options)


class RedisRuntime:
    """Start (if needed) and hand out the process's Redis; a context manager."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self.layout = RedisLayout(settings.prefix)
        self._embedded: EmbeddedRedis | None = None
        self._url: str | None = settings.url

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("RedisRuntime not started")
        return self._url

    def start(self) -> str:
        """Return the URL to use, starting the embedded server when no URL is configured."""
        if self._url is not None:
            return self._url
        self._embedded = EmbeddedRedis(self.settings.state_dir / "redis", appendonly=True)
        self._url = self._embedded.start()
        log.info("using embedded redis", extra={"url": self._url})
        return self._url

    def client(self, **overrides: Any) -> redis.Redis:
        return make_client(self.url, **overrides)

    def child_env(self) -> dict[str, str]:
        """Environment entries a child process needs to use the same Redis."""
        return {REDIS_URL_ENV: self.url, "AI_QUANT_REDIS_PREFIX": self.settings.prefix}

    def stop(self) -> None:
        """Stop the embedded server if we started one (a configured URL is left alone)."""
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
            self._url = self.settings.url

    def __enter__(self) -> RedisRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
