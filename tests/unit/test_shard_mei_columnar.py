"""A mei_alpha_v1 primary in the shard's columns (cluster.mei_rows) gives the per-symbol path's records.

Two executors over the same universe: `columnar=True` (mei's indicators as rows of the book's
`MeiColumns`, NEUTRAL decisions from `signals_columns.decide_columns`) and `columnar=False`
(`IncrementalIndicators` + `decide_lean` per symbol, the reference path). Every record, repr for
repr (signal, confidence, score, entry kind, features, BTC gate), must match on every tick, with
open-position symbols asking for features, the traded anchor (BTC passes its own gate), through
a restart from the checkpoints the columnar shard exported; and the checkpoints themselves must
be the per-row ones, bit for bit.
"""

from __future__ import annotations

from cluster.inprocess import InProcessExecutor
from cluster.mei_rows import MeiRow
from cluster.records import ShardStatus
from cluster.shard_core import ConfigSource, ShardSettings
from strategies.config import parse_overrides
from strategies.enums import EntryKind
from strategies.incremental import IncrementalIndicators
from tests.unit.test_shard_core import INTERVAL, WARM, Universe, run_ticks

TICKS = 36
LOOSE = {"global": {"thresholds": {"entry": {"min_adx": 12.0, "enable_pullback_entries": True,
                                             "enable_slow_drift_entries": True}},
                    "filters": {"require_adx_rising": False}},
         "symbols": {"S0003": {"trade": {"reverse_entry_signal": True}}}}


def _executor(u: Universe, columnar: bool) -> InProcessExecutor:
    settings = ShardSettings(interval=INTERVAL, checkpoint_every=4, columnar=columnar)
    return InProcessExecutor(2, lambda _i: u.store, settings, ConfigSource(parse_overrides(LOOSE)),
                             symbols=u.symbols)


def _run(ex: InProcessExecutor, u: Universe, first: int, last: int, want: set[str]) -> list:
    return [ex.evaluate(u.publish(bar + 1, bar), want_snapshot=want) for bar in range(first, last)]


def test_columnar_mei_gives_the_per_symbol_records_exactly_through_a_restart() -> None:
    want = {"S0001", "BTC"}
    u = Universe(24, WARM + TICKS, trade_btc=True)
    u.publish(WARM)
    fast = _executor(u, True)
    got = _run(fast, u, WARM, WARM + 14, want)
    held = [st.ind for core in fast.cores for st in core._states.values()]
    assert held and all(type(ind) is MeiRow for ind in held)  # the columns really hold mei
    fast.restart_shard(0)  # rehydrates from checkpoints the columnar rows exported
    got += _run(fast, u, WARM + 14, WARM + TICKS, want)
    u2 = Universe(24, WARM + TICKS, trade_btc=True)
    u2.publish(WARM)
    slow = _executor(u2, False)
    wanted = _run(slow, u2, WARM, WARM + TICKS, want)
    assert all(type(st.ind) is IncrementalIndicators for core in slow.cores for st in core._states.values())
    actionable = kinds = 0
    for k, (a, b) in enumerate(zip(got, wanted, strict=True)):
        for s in u.symbols:
            ra, rb = a.decisions[s], b.decisions[s]
            assert ra.status is ShardStatus.OK
            assert repr(ra) == repr(rb), f"tick {k} symbol {s}"
            actionable += ra.actionable
            kinds += ra.entry_kind not in (EntryKind.NONE, EntryKind.STANDARD)
    assert actionable > 5 and kinds > 0  # entries (and fallback entries) were compared, not only NEUTRALs
    for fc, sc in zip(fast.cores, slow.cores, strict=True):
        assert fc.symbols() == sc.symbols()
        for s in fc.symbols():
            assert fc._states[s].to_state() == sc._states[s].to_state(), s  # the per-row checkpoint


def test_a_mei_row_that_refuses_a_candle_fails_its_symbol_only() -> None:
    u = Universe(3, WARM + 3)
    u.publish(WARM)
    ex = _executor(u, True)
    _run(ex, u, WARM, WARM + 1, set())
    core = next(c for c in ex.cores if c.symbols())
    victim = core.symbols()[0]
    ind = core._states[victim].ind
    assert type(ind) is MeiRow
    ind.cols.last_t[ind.r] = 2**62  # provoke a refused candle: rewind the clock
    result = run_ticks(ex, u, WARM + 1, WARM + 2)[0]
    assert result.decisions[victim].status is ShardStatus.STRATEGY_ERROR
    assert all(result.decisions[s].status is ShardStatus.OK for s in core.symbols() if s != victim)
    again = run_ticks(ex, u, WARM + 2, WARM + 3)[0]  # rebuilt from the store on the next tick
    assert again.decisions[victim].status is ShardStatus.OK
