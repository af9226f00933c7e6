"""The daemon's one hook for the operator surfaces: the read-only web page and the chat bot.

`OperatorSurfaces.start(env, db_path, mode)` parses both configs (a bad value is a ConfigError,
exit 2, before any trading), then starts what is enabled. Neither is on a money path: a port that
cannot be bound is logged as an error and the daemon keeps trading without the page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from engine.chat.commands import ChatCommands
from engine.chat.settings import ChatSettings
from engine.chat.telegram import TelegramBot
from engine.enums import Mode
from engine.web.queries import TradingDbReader
from engine.web.server import WebPage
from engine.web.settings import WebSettings

log = logging.getLogger("engine.web")


class OperatorSurfaces:
    """The running page and bot (either may be None); `stop()` ends both."""

    def __init__(self, page: WebPage | None, bot: TelegramBot | None) -> None:
        self.page = page
        self.bot = bot

    @classmethod
    def start(cls, env: Mapping[str, str], db_path: Path, mode: Mode) -> OperatorSurfaces:
        """Parse AI_QUANT_WEB_* and AI_QUANT_CHAT_* and start what is enabled."""
        web = WebSettings.from_env(env)
        chat = ChatSettings.from_env(env)
        reader = TradingDbReader(db_path, mode, env)
        page: WebPage | None = None
        if web.enabled:
            try:
                page = WebPage.start(web, reader)
            except OSError as exc:
                log.error("web page not started host=%s port=%d error=%s", web.host, web.port, exc)
        bot = None
        if chat.enabled and chat.kill_file is not None:
            bot = TelegramBot(chat, ChatCommands(reader, chat.kill_file)).start()
        return cls(page, bot)

    def stop(self) -> None:
        if self.bot is not None:
            self.bot.stop()
        if self.page is not None:
            self.page.stop()
