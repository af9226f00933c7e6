"""`AI_QUANT_WEB_*`: whether the daemon serves its read-only page, on which address and port.

Loopback only unless the operator names another host: the page has no authentication, and what
it shows (positions, PnL) is private. Port 0 asks the kernel for a free port; the daemon logs the
URL it got.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config.env import ConfigError, env_bool, env_float, env_int, env_str

DEFAULT_PORT = 8765


@dataclass(frozen=True, slots=True)
class WebSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    poll_secs: float = 1.5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebSettings:
        """Parse AI_QUANT_WEB_ENABLE / _HOST / _PORT / _POLL_SECS; raise ConfigError naming a bad one."""
        host = env_str("AI_QUANT_WEB_HOST", "127.0.0.1", env)
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ConfigError(f"AI_QUANT_WEB_HOST={host!r} is not an IP address (e.g. 127.0.0.1)") from exc
        return cls(
            enabled=env_bool("AI_QUANT_WEB_ENABLE", True, env),
            host=host,
            port=env_int("AI_QUANT_WEB_PORT", DEFAULT_PORT, env, lo=0, hi=65_535),
            poll_secs=env_float("AI_QUANT_WEB_POLL_SECS", 1.5, env, lo=0.5, hi=60.0),
        )
