"""decide() on crafted indicator rows: every entry gate, the alternative entries and the extras."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest

from strategies.config import StrategyConfig, default_config, parse_overrides
from strategies.enums import Confidence, EntryGate, EntryKind, Signal
from strategies.signals import Decision, decide, decide_lean, rank_score

Rows = list[dict[str, Any]]


def base_rows() -> Rows:
    """Two rows (prev, cur) that give a standard BUY/medium with the default config.

    ADX 30 rising from 28 (effective min ADX 22), EMA_fast > EMA_slow, Close above EMA_fast by 1 %,
    RSI 60 above the DRE long limit (54.2 at ADX 30), MACD hist accelerating, StochRSI k 0.5.
    """
    prev = {"Open": 100.0, "High": 101.0, "Low": 99.5, "Close": 100.5, "Volume": 150.0,
            "EMA_fast": 99.8, "EMA_slow": 97.9, "EMA_macro": 90.0, "ADX": 28.0, "ADX_pos": 25.0,
            "ADX_neg": 10.0, "bb_high": 103.0, "bb_low": 97.0, "bb_width": 0.05, "avg_bb_width": 0.04,
            "ATR": 1.0, "avg_atr": 1.0, "RSI": 58.0, "MACD_hist": 0.3, "vol_sma": 100.0, "vol_trend": 1.0,
            "stoch_k": 0.5, "stoch_d": 0.5, "ema_slow_slope_pct": 0.001}
    cur = {**prev, "Close": 101.0, "EMA_fast": 100.0, "EMA_slow": 98.0, "ADX": 30.0, "RSI": 60.0,
           "MACD_hist": 0.5, "ATR": 1.1}
    return [prev, cur]


def mirror_rows(rows: Rows) -> Rows:
    """Mirror a long setup into a short one around price 100 (RSI, StochRSI, MACD mirrored)."""
    out = []
    for r in rows:
        m = dict(r)
        for k in ("Open", "High", "Low", "Close", "EMA_fast", "EMA_slow", "EMA_macro"):
            m[k] = 200.0 - r[k]
        m["RSI"] = 100.0 - r["RSI"]
        m["stoch_k"] = 1.0 - r["stoch_k"]
        m["MACD_hist"] = -r["MACD_hist"]
        m["ema_slow_slope_pct"] = -r["ema_slow_slope_pct"]
        out.append(m)
    return out


def with_cur(**changes: float) -> Callable[[Rows], Rows]:
    def apply(rows: Rows) -> Rows:
        return [rows[0], {**rows[1], **changes}]
    return apply


def with_prev(**changes: float) -> Callable[[Rows], Rows]:
    def apply(rows: Rows) -> Rows:
        return [{**rows[0], **changes}, rows[1]]
    return apply


def cfg_with(doc: dict[str, Any], mode: str | None = None) -> StrategyConfig:
    return parse_overrides({"global": doc}).resolve("ETH", strategy_mode=mode)


# gate -> (row mutation, config, bars, btc_bullish): breaks exactly that gate of the base BUY setup
GATE_BREAKERS: dict[EntryGate, tuple[Callable[[Rows], Rows], StrategyConfig, int, bool | None]] = {
    EntryGate.WARMUP: (lambda r: r, default_config("ETH"), 4, None),
    EntryGate.FLAT_MODE: (lambda r: r, cfg_with({}, mode="flat"), 300, None),
    EntryGate.ADX_ABOVE_MIN: (lambda r: with_prev(ADX=21.2)(with_cur(ADX=21.5)(r)), default_config("ETH"),
                              300, None),
    EntryGate.NOT_RANGING: (with_cur(avg_bb_width=0.0), default_config("ETH"), 300, None),
    EntryGate.NOT_ANOMALY: (with_prev(Close=80.0), default_config("ETH"), 300, None),
    EntryGate.NOT_EXTENDED: (with_cur(Close=105.0), default_config("ETH"), 300, None),
    EntryGate.VOLUME_CONFIRMED: (lambda r: with_prev(Volume=50.0)(with_cur(Volume=50.0)(r)),
                                 cfg_with({"filters": {"require_volume_confirmation": True}}), 300, None),
    EntryGate.ADX_RISING: (with_prev(ADX=31.0), default_config("ETH"), 300, None),
    EntryGate.EMA_ALIGNMENT: (with_cur(EMA_slow=100.0), default_config("ETH"), 300, None),
    EntryGate.PRICE_VS_EMA_FAST: (with_cur(Close=99.9), default_config("ETH"), 300, None),
    EntryGate.RSI_LIMIT: (with_cur(RSI=54.0), default_config("ETH"), 300, None),
    EntryGate.MACD: (with_prev(MACD_hist=0.6), default_config("ETH"), 300, None),
    EntryGate.STOCH_RSI: (with_cur(stoch_k=0.9), default_config("ETH"), 300, None),
    EntryGate.BTC_ALIGNMENT: (lambda r: r, default_config("ETH"), 300, False),
}


def test_signals_gate_table_covers_every_entry_gate() -> None:
    assert set(GATE_BREAKERS) == set(EntryGate)


def test_signals_base_rows_buy_medium_with_all_gates_passed() -> None:
    d = decide(base_rows(), 300, default_config("ETH"), None)
    assert (d.signal, d.confidence, d.entry_kind) == (Signal.BUY, Confidence.MEDIUM, EntryKind.STANDARD)
    assert all(d.gates.values()) and set(d.gates) == {g.value for g in EntryGate}


@pytest.mark.parametrize("gate", list(EntryGate), ids=lambda g: g.value)
def test_signals_each_gate_blocks_the_entry(gate: EntryGate) -> None:
    mutate, cfg, bars, btc = GATE_BREAKERS[gate]
    d = decide(mutate(base_rows()), bars, cfg, btc)
    assert d.signal is Signal.NEUTRAL and d.confidence is Confidence.LOW
    assert d.gates[gate.value] is False
    assert d.score == 0.0


@pytest.mark.parametrize("gate", [g for g in EntryGate if g not in (EntryGate.WARMUP, EntryGate.FLAT_MODE,
                                                                     EntryGate.EMA_ALIGNMENT)],
                         ids=lambda g: g.value)
def test_signals_each_gate_blocks_the_mirrored_short(gate: EntryGate) -> None:
    mutate, cfg, bars, btc = GATE_BREAKERS[gate]
    assert decide(mirror_rows(base_rows()), 300, default_config("ETH"), None).signal is Signal.SELL
    d = decide(mirror_rows(mutate(base_rows())), bars, cfg, None if btc is None else not btc)
    assert d.signal is Signal.NEUTRAL and d.gates[gate.value] is False


def test_signals_mirrored_rows_sell_and_high_confidence_on_volume_spike() -> None:
    d = decide(mirror_rows(base_rows()), 300, default_config("ETH"), None)
    assert (d.signal, d.confidence) == (Signal.SELL, Confidence.MEDIUM)
    spike = decide(with_cur(Volume=260.0)(base_rows()), 300, default_config("ETH"), None)
    assert (spike.signal, spike.confidence) == (Signal.BUY, Confidence.HIGH)
    assert spike.score == rank_score(Signal.BUY, Confidence.HIGH, 30.0) == 230.0


def test_signals_btc_gate_passes_for_btc_itself_and_strong_adx() -> None:
    rows = base_rows()
    assert decide(rows, 300, default_config("BTC"), False, symbol="BTC").signal is Signal.BUY
    strong = [with_prev(ADX=40.5)(rows)[0], {**rows[1], "ADX": 41.0, "RSI": 60.0}]
    assert decide(strong, 300, default_config("ETH"), False).signal is Signal.BUY
    off = cfg_with({"filters": {"require_btc_alignment": False}})
    assert decide(rows, 300, off, False).signal is Signal.BUY


def test_signals_nan_stoch_k_never_blocks_longs_and_always_blocks_shorts() -> None:
    long_d = decide(with_cur(stoch_k=math.nan)(base_rows()), 300, default_config("ETH"), None)
    assert long_d.signal is Signal.BUY and long_d.snapshot["stoch_k"] == 0.0
    short_rows = mirror_rows(base_rows())
    short_rows[1]["stoch_k"] = math.nan
    assert decide(short_rows, 300, default_config("ETH"), None).signal is Signal.NEUTRAL


def test_signals_macd_modes() -> None:
    decel = with_prev(MACD_hist=0.6)(base_rows())
    assert decide(decel, 300, cfg_with({"thresholds": {"entry": {"macd_hist_entry_mode": "sign"}}}),
                  None).signal is Signal.BUY
    assert decide(decel, 300, cfg_with({"thresholds": {"entry": {"macd_hist_entry_mode": "none"}}}),
                  None).signal is Signal.BUY
    negative = with_cur(MACD_hist=-0.1)(with_prev(MACD_hist=-0.5)(base_rows()))
    assert decide(negative, 300, cfg_with({"thresholds": {"entry": {"macd_hist_entry_mode": "sign"}}}),
                  None).signal is Signal.NEUTRAL


def test_signals_effective_min_adx_tmc_and_ave() -> None:
    # ADX 24 rising by 1.0: TMC caps the threshold at min(22, 25) = 22 -> passes;
    # a volatility spike (ATR/avg_atr 2 > 1.5) multiplies it by 1.25 -> 27.5 -> blocked.
    rows = with_prev(ADX=23.0)(with_cur(ADX=24.0, RSI=60.0)(base_rows()))
    d = decide(rows, 300, default_config("ETH"), None)
    assert d.signal is Signal.BUY and d.snapshot["effective_min_adx"] == 22.0
    spike = decide(with_cur(ATR=2.0, ADX=24.0)(rows), 300, default_config("ETH"), None)
    assert spike.signal is Signal.NEUTRAL and spike.snapshot["effective_min_adx"] == 22.0 * 1.25
    assert spike.gates[EntryGate.ADX_ABOVE_MIN.value] is False
    assert (d.snapshot["vol_spike_mult"], spike.snapshot["vol_spike_mult"]) == (1.0, 1.25)
    assert spike.snapshot["atr_ratio"] == pytest.approx(2.0)
    no_ave = cfg_with({"thresholds": {"entry": {"ave_enabled": False}}})
    assert decide(with_cur(ATR=2.0, ADX=24.0)(rows), 300, no_ave, None).signal is Signal.BUY


@pytest.mark.parametrize(("adx", "expected"), [(45.0, 7.0), (25.0, 3.0), (35.0, 4.0), (math.nan, 4.0)])
def test_signals_dynamic_tp_multiplier(adx: float, expected: float) -> None:
    d = decide(with_cur(ADX=adx)(base_rows()), 300, default_config("ETH"), None)
    assert d.snapshot["tp_mult"] == expected


def test_signals_extras_in_snapshot() -> None:
    prev2 = {**base_rows()[0], "MACD_hist": 0.2}
    prev3 = {**base_rows()[0], "MACD_hist": 0.1}
    rows = [prev3, prev2, *base_rows()]
    s = decide(rows, 300, default_config("ETH"), None).snapshot
    assert s["ADX_slope"] == pytest.approx(2.0) and s["ATR_slope"] == pytest.approx(0.1)
    assert (s["prev_MACD_hist"], s["prev2_MACD_hist"], s["prev3_MACD_hist"]) == (0.3, 0.2, 0.1)
    assert s["entry_adx_threshold"] == 22.0 and s["is_anomaly"] is False
    assert s["Close"] == 101.0 and s["macd_entry_mode"] == "accel"
    short = decide(base_rows(), 300, default_config("ETH"), None).snapshot
    assert (short["prev2_MACD_hist"], short["prev3_MACD_hist"]) == (0.0, 0.0)


def test_signals_ranging_votes() -> None:
    # ADX 20.9 < 21 and RSI 50 in (47, 53): two votes -> ranging even with a wide band.
    rows = with_cur(ADX=20.9, RSI=50.0)(base_rows())
    assert decide(rows, 300, default_config("ETH"), None).snapshot["is_ranging"] is True
    one_vote = with_cur(ADX=20.9)(base_rows())
    assert decide(one_vote, 300, default_config("ETH"), None).snapshot["is_ranging"] is False
    off = cfg_with({"filters": {"enable_ranging_filter": False}})
    assert decide(rows, 300, off, None).snapshot["is_ranging"] is False


def test_signals_reverse_entry_signal_swaps_side() -> None:
    cfg = cfg_with({"trade": {"reverse_entry_signal": True}})
    d = decide(base_rows(), 300, cfg, None)
    assert d.signal is Signal.SELL and d.snapshot["raw_signal"] == "BUY" and d.snapshot["reversed_signal"]


def _pullback_rows() -> Rows:
    """Close crosses up through EMA_fast; ADX flat (standard entry blocked by ADX_RISING)."""
    prev, cur = base_rows()
    return [{**prev, "Close": 99.7, "EMA_fast": 99.8, "ADX": 30.0},
            {**cur, "Close": 100.2, "EMA_fast": 100.0, "ADX": 30.0, "RSI": 55.0}]


def test_signals_pullback_entry_when_enabled() -> None:
    rows = _pullback_rows()
    assert decide(rows, 300, default_config("ETH"), None).signal is Signal.NEUTRAL
    cfg = cfg_with({"thresholds": {"entry": {"enable_pullback_entries": True}}})
    d = decide(rows, 300, cfg, None)
    assert (d.signal, d.confidence, d.entry_kind) == (Signal.BUY, Confidence.LOW, EntryKind.PULLBACK)
    assert d.snapshot["pullback_used"] is True and d.snapshot["entry_adx_threshold"] == 22.0
    short = decide(mirror_rows(rows), 300, cfg, None)
    assert (short.signal, short.entry_kind) == (Signal.SELL, EntryKind.PULLBACK)
    no_cross = with_prev(Close=99.9)(rows)  # prev close already above prev EMA_fast
    assert decide(no_cross, 300, cfg, None).signal is Signal.NEUTRAL


def test_signals_pullback_min_adx_defaults_to_min_adx() -> None:
    rows = _pullback_rows()  # ADX 30
    strict = cfg_with({"thresholds": {"entry": {"enable_pullback_entries": True, "min_adx": 35.0}}})
    assert decide(rows, 300, strict, None).signal is Signal.NEUTRAL
    explicit = cfg_with({"thresholds": {"entry": {"enable_pullback_entries": True, "min_adx": 35.0,
                                                  "pullback_min_adx": 25.0}}})
    d = decide(rows, 300, explicit, None)
    assert d.entry_kind is EntryKind.PULLBACK and d.snapshot["entry_adx_threshold"] == 25.0


def test_signals_slow_drift_entry_when_enabled() -> None:
    # Ranging market (ADX 15 < 21 and narrow bands) with a rising slow EMA.
    prev, cur = base_rows()
    rows = [{**prev, "ADX": 15.0, "bb_width": 0.02}, {**cur, "ADX": 15.0, "bb_width": 0.02, "RSI": 52.0,
                                                         "ema_slow_slope_pct": 0.001}]
    assert decide(rows, 300, default_config("ETH"), None).signal is Signal.NEUTRAL
    cfg = cfg_with({"thresholds": {"entry": {"enable_slow_drift_entries": True}}})
    d = decide(rows, 300, cfg, None)
    assert (d.signal, d.confidence, d.entry_kind) == (Signal.BUY, Confidence.LOW, EntryKind.SLOW_DRIFT)
    assert d.snapshot["entry_adx_threshold"] == 10.0 and d.snapshot["is_ranging"] is False
    flat_slope = with_cur(ema_slow_slope_pct=0.0001)(rows)
    assert decide(flat_slope, 300, cfg, None).signal is Signal.NEUTRAL
    assert decide(mirror_rows(rows), 300, cfg, None).signal is Signal.SELL


def test_signals_warmup_returns_neutral_low_without_rows() -> None:
    d = decide([], 0, default_config(), None)
    assert isinstance(d, Decision)
    assert (d.signal, d.confidence, d.score) == (Signal.NEUTRAL, Confidence.LOW, 0.0)


def test_signals_decision_is_frozen_and_rank_score_orders_confidence_first() -> None:
    d = decide(base_rows(), 300, default_config("ETH"), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.signal = Signal.SELL  # type: ignore[misc]
    assert rank_score(Signal.SELL, Confidence.HIGH, 10.0) > rank_score(Signal.BUY, Confidence.MEDIUM, 99.0)
    assert rank_score(Signal.BUY, Confidence.LOW, math.nan) == 0.0


# The snapshot keys `strategies.exits` and `strategies.sizing` read; `SignalFeatures.as_snapshot`
# must carry each with decide's value (non-finite shown as None, which they read as "absent").
EXIT_SIZING_KEYS = ("Close", "ADX", "ADX_slope", "ATR", "ATR_slope", "RSI", "EMA_fast", "EMA_slow",
                    "EMA_macro", "MACD_hist", "prev_MACD_hist", "prev2_MACD_hist", "prev3_MACD_hist",
                    "bb_width", "avg_bb_width", "tp_mult", "is_anomaly")


@pytest.mark.parametrize("rows", [base_rows(), mirror_rows(base_rows()), with_cur(ADX=10.0)(base_rows()),
                                  [*base_rows(), *base_rows()], with_cur(EMA_macro=None)(base_rows())])
def test_signals_lean_features_equal_decide_and_carry_no_dict(rows: Rows) -> None:
    full = decide(rows, 300, default_config("ETH"), None)
    lean = decide_lean(rows, 300, default_config("ETH"), None, with_features=True)
    assert (lean.signal, lean.confidence, lean.score, lean.gates, lean.entry_kind) == (
        full.signal, full.confidence, full.score, full.gates, full.entry_kind)
    assert lean.snapshot == {} and lean.features is not None and full.features is not None
    assert lean.features.as_snapshot() == full.features.as_snapshot()
    shown = full.features.as_snapshot()
    assert set(shown) == set(EXIT_SIZING_KEYS)
    for key in EXIT_SIZING_KEYS:
        value = full.snapshot.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        assert shown[key] == value, key


def test_signals_lean_neutral_builds_nothing_unless_asked() -> None:
    rows = with_cur(ADX=10.0)(base_rows())
    lean = decide_lean(rows, 300, default_config("ETH"), None)
    assert lean.signal is Signal.NEUTRAL and lean.features is None and lean.snapshot == {}
    warm = decide_lean(rows, 3, default_config("ETH"), None, with_features=True)
    assert warm.features is not None and warm.features.adx == 10.0 and math.isnan(warm.features.adx_slope)
    assert warm.snapshot == {} and decide_lean(rows, 3, default_config("ETH"), None).features is None
