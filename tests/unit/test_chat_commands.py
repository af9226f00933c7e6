"""Telegram chat commands against a loopback fake of the Bot API (a real HTTP server in a thread).

The bot answers allow-listed chats only, acts on /pause, /resume and /halt by writing the kill
file that engine/risk/kill_switch.py reads, ignores (and logs) strangers, and never logs its token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.chat.commands import ChatCommands
from engine.chat.settings import ChatSettings
from engine.chat.telegram import TelegramBot
from engine.config.env import ConfigError
from engine.config.secret import Secret
from engine.enums import KillCommand, Mode
from engine.execution.broker import OrderIntent
from engine.execution.fill_model import FillModelParams
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.risk.kill_switch import KillSwitchSources
from engine.web.queries import TradingDbReader
from strategies.enums import EntryKind, PositionSide, TradeAction

TOKEN = "123456:SECRET-bot-token-never-logged"
OPERATOR = 111
STRANGER = 999


class FakeBotApi:
    """getUpdates (long poll, short wait) and sendMessage for one token; records what was sent."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.max_offset = 0
        self.fail_next = 0
        self._cond = threading.Condition()
        self._next_id = 1
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                prefix = f"/bot{TOKEN}/"
                if not self.path.startswith(prefix):
                    return self._json(404, {"ok": False, "description": "Not Found"})
                if api.fail_next:
                    api.fail_next -= 1
                    return self._json(500, {"ok": False})
                method = self.path[len(prefix) :]
                if method == "getUpdates":
                    return self._json(200, {"ok": True, "result": api.take(int(body.get("offset", 0)))})
                if method == "sendMessage":
                    with api._cond:
                        api.sent.append(body)
                        api._cond.notify_all()
                    return self._json(200, {"ok": True, "result": {"message_id": len(api.sent)}})
                return self._json(404, {"ok": False})

            def _json(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def push(self, chat_id: int, text: str, date: float | None = None) -> int:
        with self._cond:
            update_id = self._next_id
            self._next_id += 1
            message = {"message_id": update_id, "date": int(date or time.time()), "chat": {"id": chat_id}}
            self.updates.append({"update_id": update_id, "message": {**message, "text": text}})
            self._cond.notify_all()
            return update_id

    def take(self, offset: int) -> list[dict[str, Any]]:
        with self._cond:
            self.max_offset = max(self.max_offset, offset)
            self._cond.notify_all()
            ready = [u for u in self.updates if u["update_id"] >= offset]
            if not ready:
                self._cond.wait(0.3)
                ready = [u for u in self.updates if u["update_id"] >= offset]
            return ready

    def wait(self, condition, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; sent={self.sent} max_offset={self.max_offset}"
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    fake = FakeBotApi()
    yield fake
    fake.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "trading_paper.db"
    store = TradeStore.open(path, Mode.PAPER)
    broker = PaperBroker(store, FillModelParams(slippage_bps=0.0), 10_000.0, pre_send_check=allow_all)
    intent = OrderIntent(
        symbol="ETH", action=TradeAction.OPEN, side=PositionSide.LONG, reference_price=50.0,
        event_ms=1_700_000_000_000, reason=EntryKind.STANDARD, size_coins=4.0,
    )  # fmt: skip
    broker.execute(intent, 1_700_000_000_000)
    store.close()
    return path


@pytest.fixture
def bot_for(api, db, tmp_path):
    started: list[TelegramBot] = []
    kill = tmp_path / "ops" / "kill_switch"

    def start() -> tuple[TelegramBot, Path]:
        settings = ChatSettings(
            enabled=True, token=Secret(TOKEN), api_url=api.url, allowed_chat_ids=frozenset({OPERATOR}),
            kill_file=kill, poll_timeout_secs=0.0,
        )  # fmt: skip
        bot = TelegramBot(settings, ChatCommands(TradingDbReader(db, Mode.PAPER, {}), kill)).start()
        started.append(bot)
        return bot, kill

    yield start
    for bot in started:
        bot.stop()


def _file_command(kill: Path) -> tuple[KillCommand | None, str]:
    reading = KillSwitchSources(env={}, file_path=kill).poll()[1]
    return reading.command, reading.token


def _replies(api: FakeBotApi, chat_id: int) -> list[str]:
    return [m["text"] for m in api.sent if m["chat_id"] == chat_id]


def test_allow_listed_chat_gets_answers_and_pause_resume_halt_drive_the_kill_file(api, bot_for, caplog):
    caplog.set_level(logging.DEBUG)
    _bot, kill = bot_for()
    for text in ("/status", "/positions", "/profit@my_bot", "/pause"):
        api.push(OPERATOR, text)
    api.wait(lambda: len(_replies(api, OPERATOR)) == 4)
    status, positions, profit, pause = _replies(api, OPERATOR)
    assert "[paper] balance $9,999.91" in status and "open positions 1" in status
    assert "ETH LONG 4 @ 50 ($200.00" in positions
    assert "realised PnL $0.00" in profit and "fees $0.09" in profit
    assert "close_only" in pause
    assert _file_command(kill) == (KillCommand.CLOSE_ONLY, "close_only")

    api.push(OPERATOR, "/halt")
    api.wait(lambda: len(_replies(api, OPERATOR)) == 5)
    assert _file_command(kill) == (KillCommand.HALT_ALL, "halt_all")
    api.push(OPERATOR, "/resume")
    api.wait(lambda: len(_replies(api, OPERATOR)) == 6)
    assert _file_command(kill) == (KillCommand.CLEAR, "clear")
    api.push(OPERATOR, "/resume")  # a second resume is a new token, so the kill switch sees a new clear
    api.wait(lambda: len(_replies(api, OPERATOR)) == 7)
    assert _file_command(kill) == (KillCommand.CLEAR, "resume")
    api.push(OPERATOR, "hello")
    api.wait(lambda: len(_replies(api, OPERATOR)) == 8)
    assert _replies(api, OPERATOR)[-1].startswith("commands: /status")
    assert TOKEN not in caplog.text


def test_chat_not_on_the_allow_list_changes_nothing_and_gets_no_answer(api, bot_for, caplog):
    caplog.set_level(logging.INFO)
    _bot, kill = bot_for()
    last = 0
    for text in ("/pause", "/halt", "/status"):
        last = api.push(STRANGER, text)
    api.wait(lambda: api.max_offset > last)  # the bot has consumed all three updates
    api.push(OPERATOR, "/status")  # and handles the next one, so nothing from the stranger is pending
    api.wait(lambda: len(_replies(api, OPERATOR)) == 1)
    assert _replies(api, STRANGER) == []
    assert not kill.exists()
    ignored = [r for r in caplog.records if "chat command ignored chat_id=999" in r.getMessage()]
    assert len(ignored) == 3


def test_stale_message_is_ignored(api, bot_for, caplog):
    caplog.set_level(logging.INFO)
    _bot, kill = bot_for()
    stale = api.push(OPERATOR, "/resume", date=time.time() - 3600)
    api.wait(lambda: api.max_offset > stale)
    api.push(OPERATOR, "/status")
    api.wait(lambda: len(_replies(api, OPERATOR)) == 1)
    assert not kill.exists()
    assert "stale" in caplog.text


def test_api_failure_is_retried_and_never_logs_the_token(api, bot_for, caplog):
    caplog.set_level(logging.DEBUG)
    api.fail_next = 1
    bot_for()
    api.push(OPERATOR, "/pause")
    api.wait(lambda: len(_replies(api, OPERATOR)) == 1)
    assert "chat poll failed error=HTTPError" in caplog.text
    assert TOKEN not in caplog.text and "SECRET" not in caplog.text


def test_chat_settings_off_by_default_and_incomplete_config_refused(tmp_path):
    assert ChatSettings.from_env({}).enabled is False
    full = {
        "AI_QUANT_CHAT_ENABLE": "1", "AI_QUANT_TELEGRAM_BOT_TOKEN": TOKEN,
        "AI_QUANT_CHAT_ALLOWED_IDS": "111, -100200", "AI_QUANT_KILL_SWITCH_FILE": str(tmp_path / "k"),
    }  # fmt: skip
    settings = ChatSettings.from_env(full)
    assert settings.allowed_chat_ids == frozenset({111, -100200}) and TOKEN not in repr(settings)
    for drop, needle in [
        ("AI_QUANT_TELEGRAM_BOT_TOKEN", "AI_QUANT_TELEGRAM_BOT_TOKEN"),
        ("AI_QUANT_CHAT_ALLOWED_IDS", "AI_QUANT_CHAT_ALLOWED_IDS"),
        ("AI_QUANT_KILL_SWITCH_FILE", "AI_QUANT_KILL_SWITCH_FILE"),
    ]:
        env = {k: v for k, v in full.items() if k != drop}
        with pytest.raises(ConfigError, match=needle):
            ChatSettings.from_env(env)
    with pytest.raises(ConfigError, match="not an integer chat id"):
        ChatSettings.from_env({**full, "AI_QUANT_CHAT_ALLOWED_IDS": "@me"})
