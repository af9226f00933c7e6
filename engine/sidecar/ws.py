"""The sidecar's venue WebSocket: connect, subscribe, read with pings, reconnect with jittered backoff.

Owns only the connection's life cycle. What to subscribe to, what a session start means (the
candle tracker's gap fill) and what a frame means belong to `engine.sidecar.service.Sidecar`, which passes
them in as callables. The loop never gives up: any connection failure is counted, logged
(rate-limited by the caller's logger) and followed by an exponential backoff with full jitter.

A sidecar holds several sockets (`engine.sidecar.ws_pool`); they share its IP's budget, so every
message sent and every new connection first takes a slot from the shared `SlidingWindow`s, and
each socket can be bound to a source address (one loopback IP per sidecar on one box).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect

from engine.sidecar.pacing import SlidingWindow
from engine.sidecar.settings import SidecarSettings

log = logging.getLogger(__name__)

_CALM_SESSION_SECS = 30  # a session that lasted this long resets the backoff
RESUBSCRIBE_SECS = 30.0  # a subscription not acknowledged this long after it was sent is sent again
_ACKED = ("subscriptionResponse", "Already subscribed")


def sub_key(sub: Any) -> tuple[str, str, str, str, str]:
    """What identifies a subscription in the venue's answers (type, coin, interval, user, dex: one
    `allMids` per perp dex)."""
    if not isinstance(sub, dict):
        return ("", "", "", "", "")
    return (str(sub.get("type", "")), str(sub.get("coin") or ""), str(sub.get("interval") or ""),
            str(sub.get("user") or "").lower(), str(sub.get("dex") or ""))  # fmt: skip


def acked_subscription(raw: str | bytes) -> tuple[str, str, str, str, str] | None:
    """The subscription a frame acknowledges (a subscriptionResponse, or "Already subscribed")."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    if not any(marker in text for marker in _ACKED):
        return None
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    data = msg.get("data") if isinstance(msg, dict) else None
    if msg.get("channel") == "subscriptionResponse" and isinstance(data, dict):
        return sub_key(data.get("subscription")) if data.get("method") == "subscribe" else None
    if msg.get("channel") == "error" and isinstance(data, str) and data.startswith("Already subscribed"):
        start = data.find("{")
        with contextlib.suppress(ValueError):
            return sub_key(json.loads(data[start:])) if start >= 0 else None
    return None


class WsStats(Protocol):
    """The counters the socket updates (engine.sidecar.service.SidecarStats has them)."""

    reconnects: int
    last_error: str


async def sleep_or_stop(stop: asyncio.Event, secs: float) -> None:
    """Sleep `secs` seconds, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, secs))


class VenueSocket:
    """One venue WebSocket, reconnected forever until `stop`; `connected` is True inside a session."""

    def __init__(
        self,
        settings: SidecarSettings,
        *,
        subscriptions: Callable[[], list[dict[str, Any]]],
        on_session_start: Callable[[], None],
        on_frame: Callable[[str | bytes], None],
        stats: WsStats,
        log_limited: Callable[..., None],
        rng: random.Random,
        messages: SlidingWindow | None = None,
        new_connections: SlidingWindow | None = None,
        name: str = "ws",
        on_session_end: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._subscriptions = subscriptions
        self._on_session_start = on_session_start
        self._on_session_end = on_session_end
        self._on_frame = on_frame
        self._stats = stats
        self._log_limited = log_limited
        self._rng = rng
        self._messages = messages
        self._new_connections = new_connections
        self.name = name
        self._restart = asyncio.Event()
        self.connected = False

    def restart(self) -> None:
        """End the session and reconnect at once (its subscriptions changed); no backoff."""
        self._restart.set()

    async def _send(self, ws: ClientConnection, text: str) -> None:
        if self._messages is not None:
            await self._messages.take()
        await ws.send(text)

    async def _recv(self, ws: ClientConnection, timeout_secs: float) -> str | bytes | None:
        try:
            async with asyncio.timeout(timeout_secs):
                return await ws.recv()
        except TimeoutError:
            return None

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        """Subscribe, then read until the connection fails or `stop` is set.

        Checks `stop` itself: on Python 3.11 a task cancel racing a completed recv can be lost.
        A subscription the venue has not acknowledged after RESUBSCRIBE_SECS is sent again (a
        refusal, e.g. the IP's message or subscription cap while connections re-plan, must not
        leave a market silently unsubscribed). However it ends, `on_session_end` is called
        before the next session starts (the carried markets' bars will get no update on it).
        """
        self._on_session_start()
        try:
            await self._subscribed_session(ws, stop)
        finally:
            if self._on_session_end is not None:
                self._on_session_end()

    async def _subscribed_session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        pending = {sub_key(sub): sub for sub in self._subscriptions()}
        for sub in list(pending.values()):
            if stop.is_set() or self._restart.is_set():
                return
            await self._send(ws, json.dumps({"method": "subscribe", "subscription": sub}))
            if self.settings.sub_send_ms:
                await asyncio.sleep(self.settings.sub_send_ms / 1000)
        sent_at = time.monotonic()
        self.connected = True
        ping_every = self.settings.ping_secs
        last_ping = time.monotonic()
        silent_since = time.monotonic()
        while not stop.is_set() and not self._restart.is_set():
            raw = await self._recv(ws, min(ping_every, 1.0))
            now = time.monotonic()
            if now - last_ping >= ping_every:
                await self._send(ws, '{"method":"ping"}')
                last_ping = now
            if pending and now - sent_at >= RESUBSCRIBE_SECS:
                await self._resend(ws, pending)
                sent_at = time.monotonic()
            if raw is None:
                if now - silent_since > 2 * ping_every:  # not even a pong for a whole ping period
                    raise TimeoutError(f"no frame for {2 * ping_every:.0f}s")
                continue
            silent_since = now
            if pending and (key := acked_subscription(raw)) is not None:
                pending.pop(key, None)
            self._on_frame(raw)

    async def _resend(self, ws: ClientConnection, pending: dict[Any, dict[str, Any]]) -> None:
        self._log_limited(
            f"resub-{self.name}", logging.WARNING, "subscriptions not acknowledged; sending again",
            socket=self.name, count=len(pending),
        )  # fmt: skip
        for sub in list(pending.values()):
            await self._send(ws, json.dumps({"method": "subscribe", "subscription": sub}))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe, read; on any failure back off (exponential, full jitter) and retry."""
        attempt = 0
        extra: dict[str, Any] = {}
        if self.settings.local_addr:
            extra["local_addr"] = (self.settings.local_addr, 0)
        while not stop.is_set():
            started = time.monotonic()
            self._restart.clear()
            try:
                if self._new_connections is not None:
                    await self._new_connections.take()
                async with connect(
                    self.settings.ws_url,
                    ping_interval=None,
                    max_size=2**24,
                    open_timeout=10,
                    close_timeout=2,
                    **extra,
                ) as ws:
                    log.info(
                        "websocket connected",
                        extra={"url": self.settings.ws_url, "attempt": attempt, "socket": self.name},
                    )
                    await self._session(ws, stop)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self._stats.last_error = f"{type(exc).__name__}: {str(exc)[:120]}"
                self._log_limited(
                    "ws", logging.WARNING, "websocket lost", error=self._stats.last_error, socket=self.name
                )
            finally:
                if self.connected and not stop.is_set() and not self._restart.is_set():
                    self._stats.reconnects += 1
                self.connected = False
            if stop.is_set():
                break
            if self._restart.is_set():
                continue
            attempt = 0 if time.monotonic() - started > _CALM_SESSION_SECS else attempt + 1
            cap = min(
                self.settings.reconnect_max_secs, self.settings.reconnect_min_secs * 2 ** min(attempt, 16)
            )
            await sleep_or_stop(stop, self._rng.uniform(self.settings.reconnect_min_secs / 2, cap))
