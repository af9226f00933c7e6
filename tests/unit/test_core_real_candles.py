"""The whole tick on real recorded candles: in-process shards, real strategy, paper broker, SQLite.

Checks the properties the daemon must keep over a long run: cash identity to the cent, a decision
event behind every fill, and that a restart mid-run (new engine, broker, store and shards over the
same DB and candle store) ends with exactly the ledger of an uninterrupted run.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import pytest

from cluster.inprocess import InProcessExecutor
from cluster.shard_core import ConfigSource, ShardSettings
from cluster.shard_store import MemoryShardStore
from engine.enums import CandleSource, LedgerKind, Mode, PriceSource
from engine.execution.fill_model import FillModelParams
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import KeysSnapshot, PriceQuote
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from strategies.candle import Candle
from tests.fixtures.data_files import ohlcv_path

BARS = 700
FILES = {
    "ETH": ("ETH_BTC-5m", 30_000.0),
    "LTC": ("LTC_BTC-5m", 30_000.0),
    "XMR": ("XMR_BTC-5m", 30_000.0),
}
YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low}
  filters: {require_btc_alignment: false}
"""


def _load(name: str, scale: float) -> list[Candle]:
    with open(ohlcv_path(name), newline="") as handle:
        rows = list(csv.DictReader(handle))[:BARS]
    assert len(rows) == BARS, f"{name}: {len(rows)} bars, the run needs {BARS}"
    return [
        Candle(t=int(r["t"]), close_ms=int(r["t"]) + 299_999, o=float(r["o"]) * scale,
               h=float(r["h"]) * scale, l=float(r["l"]) * scale, c=float(r["c"]) * scale, v=float(r["v"]))
        for r in rows
    ]  # fmt: skip


class ReplayMarket:
    def __init__(self) -> None:
        self.now = 0
        self.keys: dict[str, int] = {}
        self.mids: dict[str, float] = {}

    def venue_now_ms(self) -> int:
        return self.now

    def candle_keys(self, symbols, interval=None) -> KeysSnapshot:
        return KeysSnapshot({s: self.keys.get(s) for s in symbols}, CandleSource.REDIS)

    def get_mids(self, symbols, max_age_secs=None) -> dict[str, PriceQuote]:
        return {s: PriceQuote(s, self.mids.get(s), PriceSource.REDIS_MID, 0.0) for s in symbols}


@pytest.fixture(scope="module")
def candles() -> dict[str, list[Candle]]:
    data = {symbol: _load(name, scale) for symbol, (name, scale) in FILES.items()}
    data["BTC"] = _load("ETH_BTC-5m", 3_000_000.0)  # an anchor series for the shards
    return data


def _run(tmp: Path, candles: dict[str, list[Candle]], restart_at: int | None) -> TradeStore:
    tmp.mkdir(parents=True, exist_ok=True)
    yaml_path = tmp / "strategy.yaml"
    yaml_path.write_text(YAML)
    os.chmod(yaml_path, 0o600)
    shard_store, market = MemoryShardStore(), ReplayMarket()

    def build():
        strategy = StrategyManager(yaml_path, run_mode=Mode.PAPER)
        executor = InProcessExecutor(
            2,
            lambda _i: shard_store,
            ShardSettings(interval="5m", checkpoint_every=8),
            ConfigSource(overrides=strategy.overrides),
            symbols=list(candles),
        )
        store = TradeStore.open(tmp / "trading_paper.db", Mode.PAPER)
        broker = PaperBroker(
            store, FillModelParams(), 10_000.0, pre_send_check=allow_all, clock_ms=lambda: market.now
        )
        engine = UnifiedEngine(
            strategy=strategy, market=market, executor=executor, broker=broker, trades=store,
            events=EventLogger(store.connection, Mode.PAPER), watchlist=lambda: sorted(FILES),
            options=EngineOptions(interval="5m"), recorded_ms=lambda: market.now,
        )  # fmt: skip
        return engine, executor, store

    engine, executor, store = build()
    for i in range(BARS):
        for symbol, series in candles.items():
            shard_store.add_closed(symbol, [series[i]])
        market.now = candles["ETH"][i].close_ms + 1
        market.keys = {s: series[i].close_ms for s, series in candles.items()}
        market.mids = {s: series[i].c for s, series in candles.items()}
        engine.tick()
        if restart_at is not None and i == restart_at:
            executor.checkpoint_all()
            store.close()
            engine, executor, store = build()
    return store


def _ledger(store: TradeStore) -> list[tuple]:
    return [
        (f.kind, f.symbol, f.position_side, round(f.size_coins, 9), round(f.price, 9), f.event_ms, f.reason)
        for f in store.fills()
    ]


def test_real_candles_cash_identity_and_every_fill_explained(tmp_path, candles):
    store = _run(tmp_path, candles, restart_at=None)
    kinds = Counter(f.kind for f in store.fills())
    assert kinds[LedgerKind.OPEN] >= 5 and kinds[LedgerKind.CLOSE] >= 5
    totals = store.totals()
    assert (
        abs(
            totals.seed_usd
            - totals.fees_usd
            + totals.realised_pnl_usd
            + totals.funding_usd
            - totals.balance_usd
        )
        < 0.005
    )
    events = {e.event_id: e for e in EventLogger(store.connection, Mode.PAPER).events()}
    for fill in store.fills():
        if fill.kind is not LedgerKind.SEED:
            assert events[fill.decision_id].trade_id == fill.trade_id


def test_real_candles_restart_mid_run_gives_the_same_ledger(tmp_path, candles):
    straight = _ledger(_run(tmp_path / "straight", candles, restart_at=None))
    resumed = _ledger(_run(tmp_path / "resumed", candles, restart_at=BARS // 2))
    assert resumed == straight
    restart_ms = candles["ETH"][BARS // 2].close_ms + 1
    open_at_restart: set[str] = set()
    for kind, symbol, *_rest, event_ms, _reason in straight:
        if event_ms <= restart_ms:
            if kind is LedgerKind.OPEN:
                open_at_restart.add(symbol)
            elif kind is LedgerKind.CLOSE:
                open_at_restart.discard(symbol)
    assert open_at_restart, "the restart must happen with a position open"
    assert any(row[5] > restart_ms for row in straight), "trading must continue after the restart"
