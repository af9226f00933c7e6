"""MarketDataHub on real Redis and SQLite: fallbacks with their source, staleness, keys, mids, health."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis

from cluster.redis_layout import Bbo, Heartbeat, RedisLayout
from engine.enums import CandleSource, MarketHealthReason, OrderSide, PriceSource
from engine.execution.fill_model import FillModelParams, fill_price
from engine.marketdata.hub import DF_COLUMNS, HubSettings, MarketDataHub
from engine.runtime.redis_server import EmbeddedRedis
from engine.sidecar.fleet import FleetKeys
from engine.storage.sqlite import ensure_candles_table, open_db, upsert_candles
from engine.tick.types import market_quote
from engine.venue import types as hl
from strategies.candle import Candle

IV = 60_000
NOW = 1_000 * IV  # venue time of the tests
SYM = "BTC"


def bar(i: int, c: float = 100.0) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, c, c + 1, c - 1, c, 2.0, 5)


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class FakeRest:
    """The venue edge: serves fixed candles/mids, or fails like the real client does."""

    def __init__(self, candles: Sequence[Candle] = (), mids: dict[str, float] | None = None) -> None:
        self.candles = list(candles)
        self.mids = mids
        self.calls = 0

    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Sequence[Candle]:
        self.calls += 1
        return [c for c in self.candles if start_ms <= c.t <= end_ms]

    def all_mids(self) -> dict[str, float]:
        if self.mids is None:
            raise hl.TemporaryVenueError("allMids", 3, "http 503")
        return dict(self.mids)


def _heartbeat(
    client: redis.Redis, layout: RedisLayout, venue_ms: int, wall_ms: int, connected: bool = True
) -> None:
    hb = Heartbeat(
        wall_ms=wall_ms,
        venue_ms=venue_ms,
        connected=connected,
        interval="1m",
        symbols=1,
        pid=1,
        started_wall_ms=0,
    )
    layout.write_heartbeat(client, hb)


def _redis_bars(
    client: redis.Redis, layout: RedisLayout, bars: list[Candle], forming: Candle | None = None
) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_candles(pipe, SYM, "1m", bars)
    if forming is not None:
        layout.write_forming(pipe, "1m", {SYM: forming})
    pipe.execute()


def _sqlite(path: Path, bars: list[Candle]) -> None:
    conn = open_db(path)
    ensure_candles_table(conn)
    upsert_candles(conn, SYM, "1m", bars)
    conn.close()


def _hub(
    client: redis.Redis,
    tmp_path: Path,
    rest: FakeRest | None = None,
    clock: Clock | None = None,
    **settings: object,
) -> MarketDataHub:
    return MarketDataHub(
        redis_client=client,
        layout=RedisLayout(),
        settings=HubSettings(interval="1m", **settings),  # type: ignore[arg-type]
        candles_db_path=tmp_path / "candles.db",
        rest=rest,
        clock_ms=clock or Clock(NOW),
    )


def test_candles_from_redis_when_fresh_follow_the_frame_contract(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    layout = RedisLayout()
    _redis_bars(redis_client, layout, [bar(i) for i in range(990, 1000)], forming=bar(1000, c=101))
    _heartbeat(redis_client, layout, NOW + 10, NOW)
    frame = _hub(redis_client, tmp_path).get_candles_df(SYM, "1m", 5)
    assert frame is not None and frame.source is CandleSource.REDIS and frame.fresh
    assert tuple(frame.df.columns) == DF_COLUMNS
    assert list(frame.df["timestamp"]) == [i * IV for i in range(995, 1000)]
    assert frame.df["T"].iloc[-1] == 1000 * IV - 1 and frame.df["s"].iloc[0] == SYM
    opened = _hub(redis_client, tmp_path, signal_on_candle_close=False).get_candles_df(SYM, "1m", 5)
    assert opened is not None and opened.df["timestamp"].iloc[-1] == 1000 * IV and len(opened.df) == 6


def test_candles_fall_back_to_sqlite_when_redis_is_stale(redis_client: redis.Redis, tmp_path: Path) -> None:
    layout = RedisLayout()
    _redis_bars(redis_client, layout, [bar(i) for i in range(900, 950)])  # 50 bars behind: stale
    _heartbeat(redis_client, layout, NOW, NOW)
    _sqlite(tmp_path / "candles.db", [bar(i) for i in range(980, 1000)])
    frame = _hub(redis_client, tmp_path).get_candles_df(SYM, "1m", 10)
    assert frame is not None and frame.source is CandleSource.SQLITE and frame.fresh


def test_candles_fall_back_to_sqlite_then_rest_while_redis_is_down(
    private_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1, socket_connect_timeout=1)
    layout = RedisLayout()
    _redis_bars(client, layout, [bar(i) for i in range(990, 1000)])
    _heartbeat(client, layout, NOW, NOW)
    rest = FakeRest([bar(i) for i in range(950, 1001)])  # bar 1000 still forming at NOW
    hub = _hub(client, tmp_path, rest=rest)
    assert hub.get_candles_df(SYM, "1m", 10).source is CandleSource.REDIS  # type: ignore[union-attr]
    private_redis.kill()
    assert hub.health().reason is MarketHealthReason.REDIS_DOWN
    _sqlite(tmp_path / "candles.db", [bar(i) for i in range(995, 1000)])
    frame = hub.get_candles_df(SYM, "1m", 5)
    assert frame is not None and frame.source is CandleSource.SQLITE and frame.fresh
    frame = hub.get_candles_df(SYM, "1m", 20)  # SQLite has too few rows
    assert frame is not None and frame.source is CandleSource.REST and frame.fresh
    assert list(frame.df["timestamp"]) == [i * IV for i in range(980, 1000)]
    keys = hub.candle_keys([SYM, "ETH"])
    assert keys.source is CandleSource.SQLITE and keys.keys == {SYM: 1000 * IV - 1, "ETH": None}
    client.close()


def test_candles_all_stale_returns_newest_stale_frame_marked_stale(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    layout = RedisLayout()
    _redis_bars(redis_client, layout, [bar(i) for i in range(800, 810)])
    _sqlite(tmp_path / "candles.db", [bar(i) for i in range(850, 860)])
    _heartbeat(redis_client, layout, NOW, NOW)
    frame = _hub(redis_client, tmp_path, rest=FakeRest()).get_candles_df(SYM, "1m", 5)
    assert frame is not None and not frame.fresh and frame.source is CandleSource.SQLITE
    assert _hub(redis_client, tmp_path).get_candles_df(SYM, "1m", 50) is None


def test_staleness_uses_venue_clock_not_wall_clock(redis_client: redis.Redis, tmp_path: Path) -> None:
    layout = RedisLayout()
    _redis_bars(redis_client, layout, [bar(i) for i in range(990, 1000)])
    wall = Clock(NOW + 3_600_000)  # wall is an hour ahead of a replaying venue
    _heartbeat(redis_client, layout, NOW, wall.now)
    frame = _hub(redis_client, tmp_path, clock=wall).get_candles_df(SYM, "1m", 5)
    assert frame is not None and frame.fresh
    wall.now += 301_000  # no heartbeat for 301 s of wall time: the venue clock must have moved on
    frame = _hub(redis_client, tmp_path, clock=wall).get_candles_df(SYM, "1m", 5)
    assert frame is not None and not frame.fresh


@pytest.mark.parametrize("signal_on_close", [True, False])
def test_candle_keys_follow_close_mode(
    redis_client: redis.Redis, tmp_path: Path, signal_on_close: bool
) -> None:
    layout = RedisLayout()
    _redis_bars(redis_client, layout, [bar(998), bar(999)], forming=bar(1000))
    keys = _hub(redis_client, tmp_path, signal_on_candle_close=signal_on_close).candle_keys([SYM])
    assert keys.source is CandleSource.REDIS
    assert keys.keys[SYM] == (1000 * IV - 1 if signal_on_close else 1000 * IV)


def test_mid_fallback_chain_reports_each_source(redis_client: redis.Redis, tmp_path: Path) -> None:
    layout = RedisLayout()
    clock = Clock(NOW)
    rest = FakeRest(mids={SYM: 99.5})
    hub = _hub(redis_client, tmp_path, rest=rest, clock=clock, rest_cache_secs=0.0)
    _heartbeat(redis_client, layout, NOW, NOW)
    layout.write_mids(redis_client, {SYM: 100.25}, venue_ms=NOW - 1000, wall_ms=NOW - 1000)
    layout.write_bbo(redis_client, {SYM: Bbo(100.0, 1.0, 101.0, 1.0, NOW - 500, NOW - 500)})
    quote = hub.get_mid(SYM, max_age_secs=10)
    assert (quote.price, quote.source, quote.age_secs) == (100.25, PriceSource.REDIS_MID, 1.0)
    layout.write_mids(redis_client, {SYM: 100.25}, venue_ms=NOW - 20_000, wall_ms=NOW - 20_000)
    assert hub.get_mid(SYM, max_age_secs=10).source is PriceSource.REDIS_BBO
    layout.write_bbo(redis_client, {SYM: Bbo(100.0, 1.0, 101.0, 1.0, NOW - 20_000, NOW - 20_000)})
    quote = hub.get_mid(SYM, max_age_secs=10)
    assert (quote.price, quote.source) == (99.5, PriceSource.REST_MIDS)
    rest.mids = None
    _redis_bars(redis_client, layout, [bar(999, c=98.0)])
    quote = hub.get_mid(SYM, max_age_secs=10)
    assert (quote.price, quote.source) == (98.0, PriceSource.LAST_CLOSE)
    assert hub.get_mid("NOPE", max_age_secs=10) == hub.get_mid("NOPE", max_age_secs=10)
    assert hub.get_mid("NOPE", max_age_secs=10).source is PriceSource.NONE


def test_stale_heartbeat_distrusts_redis_mids(redis_client: redis.Redis, tmp_path: Path) -> None:
    layout = RedisLayout()
    _heartbeat(redis_client, layout, NOW, NOW - 60_000)
    layout.write_mids(redis_client, {SYM: 100.0}, venue_ms=NOW, wall_ms=NOW)
    quote = _hub(redis_client, tmp_path, rest=FakeRest(mids={SYM: 97.0})).get_mid(SYM)
    assert quote.source is PriceSource.REST_MIDS


@pytest.mark.parametrize("reason", list(MarketHealthReason))
def test_health_reason_from_heartbeat(
    reason: MarketHealthReason, redis_client: redis.Redis, private_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    layout = RedisLayout()
    client = redis_client
    if reason is MarketHealthReason.REDIS_DOWN:
        client = redis.Redis.from_url(private_redis.url, socket_timeout=1, socket_connect_timeout=1)
        private_redis.kill()
    elif reason is MarketHealthReason.HEARTBEAT_STALE:
        _heartbeat(client, layout, NOW, NOW - 16_000)
    elif reason is MarketHealthReason.SIDECAR_DISCONNECTED:
        _heartbeat(client, layout, NOW, NOW, connected=False)
    elif reason is MarketHealthReason.OK:
        _heartbeat(client, layout, NOW, NOW - 1_000)
    hub = _hub(client, tmp_path)
    health = hub.health()
    assert health.reason is reason and health.ok is (reason is MarketHealthReason.OK)
    assert hub.candle_keys([SYM]).health is reason  # the engine's blind watch sees a frozen feed


def test_quote_carries_fresh_bbo_to_the_paper_fill_model(redis_client: redis.Redis, tmp_path: Path) -> None:
    """The sidecar's BBO reaches the fill model: BUY at the ask / SELL at the bid with
    trade.use_bbo_for_fills, the mid without; a stale BBO is never attached."""
    layout = RedisLayout()
    hub = _hub(redis_client, tmp_path)
    _heartbeat(redis_client, layout, NOW, NOW)
    layout.write_mids(redis_client, {SYM: 100.5}, venue_ms=NOW - 1000, wall_ms=NOW - 1000)
    layout.write_bbo(redis_client, {SYM: Bbo(100.0, 1.0, 101.0, 1.0, NOW - 500, NOW - 500)})
    quote = hub.get_mid(SYM, max_age_secs=10)
    assert (quote.price, quote.bid, quote.ask, quote.bbo_age_secs) == (100.5, 100.0, 101.0, 0.5)
    params = FillModelParams(slippage_bps=0.0)

    def price(side: OrderSide, use_bbo: bool) -> tuple[float, PriceSource]:
        fill = fill_price(side, market_quote(quote, NOW, use_bbo=use_bbo), 1.0, params, NOW)
        assert fill is not None
        return fill.price, fill.source

    assert price(OrderSide.BUY, True) == (101.0, PriceSource.REDIS_BBO)
    assert price(OrderSide.SELL, True) == (100.0, PriceSource.REDIS_BBO)
    assert price(OrderSide.BUY, False) == (100.5, PriceSource.REDIS_MID)
    layout.write_bbo(redis_client, {SYM: Bbo(100.0, 1.0, 101.0, 1.0, NOW - 200_000, NOW - 200_000)})
    stale = hub.get_mid(SYM, max_age_secs=10)
    assert (stale.price, stale.bid, stale.ask) == (100.5, None, None)


def test_open_mode_sqlite_key_is_the_bar_after_the_last_close_like_the_redis_key(
    private_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1, socket_connect_timeout=1)
    layout = RedisLayout()
    _redis_bars(client, layout, [bar(998), bar(999)], forming=bar(1000))
    _sqlite(tmp_path / "candles.db", [bar(998), bar(999)])
    hub = _hub(client, tmp_path, signal_on_candle_close=False)
    from_redis = hub.candle_keys([SYM])
    private_redis.kill()
    from_sqlite = hub.candle_keys([SYM])
    assert (from_redis.source, from_sqlite.source) == (CandleSource.REDIS, CandleSource.SQLITE)
    assert from_sqlite.keys == from_redis.keys == {SYM: 1000 * IV}  # the forming bar's open time
    client.close()


def _sidecar_beat(
    client: redis.Redis, layout: RedisLayout, sidecar: str, wall_ms: int, connected: bool = True
) -> None:
    beat = Heartbeat(wall_ms=wall_ms, venue_ms=NOW, connected=connected, interval="1m", symbols=2, pid=1,
                     started_wall_ms=0, sidecar=sidecar)  # fmt: skip
    layout.write_heartbeat(client, beat)


def test_health_judges_every_markets_sidecar_not_the_shared_key(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Two sidecars share one Redis: s1 stops beating while s2 keeps the shared key fresh. The hub
    is unhealthy while the source table still puts a watched market on s1, healthy again once s2
    took it; a market s1 carried that is no longer watched does not count."""
    layout = RedisLayout()
    keys = FleetKeys(layout.prefix)
    redis_client.set(keys.watchlist("1m"), json.dumps(["BTC", "ETH"]))
    redis_client.hset(keys.sources("1m"), mapping={"BTC": "ws s2", "ETH": "ws s1", "OLD": "ws s0"})
    _sidecar_beat(redis_client, layout, "s0", NOW - 600_000)  # long gone, its market unwatched
    _sidecar_beat(redis_client, layout, "s1", NOW - 16_000)
    _sidecar_beat(redis_client, layout, "s2", NOW - 500)  # the shared key is s2's: fresh
    assert layout.read_heartbeat(redis_client).sidecar == "s2"
    hub = _hub(redis_client, tmp_path)
    health = hub.health()
    assert health.reason is MarketHealthReason.HEARTBEAT_STALE and not health.ok
    assert hub.candle_keys(["BTC", "ETH"]).health is MarketHealthReason.HEARTBEAT_STALE
    _sidecar_beat(redis_client, layout, "s1", NOW - 500, connected=False)
    _sidecar_beat(redis_client, layout, "s2", NOW - 400)
    assert hub.health().reason is MarketHealthReason.SIDECAR_DISCONNECTED
    redis_client.hset(keys.sources("1m"), "ETH", "ws s2")  # the fleet moved s1's market to s2
    assert hub.health().ok


def test_single_sidecar_without_its_own_key_is_judged_by_the_shared_key(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    layout = RedisLayout()
    keys = FleetKeys(layout.prefix)
    redis_client.set(keys.watchlist("1m"), json.dumps(["BTC"]))
    redis_client.hset(keys.sources("1m"), mapping={"BTC": "ws old-sidecar"})
    _heartbeat(redis_client, layout, NOW, NOW - 1_000)  # an older sidecar: shared key only
    assert _hub(redis_client, tmp_path).health().ok
    _heartbeat(redis_client, layout, NOW, NOW - 16_000)
    assert _hub(redis_client, tmp_path).health().reason is MarketHealthReason.HEARTBEAT_STALE
