"""Columnar shards (issue 12): the book's vectorised path gives the per-row path's records, field for field.

The same universe runs through two executors, one with `ShardSettings(columnar=True)` (SDK states
as numpy columns across the shard, decisions through the array forms) and one with
`columnar=False` (a per-row `IndicatorState` per symbol and declaration set, `decide` per row).
Every record (status, signal, confidence, score, and every variant's close, entry ATR, exit flags,
fault and reason) must be identical on every tick, through a restart from checkpoints written by
the columnar shard, for both builtins with array forms, a variant grid over windows (several
declaration sets) and thresholds, and a user strategy without an array form.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.inprocess import InProcessExecutor
from cluster.records import ShardStatus
from cluster.shard_core import ConfigSource, ShardSettings
from strategies.config import load_yaml_text
from strategies.enums import Signal
from tests.unit.test_shard_core import INTERVAL, WARM, Universe, run_ticks

USER_DIR = Path(__file__).parents[1] / "data" / "user_strategy"
TICKS = 30
YAML = """
strategies:
  primary: donchian_breakout
  params:
    donchian_breakout: {channel_bars: 10, min_volume_ratio: 0}
  symbols:
    S0001:
      primary: rsi_bollinger_reversion
      params: {rsi_bollinger_reversion: {rsi_oversold: 45, rsi_overbought: 55, max_adx: 60}}
    S0002:
      primary: my_strategies.ema_cross:EmaCross
      params: {"my_strategies.ema_cross:EmaCross": {fast: 5, slow: 13}}
  shadows:
    - name: dc
      strategy: donchian_breakout
      grid: {channel_bars: [5, 20], min_breakout_atr: [0.0, 0.2], exit_channel_bars: [4]}
    - name: mr
      strategy: rsi_bollinger_reversion
      grid: {rsi_oversold: [40, 48], exit_at_mid: [true, false]}
"""


@pytest.fixture(autouse=True)
def _user_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(USER_DIR))


def _executor(u: Universe, columnar: bool) -> InProcessExecutor:
    settings = ShardSettings(interval=INTERVAL, checkpoint_every=4, columnar=columnar)
    source = ConfigSource(overrides=load_yaml_text(YAML))
    return InProcessExecutor(2, lambda _i: u.store, settings, source, symbols=u.symbols)


def test_columnar_shards_give_the_per_row_records_exactly_through_a_restart() -> None:
    u = Universe(5, WARM + TICKS)
    u.publish(WARM)
    fast, slow = _executor(u, True), _executor(u, False)
    got = run_ticks(fast, u, WARM, WARM + 12)
    assert sum(core.stats()["columnar_rows"] for core in fast.cores) > 0  # the book really holds them
    assert sum(core.stats()["columnar_rows"] for core in slow.cores) == 0
    fast.restart_shard(0)  # rehydrates from checkpoints the columnar rows exported
    got += run_ticks(fast, u, WARM + 12, WARM + TICKS)
    u2 = Universe(5, WARM + TICKS)
    u2.publish(WARM)
    slow = _executor(u2, False)
    want = run_ticks(slow, u2, WARM, WARM + TICKS)
    signals = exits = 0
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        for s in u.symbols:
            ra, rb = a.decisions[s], b.decisions[s]
            assert ra.status is ShardStatus.OK and len(ra.variants) == 8
            assert repr(ra) == repr(rb), f"tick {k} symbol {s}"
            signals += sum(v.signal is not Signal.NEUTRAL for v in ra.variants)
            exits += sum(v.exit_long or v.exit_short for v in ra.variants)
    assert signals > 0 and exits > 0  # the comparison covered entries and indicator exits


def test_a_columnar_row_that_refuses_a_candle_fails_its_symbol_only() -> None:
    u = Universe(3, WARM + 3)
    u.publish(WARM)
    ex = _executor(u, True)
    run_ticks(ex, u, WARM, WARM + 1)
    core = next(c for c in ex.cores if c.symbols())
    victim = core.symbols()[0]
    state = core._states[victim]  # provoke a refused candle: rewind the clock
    assert state.sdk is not None
    for cset, row in state.sdk.slots():
        cset.last_t[row] = 2**62
    result = run_ticks(ex, u, WARM + 1, WARM + 2)[0]
    assert result.decisions[victim].status is ShardStatus.STRATEGY_ERROR
    others = [s for s in core.symbols() if s != victim]
    assert all(result.decisions[s].status is ShardStatus.OK for s in others)
    again = run_ticks(ex, u, WARM + 2, WARM + 3)[0]  # rebuilt from the store on the next tick
    assert again.decisions[victim].status is ShardStatus.OK
