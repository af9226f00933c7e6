"""A shard's tick as columns (`cluster.decision_block`) must give the per-symbol records exactly.

The shard writes its NEUTRAL mei_alpha_v1 rows straight into the block's arrays (no record object)
and every other symbol through the per-symbol `ShardCore._decide`; the driver reads records back
from the block only where it needs one. Over real candles (the vendored 5m files, with SDK shadow
variants, a reversed symbol, open-position symbols asking for features), every record read from
the block must equal, repr for repr, the record `_decide` makes for that symbol on the same state.
Then the driver's mapping (`TickDecisions`): request order, fail-closed gaps, ranking and status
counts on the arrays equal to the record-by-record ones, and malformed blocks refused at the seam.
"""

from __future__ import annotations

import csv
import pickle
from collections import Counter

import numpy as np
import pytest

from cluster.decision_block import DecisionBlock, TickDecisions
from cluster.mei_rows import mei_neutral
from cluster.pool import check_reply
from cluster.records import ShardDecision, ShardStatus, TickResult, VariantDecision, no_signal, rank_decisions
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import MemoryShardStore
from strategies.candle import Candle
from strategies.config import load_yaml_text
from strategies.enums import Confidence, EntryKind, Signal
from strategies.signals import SignalFeatures
from tests.fixtures.data_files import BTC_QUOTED_5M, ohlcv_path

WARM, TICKS = 400, 40
YAML = """
global:
  thresholds: {entry: {min_adx: 12.0, enable_pullback_entries: true, enable_slow_drift_entries: true}}
  filters: {require_adx_rising: false}
symbols:
  LTC: {trade: {reverse_entry_signal: true}}
strategies:
  primary: mei_alpha_v1
  shadows:
    - name: v
      strategy: donchian_breakout
      grid: {channel_bars: [10, 20], min_breakout_atr: [0.0, 0.45]}
"""


def _load(name: str, scale: float) -> list[Candle]:
    with open(ohlcv_path(name), newline="") as handle:
        rows = list(csv.DictReader(handle))[: WARM + TICKS]
    return [Candle(t=int(r["t"]), close_ms=int(r["t"]) + 299_999, o=float(r["o"]) * scale,
                   h=float(r["h"]) * scale, l=float(r["l"]) * scale, c=float(r["c"]) * scale, v=float(r["v"]))
            for r in rows]  # fmt: skip


@pytest.fixture(scope="module")
def history() -> dict[str, list[Candle]]:
    data = {name.split("_")[0]: _load(name, 30_000.0) for name in BTC_QUOTED_5M}
    data["BTC"] = _load("ETH_BTC-5m", 3_000_000.0)  # the anchor, also traded (it passes its own gate)
    return data


def test_block_records_equal_the_per_symbol_records_over_real_candles(history) -> None:
    symbols = sorted(history)
    store = MemoryShardStore()
    for s in symbols:
        store.add_closed(s, history[s][:WARM])
    core = ShardCore(0, store, ShardSettings(interval="5m", checkpoint_every=7),
                     ConfigSource(overrides=load_yaml_text(YAML)), symbols=symbols)
    want = {"ETH", "XMR"}  # open positions: their records carry features
    seen: Counter[str] = Counter()
    for bar in range(WARM - 1, WARM + TICKS):
        if bar >= WARM:
            for s in symbols:
                store.add_closed(s, history[s][bar: bar + 1])
        batch = {s: history[s][bar].close_ms for s in symbols}
        block = pickle.loads(pickle.dumps(core.evaluate_block(batch, want), protocol=5))  # as Ray ships it
        check_reply(block, symbols)
        fast = {s for g in mei_neutral(core._book, core._states, symbols, batch, core._anchor, want)
                for s in g.symbols}
        for i, s in enumerate(symbols):
            got = block.record(i)
            want_record = core._decide(s, batch[s], core._states[s], s in want)  # the per-symbol path
            assert repr(got) == repr(want_record), f"bar {bar} symbol {s}"
            assert len(got.variants) == 4
            seen["fast" if s in fast else "per-symbol"] += 1
            seen[got.signal.value] += 1
            seen["features"] += got.features is not None
    # both paths ran, with real BUY/SELL decisions and features among them
    assert seen["fast"] > 100 and seen["per-symbol"] > 50, seen
    assert seen["BUY"] and seen["SELL"] and seen["features"] >= 2 * (TICKS + 1), seen


def _features(x: float) -> SignalFeatures:
    return SignalFeatures(*(x + i for i in range(16)), False)


SHADOW = VariantDecision("v", "donchian_breakout", Signal.SELL, Confidence.MEDIUM, 1.5, 10.0, 0.5, False,
                         True)
RECORDS = [
    ShardDecision("AAA", 10, ShardStatus.OK, Signal.BUY, Confidence.HIGH, 230.5, 9, True, False, 1,
                  EntryKind.STANDARD, _features(1.0), (SHADOW,)),
    ShardDecision("BBB", 10, ShardStatus.OK, Signal.SELL, Confidence.MEDIUM, 130.25, 9, False, True, 1,
                  EntryKind.PULLBACK, _features(2.0)),
    ShardDecision("CCC", 10, ShardStatus.OK, t=9, btc_bullish=None, shard=1, entry_kind=EntryKind.NONE),
    ShardDecision("DDD", 10, ShardStatus.MISSING_CANDLE, t=4, shard=1, history_gap=True),
    ShardDecision("EEE", 10, ShardStatus.OK, Signal.BUY, Confidence.LOW, 230.5, 9, None, False, 1,
                  primary=SHADOW),
]


def test_tick_decisions_reads_blocks_in_request_order_and_fails_closed_where_nothing_came() -> None:
    block = DecisionBlock.from_records(RECORDS)
    late = no_signal("LATE", 10, ShardStatus.SHARD_LATE, 0)
    batch = {"LATE": 10, "EEE": 10, "AAA": 10, "GONE": 10, "BBB": 10, "CCC": 10, "DDD": 10}
    got = TickDecisions(batch, [block], {"LATE": late})
    assert list(got) == list(batch) and len(got) == len(batch) and "GONE" in got and "ZZZ" not in got
    by_symbol = {r.symbol: r for r in RECORDS}
    assert dict(got) == {**by_symbol, "LATE": late, "GONE": no_signal("GONE", 10, ShardStatus.STRATEGY_ERROR)}
    assert got["AAA"] is got["AAA"]  # built once
    with pytest.raises(KeyError):
        got["ZZZ"]
    materialised = dict(got)
    assert TickResult(got, (), 0.0).ranked() == rank_decisions(materialised.values())
    assert [d.symbol for d in got.ranked()] == ["AAA", "EEE", "BBB"]  # score, then symbol
    assert got.status_counts() == Counter(d.status for d in materialised.values())
    assert got.gap_symbols() == ["BBB", "DDD"]


def test_ranked_and_counts_on_arrays_match_records_without_reading_them_all() -> None:
    block = DecisionBlock.from_records(RECORDS)
    got = TickDecisions({r.symbol: r.candle_key for r in RECORDS}, [block])
    ranked = got.ranked()
    assert {d.symbol for d in ranked} == {"AAA", "BBB", "EEE"}
    assert set(got._made) == {"AAA", "BBB", "EEE"}  # only the actionable rows became records


def _with(block: DecisionBlock, **changes) -> DecisionBlock:
    values = {"symbols": block.symbols, "rows": block.rows, "variants": block.variants,
              "features": block.features, "primaries": block.primaries, **changes}
    return DecisionBlock(**values)


def test_a_malformed_block_is_refused_at_the_seam() -> None:
    block = DecisionBlock.from_records(RECORDS)
    check_reply(block, [r.symbol for r in RECORDS])
    with pytest.raises(ValueError, match="symbols differ"):
        check_reply(block, [r.symbol for r in RECORDS][::-1])
    with pytest.raises(ValueError, match="not a DecisionBlock"):
        check_reply([], [])
    for column, value, match in (("status", 99, "status code"), ("signal", 2, "signal code"),
                                 ("confidence", -1, "confidence code"), ("kind", 9, "kind code"),
                                 ("vstop", 5, "variant span")):
        rows = block.rows.copy()
        rows[column][0] = value
        with pytest.raises(ValueError, match=match):
            check_reply(_with(block, rows=rows), block.symbols)
    with pytest.raises(ValueError, match="DEC_DTYPE"):
        check_reply(_with(block, rows=block.rows[:2]), block.symbols)
    with pytest.raises(ValueError, match="features row"):
        check_reply(_with(block, features={7: block.features[0]}), block.symbols)
    with pytest.raises(ValueError, match="SignalFeatures"):
        check_reply(_with(block, features={0: (1.0,)}), block.symbols)
    assert np.array_equal(block.rows["gap"], [False, True, False, True, False])  # untouched
