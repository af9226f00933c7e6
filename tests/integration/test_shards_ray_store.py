"""RedisShardStore against a real redis-server (no Ray): resume reads, continuity proof, checkpoints."""

from __future__ import annotations

from typing import Any

from bench.universe import INTERVAL, series
from cluster.redis_layout import RedisLayout
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import CandleRead, RedisShardStore

PREFIX = "t-store"


def _write(client: Any, layout: RedisLayout, symbol: str, candles: list) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_candles(pipe, symbol, INTERVAL, candles)
    pipe.execute()


def test_read_since_resume_found_new_candles_only_and_cold_reads_everything(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX, keep_bars=50)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    a, b = series(0, 40), series(1, 40)
    _write(redis_client, layout, "A", a)
    _write(redis_client, layout, "B", b)
    got = store.read_since({"A": a[30].t, "B": None, "NONE": a[0].t, "EMPTY": None})
    assert got["A"] == CandleRead(True, a[31:])
    assert got["B"] == CandleRead(True, b)
    assert got["NONE"] == CandleRead(False, [])
    assert got["EMPTY"] == CandleRead(True, [])
    assert store.read_since({"A": a[-1].t}) == {"A": CandleRead(True, [])}


def test_read_since_after_retention_trim_reports_lost_continuity(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX, keep_bars=20)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    a = series(0, 60)
    _write(redis_client, layout, "A", a[:30])
    _write(redis_client, layout, "A", a[30:])
    assert store.read_since({"A": a[10].t}) == {"A": CandleRead(False, a[40:])}
    assert store.read_since({"A": a[45].t}) == {"A": CandleRead(True, a[46:])}


def test_core_checkpoints_round_trip_through_redis(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    candles = {"A": series(0, 260), "BTC": series(0, 260, anchor=True)}
    for symbol, cs in candles.items():
        _write(redis_client, layout, symbol, cs)
    settings = ShardSettings(interval=INTERVAL)
    first = ShardCore(0, store, settings, ConfigSource(), symbols=["A"])
    record = first.evaluate({"A": candles["A"][-1].close_ms})[0]
    assert first.checkpoint() == 2  # A and this shard's anchor
    assert redis_client.exists(layout.checkpoint_key("A", INTERVAL))
    fresh_store = RedisShardStore(redis_client, layout, INTERVAL)
    again = ShardCore(0, fresh_store, settings, ConfigSource(), symbols=["A"])
    assert again.rehydrated["checkpoint"] == 1
    assert again.progress(["A"]) == {"A": (candles["A"][-1].t, 260)}
    assert again.evaluate({"A": candles["A"][-1].close_ms})[0] == record
