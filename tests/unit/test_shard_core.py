"""ShardCore / InProcessExecutor semantics without Ray or Redis (MemoryShardStore).

The oracle is the batch strategy: `analyze_series` over the same full history, with the BTC gate
computed the way the reference engine does (Close > EMA50 with pandas' ewm over the anchor).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

from bench.universe import INTERVAL, series, symbol_names
from cluster.inprocess import InProcessExecutor
from cluster.records import ShardDecision, ShardFault, ShardStatus, TickResult
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings, resume_view
from cluster.shard_store import CandleRead, MemoryShardStore
from strategies.candle import Candle
from strategies.config import default_config
from strategies.enums import EntryKind
from strategies.mei_alpha_v1 import analyze_series, btc_bullish_series
from strategies.signals import Decision, SignalFeatures

WARM = 260  # bars in the store before the first tick
TICKS = 60


def _frame(candles: Sequence[Candle]) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": [c.t for c in candles], "Open": [c.o for c in candles],
                         "High": [c.h for c in candles], "Low": [c.l for c in candles],
                         "Close": [c.c for c in candles], "Volume": [c.v for c in candles]})


def oracle(symbol: str, candles: Sequence[Candle], btc: Sequence[Candle]) -> list[Decision]:
    """Batch decisions on every bar, BTC gate from the strategy's own batch helper (pandas ewm)."""
    by_t = dict(zip((c.t for c in btc), btc_bullish_series(pd.Series([c.c for c in btc])), strict=True))
    return analyze_series(_frame(candles), symbol, default_config(symbol), [by_t.get(c.t) for c in candles])


def assert_matches(record: ShardDecision, expected: Decision) -> None:
    assert record.status is ShardStatus.OK, record
    assert (record.signal, record.confidence) == (expected.signal, expected.confidence), record.symbol
    assert record.score == pytest.approx(expected.score, rel=1e-12, abs=1e-12)
    assert record.entry_kind is expected.entry_kind, record.symbol
    if record.features is not None:  # the typed features equal the batch path's, field by field
        assert expected.features is not None
        for name in SignalFeatures.__dataclass_fields__:
            got, want = getattr(record.features, name), getattr(expected.features, name)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9, nan_ok=True), (record.symbol, name)


class Universe:
    """Symbols + anchor with full histories, fed into a MemoryShardStore bar by bar."""

    def __init__(self, n: int, bars: int, keep_bars: int | None = None, trade_btc: bool = False) -> None:
        self.symbols = symbol_names(n)
        self.hist = {s: series(i, bars) for i, s in enumerate(self.symbols)}
        self.hist["BTC"] = series(0, bars, anchor=True)
        if trade_btc:  # the anchor is also traded: one wider read serves both
            self.symbols.append("BTC")
        self.store = MemoryShardStore(keep_bars=keep_bars)

    def publish(self, upto: int, start: int = 0) -> dict[str, int]:
        """Write bars [start, upto) of every series; return the close keys of bar upto-1."""
        for sym, candles in self.hist.items():
            self.store.add_closed(sym, candles[start:upto])
        return {s: self.hist[s][upto - 1].close_ms for s in self.symbols}


SETTINGS = ShardSettings(interval=INTERVAL, checkpoint_every=5)


def make_executor(u: Universe, n_shards: int = 2, alerts: list | None = None,
                  settings: ShardSettings = SETTINGS) -> InProcessExecutor:
    return InProcessExecutor(n_shards, lambda _i: u.store, settings, ConfigSource(), symbols=u.symbols,
                             alert=None if alerts is None else alerts.append)


def run_ticks(ex: InProcessExecutor, u: Universe, first: int, last: int) -> list[TickResult]:
    results = []
    for bar in range(first, last):
        batch = u.publish(bar + 1, bar)
        results.append(ex.evaluate(batch))
    return results


def test_evaluate_every_tick_equals_batch_analyze_on_full_history() -> None:
    u = Universe(6, WARM + TICKS, trade_btc=True)
    u.publish(WARM)
    # cold_chunk=2: the catch-up from no state reads the store two symbols at a time
    ex = make_executor(u, settings=ShardSettings(interval=INTERVAL, checkpoint_every=5, cold_chunk=2))
    results = run_ticks(ex, u, WARM, WARM + TICKS)
    expected = {s: oracle(s, u.hist[s], u.hist["BTC"]) for s in u.symbols}
    actionable = 0
    for k, result in enumerate(results):
        assert set(result.decisions) == set(u.symbols)
        for s, record in result.decisions.items():
            assert_matches(record, expected[s][WARM + k])
            assert record.t == u.hist[s][WARM + k].t
            actionable += record.actionable
    assert all(not r.alerts for r in results)
    # The bullish gate is live (not None) and some real signals happened, so the test has teeth.
    assert any(r.btc_bullish is not None for r in results[-1].decisions.values())
    assert actionable > 0


def test_evaluate_same_key_twice_never_advances_state_twice() -> None:
    u = Universe(3, WARM + 3)
    batch = u.publish(WARM)
    ex = make_executor(u, 1)
    first = ex.evaluate(batch)
    bars = {s: ex.cores[0]._states[s].ind.bars for s in u.symbols}
    again = ex.evaluate(batch)
    assert {s: ex.cores[0]._states[s].ind.bars for s in u.symbols} == bars == dict.fromkeys(u.symbols, WARM)
    assert again.decisions == first.decisions
    later = u.publish(WARM + 1, WARM)
    ex.evaluate(later)
    behind = ex.evaluate(batch)  # an out-of-date key after the state moved on
    assert {r.status for r in behind.decisions.values()} == {ShardStatus.KEY_BEHIND}


def test_evaluate_key_ahead_of_store_is_missing_then_applied_once() -> None:
    u = Universe(2, WARM + 2)
    u.publish(WARM)
    ex = make_executor(u, 1)
    ahead = {s: u.hist[s][WARM].close_ms for s in u.symbols}  # candle not written yet
    result = ex.evaluate(ahead)
    assert {r.status for r in result.decisions.values()} == {ShardStatus.MISSING_CANDLE}
    assert all(not r.actionable for r in result.decisions.values())
    u.publish(WARM + 1, WARM)
    result = ex.evaluate(ahead)
    expected = {s: oracle(s, u.hist[s][: WARM + 1], u.hist["BTC"][: WARM + 1]) for s in u.symbols}
    for s, record in result.decisions.items():
        assert_matches(record, expected[s][WARM])
    assert all(ex.cores[0]._states[s].ind.bars == WARM + 1 for s in u.symbols)


def test_evaluate_unknown_symbol_is_no_history() -> None:
    u = Universe(1, WARM)
    batch = u.publish(WARM)
    ex = make_executor(u, 1)
    result = ex.evaluate({**batch, "NOPE": batch[u.symbols[0]]})
    assert result.decisions["NOPE"].status is ShardStatus.NO_HISTORY
    assert result.decisions[u.symbols[0]].status is ShardStatus.OK


def test_restart_mid_run_restores_checkpoint_and_matches_uninterrupted_run() -> None:
    u = Universe(6, WARM + TICKS, trade_btc=True)
    u.publish(WARM)
    reference = run_ticks(make_executor(u), u, WARM, WARM + TICKS)

    u2 = Universe(6, WARM + TICKS, trade_btc=True)
    u2.publish(WARM)
    ex = make_executor(u2)
    got = run_ticks(ex, u2, WARM, WARM + 23)
    applied_before = sum(core.candles_applied for core in ex.cores)
    restarted = ex.restart_shard(1)
    assert restarted.rehydrated["checkpoint"] == len(restarted.symbols()) > 0
    got += run_ticks(ex, u2, WARM + 23, WARM + TICKS)
    assert [r.decisions for r in got] == [r.decisions for r in reference]
    # The restarted shard replayed only the candles after its checkpoints (< checkpoint_every each).
    replayed = restarted.candles_applied - len(restarted.symbols()) * (TICKS - 23)
    assert 0 <= replayed < len(restarted.symbols()) * SETTINGS.checkpoint_every
    assert applied_before > 0


def test_checkpoint_older_than_retention_rebuilds_flagged_and_alerts_once() -> None:
    u = Universe(2, WARM + 120, keep_bars=200)
    batch = u.publish(WARM)
    alerts: list = []
    ex = make_executor(u, 1, alerts)
    first = ex.evaluate(batch).decisions.values()
    assert all(r.status is ShardStatus.OK and not r.history_gap for r in first)
    ex.checkpoint_all()
    batch = u.publish(WARM + 100, WARM)  # 100 bars while the shard was away; retention is 200 bars
    core = ex.restart_shard(0)
    assert core.rehydrated["checkpoint"] == 2
    result = ex.evaluate(batch)
    assert all(r.status is ShardStatus.OK for r in result.decisions.values())
    assert not any(r.history_gap for r in result.decisions.values())  # still continuous: exact

    batch = u.publish(WARM + 120, WARM + 100)
    u.store.keep_bars = 10
    for sym, candles in u.hist.items():
        u.store.add_closed(sym, candles[WARM + 119: WARM + 120])
    result = ex.evaluate({s: batch[s] for s in u.symbols})
    assert all(r.history_gap and r.status is ShardStatus.OK for r in result.decisions.values())
    assert [a.fault for a in result.alerts] == [ShardFault.HISTORY_GAP]
    assert result.alerts[0].symbols == 2
    assert ex.cores[0].rehydrated["gap"] == 2
    again = ex.evaluate({s: batch[s] for s in u.symbols})
    assert not again.alerts and all(r.history_gap for r in again.decisions.values())
    ex.checkpoint_all()
    assert all(r.history_gap for r in ex.restart_shard(0).evaluate(batch) if r.symbol in u.symbols)


def test_checkpoint_with_other_indicator_windows_is_ignored_and_rebuilt() -> None:
    from strategies.config import parse_overrides

    u = Universe(1, WARM)
    batch = u.publish(WARM)
    ex = make_executor(u, 1)
    ex.evaluate(batch)
    ex.checkpoint_all()
    other = ConfigSource(parse_overrides({"global": {"indicators": {"ema_fast_window": 15}}}))
    core = ShardCore(0, u.store, SETTINGS, other, symbols=u.symbols)
    assert core.rehydrated == {"checkpoint": 0, "stale_checkpoint": 1, "gap": 0, "rebuild": 0, "corrected": 0}
    record = core.evaluate(batch)[0]
    assert record.status is ShardStatus.OK and core._states[u.symbols[0]].ind.bars == WARM


def test_features_only_for_signals_and_requested_symbols() -> None:
    u = Universe(4, WARM + TICKS)
    u.publish(WARM)
    ex = make_executor(u, 1)
    want = {u.symbols[0]}
    for bar in range(WARM, WARM + TICKS):
        result = ex.evaluate(u.publish(bar + 1, bar), want_snapshot=want)
        for s, record in result.decisions.items():
            assert (record.features is not None) == (record.actionable or s in want)
            assert (record.entry_kind is not EntryKind.NONE) == record.actionable
            if record.features is not None:
                assert record.features.close == u.hist[s][bar].c
                assert record.features.tp_mult > 0 and record.features.atr > 0


def test_bad_symbol_config_fails_closed_for_that_symbol_only() -> None:
    u = Universe(2, WARM)
    batch = u.publish(WARM)
    good = ConfigSource()

    def resolve(symbol: str):
        if symbol == u.symbols[1]:
            raise ValueError("broken override")
        return good.resolve(symbol)

    core = ShardCore(0, u.store, SETTINGS, resolve)
    records = {r.symbol: r for r in core.evaluate(batch)}
    assert records[u.symbols[1]].status is ShardStatus.STRATEGY_ERROR
    assert records[u.symbols[0]].status is ShardStatus.OK


def test_resume_view_cases() -> None:
    cs = series(0, 5)
    assert resume_view(CandleRead(True, cs), None, None) == (cs, False)
    assert resume_view(CandleRead(True, cs[2:]), cs[1].t, cs[1].t) == (cs[2:], False)
    assert resume_view(CandleRead(False, cs[3:]), cs[1].t, cs[1].t) == (cs[3:], True)  # trimmed
    assert resume_view(CandleRead(False, []), cs[1].t, cs[1].t) == ([], False)  # nothing to rebuild from
    # one wider read served the anchor (resume cs[0]) and the same symbol (resume cs[2])
    assert resume_view(CandleRead(True, cs[1:]), cs[0].t, cs[2].t) == (cs[3:], False)
    assert resume_view(CandleRead(True, cs[4:]), cs[0].t, cs[2].t) == (cs[4:], True)


def test_unreadable_checkpoint_is_ignored_and_symbol_rebuilt_from_store() -> None:
    from cluster.shard_store import decode_checkpoint, encode_checkpoint

    assert decode_checkpoint(encode_checkpoint({"a": [1.5, None, "x"]})) == {"a": [1.5, None, "x"]}
    assert decode_checkpoint(b'{"json": 1}') is None
    assert decode_checkpoint(b"M1\x00garbage") is None
    u = Universe(1, WARM)
    batch = u.publish(WARM)
    fingerprint = ShardCore(0, MemoryShardStore(), SETTINGS, ConfigSource(), symbols=u.symbols)
    fp = fingerprint._states[u.symbols[0]].fingerprint
    u.store.save_checkpoints({u.symbols[0]: {"v": 1, "fp": fp, "ind": {}}})  # decodes, unusable state
    u.store._checkpoints["BTC#anchor.0"] = b"M1\xff"  # does not decode at all
    core = ShardCore(0, u.store, SETTINGS, ConfigSource(), symbols=u.symbols)
    assert core.rehydrated["checkpoint"] == 0
    expected = oracle(u.symbols[0], u.hist[u.symbols[0]][:WARM], u.hist["BTC"][:WARM])
    assert_matches(core.evaluate(batch)[0], expected[WARM - 1])


def test_set_configs_keeps_state_for_decision_changes_and_rebuilds_for_window_changes() -> None:
    from strategies.config import parse_overrides

    u = Universe(3, WARM + TICKS)
    u.publish(WARM)
    ex = make_executor(u, 1)
    results = run_ticks(ex, u, WARM, WARM + 30)
    assert any(r.actionable for res in results for r in res.decisions.values())
    core = ex.cores[0]
    ex.set_configs(ConfigSource(strategy_mode="flat"))  # no new entries: decision-only change
    assert core.rehydrated["rebuild"] == 0
    flat = run_ticks(ex, u, WARM + 30, WARM + 40)
    flat_records = [r for res in flat for r in res.decisions.values()]
    assert all(r.status is ShardStatus.OK and not r.actionable for r in flat_records)
    assert core.progress(u.symbols) == {s: (u.hist[s][WARM + 39].t, WARM + 40) for s in u.symbols}

    wider = ConfigSource(parse_overrides({"global": {"indicators": {"ema_fast_window": 15}}}))
    ex.set_configs(wider)
    assert core.rehydrated["rebuild"] == 3
    result = run_ticks(ex, u, WARM + 40, WARM + 41)[0]
    assert all(r.status is ShardStatus.OK for r in result.decisions.values())
    assert all(bars == WARM + 41 for _t, bars in core.progress(u.symbols).values())  # whole store replayed


class FlakyStore:
    """A MemoryShardStore whose reads and/or writes fail while `down` is set (Redis outage)."""

    def __init__(self, inner: MemoryShardStore) -> None:
        self.inner = inner
        self.down = False
        self.writes_down = False

    def _check(self, writing: bool = False) -> None:
        if self.down or (writing and self.writes_down):
            raise ConnectionError("store unavailable")

    def read_since(self, resume):  # type: ignore[no-untyped-def]
        self._check()
        return self.inner.read_since(resume)

    def load_checkpoints(self, names):  # type: ignore[no-untyped-def]
        self._check()
        return self.inner.load_checkpoints(names)

    def save_checkpoints(self, states):  # type: ignore[no-untyped-def]
        self._check(writing=True)
        self.inner.save_checkpoints(states)


def test_store_outage_fails_closed_then_recovers_exactly() -> None:
    u = Universe(3, WARM + 40)
    warm = make_executor(u, 1)
    warm.evaluate(u.publish(WARM))
    warm.close()  # leaves checkpoints of the whole warm history behind
    flaky = FlakyStore(u.store)
    flaky.down = True
    core = ShardCore(0, flaky, SETTINGS, ConfigSource(), symbols=u.symbols)  # restart during the outage
    batch = u.publish(WARM + 1, WARM)
    assert {r.status for r in core.evaluate(batch)} == {ShardStatus.STORE_UNAVAILABLE}
    flaky.down = False
    expected = {s: oracle(s, u.hist[s][: WARM + 1], u.hist["BTC"][: WARM + 1]) for s in u.symbols}
    for record in core.evaluate(batch):
        assert_matches(record, expected[record.symbol][WARM])
    assert core.rehydrated["checkpoint"] == 3  # restored from the checkpoints, not rebuilt

    flaky.writes_down = True  # checkpoint writes fail: decisions still stand, saves retried later
    for bar in range(WARM + 1, WARM + 1 + 2 * SETTINGS.checkpoint_every):
        assert all(r.status is ShardStatus.OK for r in core.evaluate(u.publish(bar + 1, bar)))
    stale = u.store.load_checkpoints(u.symbols)
    assert all(state["last_t"] <= u.hist[s][WARM].t for s, state in stale.items())
    flaky.writes_down = False
    last = WARM + 1 + 2 * SETTINGS.checkpoint_every
    core.evaluate(u.publish(last + 1, last))
    fresh = u.store.load_checkpoints(u.symbols)
    assert all(state["last_t"] > u.hist[s][WARM].t for s, state in fresh.items())


def test_rank_decisions_actionable_only_best_score_first_ties_by_symbol() -> None:
    from cluster.records import rank_decisions
    from strategies.enums import Confidence, Signal

    def rec(symbol: str, signal: Signal, score: float, status: ShardStatus = ShardStatus.OK):
        return ShardDecision(symbol=symbol, candle_key=1, status=status, signal=signal,
                             confidence=Confidence.MEDIUM, score=score)

    records = [rec("B", Signal.BUY, 130.0), rec("A", Signal.SELL, 130.0), rec("C", Signal.BUY, 250.0),
               rec("N", Signal.NEUTRAL, 0.0), rec("L", Signal.BUY, 999.0, ShardStatus.SHARD_LATE)]
    assert [r.symbol for r in rank_decisions(records)] == ["C", "A", "B"]


def test_broken_alert_sink_never_breaks_the_tick() -> None:
    u = Universe(2, WARM + 30, keep_bars=WARM)
    batch = u.publish(WARM)

    def sink(_alert: object) -> None:
        raise RuntimeError("pager down")

    ex = InProcessExecutor(1, lambda _i: u.store, SETTINGS, ConfigSource(), symbols=u.symbols, alert=sink)
    ex.evaluate(batch)
    u.store.keep_bars = 5
    batch = u.publish(WARM + 30, WARM)  # 30 bars while away, only 5 kept: a history gap
    result = ex.evaluate(batch)
    assert [a.fault for a in result.alerts] == [ShardFault.HISTORY_GAP]
    assert all(r.status is ShardStatus.OK and r.history_gap for r in result.decisions.values())


def test_retire_checkpoints_then_forgets_and_a_return_restores() -> None:
    u = Universe(3, WARM + 2)
    ex = make_executor(u, 1)
    ex.evaluate(u.publish(WARM))
    gone = u.symbols[0]
    ex.retire([gone])
    assert gone not in ex.cores[0].symbols()
    assert u.store.load_checkpoints([gone])[gone]["last_t"] == u.hist[gone][WARM - 1].t
    result = ex.evaluate(u.publish(WARM + 1, WARM))  # it comes back: restored, one candle applied
    assert result.decisions[gone].status is ShardStatus.OK
    assert ex.cores[0].progress([gone]) == {gone: (u.hist[gone][WARM].t, WARM + 1)}


def test_decision_block_round_trip_every_status() -> None:
    import pickle

    from cluster.decision_block import DecisionBlock
    from strategies.enums import Confidence, Signal

    features = SignalFeatures(*(float(i) for i in range(16)), True)
    records = [ShardDecision(symbol=f"S{i}", candle_key=i, status=status, signal=Signal.SELL,
                             confidence=Confidence.HIGH, score=212.5, t=i - 1, btc_bullish=None,
                             history_gap=True, shard=3, entry_kind=EntryKind.SLOW_DRIFT, features=features)
               for i, status in enumerate(ShardStatus)]
    records.append(ShardDecision(symbol="N", candle_key=9, status=ShardStatus.OK))
    from cluster.records import VariantDecision

    shadow = VariantDecision("dc[channel_bars=10]", "donchian_breakout", Signal.BUY, Confidence.MEDIUM, 1.5,
                             101.0, 2.25, False, True)
    faulted = VariantDecision("broken", "pkg.mod:Cls", Signal.NEUTRAL, Confidence.LOW, 0.0, 101.0, 2.25,
                              False, False, "exception", "ZeroDivisionError: boom")
    records.append(ShardDecision(symbol="V", candle_key=10, status=ShardStatus.OK, signal=Signal.BUY,
                                 variants=(shadow, faulted), primary=shadow))
    back = pickle.loads(pickle.dumps(DecisionBlock.from_records(records), protocol=5))
    back.validate()
    assert back.records() == records


# --------------------------------------------------------------------------- open mode (issue 16.1)
OPEN_MODE = ShardSettings(interval=INTERVAL, checkpoint_every=5, signal_on_candle_close=False)


def _forming(c: Candle) -> Candle:
    """The bar as the WS shows it mid-way: same open, a different close, half the volume."""
    mid = (c.o + c.c) / 2
    return Candle(c.t, c.close_ms, c.o, max(c.o, mid), min(c.o, mid), mid, c.v / 2, c.n)


def open_oracle(symbol: str, closed: Sequence[Candle], bar: Candle, btc: Sequence[Candle]) -> Decision:
    """Batch decision on closed + the forming bar, BTC gate as of the last CLOSED anchor bar."""
    by_t = dict(zip((c.t for c in btc), btc_bullish_series(pd.Series([c.c for c in btc])), strict=True))
    gates = [by_t.get(c.t) for c in closed] + [by_t.get(closed[-1].t)]
    return analyze_series(_frame([*closed, bar]), symbol, default_config(symbol), gates)[-1]


def test_open_mode_decides_on_the_forming_bar_and_keeps_only_closed_candles_in_state() -> None:
    u = Universe(4, WARM + 12)
    ex = make_executor(u, 2, settings=OPEN_MODE)
    u.publish(WARM - 1)
    for bar in range(WARM, WARM + 12):
        u.publish(bar, bar - 1)  # the bar before the key closed...
        closed_meanwhile = bar % 3 == 0
        if closed_meanwhile:  # ...or even the key's own bar, before the shard read it
            u.publish(bar + 1, bar)
        for sym, hist in u.hist.items():
            moved_on = closed_meanwhile and bar + 1 < len(hist)
            u.store.set_forming(sym, hist[bar + 1] if moved_on else _forming(hist[bar]))
        keys = {s: u.hist[s][bar].t for s in u.symbols}
        result = ex.evaluate(keys)
        assert set(result.decisions) == set(u.symbols) and not result.alerts
        for sym, record in result.decisions.items():
            hist = u.hist[sym]
            shown = hist[bar] if closed_meanwhile else _forming(hist[bar])
            expected = open_oracle(sym, hist[:bar], shown, u.hist["BTC"][:bar])
            assert_matches(record, expected)
            assert record.candle_key == hist[bar].t and record.t == hist[bar].t
        progress = {}
        for core in ex.cores:
            progress.update(core.progress(u.symbols))
        # the forming bar never entered the state: it holds exactly the closed bars before the key
        assert progress == {s: (u.hist[s][bar - 1].t, bar) for s in u.symbols}


def test_open_mode_without_the_forming_bar_is_a_missing_candle_never_a_guess() -> None:
    u = Universe(2, WARM + 2)
    ex = make_executor(u, 1, settings=OPEN_MODE)
    u.publish(WARM)
    keys = {s: u.hist[s][WARM].t for s in u.symbols}
    result = ex.evaluate(keys)
    assert {r.status for r in result.decisions.values()} == {ShardStatus.MISSING_CANDLE}
    for sym in u.symbols:
        u.store.set_forming(sym, _forming(u.hist[sym][WARM]))
    assert {r.status for r in ex.evaluate(keys).decisions.values()} == {ShardStatus.OK}
    # a forming bar of another candle (the sidecar moved on, the key's bar not stored) is no stand-in
    later = {s: u.hist[s][WARM + 1].t for s in u.symbols}
    assert {r.status for r in ex.evaluate(later).decisions.values()} == {ShardStatus.MISSING_CANDLE}
