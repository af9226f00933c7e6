"""The venue's HTTP server: POST /info, POST /exchange, GET /ws, the loopback admin API, the ticker.

Owns request routing, the per-IP rate limit, REST fault injection, request counters and the task
that moves the market: every tick it reads the market clock and, if time moved, lets the exchange
core fill/fund/expire and the WS hub push market data. The exchange core (signatures, accounts,
matching, user /info) is `simulator.exchange.ExchangeCore`, imported lazily so market data works
without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from simulator.faults import FaultError, Faults
from simulator.feed import WsHub, WsLimits, dumps
from simulator.market import INTERVAL_MS, Market
from simulator.market_info import (
    DESERIALIZE_ERROR,
    MARKET_INFO_TYPES,
    InfoRequestError,
    answer_market_info,
    info_items,
)
from simulator.ratelimit import RateLimiter, exchange_weight, info_extra_weight, info_weight

log = logging.getLogger(__name__)
TICK_ERROR_LOG_EVERY_SECS = 10.0


class ExchangePort(Protocol):
    """What the server needs from the exchange core."""

    def handle_exchange(self, body: dict, now_ms: int) -> tuple[int, Any]: ...
    def handle_user_info(self, body: dict, now_ms: int) -> Any | None: ...
    def on_market_tick(self, now_ms: int) -> None: ...
    def fund(
        self, address: str, usd: float | None = None, *, volume_usd: float = 0.0, unified: bool | None = None
    ) -> None: ...
    def admin_orders(self, user: str | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Listener and pacing settings."""

    host: str = "127.0.0.1"
    port: int = 0
    tick_ms: int = 250                  # wall ms between market ticks (pushes, fills, funding)
    ws_idle_timeout_secs: float = 60.0  # the venue closes WS connections silent for this long
    ws_limits: WsLimits = field(default_factory=WsLimits)


class Venue:
    """Everything one simulator process serves; the aiohttp handlers are its methods."""

    def __init__(self, market: Market, *, limiter: RateLimiter, faults: Faults, config: ServerConfig,
                 core: ExchangePort | None = None) -> None:
        self.market = market
        self.limiter = limiter
        self.faults = faults
        self.config = config
        self.core = core
        self.hub = WsHub(market, faults, idle_timeout_secs=config.ws_idle_timeout_secs,
                         user_snapshot=self._user_snapshot, post_handler=self._ws_post,
                         limits=config.ws_limits)
        self.counters: Counter[str] = Counter()
        self.info_by_type: Counter[str] = Counter()
        self._last_tick_ms: int | None = None

    def attach_core(self, core: ExchangePort) -> None:
        self.core = core

    # --- ticking ----------------------------------------------------------------------------
    def tick(self) -> int:
        """Advance everything to the market clock's current time; return it.

        The exchange core ticks every time (its scheduleCancel deadlines are wall-clock times, which
        pass even while a manual market clock stands still); WS pushes happen only when time moved."""
        now = self.market.now_ms()
        if self.core is not None:
            self.core.on_market_tick(now)
        if now != self._last_tick_ms:
            self._last_tick_ms = now
            self.hub.on_tick(now)
        return now

    async def run_ticker(self) -> None:
        last_logged = -math.inf
        while True:
            try:
                self.tick()
            except Exception:  # one bad tick must not stop the market; the next tick retries
                self.counters["tick_errors"] += 1
                if time.monotonic() - last_logged >= TICK_ERROR_LOG_EVERY_SECS:
                    last_logged = time.monotonic()
                    log.exception("market tick failed", extra={"tick_errors": self.counters["tick_errors"]})
            await asyncio.sleep(self.config.tick_ms / 1000.0)

    async def run_ws_dropper(self) -> None:
        """Fault: abort every WS connection every ``ws_drop_every_secs`` wall seconds."""
        while True:
            every = self.faults.settings.ws_drop_every_secs
            if every <= 0:
                await asyncio.sleep(0.1)
                continue
            await asyncio.sleep(every)
            if self.faults.settings.ws_drop_every_secs > 0:
                self.hub.drop_all()

    # --- helpers ----------------------------------------------------------------------------
    def _user_snapshot(self, channel: str, user: str) -> Any:
        now = self.market.now_ms()
        if channel == "userFills":
            fills = self._user_info({"type": "userFills", "user": user}, now) or []
            return {"user": user, "isSnapshot": True, "fills": fills}
        if channel == "userFundings":
            ledger = self._user_info({"type": "userFunding", "user": user, "startTime": 0}, now) or []
            fundings = [{k: v for k, v in e["delta"].items() if k != "type"} | {"time": e["time"]}
                        for e in ledger if isinstance(e, dict) and isinstance(e.get("delta"), dict)]
            return {"user": user, "isSnapshot": True, "fundings": fundings}
        if channel == "userNonFundingLedgerUpdates":
            updates = self._user_info({"type": "userNonFundingLedgerUpdates", "user": user}, now) or []
            return {"user": user, "isSnapshot": True, "nonFundingLedgerUpdates": updates}
        return None

    def _user_info(self, body: dict, now: int) -> Any:
        return self.core.handle_user_info(body, now) if self.core is not None else None

    @staticmethod
    def _peer(request: web.Request) -> str:
        return request.remote or "unknown"

    def _too_many(self, peer: str, weight: int) -> web.Response:
        self.counters["rate_limited"] += 1
        retry = self.limiter.retry_after_secs(peer, weight)
        return web.Response(status=429, text="Too many requests",
                            headers={"Retry-After": str(retry)} if retry else None)

    async def _json_body(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            return None

    async def _rest_fault(self) -> web.Response | None:
        status = self.faults.rest_error_status()
        if status is not None:
            self.counters["faulted_errors"] += 1
            if status == 429:  # same shape as a real rate-limit answer, so clients take the same path
                return web.Response(status=429, text="Too many requests")
            return web.Response(status=status, text="Internal Server Error")
        return None

    async def _maybe_delay(self) -> None:
        delay = self.faults.rest_delay_secs()
        if delay > 0:
            self.counters["faulted_delays"] += 1
            await asyncio.sleep(delay)

    # --- /info ------------------------------------------------------------------------------
    async def handle_info(self, request: web.Request) -> web.StreamResponse:
        self.counters["info_posts"] += 1
        body = await self._json_body(request)
        kind = body.get("type") if isinstance(body, dict) else None
        if not isinstance(kind, str):
            return web.Response(status=422, text=DESERIALIZE_ERROR)
        self.info_by_type[kind] += 1
        peer = self._peer(request)
        weight = info_weight(kind)
        if not self.limiter.try_acquire(peer, weight):
            return self._too_many(peer, weight)
        fault = await self._rest_fault()
        if fault is not None:
            return fault
        try:
            result = self._answer_info(kind, body)
        except InfoRequestError as e:
            return web.Response(status=422, text=str(e))
        self.limiter.charge(peer, info_extra_weight(kind, info_items(result)))
        await self._maybe_delay()
        return web.Response(text=dumps(result), content_type="application/json")

    def _answer_info(self, kind: str, body: dict[str, Any]) -> Any:
        """The answer to one /info body; raises InfoRequestError (HTTP 422) for a malformed one."""
        now = self.market.now_ms()
        if kind in MARKET_INFO_TYPES:
            return answer_market_info(self.market, body, now)
        result = self._user_info(body, now)
        if result is None:
            raise InfoRequestError(f"{DESERIALIZE_ERROR}: unknown variant `{kind}`")
        return result

    def _ws_post(self, peer: str, kind: str, payload: Any) -> tuple[str, Any]:
        """A request posted over the WebSocket: the same answer and the same per-IP weight as REST."""
        self.counters["ws_posts"] += 1
        if not isinstance(payload, dict):
            return "error", DESERIALIZE_ERROR
        if kind == "info":
            info_kind = payload.get("type")
            if not isinstance(info_kind, str):
                return "error", DESERIALIZE_ERROR
            if not self.limiter.try_acquire(peer, info_weight(info_kind)):
                return "error", "Too many requests"
            try:
                return "info", {"type": info_kind, "data": self._answer_info(info_kind, payload)}
            except InfoRequestError as e:
                return "error", str(e)
        if not self.limiter.try_acquire(peer, exchange_weight(payload.get("action"))):
            return "error", "Too many requests"
        if self.core is None:
            return "error", "exchange core unavailable"
        status, result = self.core.handle_exchange(payload, self.market.now_ms())
        return ("action", result) if status == 200 else ("error", result)

    # --- /exchange --------------------------------------------------------------------------
    async def handle_exchange(self, request: web.Request) -> web.StreamResponse:
        self.counters["exchange_posts"] += 1
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return web.Response(status=422, text=DESERIALIZE_ERROR)
        action = body.get("action")
        peer = self._peer(request)
        weight = exchange_weight(action)
        if not self.limiter.try_acquire(peer, weight):
            return self._too_many(peer, weight)
        fault = await self._rest_fault()
        if fault is not None:
            return fault
        if self.core is None:
            return web.Response(status=503, text="exchange core unavailable")
        status, result = self.core.handle_exchange(body, self.market.now_ms())
        is_order = isinstance(action, dict) and action.get("type") == "order"
        if is_order and self.faults.take_lost_ack():
            self.counters["lost_acks"] += 1
            _drop_connection(request)
            return web.Response(status=200, text="")  # never reaches the client: transport aborted
        await self._maybe_delay()
        if isinstance(result, str):
            return web.Response(status=status, text=result)
        return web.Response(status=status, text=dumps(result), content_type="application/json")

    # --- admin ------------------------------------------------------------------------------
    def _admin_allowed(self, request: web.Request) -> bool:
        try:
            return ipaddress.ip_address(request.remote or "").is_loopback
        except ValueError:
            return False

    async def handle_admin(self, request: web.Request) -> web.StreamResponse:
        if not self._admin_allowed(request):
            return web.Response(status=403, text="admin is loopback-only")
        name = request.match_info["name"]
        body = await self._json_body(request) if request.method == "POST" else {}
        if not isinstance(body, dict):
            body = {}
        try:
            result = self._admin(name, request.method, body)
        except (FaultError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=400)
        if result is None:
            return web.json_response({"error": f"unknown admin call {request.method} {name}"}, status=404)
        return web.json_response(result)

    def _admin(self, name: str, method: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if name == "state" and method == "GET":
            return self.state()
        if name == "faults" and method == "POST":
            return {"faults": self.faults.update(body)}
        if name == "advance" and method == "POST":
            ms = body.get("ms", 0)
            bars = body.get("bars", 0)
            if isinstance(ms, bool) or isinstance(bars, bool) or not isinstance(ms, int) \
                    or not isinstance(bars, int):
                raise ValueError("ms and bars must be integers")
            self.market.clock.advance(ms + bars * self.market.interval_ms)
            return {"now_ms": self.tick()}
        if name == "drop_ws" and method == "POST":
            return {"dropped": self.hub.drop_all()}
        if name == "fund" and method == "POST":
            return self._admin_fund(body)
        if name == "shock" and method == "POST":
            return self._admin_shock(body)
        if name == "orders" and method == "POST":
            user = body.get("user")
            if self.core is None or (user is not None and not isinstance(user, str)):
                raise ValueError("exchange core unavailable, or user is not a string")
            return {"orders": self.core.admin_orders(user)}
        return None

    def _admin_shock(self, body: dict[str, Any]) -> dict[str, Any]:
        """Jump a coin's price by `pct` percent now, then tick (resting orders and triggers react)."""
        coin, pct = body.get("coin"), body.get("pct")
        if not isinstance(coin, str) or not self.market.has(coin):
            raise ValueError(f"unknown coin {coin!r}")
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not pct > -100:
            raise ValueError("pct must be a number > -100")
        before, after = self.market.shock(coin, 1.0 + pct / 100.0)
        self.tick()
        return {"coin": coin, "mid_before": before, "mid_after": after}

    def _admin_fund(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deposit to an address (creating its account), like a bridge deposit on the real venue."""
        if self.core is None:
            raise ValueError("exchange core unavailable")
        address, usd, volume = body.get("address"), body.get("usd"), body.get("volume_usd", 0)
        mode = body.get("mode")
        if not isinstance(address, str):
            raise ValueError("address must be a 0x + 40 hex string")
        if mode not in (None, "standard", "unified"):
            raise ValueError("mode must be 'standard' or 'unified'")
        if isinstance(usd, bool) or not isinstance(usd, int | float) \
                or isinstance(volume, bool) or not isinstance(volume, int | float):
            raise ValueError("usd and volume_usd must be numbers")
        self.core.fund(address, float(usd), volume_usd=float(volume),
                       unified=None if mode is None else mode == "unified")
        return {"funded": address.lower(), "usd": float(usd), "volume_usd": float(volume), "mode": mode}

    def state(self) -> dict[str, Any]:
        """Counters, clock and faults, for tests and operators."""
        return {
            "now_ms": self.market.now_ms(),
            "start_ms": self.market.clock.start_ms,
            "speed": self.market.clock.speed,
            "interval": next(k for k, v in INTERVAL_MS.items() if v == self.market.interval_ms),
            "coins": len(self.market.coins()),
            "exchange_posts": self.counters["exchange_posts"],
            "info_posts": self.counters["info_posts"],
            "info_by_type": dict(self.info_by_type),
            "rate_limited": self.counters["rate_limited"],
            "faulted_errors": self.counters["faulted_errors"],
            "faulted_delays": self.counters["faulted_delays"],
            "lost_acks": self.counters["lost_acks"],
            "tick_errors": self.counters["tick_errors"],
            "ws_connections": len(self.hub.connections),
            "ws_connections_total": self.hub.total_connections,
            "ws_dropped": self.hub.dropped_connections,
            "ws_refused": self.hub.refused_connections,
            "exchange_core": self.core is not None,
            "faults": self.faults.as_dict(),
        }

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/info", self.handle_info)
        app.router.add_post("/exchange", self.handle_exchange)
        app.router.add_get("/ws", self.hub.handle)
        app.router.add_route("*", "/admin/{name}", self.handle_admin)
        return app


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def serve(venue: Venue, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; print ``listening on http://HOST:PORT`` once bound."""
    cfg = venue.config
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((cfg.host, cfg.port))
    port = sock.getsockname()[1]
    runner = web.AppRunner(venue.build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=1.0)
    await site.start()
    tasks = [asyncio.create_task(venue.run_ticker()), asyncio.create_task(venue.run_ws_dropper())]
    host = f"[{cfg.host}]" if family == socket.AF_INET6 else cfg.host
    sys.stdout.write(f"listening on http://{host}:{port}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await venue.hub.close_all()
        await runner.cleanup()
