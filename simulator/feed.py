"""The venue's WebSocket endpoint (/ws): subscriptions, market pushes, user events, idle close.

Owns WS connections and what flows over them. Market channels (allMids, candle, bbo, l2Book) are
pushed by `on_tick` after the market clock moves; user channels (userFills, orderUpdates,
userFundings, userEvents) and the public trades channel (the simulator's own users' executions)
carry what the exchange core reports through `publish_user`. Each connection has its own outgoing queue
and writer task so a slow client never blocks the tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from simulator.faults import Faults
from simulator.market import VALID_INTERVALS, Market, interval_ms_of
from simulator.market_info import (
    InfoRequestError,
    all_mids_json,
    bbo_json,
    candle_json,
    l2_book_json,
    parse_n_sig_figs,
)

log = logging.getLogger(__name__)

PARSE_ERROR = "Error parsing JSON into valid websocket request"
CONNECTED_TEXT = "Websocket connection established."
MAX_QUEUED_MESSAGES = 20_000
MAX_CANDLES_PER_TICK = 100
# per-IP WebSocket limits the venue documents (rate limits page); the refusal texts are our own
MAX_SUBSCRIPTIONS_PER_IP = 1000
MAX_USERS_PER_IP = 10
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
USER_CHANNELS = ("userFills", "orderUpdates", "userFundings", "userNonFundingLedgerUpdates", "userEvents")
# order statuses the venue reports in userEvents as {"nonUserCancel": [...]}: cancels the user did not ask for
NON_USER_CANCELS = frozenset({"marginCanceled", "reduceOnlyCanceled", "scheduledCancel", "liquidatedCanceled",
                              "siblingFilledCanceled"})
NO_USER = "0x" + "0" * 40
SubKey = tuple[str, ...]
# user_snapshot(channel, user) -> snapshot data for a user channel, or None when none is sent
UserSnapshot = Callable[[str, str], Any]
# post_handler(peer ip, "info" | "action", payload) -> (response type "info" | "action" | "error", payload)
PostHandler = Callable[[str, str, Any], tuple[str, Any]]


def dumps(obj: Any) -> str:
    """Compact JSON with sorted keys, like the venue's own output (and byte-stable across runs)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class WsLimits:
    """Per-IP WebSocket caps the venue documents; 0 switches a rate cap off."""

    max_connections: int = 10           # simultaneous connections
    max_new_per_min: int = 30           # new connections in any 60 s
    max_messages_per_min: int = 2000    # client messages in any 60 s, across the IP's connections
    max_subscriptions: int = MAX_SUBSCRIPTIONS_PER_IP  # across the IP's connections


class SlidingWindow:
    """Events per key in a sliding 60 s window (monotonic time)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def try_add(self, key: str, cap: int) -> bool:
        """Record one event for `key` unless `cap` (> 0) events already happened in the last 60 s."""
        if cap <= 0:
            return True
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= 60.0:
            events.popleft()
        if len(events) >= cap:
            return False
        events.append(now)
        return True


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    subs: dict[SubKey, dict[str, Any]] = field(default_factory=dict)

    def send(self, obj: Any) -> None:
        if self.queue.qsize() > MAX_QUEUED_MESSAGES:
            self.abort()
            return
        self.queue.put_nowait(dumps(obj))

    def abort(self) -> None:
        """Drop the connection abruptly (no close frame), like a network failure."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.queue.put_nowait(None)


class SubscriptionError(ValueError):
    pass


class WsHub:
    """All WS connections of the venue and the market/user pushes to them."""

    def __init__(self, market: Market, faults: Faults, *, idle_timeout_secs: float,
                 user_snapshot: UserSnapshot | None = None, post_handler: PostHandler | None = None,
                 limits: WsLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.market = market
        self.faults = faults
        self.idle_timeout_secs = idle_timeout_secs
        self.user_snapshot = user_snapshot
        self.post_handler = post_handler
        self.limits = limits or WsLimits()
        self._new_connections = SlidingWindow(clock)
        self._messages = SlidingWindow(clock)
        self.refused_connections = 0
        self.connections: set[Connection] = set()
        self.total_connections = 0
        self.dropped_connections = 0
        self._last_mids: dict[str, str] | None = None
        self._candle_last_t: dict[tuple[str, str], int] = {}

    # --- connection lifecycle ---------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The /ws handler: read client messages until close, idle timeout or drop."""
        ip = request.remote or "unknown"
        if len(self._of_ip(request.remote)) >= self.limits.max_connections:
            self.refused_connections += 1
            return web.Response(status=429, text="Too many websocket connections")
        if not self._new_connections.try_add(ip, self.limits.max_new_per_min):
            self.refused_connections += 1
            return web.Response(status=429, text="Too many new websocket connections per minute")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Connection(ws=ws, request=request)
        self.connections.add(conn)
        self.total_connections += 1
        writer = asyncio.create_task(self._writer(conn))
        conn.queue.put_nowait(CONNECTED_TEXT)
        try:
            await self._reader(conn)
        finally:
            self.connections.discard(conn)
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=1.0)
            writer.cancel()
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        return ws

    async def _reader(self, conn: Connection) -> None:
        while True:
            try:
                msg = await conn.ws.receive(timeout=self.idle_timeout_secs)
            except TimeoutError:
                log.info("closing idle websocket", extra={"peer": conn.request.remote})
                await conn.ws.close()
                return
            if msg.type == WSMsgType.TEXT:
                if self._messages.try_add(conn.request.remote or "unknown", self.limits.max_messages_per_min):
                    self._on_text(conn, msg.data)
                else:
                    conn.send({"channel": "error", "data": "Too many websocket messages per minute"})
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return

    async def _writer(self, conn: Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def drop_all(self) -> int:
        """Abort every connection (fault injection); return how many were dropped."""
        conns = list(self.connections)
        for conn in conns:
            conn.abort()
        self.dropped_connections += len(conns)
        return len(conns)

    async def close_all(self, timeout_secs: float = 1.0) -> None:
        """Close every connection (shutdown): a close frame, then abort whoever has not answered."""
        conns = list(self.connections)
        if not conns:
            return
        await asyncio.wait([asyncio.create_task(c.ws.close()) for c in conns], timeout=timeout_secs)
        for conn in conns:
            if not conn.ws.closed:
                conn.abort()

    # --- client messages --------------------------------------------------------------------
    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            conn.send({"channel": "error", "data": f"{PARSE_ERROR}: {text}"})
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        if method == "ping":
            conn.send({"channel": "pong"})
            return
        if method == "post":
            self._on_post(conn, msg, text)
            return
        if method not in ("subscribe", "unsubscribe"):
            conn.send({"channel": "error", "data": f"{PARSE_ERROR}: {text}"})
            return
        sub = msg.get("subscription")
        try:
            key = self._sub_key(sub)
        except SubscriptionError as e:
            conn.send({"channel": "error", "data": f"Invalid subscription {dumps(sub)}: {e}"})
            return
        if method == "subscribe":
            if key in conn.subs:
                conn.send({"channel": "error", "data": f"Already subscribed: {dumps(sub)}"})
                return
            refusal = self._limit_refusal(conn, key)
            if refusal is not None:
                conn.send({"channel": "error", "data": f"{refusal}: {dumps(sub)}"})
                return
            conn.subs[key] = sub
            conn.send({"channel": "subscriptionResponse",
                       "data": {"method": "subscribe", "subscription": sub}})
            self._send_initial(conn, key)
        else:
            if conn.subs.pop(key, None) is None:
                conn.send({"channel": "error", "data": f"Already unsubscribed: {dumps(sub)}"})
                return
            conn.send({"channel": "subscriptionResponse",
                       "data": {"method": "unsubscribe", "subscription": sub}})

    def _on_post(self, conn: Connection, msg: dict[str, Any], text: str) -> None:
        """{"method": "post", "id", "request": {"type": "info" | "action", "payload"}}: answered on
        channel "post" as {"id", "response": {"type", "payload"}}, like the REST endpoints."""
        req_id, request = msg.get("id"), msg.get("request")
        kind = request.get("type") if isinstance(request, dict) else None
        if not isinstance(req_id, int) or isinstance(req_id, bool) or kind not in ("info", "action") \
                or self.post_handler is None:
            conn.send({"channel": "error", "data": f"{PARSE_ERROR}: {text}"})
            return
        assert isinstance(request, dict)
        rtype, payload = self.post_handler(conn.request.remote or "unknown", kind, request.get("payload"))
        response = {"type": rtype, "payload": payload}
        conn.send({"channel": "post", "data": {"id": req_id, "response": response}})

    def _of_ip(self, ip: str | None) -> list[Connection]:
        return [c for c in self.connections if c.request.remote == ip]

    def _limit_refusal(self, conn: Connection, key: SubKey) -> str | None:
        """Why subscribing ``key`` would break a per-IP limit, or None."""
        peers = self._of_ip(conn.request.remote)
        if sum(len(c.subs) for c in peers) >= self.limits.max_subscriptions:
            return f"Cannot track more than {self.limits.max_subscriptions} total subscriptions"
        if key[0] in USER_CHANNELS:
            users = {k[1] for c in peers for k in c.subs if k[0] in USER_CHANNELS}
            if key[1] not in users and len(users) >= MAX_USERS_PER_IP:
                return f"Cannot track more than {MAX_USERS_PER_IP} total users"
        return None

    def _sub_key(self, sub: Any) -> SubKey:
        if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
            raise SubscriptionError("missing type")
        kind = sub["type"]
        if kind == "allMids":
            dex = sub.get("dex") or ""
            if not isinstance(dex, str) or not self.market.dexes.has_dex(dex):
                raise SubscriptionError("unknown dex")
            return ("allMids", dex) if dex else ("allMids",)
        if kind in ("candle", "bbo", "l2Book", "trades"):
            return self._coin_sub_key(kind, sub)
        if kind in USER_CHANNELS:
            user = sub.get("user")
            if not isinstance(user, str) or not _ADDRESS.match(user):
                raise SubscriptionError("invalid user")
            return (kind, user.lower())
        raise SubscriptionError("unknown subscription type")

    def _coin_sub_key(self, kind: str, sub: dict[str, Any]) -> SubKey:
        coin = sub.get("coin")
        if not isinstance(coin, str) or not self.market.has(coin):
            raise SubscriptionError("unknown coin")
        if kind == "l2Book" and sub.get("nSigFigs") is not None:
            try:
                return (kind, coin, str(parse_n_sig_figs(sub.get("nSigFigs"))))
            except InfoRequestError as e:
                raise SubscriptionError("invalid nSigFigs") from e
        if kind != "candle":
            return (kind, coin)
        interval = sub.get("interval")
        if interval not in VALID_INTERVALS:
            raise SubscriptionError("unknown interval")
        return (kind, coin, interval)

    def _send_initial(self, conn: Connection, key: SubKey) -> None:
        now = self.market.now_ms()
        kind = key[0]
        if kind in USER_CHANNELS:
            data = self.user_snapshot(kind, key[1]) if self.user_snapshot is not None else None
            if data is not None:
                conn.send({"channel": kind, "data": data})
            return
        if kind == "candle" and not any(key in c.subs for c in self.connections if c is not conn):
            # first subscriber: the stream continues from the candle this snapshot shows
            iv_ms = interval_ms_of(key[2])
            if iv_ms is not None:
                self._candle_last_t[(key[1], key[2])] = (now // iv_ms) * iv_ms
        msg = self._market_message(key, now)
        if msg is not None:
            conn.send(msg)

    def _market_message(self, key: SubKey, now: int) -> dict[str, Any] | None:
        kind = key[0]
        if kind == "allMids":
            dex = key[1] if len(key) > 1 else ""
            data: dict[str, Any] = {"mids": all_mids_json(self.market, now, dex)}
            if dex:
                data["dex"] = dex
            return {"channel": "allMids", "data": data}
        if kind == "bbo":
            return {"channel": "bbo", "data": bbo_json(self.market, key[1], now)}
        if kind == "l2Book":
            n_sig = int(key[2]) if len(key) > 2 else None
            return {"channel": "l2Book", "data": l2_book_json(self.market, key[1], now, n_sig_figs=n_sig)}
        if kind == "candle":
            iv_ms = interval_ms_of(key[2])
            candle = self.market.current_candle(key[1], iv_ms, now) if iv_ms else None
            return None if candle is None else {"channel": "candle",
                                                 "data": candle_json(key[1], key[2], candle)}
        return None

    # --- pushes -----------------------------------------------------------------------------
    def _subscribers(self) -> dict[SubKey, list[Connection]]:
        out: dict[SubKey, list[Connection]] = {}
        for conn in self.connections:
            for key in conn.subs:
                out.setdefault(key, []).append(conn)
        return out

    def on_tick(self, now_ms: int) -> None:
        """Push market channels after the market clock moved to ``now_ms``."""
        subs = self._subscribers()
        pause_market = self.faults.settings.pause_market_feed
        for key, conns in subs.items():
            kind = key[0]
            if kind == "candle":
                self._push_candles(key, conns, now_ms)
            elif kind in ("allMids", "bbo", "l2Book") and not pause_market:
                msg = self._market_message(key, now_ms)
                if msg is not None:
                    for conn in conns:
                        conn.send(msg)

    def _push_candles(self, key: SubKey, conns: list[Connection], now_ms: int) -> None:
        """Send the final state of candles that closed since the last push, then the forming one."""
        coin, interval = key[1], key[2]
        iv_ms = interval_ms_of(interval)
        if iv_ms is None:
            return
        last_t = self._candle_last_t.get((coin, interval))
        current_t = (now_ms // iv_ms) * iv_ms
        self._candle_last_t[(coin, interval)] = current_t
        if self.faults.settings.pause_candle_feed:
            return
        since = current_t if last_t is None else max(last_t, current_t - MAX_CANDLES_PER_TICK * iv_ms)
        for candle in self.market.candles(coin, iv_ms, since, now_ms, now_ms):
            msg = {"channel": "candle", "data": candle_json(coin, interval, candle)}
            for conn in conns:
                conn.send(msg)

    def publish_user(self, channel: str, user: str, payload: Any) -> None:
        """Event sink for the exchange core: deliver ``payload`` to (channel, user) subscribers, the
        same events to the user's userEvents subscribers (channel "user": {"fills"}, {"funding"},
        {"nonUserCancel"}), and fills to the coin's public trades subscribers."""
        user = user.lower()
        self._send_to((channel, user), {"channel": channel, "data": payload})
        for event in _user_events(channel, payload):
            self._send_to(("userEvents", user), {"channel": "user", "data": event})
        if channel == "userFills":
            for fill in payload.get("fills", []):
                users = [user, NO_USER] if fill["side"] == "B" else [NO_USER, user]
                trade = {k: fill[k] for k in ("coin", "side", "px", "sz", "hash", "time", "tid")}
                msg = {"channel": "trades", "data": [trade | {"users": users}]}
                self._send_to(("trades", fill["coin"]), msg)

    def _send_to(self, key: SubKey, msg: dict[str, Any]) -> None:
        for conn in list(self.connections):
            if key in conn.subs:
                conn.send(msg)


def _user_events(channel: str, payload: Any) -> list[dict[str, Any]]:
    """The userEvents messages one core event becomes."""
    if channel == "userFills":
        return [{"fills": payload["fills"]}]
    if channel == "userFundings":
        return [{"funding": f} for f in payload["fundings"]]
    if channel == "orderUpdates":
        cancels = [{"coin": u["order"]["coin"], "oid": u["order"]["oid"]} for u in payload
                   if u["status"] in NON_USER_CANCELS]
        return [{"nonUserCancel": cancels}] if cancels else []
    return []
