"""The shadow fleet on columnar shard records trades exactly like the per-row loop it replaced.

Real columnar shards (`InProcessExecutor`, `ShardSettings(columnar=True)`) decide a universe with a
donchian_breakout grid, a mean-reversion grid and a user strategy that raises on one symbol (fault
rows) and BUYs everywhere else; one variant has no exit rules (`rules_for` raises). Two fleets on two
real SQLite trading DBs take the same ticks: the fleet under test reads the records' `VariantRows`
(array filters), the reference is the fleet's former tick (one `VariantDecision` per (variant,
symbol), every key through `_exit_one` / `_entry_one` in key order) fed the same records as plain
tuples. Every tick's report, the whole `shadow_trades` ledger and the open positions must be equal.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import pytest

from cluster.inprocess import InProcessExecutor
from cluster.records import ShardDecision, ShardStatus, VariantRows
from cluster.shard_core import ConfigSource, ShardSettings
from engine.enums import Mode, PriceSource
from engine.execution.fill_model import FillModelParams
from engine.execution.trade_store import open_trading_db
from engine.marketdata.hub import PriceQuote
from engine.tick.shadow import ShadowFleet, ShadowSettings, ShadowTickReport, _Batch
from engine.tick.shadow_store import ShadowStore
from strategies.config import load_yaml_text
from strategies.sdk.strategy import ExitRules
from tests.unit.test_shard_core import INTERVAL, WARM, Universe

USER_DIR = Path(__file__).parents[1] / "data" / "user_strategy"
TICKS = 40
NO_RULES = "mr[rsi_oversold=40]"
YAML = """
strategies:
  shadows:
    - name: dc
      strategy: donchian_breakout
      grid: {channel_bars: [5, 20], min_breakout_atr: [0.0, 0.3], exit_channel_bars: [3]}
    - name: mr
      strategy: rsi_bollinger_reversion
      grid: {rsi_oversold: [40, 48]}
    - name: bad
      strategy: my_strategies.broken:Faulty
      params: {only_symbol: S0001}
"""


@pytest.fixture(autouse=True)
def _user_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(USER_DIR))


class PerRowFleet(ShadowFleet):
    """The fleet's tick before the columnar records, verbatim: the reference the new one must equal."""

    def on_tick(self, decisions: Mapping[str, ShardDecision], quotes: Mapping[str, PriceQuote], now_ms: int,
                *, funding_rates: Mapping[str, float] | None = None, entries: bool = True,
                ) -> ShadowTickReport:  # fmt: skip
        batch = _Batch(positions=dict(self._positions), now_ms=now_ms)
        by_key = {(v.variant, symbol): v for symbol, d in decisions.items() for v in d.variants}
        for key in sorted(self._positions):
            self._guarded(batch, key, self._exit_one, batch, key, by_key.get(key), quotes, now_ms)
        if entries:
            for key in sorted(by_key):
                if key not in batch.touched:
                    self._guarded(batch, key, self._entry_one, batch, key, by_key[key], quotes, now_ms)
        self._store.apply(batch.fills, list(batch.changes.values()), self._recorded_ms())
        self._positions = batch.positions
        return ShadowTickReport(batch.opened, batch.closed, batch.funding_rows, batch.skipped,
                                len(self._positions), 0.0)


def _fleet(cls: type[ShadowFleet], db: Path, source: ConfigSource) -> ShadowFleet:
    plan = source.plan

    def rules_for(variant: str) -> ExitRules:
        if variant == NO_RULES:
            raise KeyError(f"no exit rules for {variant}")
        return plan.rules_for(variant)

    settings = ShadowSettings(fill=FillModelParams(slippage_bps=10.0))
    return cls(ShadowStore(open_trading_db(db), Mode.PAPER), rules_for, settings, recorded_ms=lambda: 1)


def _ledger(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM shadow_trades ORDER BY id").fetchall()


def test_columnar_fleet_trades_like_the_per_row_loop(tmp_path: Path) -> None:
    u = Universe(6, WARM + TICKS)
    u.publish(WARM)
    source = ConfigSource(overrides=load_yaml_text(YAML))
    ex = InProcessExecutor(2, lambda _i: u.store, ShardSettings(interval=INTERVAL, columnar=True), source,
                           symbols=u.symbols)
    fleet = _fleet(ShadowFleet, tmp_path / "columnar.db", source)
    reference = _fleet(PerRowFleet, tmp_path / "per_row.db", source)
    totals = {"opened": 0, "closed": 0, "skipped": 0}
    for k, bar in enumerate(range(WARM, WARM + TICKS)):
        batch = u.publish(bar + 1, bar)
        decisions = {s: d for s, d in ex.evaluate(batch).decisions.items() if d.status is ShardStatus.OK}
        assert len(decisions) == 6 and all(isinstance(d.variants, VariantRows) for d in decisions.values())
        plain = {s: dataclasses.replace(d, variants=tuple(d.variants)) for s, d in decisions.items()}
        quotes = {s: PriceQuote(s, u.hist[s][bar].c, PriceSource.REDIS_MID, 0.0) for s in decisions
                  if not (s == "S0002" and k % 3 == 0)}  # now and then a symbol without a mid
        now = u.hist["BTC"][bar].close_ms
        got = fleet.on_tick(decisions, quotes, now)
        want = reference.on_tick(plain, quotes, now)
        assert (got.opened, got.closed, got.skipped, got.open_positions) == (
            want.opened, want.closed, want.skipped, want.open_positions), f"tick {k}"
        for name in totals:
            totals[name] += getattr(got, name)
    assert fleet.positions == reference.positions
    ledger = _ledger(tmp_path / "columnar.db")
    assert ledger == _ledger(tmp_path / "per_row.db")
    indicator_exit = any("indicator_exit" in row for row in ledger)
    # the comparison covered entries, exits (an indicator exit among them), faults and missing rules
    assert totals["opened"] > 5 and totals["closed"] > 0 and totals["skipped"] > TICKS and indicator_exit
    assert fleet._faulted == reference._faulted and ("bad", "S0001") in fleet._faulted
    assert any(key[0] == NO_RULES for key in fleet._faulted)
