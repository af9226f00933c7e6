"""Shards evaluating SDK primaries and shadow variants (no Ray, MemoryShardStore), against the batch oracle.

The YAML's `strategies:` block decides per symbol: here ETH-like symbols trade a user strategy
loaded from `tests/data/user_strategy` (outside the package), the others donchian_breakout, and
two shadow variants (a grid) run beside every primary. Every record must equal the strategy's
batch decision on the same bar (IndicatorSet.batch + evaluate), through restarts from checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cluster.inprocess import InProcessExecutor
from cluster.records import ShardDecision, ShardStatus
from cluster.shard_core import ConfigSource, ShardSettings
from strategies.config import load_yaml_text
from strategies.enums import Signal
from strategies.sdk.exits import entry_atr
from strategies.sdk.plan import StrategyPlan
from strategies.sdk.strategy import DecisionContext, StrategyDecision, evaluate
from tests.unit.test_shard_core import INTERVAL, WARM, Universe, _frame, run_ticks

USER_DIR = Path(__file__).parents[1] / "data" / "user_strategy"
TICKS = 40
SETTINGS = ShardSettings(interval=INTERVAL, checkpoint_every=5)


@pytest.fixture(autouse=True)
def _user_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(USER_DIR))


def _yaml(user_symbol: str, faulty_symbol: str = "") -> str:
    text = f"""
strategies:
  primary: donchian_breakout
  params:
    donchian_breakout: {{channel_bars: 10, min_volume_ratio: 0}}
  symbols:
    {user_symbol}:
      primary: my_strategies.ema_cross:EmaCross
      params: {{"my_strategies.ema_cross:EmaCross": {{fast: 5, slow: 13}}}}
  shadows:
    - name: dc
      strategy: donchian_breakout
      grid: {{exit_channel_bars: [5, 20]}}
"""
    if faulty_symbol:
        text += f"""    - name: broken
      strategy: my_strategies.broken:Faulty
      params: {{only_symbol: {faulty_symbol}}}
"""
    return text


def _executor(u: Universe, source: ConfigSource, n: int = 2) -> InProcessExecutor:
    return InProcessExecutor(n, lambda _i: u.store, SETTINGS, source, symbols=u.symbols)


def _oracle(plan: StrategyPlan, symbol: str, name: str | None, u: Universe) -> list[tuple]:
    spec = None if name is None else plan.shadow(name)
    strategy = plan.build_primary(symbol) if spec is None else plan.build_shadow(spec, symbol)
    assert strategy is not None
    rows = strategy.indicator_set.batch(_frame(u.hist[symbol])).to_dict("records")
    k = strategy.LOOKBACK_ROWS
    out = []
    for i in range(len(rows)):
        d = evaluate(strategy, rows[max(0, i + 1 - k): i + 1], DecisionContext(symbol=symbol, bars=i + 1))
        assert isinstance(d, StrategyDecision)
        out.append((d.signal, d.confidence, d.score, entry_atr(strategy.rules, rows[i])))
    return out


def _key(v: object) -> tuple:
    return (v.signal, v.confidence, v.score, v.entry_atr)  # type: ignore[attr-defined]


def test_sdk_primaries_and_shadows_equal_the_batch_strategy_every_tick_through_a_restart() -> None:
    u = Universe(4, WARM + TICKS)
    user = u.symbols[1]
    overrides = load_yaml_text(_yaml(user))
    source = ConfigSource(overrides=overrides)
    plan = overrides.plan
    u.publish(WARM)
    ex = _executor(u, source)
    results = run_ticks(ex, u, WARM, WARM + 17)
    restarted = ex.restart_shard(0)  # rehydrates from the per-(symbol, declarations) checkpoints
    assert restarted.rehydrated["checkpoint"] == len(restarted.symbols()) > 0
    results += run_ticks(ex, u, WARM + 17, WARM + TICKS)
    names = [s.name for s in plan.shadows]
    assert names == ["dc[exit_channel_bars=5]", "dc[exit_channel_bars=20]"]
    signals = 0
    for s in u.symbols:
        primary = _oracle(plan, s, None, u)
        shadows = {n: _oracle(plan, s, n, u) for n in names}
        for k, result in enumerate(results):
            record: ShardDecision = result.decisions[s]
            assert record.status is ShardStatus.OK and record.primary is not None
            assert record.primary.strategy == plan.primary_ref(s)
            assert (record.signal, record.confidence, record.score) == primary[WARM + k][:3]
            assert _key(record.primary) == primary[WARM + k]
            assert record.primary.close == u.hist[s][WARM + k].c
            assert [v.variant for v in record.variants] == names
            for v in record.variants:
                assert _key(v) == shadows[v.variant][WARM + k] and v.fault is None
            signals += record.actionable + sum(v.signal is not Signal.NEUTRAL for v in record.variants)
    assert plan.primary_ref(user) == "my_strategies.ema_cross:EmaCross"
    assert signals > 0  # the comparison covered real entries


def test_a_faulty_strategy_is_a_record_on_its_symbol_only() -> None:
    u = Universe(3, WARM + 3)
    bad = u.symbols[0]
    source = ConfigSource(overrides=load_yaml_text(_yaml(u.symbols[2], faulty_symbol=bad)))
    u.publish(WARM)
    result = run_ticks(_executor(u, source, n=1), u, WARM, WARM + 1)[0]
    for s, record in result.decisions.items():
        assert record.status is ShardStatus.OK
        broken = record.variants[-1]
        assert broken.variant == "broken"
        if s == bad:
            assert broken.fault == "exception" and "ZeroDivisionError: user bug" in broken.detail
            assert broken.signal is Signal.NEUTRAL and not broken.exit_long
        else:
            assert broken.fault is None and broken.signal is Signal.BUY
        assert all(v.fault is None for v in record.variants[:-1])  # the other strategies go on


@pytest.mark.parametrize(("mode", "kind"), [("nan", "bad_output"), ("type", "bad_output")])
def test_an_sdk_primary_with_bad_output_is_neutral_with_the_fault_on_record(mode: str, kind: str) -> None:
    u = Universe(2, WARM + 2)
    bad, good = u.symbols
    yaml = f"""
strategies:
  primary: my_strategies.broken:Faulty
  params: {{"my_strategies.broken:Faulty": {{mode: {mode}, only_symbol: {bad}}}}}
"""
    u.publish(WARM)
    result = run_ticks(_executor(u, ConfigSource(overrides=load_yaml_text(yaml)), n=1), u, WARM, WARM + 1)[0]
    faulted, fine = result.decisions[bad], result.decisions[good]
    assert faulted.status is ShardStatus.OK and not faulted.actionable
    assert faulted.primary is not None and faulted.primary.fault == kind
    assert math.isfinite(faulted.primary.close)
    assert fine.actionable and fine.primary is not None and fine.primary.fault is None



def test_reload_switching_primary_rebuilds_and_a_decision_only_change_keeps_state() -> None:
    u = Universe(3, WARM + 6)
    u.publish(WARM)
    ex = _executor(u, ConfigSource())  # mei_alpha_v1 everywhere (no strategies block)
    run_ticks(ex, u, WARM, WARM + 2)
    donchian = ("strategies:\n  primary: donchian_breakout\n  params:\n"
                "    donchian_breakout: {min_volume_ratio: 0%s}\n")
    first = load_yaml_text(donchian % "")
    ex.set_configs(ConfigSource(overrides=first))
    assert sum(core.rehydrated["rebuild"] for core in ex.cores) == len(u.symbols)  # other declarations
    result = run_ticks(ex, u, WARM + 2, WARM + 4)[-1]
    for s in u.symbols:  # rebuilt from the store's whole history: equal to the batch strategy
        assert _key(result.decisions[s].primary) == _oracle(first.plan, s, None, u)[WARM + 3]
    second = load_yaml_text(donchian % ", high_confidence_atr: 0.25")  # same indicators, other decision
    ex.set_configs(ConfigSource(overrides=second))
    assert sum(core.rehydrated["rebuild"] for core in ex.cores) == len(u.symbols)  # nothing new rebuilt
    result = run_ticks(ex, u, WARM + 4, WARM + 6)[-1]
    for s in u.symbols:
        assert _key(result.decisions[s].primary) == _oracle(second.plan, s, None, u)[WARM + 5]


def test_open_mode_sdk_rows_decide_on_the_forming_bar_and_keep_only_closed_candles() -> None:
    from tests.unit.test_shard_core import OPEN_MODE, _forming

    u = Universe(2, WARM + 6)
    source = ConfigSource(overrides=load_yaml_text(_yaml(u.symbols[0])))
    plan = source.plan
    ex = InProcessExecutor(1, lambda _i: u.store, OPEN_MODE, source, symbols=u.symbols)
    u.publish(WARM - 1)
    for bar in range(WARM, WARM + 6):
        u.publish(bar, bar - 1)
        for sym, hist in u.hist.items():
            u.store.set_forming(sym, _forming(hist[bar]))
        result = ex.evaluate({s: u.hist[s][bar].t for s in u.symbols})
        for sym, record in result.decisions.items():
            shown = [*u.hist[sym][:bar], _forming(u.hist[sym][bar])]
            strategy = plan.build_primary(sym)
            assert strategy is not None
            rows = strategy.indicator_set.batch(_frame(shown)).to_dict("records")
            k = strategy.LOOKBACK_ROWS
            want = evaluate(strategy, rows[-k:], DecisionContext(symbol=sym, bars=len(rows)))
            assert isinstance(want, StrategyDecision) and record.primary is not None
            assert (record.primary.signal, record.primary.score) == (want.signal, want.score)
            assert record.primary.close == shown[-1].c
        assert ex.cores[0].progress(u.symbols) == {s: (u.hist[s][bar - 1].t, bar) for s in u.symbols}
