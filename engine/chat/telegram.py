"""The Telegram long-polling loop: `getUpdates` → allow-list → `ChatCommands` → `sendMessage`.

Why long polling: no inbound port, no webhook certificate; one thread that waits on Telegram.
Messages from chat ids not on the allow-list are logged (chat id only) and dropped without an
answer, so a stranger learns nothing and changes nothing. Messages older than `max_age_secs`
(queued while the daemon was down) are dropped too: a stale /resume must not act. The token is
part of every request URL, so no URL and no exception text that could hold one is ever logged:
failures log the exception type only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.chat.commands import ChatCommands
from engine.chat.settings import ChatSettings

log = logging.getLogger("engine.chat")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    update_id: int
    chat_id: int
    text: str
    date: int  # Unix seconds, as Telegram stamps it


def parse_updates(payload: Any) -> list[ChatMessage | int]:
    """Messages with text from a getUpdates answer; other updates as their bare update_id."""
    result = payload.get("result") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or payload.get("ok") is not True or not isinstance(result, list):
        raise ValueError("getUpdates answer is not {ok: true, result: [...]}")
    out: list[ChatMessage | int] = []
    for update in result:
        update_id = int(update["update_id"])
        message = update.get("message")
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and isinstance(message.get("text"), str) and "id" in chat:
            out.append(ChatMessage(update_id, int(chat["id"]), message["text"], int(message.get("date", 0))))
        else:
            out.append(update_id)
    return out


class TelegramBot:
    """One background thread polling the Bot API; `stop()` ends it within one poll."""

    def __init__(
        self, settings: ChatSettings, commands: ChatCommands, clock: Callable[[], float] = time.time
    ) -> None:
        if settings.token is None:
            raise ValueError("TelegramBot needs a token")
        self._settings = settings
        self._commands = commands
        self._clock = clock
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telegram-bot", daemon=True)

    def start(self) -> TelegramBot:
        self._thread.start()
        log.info(
            "chat commands on: telegram allow-listed chats=%d api=%s",
            len(self._settings.allowed_chat_ids), self._settings.api_url,
        )  # fmt: skip
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the loop to stop; the thread is a daemon, so a poll still in flight never blocks exit."""
        self._stop.set()
        self._thread.join(timeout=timeout)

    def _call(self, method: str, body: dict[str, Any], timeout: float) -> Any:
        token = self._settings.token.reveal()  # type: ignore[union-attr]
        request = urllib.request.Request(
            f"{self._settings.api_url}/bot{token}/{method}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode())

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.poll_once()
                delay = 1.0
            except Exception as exc:  # network or API trouble: back off; never log the URL (token)
                log.warning("chat poll failed error=%s; retrying in %.0fs", type(exc).__name__, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 60.0)

    def poll_once(self) -> int:
        """One getUpdates round; return how many messages were answered."""
        wait = self._settings.poll_timeout_secs
        payload = self._call("getUpdates", {"offset": self._offset, "timeout": wait}, timeout=wait + 10)
        answered = 0
        for item in parse_updates(payload):
            update_id = item if isinstance(item, int) else item.update_id
            self._offset = max(self._offset, update_id + 1)
            if isinstance(item, ChatMessage) and not self._stop.is_set():
                answered += self._handle(item)
        return answered

    def _handle(self, message: ChatMessage) -> int:
        if message.chat_id not in self._settings.allowed_chat_ids:
            log.warning("chat command ignored chat_id=%d (not on AI_QUANT_CHAT_ALLOWED_IDS)", message.chat_id)
            return 0
        age = self._clock() - message.date
        if age > self._settings.max_age_secs:
            log.warning("chat command ignored chat_id=%d age_secs=%.0f (stale)", message.chat_id, age)
            return 0
        command = message.text.strip().split(maxsplit=1)[0][:32] if message.text.strip() else ""
        log.info("chat command chat_id=%d command=%s", message.chat_id, command)
        try:
            reply = self._commands.handle(message.text)
        except Exception as exc:  # a DB read or file write failed: say so, keep polling
            log.exception("chat command failed command=%s", command)
            reply = f"command failed: {type(exc).__name__}"
        self._call("sendMessage", {"chat_id": message.chat_id, "text": reply}, timeout=15)
        return 1
