"""mei_alpha_v1 in columns equals mei_alpha_v1 per row, bit for bit, on every vendored bar.

Two halves, both over the real candles of tests/data/ohlcv (each file one row; rows join at
staggered steps, as a shard's symbols do):
* `MeiColumns` (the indicator state of many rows as numpy columns) gives the same kept rows as
  `IncrementalIndicators` on every bar, and exports / loads the exact per-row checkpoint;
* `signals_columns.decide_columns` gives `decide_lean`'s signal, confidence, score (bit for bit)
  and entry kind on every bar, under configs that make entries, reversals, flat mode,
  fallback entries and gate-blocked bars happen (the test asserts they did).
A deliberately drifted twin (one ulp) must be caught by the same comparison.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np
import pytest

from strategies.config import StrategyConfig, StrategyMode, default_config
from strategies.enums import Confidence, EntryKind, MacdMode, Signal
from strategies.incremental import ROW_KEYS, IncrementalIndicators
from strategies.indicator_params import IndicatorParams
from strategies.mei_columnar import MeiColumns
from strategies.sdk.strategy import ColumnWindow
from strategies.signals import CONFIDENCE_RANK, decide_lean
from strategies.signals_columns import BTC_BEARISH, BTC_BULLISH, BTC_UNKNOWN, KIND_CODES, decide_columns
from tests.unit.columnar_data import Rows, vendored_rows
from tests.unit.sdk_data import bit_mismatches

CUSTOM = IndicatorParams(ema_fast_window=9, ema_slow_window=21, ema_macro_window=55, adx_window=10,
                         bb_window=15, bb_width_avg_window=12, atr_window=7, avg_atr_window=2, rsi_window=9,
                         vol_sma_window=12, vol_trend_window=3,
                         stoch_rsi_window=10, stoch_rsi_smooth1=2, stoch_rsi_smooth2=4,
                         slow_drift_slope_window=1)
SIGNAL_CODE = {Signal.BUY: 1, Signal.SELL: -1, Signal.NEUTRAL: 0}
BTC_CODE = {True: BTC_BULLISH, False: BTC_BEARISH, None: BTC_UNKNOWN}


def _replace(cfg: StrategyConfig, **sections: dict[str, Any]) -> StrategyConfig:
    changes = {}
    for path, values in sections.items():
        if path in ("entry", "ranging", "tp_and_momentum"):
            th = changes.get("thresholds", cfg.thresholds)
            changes["thresholds"] = dataclasses.replace(
                th, **{path: dataclasses.replace(getattr(th, path), **values)})
        else:
            changes[path] = dataclasses.replace(getattr(cfg, path), **values)
    return dataclasses.replace(cfg, **changes)


def _configs() -> dict[str, StrategyConfig]:
    base = default_config()
    loose = _replace(base, filters={"require_btc_alignment": True, "require_adx_rising": False,
                                    "enable_ranging_filter": False},
                     entry={"min_adx": 12.0, "enable_pullback_entries": True,
                            "enable_slow_drift_entries": True, "pullback_confidence": Confidence.MEDIUM,
                            "pullback_require_macd_sign": False,
                            "slow_drift_min_adx": 5.0, "slow_drift_min_slope_pct": 0.0002})
    return {
        "default": base,
        "fallbacks": loose,
        "volume_macro_sign": _replace(
            loose, filters={"require_volume_confirmation": True, "vol_confirm_include_prev": False,
                            "require_macro_alignment": True, "use_stoch_rsi_filter": False,
                            "enable_ranging_filter": True},
            entry={"macd_hist_entry_mode": MacdMode.SIGN, "ave_enabled": False,
                   "slow_drift_require_macd_sign": True}),
        "reverse_prev_volume_none": _replace(
            loose, trade={"reverse_entry_signal": True},
            filters={"require_volume_confirmation": True, "vol_confirm_include_prev": True,
                     "require_btc_alignment": False, "enable_anomaly_filter": False,
                     "enable_extension_filter": False},
            entry={"macd_hist_entry_mode": MacdMode.NONE, "ave_atr_ratio_gt": 0.9}),
        "flat": dataclasses.replace(loose, strategy_mode=StrategyMode.FLAT),
    }


CONFIGS = _configs()


@dataclasses.dataclass
class Walk:
    """Per step: the moved rows, their windows and bars, and the per-row kept rows (reference)."""

    rows: Rows
    steps: list[tuple[np.ndarray, ColumnWindow, list[tuple[dict[str, Any], ...]], list[int]]]


def _slots(cols: MeiColumns, n: int, layout: str) -> list[int]:
    """Row numbers for n symbols: ascending (each step a block or a sorted subset), descending
    (a block given out of order), or every other row (never a block of more than one row)."""
    got = [cols.alloc() for _ in range(2 * n if layout == "gapped" else n)]
    return got[::-1] if layout == "reversed" else got[::2] if layout == "gapped" else got


def _walk(params: IndicatorParams, drift: bool = False, limit: int | None = None,
          layout: str = "ascending") -> Walk:
    rows = vendored_rows()
    cols = MeiColumns(params, capacity=2)  # grows while rows join
    slots = _slots(cols, len(rows.names), layout)
    if drift:
        push = cols.ema_fast.push
        cols.ema_fast.push = lambda idx, val: push(idx, val) * (1.0 + 2.0**-52)  # type: ignore[method-assign]
    refs = [IncrementalIndicators(params) for _ in rows.names]
    steps = []
    for j, (idx, _bars, arrays) in enumerate(rows.walk()):
        if limit is not None and j >= limit:
            break
        ridx = np.array([slots[k] for k in idx], dtype=np.int64)
        assert cols.update(ridx, *arrays).all()
        views = []
        for n, k in enumerate(idx):
            refs[k].advance(int(arrays[0][n]), *(float(a[n]) for a in arrays[1:]))
            views.append(refs[k].rows_view())
        got = [cols.rows(int(r)) for r in ridx]
        steps.append((idx, cols.window(ridx), views, [refs[k].bars for k in idx], got))
    return Walk(rows, steps)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def walk() -> Walk:
    return _walk(IndicatorParams())


def _row_mismatches(got: tuple[dict[str, Any], ...], want: tuple[dict[str, Any], ...]) -> list[str]:
    if [r["timestamp"] for r in got] != [r["timestamp"] for r in want]:
        return ["timestamp"]
    return [k for k in ROW_KEYS[1:]
            if bit_mismatches(np.array([r[k] for r in got]), np.array([r[k] for r in want]))]


def _indicator_mismatches(w: Walk) -> list[tuple[int, str, list[str]]]:
    bad = []
    for j, (idx, _window, views, _bars, got) in enumerate(w.steps):
        for n, k in enumerate(idx):
            cols = _row_mismatches(got[n], views[n])
            if cols:
                bad.append((j, w.rows.names[k], cols))
    return bad


def test_columns_equal_incremental_indicators_on_every_bar(walk: Walk) -> None:
    bad = _indicator_mismatches(walk)
    assert not bad, f"{len(bad)} row-bars differ, first {bad[0]}"


def test_custom_windows_equal_incremental_indicators() -> None:
    bad = _indicator_mismatches(_walk(CUSTOM))
    assert not bad, f"{len(bad)} row-bars differ, first {bad[0]}"


@pytest.mark.parametrize("layout", ["reversed", "gapped"])
def test_rows_out_of_order_or_apart_equal_incremental_indicators(layout: str) -> None:
    """`update` drives a block of rows as a slice (reordering the candles) and other rows by
    index: every row shape gives the same bits."""
    bad = _indicator_mismatches(_walk(IndicatorParams(), limit=400, layout=layout))
    assert not bad, f"{len(bad)} row-bars differ, first {bad[0]}"


def test_a_drifting_column_is_caught() -> None:
    assert _indicator_mismatches(_walk(IndicatorParams(), drift=True, limit=300))


@pytest.mark.parametrize("params", [IndicatorParams(), CUSTOM], ids=["default", "custom"])
def test_rows_export_and_load_the_per_row_checkpoint_exactly(params: IndicatorParams) -> None:
    rows = vendored_rows()
    cols = MeiColumns(params, capacity=1)
    slots = [cols.alloc() for _ in rows.names]
    refs = [IncrementalIndicators(params) for _ in rows.names]
    checked = 0
    for j, (idx, _bars, arrays) in enumerate(rows.walk()):
        cols.update(np.array([slots[k] for k in idx]), *arrays)
        for n, k in enumerate(idx):
            refs[k].advance(int(arrays[0][n]), *(float(a[n]) for a in arrays[1:]))
        if j in (0, 1, 5, 12, 40, 90, 300) or j % 400 == 0:
            for k in idx:
                state = cols.export(slots[k]).to_state()
                assert state == refs[k].to_state(), (j, rows.names[k])
                cols.load(slots[k], IncrementalIndicators.from_state(state, params))  # and back in
                checked += 1
    assert checked > 30
    stale = (np.array([x]) for x in (0, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert cols.update(np.array([slots[0]]), *stale).tolist() == [False]  # refused, as per row


def test_load_refuses_other_params() -> None:
    cols = MeiColumns(IndicatorParams(), capacity=1)
    r = cols.alloc()
    with pytest.raises(ValueError, match="params"):
        cols.load(r, IncrementalIndicators(CUSTOM))
    assert cols.bars[r] == 0


def _btc(bar: int) -> bool | None:
    return (True, False, None, True, False)[bar % 5]


def _compare(walk: Walk, cfg: StrategyConfig, perturb_adx: bool = False) -> tuple[list[Any], Counter[Any]]:
    """Mismatches of the array decision against decide_lean, and what happened (for coverage)."""
    bad: list[Any] = []
    seen: Counter[Any] = Counter()
    names = walk.rows.names
    for j, (idx, window, views, bars, _got) in enumerate(walk.steps):
        symbols = ["BTC" if names[k].startswith("ETH") else names[k] for k in idx]
        btc = np.array([BTC_CODE[_btc(j + k)] for k in idx], dtype=np.int8)
        is_btc = np.array([s == "BTC" for s in symbols])
        if perturb_adx:
            cols = dict(window.columns)
            cols["ADX"] = cols["ADX"] * (1.0 + 2.0**-52)
            window = ColumnWindow(cols, window.bars)
        out = decide_columns(window, cfg, btc, is_btc)
        for n, k in enumerate(idx):
            d = decide_lean(views[n], bars[n], cfg, _btc(j + k), symbol=symbols[n])
            seen[(d.signal, d.entry_kind)] += 1
            seen["blocked"] += not all(d.gates.values())
            want = (SIGNAL_CODE[d.signal], CONFIDENCE_RANK[d.confidence], KIND_CODES[d.entry_kind])
            got = (int(out.signal[n]), int(out.confidence[n]), int(out.kind[n]))
            if got != want or bit_mismatches(np.array([d.score]), out.score[n: n + 1]):
                bad.append((j, names[k], want, got, d.score, float(out.score[n])))
    return bad, seen


@pytest.mark.parametrize("name", list(CONFIGS))
def test_array_decision_equals_decide_lean_on_every_bar(walk: Walk, name: str) -> None:
    bad, seen = _compare(walk, CONFIGS[name])
    assert not bad, f"{len(bad)} decisions differ, first {bad[:3]}"
    assert seen["blocked"] > 100  # gate-blocked bars were compared
    if name == "flat":
        assert seen[(Signal.NEUTRAL, EntryKind.STANDARD)] + seen[(Signal.NEUTRAL, EntryKind.PULLBACK)] > 0
        return
    assert sum(v for (s, _), v in _pairs(seen) if s is Signal.BUY) > 0
    assert sum(v for (s, _), v in _pairs(seen) if s is Signal.SELL) > 0
    if name != "default":
        fallback = [s for (s, kind), _ in _pairs(seen) if kind is not EntryKind.STANDARD]
        assert any(s is not Signal.NEUTRAL for s in fallback)


def _pairs(seen: Counter[Any]) -> list[tuple[tuple[Signal, EntryKind], int]]:
    return [(k, v) for k, v in seen.items() if isinstance(k, tuple)]


def test_a_one_ulp_score_drift_is_caught(walk: Walk) -> None:
    bad, _ = _compare(walk, CONFIGS["fallbacks"], perturb_adx=True)
    assert bad
