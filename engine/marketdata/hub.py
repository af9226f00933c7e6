"""MarketDataHub: the driver's one door to market data (candles, candle keys, mids, health).

Reads what the sidecar writes to Redis (through `cluster.redis_layout`), and falls back when
Redis is down or behind: candles Redis → SQLite (the sidecar's candle DB) → REST
`candleSnapshot`; mids Redis mid → Redis BBO → REST `allMids` → last candle close. Every answer
says which source it came from, so the engine can refuse to enter on stale or second-hand data.

Staleness is judged on the venue clock (the simulator may replay faster than wall time): the
sidecar heartbeat carries the latest venue event time, extrapolated here at wall speed since the
heartbeat was written. Health is the heartbeat's age on the wall clock and its connected flag: the
shared heartbeat's, and every sidecar's own one that carries a market (with several sidecars the
shared key would hide a dead one behind a live one).
`market_sources` says which feed carries each market (a sidecar's WebSocket, a sidecar's REST
polling, or none: beyond every sidecar's budget, or its sidecar died and none took it yet).
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import redis

from cluster.redis_layout import Bbo, CandleKeys, Heartbeat, LayoutError, Mid, RedisLayout
from engine.config.env import env_bool, env_float
from engine.config.shared import env_interval, env_signal_on_candle_close
from engine.enums import CandleSource, MarketHealthReason, PriceSource
from engine.runtime.clock import wall_ms
from engine.sidecar.fleet import FleetKeys, carrying_members, read_sources, sources_summary
from engine.sidecar.plan import MarketSource
from engine.storage.sqlite import open_db, read_candles
from engine.venue import types as hl
from strategies.candle import Candle, interval_ms

if TYPE_CHECKING:  # imported by candles_to_df: the daemon's start-up never needs pandas
    import pandas as pd

log = logging.getLogger(__name__)

DF_COLUMNS = ("timestamp", "T", "s", "i", "Open", "High", "Low", "Close", "Volume", "n")
_MIN_STALE_FLOOR_MS = 300_000
_STALE_BARS = 3



class HubRest(Protocol):
    """The REST reads the hub falls back to (engine.venue.info_client.HyperliquidInfoClient has them)."""

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Sequence[Candle]: ...

    def all_mids(self) -> dict[str, float]: ...


@dataclass(frozen=True, kw_only=True)
class HubSettings:
    """Hub limits. Ages are in seconds; 0 for candle_max_age_secs means max(3 bars, 300 s)."""

    interval: str = "1h"
    signal_on_candle_close: bool = True
    candle_max_age_secs: float = 0.0
    mid_max_age_secs: float = 60.0
    bbo_max_age_secs: float = 120.0
    heartbeat_max_age_secs: float = 15.0
    rest_enable: bool = True
    rest_cache_secs: float = 5.0

    def candle_max_age_ms(self, interval: str) -> int:
        if self.candle_max_age_secs > 0:
            return int(self.candle_max_age_secs * 1000)
        return max(_STALE_BARS * interval_ms(interval), _MIN_STALE_FLOOR_MS)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        """Build from AI_QUANT_* variables; raise ConfigError naming a bad one."""
        interval = env_interval(env)
        return cls(
            interval=interval,
            signal_on_candle_close=env_signal_on_candle_close(env),
            candle_max_age_secs=env_float("AI_QUANT_CANDLE_MAX_AGE_S", 0.0, env, lo=0.0),
            mid_max_age_secs=env_float("AI_QUANT_WS_STALE_MIDS_S", 60.0, env, lo=0.1),
            bbo_max_age_secs=env_float("AI_QUANT_WS_STALE_BBO_S", 120.0, env, lo=0.0),
            heartbeat_max_age_secs=env_float("AI_QUANT_SIDECAR_HEARTBEAT_STALE_S", 15.0, env, lo=0.5),
            rest_enable=env_bool("AI_QUANT_REST_ENABLE", True, env),
        )


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """A price for one symbol and where it came from; ages in seconds on the venue clock.

    `bid`/`ask` are the symbol's fresh BBO from Redis when the sidecar has one (whatever source
    `price` came from), so a paper fill can take the ask/bid (`trade.use_bbo_for_fills`).
    """

    symbol: str
    price: float | None
    source: PriceSource
    age_secs: float | None
    bid: float | None = None
    ask: float | None = None
    bbo_age_secs: float | None = None


@dataclass(frozen=True, slots=True)
class CandleFrame:
    """Candles in the reference DataFrame contract, with where they came from and whether fresh."""

    df: pd.DataFrame
    source: CandleSource
    fresh: bool
    last_close_ms: int | None


@dataclass(frozen=True, slots=True)
class KeysSnapshot:
    """The polled keys, where they came from, and the feed's health when they were read."""

    keys: dict[str, int | None]
    source: CandleSource
    health: MarketHealthReason = MarketHealthReason.OK


@dataclass(frozen=True, slots=True)
class MarketHealth:
    ok: bool
    reason: MarketHealthReason
    heartbeat_age_secs: float | None
    venue_ms: int | None
    connected: bool


def candles_to_df(candles: Sequence[Candle], symbol: str, interval: str) -> pd.DataFrame:
    """Return the reference candle frame: timestamp, T, s, i, Open, High, Low, Close, Volume, n."""
    import pandas as pd

    return pd.DataFrame(
        {
            "timestamp": [c.t for c in candles],
            "T": [c.close_ms for c in candles],
            "s": [symbol] * len(candles),
            "i": [interval] * len(candles),
            "Open": [c.o for c in candles],
            "High": [c.h for c in candles],
            "Low": [c.l for c in candles],
            "Close": [c.c for c in candles],
            "Volume": [c.v for c in candles],
            "n": [c.n for c in candles],
        },
        columns=list(DF_COLUMNS),
    ).astype(
        {
            "timestamp": "int64",
            "T": "int64",
            "n": "int64",
            "Open": "float64",
            "High": "float64",
            "Low": "float64",
            "Close": "float64",
            "Volume": "float64",
        }
    )


def _redis_quote(
    sym: str, mid: Mid | None, bbo: Bbo | None, now_ms: int, max_age: float, bbo_max_age: float
) -> PriceQuote | None:
    """Quote from Redis: the fresh mid, else the fresh BBO's mid; a fresh BBO rides along either way."""
    book: Bbo | None = None
    book_age = 0.0
    if bbo is not None and (book_age := max(0.0, (now_ms - bbo.venue_ms) / 1000.0)) <= bbo_max_age:
        book = bbo
    if mid is not None and (age := max(0.0, (now_ms - mid.venue_ms) / 1000.0)) <= max_age:
        quote = PriceQuote(sym, mid.price, PriceSource.REDIS_MID, age)
    elif book is not None:
        quote = PriceQuote(sym, book.mid, PriceSource.REDIS_BBO, book_age)
    else:
        return None
    if book is None:
        return quote
    return dataclasses.replace(quote, bid=book.bid_px, ask=book.ask_px, bbo_age_secs=book_age)


_REDIS_ERRORS = (redis.RedisError, LayoutError)
_REST_ERRORS = (hl.VenueError, ValueError)


class MarketDataHub:
    """Candles, candle keys, mids and health for the driver (see module docstring)."""

    def __init__(
        self,
        *,
        redis_client: Any,
        layout: RedisLayout,
        settings: HubSettings,
        candles_db_path: str | Path | None = None,
        rest: HubRest | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._redis = redis_client
        self._layout = layout
        self.settings = settings
        self._db_path = None if candles_db_path is None else Path(candles_db_path)
        self._db: sqlite3.Connection | None = None
        self._rest = rest if settings.rest_enable else None
        self._clock_ms = clock_ms
        self._last_hb: Heartbeat | None = None
        self._rest_candles: dict[tuple[str, str, int], tuple[int, list[Candle]]] = {}
        self._rest_mids: tuple[int, dict[str, float]] | None = None
        self._keys_fallback = False  # candle keys currently come from SQLite (Redis unreadable)

    # ------------------------------------------------------------------ clocks and health
    def _refresh_heartbeat(self) -> Heartbeat | None:
        try:
            hb = self._layout.read_heartbeat(self._redis)
        except _REDIS_ERRORS as exc:
            log.warning("heartbeat unreadable", extra={"error": type(exc).__name__})
            return None
        if hb is not None:
            self._last_hb = hb
        return hb

    def venue_now_ms(self) -> int:
        """The venue clock: the last heartbeat's venue time, advanced at wall speed since it was written."""
        now = self._clock_ms()
        hb = self._last_hb
        if hb is None or hb.venue_ms <= 0:
            return now
        return hb.venue_ms + max(0, now - hb.wall_ms)

    def health(self) -> MarketHealth:
        """Health of the market-data path from the sidecar heartbeat (reads Redis once)."""
        try:
            hb = self._layout.read_heartbeat(self._redis)
        except _REDIS_ERRORS:
            return MarketHealth(False, MarketHealthReason.REDIS_DOWN, None, None, False)
        if hb is None:
            return MarketHealth(False, MarketHealthReason.NO_HEARTBEAT, None, None, False)
        self._last_hb = hb
        shared = self._judge(hb)
        if not shared.ok:
            return shared
        return self._fleet_health() or shared

    def _judge(self, hb: Heartbeat) -> MarketHealth:
        """One heartbeat's verdict: stale on the wall clock, disconnected, or OK."""
        age = max(0.0, (self._clock_ms() - hb.wall_ms) / 1000.0)
        if age > self.settings.heartbeat_max_age_secs:
            return MarketHealth(False, MarketHealthReason.HEARTBEAT_STALE, age, hb.venue_ms, hb.connected)
        if not hb.connected:
            return MarketHealth(False, MarketHealthReason.SIDECAR_DISCONNECTED, age, hb.venue_ms, False)
        return MarketHealth(True, MarketHealthReason.OK, age, hb.venue_ms, True)

    def _fleet_health(self) -> MarketHealth | None:
        """Every market's source is alive: the first unhealthy verdict among the sidecars the source
        table names (a dead one whose markets the others have not taken yet goes stale here, even
        while another sidecar keeps the shared key fresh); None when all are healthy. A sidecar
        without its own key (an older one) is judged by the shared key only, as before."""
        try:
            members = carrying_members(self._redis, FleetKeys(self._layout.prefix), self.settings.interval)
            beats = self._layout.read_sidecar_heartbeats(self._redis, sorted(members))
        except _REDIS_ERRORS:
            return MarketHealth(False, MarketHealthReason.REDIS_DOWN, None, None, False)
        for member, beat in beats.items():
            verdict = None if beat is None else self._judge(beat)
            if verdict is not None and not verdict.ok:
                log.debug("sidecar unhealthy", extra={"member": member, "reason": verdict.reason.value})
                return verdict
        return None

    def market_sources(self, symbols: Sequence[str], interval: str | None = None) -> dict[str, MarketSource]:
        """Which feed carries each market now (ws / rest / none); all none when Redis is unreadable."""
        try:
            return read_sources(
                self._redis, FleetKeys(self._layout.prefix), interval or self.settings.interval, symbols
            )
        except _REDIS_ERRORS as exc:
            log.warning("market sources unreadable", extra={"error": type(exc).__name__})
            return dict.fromkeys(symbols, MarketSource.NONE)

    def market_source_summary(self, symbols: Sequence[str], interval: str | None = None) -> dict[str, int]:
        """Markets per source, e.g. {"ws": 2990, "rest": 10, "none": 0}: one line of status."""
        return sources_summary(self.market_sources(symbols, interval))

    # ------------------------------------------------------------------ SQLite
    def _sqlite(self) -> sqlite3.Connection | None:
        if self._db is None and self._db_path is not None and self._db_path.exists():
            self._db = open_db(self._db_path, read_only=True, busy_timeout_secs=2.0)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ------------------------------------------------------------------ candle keys
    def read_candle_keys(self, symbols: Sequence[str], interval: str | None = None) -> dict[str, CandleKeys]:
        """Both keys of every symbol from Redis, one round trip; raises redis.RedisError."""
        return self._layout.read_candle_keys(self._redis, symbols, interval or self.settings.interval)

    def candle_keys(self, symbols: Sequence[str], interval: str | None = None) -> KeysSnapshot:
        """The key the engine polls per symbol (by AI_QUANT_SIGNAL_ON_CANDLE_CLOSE), Redis then SQLite."""
        iv = interval or self.settings.interval
        on_close = self.settings.signal_on_candle_close
        try:
            picked = self._layout.read_picked_keys(self._redis, symbols, iv, on_close)  # the hash it polls
            if self._keys_fallback:
                self._keys_fallback = False
                log.warning("candle keys from redis again")
            return KeysSnapshot(picked, CandleSource.REDIS, self.health().reason)  # a frozen feed shows here
        except _REDIS_ERRORS as exc:
            # once per outage: the engine's blind watch (engine.tick.blind) reports it loudly
            log.log(
                logging.DEBUG if self._keys_fallback else logging.WARNING,
                "candle keys from sqlite: redis unavailable error=%s", type(exc).__name__,
            )  # fmt: skip
            self._keys_fallback = True
        out: dict[str, int | None] = dict.fromkeys(symbols)
        conn = self._sqlite()
        if conn is not None:
            for sym in symbols:
                last = read_candles(conn, sym, iv, limit=1)
                if last:  # open mode: the bar after the last closed one (SQLite holds no forming bar)
                    out[sym] = last[-1].close_ms if on_close else last[-1].close_ms + 1
        return KeysSnapshot(out, CandleSource.SQLITE, MarketHealthReason.REDIS_DOWN)

    # ------------------------------------------------------------------ candles
    def _fresh(self, last: Candle, interval: str) -> bool:
        return self.venue_now_ms() - last.close_ms <= self.settings.candle_max_age_ms(interval)

    def _from_redis(self, symbol: str, interval: str, rows: int) -> tuple[list[Candle], Candle | None]:
        candles = self._layout.read_candles(self._redis, symbol, interval, limit=rows)
        return candles, self._layout.read_forming(self._redis, [symbol], interval).get(symbol)

    def _from_sqlite(self, symbol: str, interval: str, rows: int) -> tuple[list[Candle], Candle | None]:
        conn = self._sqlite()
        return ([] if conn is None else read_candles(conn, symbol, interval, limit=rows)), None

    def _from_rest(self, symbol: str, interval: str, rows: int) -> tuple[list[Candle], Candle | None]:
        if self._rest is None:
            return [], None
        now = self.venue_now_ms()
        key = (symbol, interval, rows)
        cached = self._rest_candles.get(key)
        if cached is not None and self._clock_ms() - cached[0] < self.settings.rest_cache_secs * 1000:
            got = cached[1]
        else:
            step = interval_ms(interval)
            got = list(self._rest.candle_snapshot(symbol, interval, now - (rows + 2) * step, now))
            self._rest_candles[key] = (self._clock_ms(), got)
        closed = [c for c in got if c.close_ms < now]
        open_bars = [c for c in got if c.close_ms >= now]
        return closed[-rows:], (open_bars[-1] if open_bars else None)

    def get_candles_df(
        self,
        symbol: str,
        interval: str | None = None,
        min_rows: int = 1,
        *,
        include_forming: bool | None = None,
    ) -> CandleFrame | None:
        """Return the newest `min_rows` closed candles (+ the forming one in open mode).

        Fallback Redis → SQLite → REST: the first fresh answer with enough rows wins, else the
        newest stale one (stale data beats none; the caller must not enter on it), else None.
        """
        iv = interval or self.settings.interval
        rows = max(1, int(min_rows))
        with_forming = (
            (not self.settings.signal_on_candle_close) if include_forming is None else include_forming
        )
        self._refresh_heartbeat()
        stale: list[tuple[int, CandleFrame]] = []
        sources = (
            (CandleSource.REDIS, self._from_redis, _REDIS_ERRORS),
            (CandleSource.SQLITE, self._from_sqlite, (sqlite3.Error,)),
            (CandleSource.REST, self._from_rest, _REST_ERRORS),
        )
        for source, fetch, errors in sources:
            try:
                closed, forming = fetch(symbol, iv, rows)
            except errors as exc:
                log.warning(
                    "candle source failed",
                    extra={"symbol": symbol, "source": source.value, "error": type(exc).__name__},
                )
                continue
            if len(closed) < rows:
                continue
            last = closed[-1]
            bars = (
                [*closed, forming] if with_forming and forming is not None and forming.t > last.t else closed
            )
            frame = CandleFrame(candles_to_df(bars, symbol, iv), source, self._fresh(last, iv), last.close_ms)
            if frame.fresh:
                return frame
            stale.append((last.close_ms, frame))
        if not stale:
            return None
        return max(stale, key=lambda item: item[0])[1]

    # ------------------------------------------------------------------ prices
    def _rest_all_mids(self) -> tuple[dict[str, float], float] | None:
        if self._rest is None:
            return None
        now = self._clock_ms()
        cached = self._rest_mids
        if cached is None or now - cached[0] >= self.settings.rest_cache_secs * 1000:
            try:
                cached = self._rest_mids = (now, dict(self._rest.all_mids()))
            except _REST_ERRORS as exc:
                log.warning("rest allMids failed", extra={"error": type(exc).__name__})
                return None
        return cached[1], (now - cached[0]) / 1000.0

    def _last_close(self, symbol: str) -> PriceQuote | None:
        frame = self.get_candles_df(symbol, min_rows=1, include_forming=False)
        if frame is None or frame.last_close_ms is None:
            return None
        price = float(frame.df["Close"].iloc[-1])
        age = max(0.0, (self.venue_now_ms() - frame.last_close_ms) / 1000.0)
        return PriceQuote(symbol, price, PriceSource.LAST_CLOSE, age)

    def get_mids(self, symbols: Sequence[str], max_age_secs: float | None = None) -> dict[str, PriceQuote]:
        """Quote every symbol: Redis mid → Redis BBO → REST allMids → last close → none."""
        max_age = self.settings.mid_max_age_secs if max_age_secs is None else max_age_secs
        bbo_age = (
            min(max_age, self.settings.bbo_max_age_secs) if self.settings.bbo_max_age_secs > 0 else max_age
        )
        quotes: dict[str, PriceQuote] = {}
        if self.health().ok:
            try:
                mids = self._layout.read_mids(self._redis, symbols)
                bbos = self._layout.read_bbo(self._redis, symbols)
            except _REDIS_ERRORS:
                mids, bbos = {}, {}
            now = self.venue_now_ms()
            for sym in symbols:
                quote = _redis_quote(sym, mids.get(sym), bbos.get(sym), now, max_age, bbo_age)
                if quote is not None:
                    quotes[sym] = quote
        missing = [s for s in symbols if s not in quotes]
        rest = self._rest_all_mids() if missing else None
        for sym in missing:
            if rest is not None and rest[0].get(sym, 0.0) > 0 and rest[1] <= max_age:
                quotes[sym] = PriceQuote(sym, rest[0][sym], PriceSource.REST_MIDS, rest[1])
                continue
            quotes[sym] = self._last_close(sym) or PriceQuote(sym, None, PriceSource.NONE, None)
        return quotes

    def get_mid(self, symbol: str, max_age_secs: float | None = None) -> PriceQuote:
        """Quote one symbol (see get_mids)."""
        return self.get_mids([symbol], max_age_secs)[symbol]
