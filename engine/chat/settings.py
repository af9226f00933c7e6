"""`AI_QUANT_CHAT_*`: the optional Telegram command bot (off unless AI_QUANT_CHAT_ENABLE=1).

The bot token is the alerts' `AI_QUANT_TELEGRAM_BOT_TOKEN` (one bot per operator) and the API
base URL the alerts' `AI_QUANT_TELEGRAM_API_URL` (tests point it at a loopback fake). Enabling
the bot without a token, without an allow-list, or without `AI_QUANT_KILL_SWITCH_FILE` (the only
channel /pause, /resume and /halt act through) is a configuration error at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.alerts.alerting import AlertSettings
from engine.config.env import ConfigError, env_bool, env_float, env_list, env_opt_str
from engine.config.secret import Secret
from engine.risk.kill_switch import ENV_KILL_SWITCH_FILE


def _chat_ids(env: Mapping[str, str]) -> frozenset[int]:
    ids: set[int] = set()
    for item in env_list("AI_QUANT_CHAT_ALLOWED_IDS", env):
        try:
            ids.add(int(item))
        except ValueError as exc:
            raise ConfigError(f"AI_QUANT_CHAT_ALLOWED_IDS has {item!r}, not an integer chat id") from exc
    return frozenset(ids)


@dataclass(frozen=True, slots=True)
class ChatSettings:
    enabled: bool
    token: Secret | None = None
    api_url: str = "https://api.telegram.org"
    allowed_chat_ids: frozenset[int] = frozenset()
    kill_file: Path | None = None
    poll_timeout_secs: float = 25.0
    max_age_secs: float = 120.0  # older messages (sent while the daemon was down) are ignored

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ChatSettings:
        """Parse the chat variables; raise ConfigError naming what is missing or malformed."""
        if not env_bool("AI_QUANT_CHAT_ENABLE", False, env):
            return cls(enabled=False)
        alerts = AlertSettings.from_env(env)  # the bot's token and API URL are the alerts' (one parser)
        if alerts.telegram_bot_token is None:
            raise ConfigError("AI_QUANT_CHAT_ENABLE=1 needs AI_QUANT_TELEGRAM_BOT_TOKEN")
        allowed = _chat_ids(env)
        if not allowed:
            raise ConfigError("AI_QUANT_CHAT_ENABLE=1 needs AI_QUANT_CHAT_ALLOWED_IDS (comma-separated ids)")
        kill_file = env_opt_str(ENV_KILL_SWITCH_FILE, env)
        if kill_file is None:
            raise ConfigError(f"AI_QUANT_CHAT_ENABLE=1 needs {ENV_KILL_SWITCH_FILE} (/pause, /halt write it)")
        return cls(
            enabled=True,
            token=alerts.telegram_bot_token,
            api_url=alerts.telegram_api_url,
            allowed_chat_ids=allowed,
            kill_file=Path(kill_file).expanduser(),
            poll_timeout_secs=env_float("AI_QUANT_CHAT_POLL_SECS", 25.0, env, lo=0.0, hi=50.0),
            max_age_secs=env_float("AI_QUANT_CHAT_MAX_AGE_SECS", 120.0, env, lo=5.0, hi=86_400.0),
        )
