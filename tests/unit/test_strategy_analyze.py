"""Batch analyze on the real candle files, and batch == incremental decisions on every bar."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.config import StrategyConfig, default_config, parse_overrides
from strategies.enums import Confidence, Signal
from strategies.incremental import IncrementalIndicators
from strategies.mei_alpha_v1 import analyze, analyze_series, btc_bullish_series, frame_from_ohlcv
from strategies.signals import Decision, decide
from tests.fixtures.data_files import ohlcv_files, ohlcv_path

FILES = ohlcv_files()  # fails collection if a vendored file is missing or an unexpected one appeared


def symbol_of(path: Path) -> str:
    return path.stem.split("_")[0]


@cache
def candles(path: Path) -> pd.DataFrame:
    return frame_from_ohlcv(pd.read_csv(path))


@cache
def batch(path: Path) -> tuple[Decision, ...]:
    return tuple(analyze_series(candles(path), symbol_of(path)))


def incremental(df: pd.DataFrame, symbol: str, cfg: StrategyConfig) -> list[Decision]:
    inc = IncrementalIndicators(cfg.indicator_params())
    out = []
    cols = ["timestamp", "Open", "High", "Low", "Close", "Volume"]
    for t, o, h, lo, c, v in df[cols].itertuples(index=False):
        inc.update(int(t), float(o), float(h), float(lo), float(c), float(v))
        out.append(decide(inc.recent_rows(4), inc.bars, cfg, None, symbol=symbol))
    return out


def same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def test_analyze_real_files_produce_buy_and_sell() -> None:
    for path in FILES:
        signals = {d.signal for d in batch(path)}
        assert {Signal.BUY, Signal.SELL} <= signals, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_analyze_batch_equals_incremental_on_every_bar(path: Path) -> None:
    cfg = default_config(symbol_of(path))
    inc = incremental(candles(path), symbol_of(path), cfg)
    ref = batch(path)
    assert len(inc) == len(ref)
    mismatches = [i for i, (a, b) in enumerate(zip(ref, inc, strict=True))
                  if (a.signal, a.confidence) != (b.signal, b.confidence)]
    assert mismatches == []
    for a, b in zip(ref, inc, strict=True):
        assert a.score == b.score and a.gates == b.gates and a.snapshot.keys() == b.snapshot.keys()
        assert all(same_value(a.snapshot[k], b.snapshot[k]) for k in a.snapshot)


def test_analyze_prefix_equals_series_and_does_not_mutate_input() -> None:
    path = ohlcv_path("ETH_BTC-5m")
    df = candles(path)
    series = batch(path)
    signal_bars = [i for i, d in enumerate(series) if d.signal is not Signal.NEUTRAL][:3]
    for i in [4, 5, 250, *signal_bars, len(df) - 1]:
        prefix = df.iloc[: i + 1]
        before = prefix.copy()
        d = analyze(prefix, "ETH")
        pd.testing.assert_frame_equal(prefix, before)
        assert (d.signal, d.confidence, d.score) == (series[i].signal, series[i].confidence, series[i].score)
        assert d.snapshot.keys() == series[i].snapshot.keys()
        assert all(same_value(d.snapshot[k], series[i].snapshot[k]) for k in d.snapshot)


def test_analyze_warmup_and_missing_columns() -> None:
    df = candles(ohlcv_path("ETH_BTC-5m"))
    d = analyze(df.iloc[:4], "ETH")
    assert isinstance(d, Decision) and (d.signal, d.confidence) == (Signal.NEUTRAL, Confidence.LOW)
    with pytest.raises(ValueError, match="lacks columns"):
        analyze(df.drop(columns=["Volume"]), "ETH")


def test_analyze_btc_bearish_blocks_longs_unless_adx_override() -> None:
    path = ohlcv_path("LTC_BTC-5m")
    df = candles(path)
    bearish = analyze_series(df, "LTC", btc_bullish_series=[False] * len(df))
    buys = [d for d in bearish if d.signal is Signal.BUY]
    assert all(float(d.snapshot["ADX"]) > 40.0 for d in buys)
    assert sum(d.signal is Signal.BUY for d in batch(path)) > len(buys)
    with pytest.raises(ValueError, match="btc_bullish_series"):
        analyze_series(df, "LTC", btc_bullish_series=[None])


def test_analyze_flat_mode_yields_no_signal_on_real_data() -> None:
    cfg = parse_overrides({}).resolve("ETH", strategy_mode="flat")
    decisions = analyze_series(candles(ohlcv_path("ETH_BTC-5m")), "ETH", cfg)
    assert all(d.signal is Signal.NEUTRAL for d in decisions)


SMALL = parse_overrides({"global": {
    "indicators": {"ema_fast_window": 3, "ema_slow_window": 5, "ema_macro_window": 8, "adx_window": 3,
                   "bb_window": 4, "bb_width_avg_window": 4, "atr_window": 3, "rsi_window": 3,
                   "vol_sma_window": 3, "vol_trend_window": 2, "stoch_rsi_window": 3},
    "thresholds": {"entry": {"ave_avg_atr_window": 5, "enable_pullback_entries": True,
                             "enable_slow_drift_entries": True, "slow_drift_slope_window": 4}},
    "filters": {"require_volume_confirmation": True},
}}).resolve("SYN")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 160), vol=st.floats(0.001, 0.05))
def test_analyze_batch_equals_incremental_on_random_walks(seed: int, n: int, vol: float) -> None:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, vol, n)) * close
    df = pd.DataFrame({"timestamp": np.arange(n) * 60_000, "Open": open_,
                       "High": np.maximum(open_, close) + spread, "Low": np.minimum(open_, close) - spread,
                       "Close": close, "Volume": rng.integers(0, 1000, n).astype(float)})
    ref = analyze_series(df, "SYN", SMALL)
    inc = incremental(df, "SYN", SMALL)
    assert [(d.signal, d.confidence) for d in ref] == [(d.signal, d.confidence) for d in inc]


def test_analyze_btc_bullish_series_matches_ema50_and_unknown_in_warmup() -> None:
    close = candles(ohlcv_path("ETH_BTC-5m"))["Close"].iloc[:300]
    series = btc_bullish_series(close)
    assert series[:49] == [None] * 49 and all(v is not None for v in series[49:])
    ema = close.ewm(span=50, adjust=False, min_periods=50).mean()
    assert series[120] is bool(close.iloc[120] > ema.iloc[120])
    assert {True, False} <= set(series[49:])
