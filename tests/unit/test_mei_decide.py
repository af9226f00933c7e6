"""mei_alpha_v1 BUY/SELL and open-position decisions made from the shard's columns (`cluster.mei_rows`).

`mei_decide` gives, besides the NEUTRAL groups, a `Decision` with features for every BUY/SELL and
every warm open-position symbol, read from the kept column rows instead of running `decide_lean`
per symbol. Over real candles (the vendored 5m files, pullback and slow-drift entries on, a
reversed symbol, BTC traded), each must equal `decide_lean(rows, bars, cfg, btc, with_features=True)`
field for field, bit for bit; and the shard's tick must then run `decide_lean` for no warm symbol.
Its grouping (`MeiPlan`) is reused from the last tick only while the same symbols hold the same
state, row and config objects, and gives the same decisions as grouping afresh.
"""

from __future__ import annotations

from collections import Counter

import pytest

import cluster.shard_core as shard_core
from cluster.mei_rows import MeiPlan, mei_decide
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import MemoryShardStore
from strategies.config import load_yaml_text
from strategies.enums import Signal
from strategies.signals import decide_lean
from tests.fixtures.data_files import BTC_QUOTED_5M
from tests.unit.test_decision_block import TICKS, WARM, _load

YAML = """
global:
  thresholds: {entry: {min_adx: 12.0, enable_pullback_entries: true, enable_slow_drift_entries: true}}
  filters: {require_adx_rising: false}
symbols:
  LTC: {trade: {reverse_entry_signal: true}}
"""


@pytest.fixture(scope="module")
def history() -> dict[str, list]:
    data = {name.split("_")[0]: _load(name, 30_000.0) for name in BTC_QUOTED_5M}
    data["BTC"] = _load("ETH_BTC-5m", 3_000_000.0)
    return data


def test_column_decisions_with_features_equal_decide_lean_and_replace_it(history, monkeypatch) -> None:
    symbols = sorted(history)
    store = MemoryShardStore()
    for s in symbols:
        store.add_closed(s, history[s][:WARM])
    core = ShardCore(0, store, ShardSettings(interval="5m", checkpoint_every=7),
                     ConfigSource(overrides=load_yaml_text(YAML)), symbols=symbols)
    want = {"ETH", "BTC"}
    calls: Counter[str] = Counter()
    real = decide_lean

    def counted(*args, **kwargs):  # the per-symbol decision, counted where the shard calls it
        calls[kwargs.get("symbol")] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(shard_core, "decide_lean", counted)
    seen: Counter[str] = Counter()
    for bar in range(WARM - 1, WARM + TICKS):
        if bar >= WARM:
            for s in symbols:
                store.add_closed(s, history[s][bar: bar + 1])
        batch = {s: history[s][bar].close_ms for s in symbols}
        core.evaluate_block(batch, want)
        _, decided = mei_decide(core._book, core._states, symbols, batch, core._anchor, want)
        for s in symbols:
            state = core._states[s]
            btc = core._anchor.bullish_at(state.last_t)
            lean = real(state.ind.rows_view(), state.ind.bars, state.cfg, btc, symbol=s, with_features=True)
            if s in want or lean.signal is not Signal.NEUTRAL:
                got = decided[s]
                assert (got.signal, got.confidence, got.entry_kind) == (lean.signal, lean.confidence,
                                                                       lean.entry_kind), (bar, s)
                assert repr(got.score) == repr(lean.score), (bar, s)
                assert repr(got.features) == repr(lean.features), (bar, s)
                seen[lean.signal.value] += 1
                seen["wanted"] += s in want
            else:
                assert s not in decided, (bar, s)
    assert seen["BUY"] and seen["SELL"] and seen["wanted"] == len(want) * (TICKS + 1), seen
    assert not calls, calls  # every symbol is warm and columnar: no per-symbol decide_lean at all


def _summary(result) -> tuple:
    groups, decided = result
    rows = [(g.symbols, g.t.tolist(), g.btc.tolist(), g.kind.tolist(), list(map(id, g.states)))
            for g in groups]
    return rows, {s: repr(d) for s, d in decided.items()}


def test_last_ticks_grouping_is_reused_only_while_the_same_objects_stand(history) -> None:
    symbols = sorted(history)
    store = MemoryShardStore()
    for s in symbols:
        store.add_closed(s, history[s][:WARM])
    core = ShardCore(0, store, ShardSettings(interval="5m", checkpoint_every=7),
                     ConfigSource(overrides=load_yaml_text(YAML)), symbols=symbols)
    plan = MeiPlan()
    hits = 0
    for bar in range(WARM - 1, WARM + 8):
        if bar >= WARM:
            for s in symbols:
                store.add_closed(s, history[s][bar: bar + 1])
        batch = {s: history[s][bar].close_ms for s in symbols}
        if bar == WARM + 2:  # one symbol a bar behind its key: left out of its group, no regrouping
            batch["ETH"] = history["ETH"][bar + 1].close_ms
        if bar == WARM + 4:  # new configs (other thresholds): every state object kept, configs new
            core.set_configs(ConfigSource(overrides=load_yaml_text(YAML.replace("12.0", "15.0"))))
        if bar == WARM + 6:
            core.drop(["XMR"])
        core.evaluate_block(batch, set())
        names = [s for s in symbols if s in core._states]
        held = [core._states[s] for s in names]
        hit = plan.get(names, held) is not None
        hits += hit
        assert hit == (bar not in (WARM - 1, WARM + 4, WARM + 6)), bar  # first tick, new configs, a drop
        args = (core._book, core._states, names, batch, core._anchor, {"BTC"})
        assert _summary(mei_decide(*args, plan)) == _summary(mei_decide(*args)), bar
        if bar == WARM + 2:
            assert "ETH" not in {s for g in mei_decide(*args)[0] for s in g.symbols}
    assert hits == 6
