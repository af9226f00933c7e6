"""Shadow variants through real Ray shards: the columnar records cross the actor boundary intact.

A `ShardPool` (two Ray actors, Redis store, columnar book) and a per-row reference
(`InProcessExecutor`, `columnar=False`, same candles in a MemoryShardStore) decide the same ticks of
a universe with a donchian_breakout grid and a mean-reversion grid as shadows. Every record's
variants must be equal field for field; the pool's arrive as `VariantRows` of one block per shard
(no per-row object on the way); and a shadow fleet fed the Ray records writes the same ledger as one
fed the reference's plain tuples.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench.universe import INTERVAL, series, symbol_names
from cluster.inprocess import InProcessExecutor
from cluster.pool import PoolSettings, ShardPool
from cluster.records import ShardStatus, VariantRows
from cluster.redis_layout import RedisLayout
from cluster.shard_core import ConfigSource, ShardSettings
from cluster.shard_store import MemoryShardStore
from engine.enums import Mode, PriceSource
from engine.execution.fill_model import FillModelParams
from engine.execution.trade_store import open_trading_db
from engine.marketdata.hub import PriceQuote
from engine.runtime.redis_server import EmbeddedRedis
from engine.tick.shadow import ShadowFleet, ShadowSettings
from engine.tick.shadow_store import ShadowStore
from strategies.config import load_yaml_text

N_SYMBOLS = 8
WARM = 250
TICKS = 25
PREFIX = "t-shards-variants"
YAML = """
strategies:
  shadows:
    - name: dc
      strategy: donchian_breakout
      grid: {channel_bars: [5, 20], min_breakout_atr: [0.0, 0.3], exit_channel_bars: [3]}
    - name: mr
      strategy: rsi_bollinger_reversion
      grid: {rsi_oversold: [40, 48]}
"""


def _fleet(db: Path, source: ConfigSource) -> ShadowFleet:
    settings = ShadowSettings(fill=FillModelParams(slippage_bps=10.0))
    return ShadowFleet(ShadowStore(open_trading_db(db), Mode.PAPER), source.plan.rules_for, settings,
                       recorded_ms=lambda: 1)


def _ledger(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM shadow_trades ORDER BY id").fetchall()


@pytest.mark.usefixtures("ray_session")
def test_pool_variant_rows_equal_the_per_row_reference_and_trade_the_same(
    redis_server: EmbeddedRedis, redis_client: Any, tmp_path: Path
) -> None:
    symbols = symbol_names(N_SYMBOLS)
    hist = {s: series(i, WARM + TICKS) for i, s in enumerate(symbols)}
    hist["BTC"] = series(0, WARM + TICKS, anchor=True)
    layout = RedisLayout(PREFIX)
    memory = MemoryShardStore()

    def write(start: int, stop: int) -> dict[str, int]:
        pipe = redis_client.pipeline(transaction=True)
        layout.write_closed_many(pipe, INTERVAL, {s: c[start:stop] for s, c in hist.items()})
        pipe.execute()
        for s, c in hist.items():
            memory.add_closed(s, c[start:stop])
        return {s: hist[s][stop - 1].close_ms for s in symbols}

    write(0, WARM)
    source = ConfigSource(overrides=load_yaml_text(YAML))
    pool = ShardPool(redis_url=redis_server.url, redis_prefix=PREFIX, configs=source,
                     settings=ShardSettings(interval=INTERVAL, checkpoint_every=4),
                     pool=PoolSettings(n_shards=2, namespace="aiq-t-variants", deadline_ms=60_000),
                     symbols=symbols)
    reference = InProcessExecutor(2, lambda _i: memory, ShardSettings(interval=INTERVAL, columnar=False),
                                  source, symbols=symbols)
    fleet, ref_fleet = _fleet(tmp_path / "ray.db", source), _fleet(tmp_path / "ref.db", source)
    signals = opened = 0
    try:
        for bar in range(WARM, WARM + TICKS):
            batch = write(bar, bar + 1)
            got, want = pool.evaluate(batch).decisions, reference.evaluate(batch).decisions
            blocks = set()
            for s in symbols:
                a, b = got[s], want[s]
                assert a.status is ShardStatus.OK and (a.signal, a.score) == (b.signal, b.score)
                assert isinstance(a.variants, VariantRows) and len(a.variants) == 6
                assert tuple(a.variants) == tuple(b.variants), f"bar {bar} symbol {s}"
                blocks.add(id(a.variants.block))
                signals += sum(v.signal.value != "NEUTRAL" for v in a.variants)
            assert len(blocks) == 2  # one columnar block per shard, not one object per row
            quotes = {s: PriceQuote(s, hist[s][bar].c, PriceSource.REDIS_MID, 0.0) for s in symbols}
            now = hist["BTC"][bar].close_ms
            report = fleet.on_tick(got, quotes, now)
            plain = {s: dataclasses.replace(d, variants=tuple(d.variants)) for s, d in want.items()}
            assert ref_fleet.on_tick(plain, quotes, now).opened == report.opened
            opened += report.opened
    finally:
        pool.close()
    assert signals > 0 and opened > 0
    assert _ledger(tmp_path / "ray.db") == _ledger(tmp_path / "ref.db")
    assert fleet.positions == ref_fleet.positions
