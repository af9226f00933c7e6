"""Library indicators for trend strength and momentum: ADX/+DI/-DI, MACD, StochRSI, stochastic.

Part of the library (`strategies.sdk.library`, which lists them in `LIBRARY`); the same contract:
an incremental kernel reusing `strategies.kernels` and a batch twin reusing
`strategies.indicators`, bit-identical on every bar. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from strategies.indicator_params import IndicatorParams
from strategies.indicators import _directional, _ema, _series, _stoch_rsi, _true_range
from strategies.kernels import _Directional, _div, _Ewm, _RollMean, _RollMinMax, _Rsi, _span_com
from strategies.sdk.indicator_base import Checkpointed, Columns, Indicator, Kernel, Row, _Sourced


class _AdxKernel(Checkpointed):
    __slots__ = ("_i", "_impl")
    _PARTS, _INTS = ("_impl",), ("_i",)

    def __init__(self, window: int) -> None:
        self._impl = _Directional(window, window)
        self._i = 0

    def push(self, row: Row) -> tuple[float, ...]:
        _, adx, di_pos, di_neg = self._impl.push(self._i, row["High"], row["Low"], row["Close"])
        self._i += 1
        return adx, di_pos, di_neg


@dataclass(frozen=True, kw_only=True, slots=True)
class Adx(Indicator):
    """`ta` 0.11 ADX with +DI (`_pos`) and -DI (`_neg`); 0.0 during warm-up (ADX before 2 x window)."""

    window: int = 14
    SUFFIXES: ClassVar[tuple[str, ...]] = ("", "_pos", "_neg")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("High", "Low", "Close")

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _AdxKernel(self.window)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        high, low = cols["High"], cols["Low"]
        return _directional(high, low, _true_range(high, low, cols["Close"]), self.window)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="adx"), cls(name="adx_fast", window=5))


class _MacdKernel(Checkpointed):
    __slots__ = ("_fast", "_signal", "_slow", "_source")
    _PARTS = ("_fast", "_slow", "_signal")

    def __init__(self, fast: int, slow: int, signal: int, source: str) -> None:
        self._fast = _Ewm(_span_com(fast), fast)
        self._slow = _Ewm(_span_com(slow), slow)
        self._signal = _Ewm(_span_com(signal), signal)
        self._source = source

    def push(self, row: Row) -> tuple[float, ...]:
        value = row[self._source]
        macd = self._fast.push(value) - self._slow.push(value)
        signal = self._signal.push(macd)
        return macd, signal, macd - signal


@dataclass(frozen=True, kw_only=True, slots=True)
class Macd(_Sourced):
    """MACD = EMA(fast) - EMA(slow); `_signal` = EMA(signal) of MACD; `_hist` = MACD - signal."""

    fast: int = 12
    slow: int = 26
    signal: int = 9
    SUFFIXES: ClassVar[tuple[str, ...]] = ("", "_signal", "_hist")

    def window_fields(self) -> tuple[str, ...]:
        return ("fast", "slow", "signal")

    def kernel(self) -> Kernel:
        return _MacdKernel(self.fast, self.slow, self.signal, self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        series = _series(cols[self.source])
        macd = _ema(series, self.fast) - _ema(series, self.slow)
        signal = _ema(macd, self.signal)
        return macd.to_numpy(), signal.to_numpy(), (macd - signal).to_numpy()

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="macd"), cls(name="macd_fast", fast=5, slow=13, signal=4))


class _StochRsiKernel(Checkpointed):
    __slots__ = ("_d", "_k", "_range", "_rsi", "_source")
    _PARTS = ("_rsi", "_range", "_k", "_d")

    def __init__(self, window: int, smooth_k: int, smooth_d: int, source: str) -> None:
        self._rsi, self._range = _Rsi(window), _RollMinMax(window)
        self._k, self._d = _RollMean(smooth_k), _RollMean(smooth_d)
        self._source = source

    def push(self, row: Row) -> tuple[float, ...]:
        rsi = self._rsi.push(row[self._source])
        lowest, highest = self._range.push(rsi)
        k = self._k.push(_div(rsi - lowest, highest - lowest))
        d = self._d.push(k)
        return (k if k == k else 0.0), (d if d == d else 0.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class StochRsi(_Sourced):
    """StochRSI in 0..1: (RSI - min) / (max - min) over `window`, `_k` = SMA(smooth_k), `_d` = SMA(smooth_d).

    Warm-up (and a flat RSI range) reads 0.0, not NaN: mei_alpha_v1's fill, kept so its gates see
    the same values.
    """

    window: int = 14
    smooth_k: int = 3
    smooth_d: int = 3
    SUFFIXES: ClassVar[tuple[str, ...]] = ("_k", "_d")

    def window_fields(self) -> tuple[str, ...]:
        return ("window", "smooth_k", "smooth_d")

    def kernel(self) -> Kernel:
        return _StochRsiKernel(self.window, self.smooth_k, self.smooth_d, self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        params = IndicatorParams(stoch_rsi_window=self.window, stoch_rsi_smooth1=self.smooth_k,
                                 stoch_rsi_smooth2=self.smooth_d)
        return _stoch_rsi(_series(cols[self.source]), params)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="stoch"), cls(name="stoch_fast", window=7, smooth_k=1, smooth_d=5))


class _StochasticKernel(Checkpointed):
    __slots__ = ("_d", "_high", "_low")
    _PARTS = ("_high", "_low", "_d")

    def __init__(self, window: int, smooth_d: int) -> None:
        self._high, self._low, self._d = _RollMinMax(window), _RollMinMax(window), _RollMean(smooth_d)

    def push(self, row: Row) -> tuple[float, ...]:
        highest = self._high.push(row["High"])[1]
        lowest = self._low.push(row["Low"])[0]
        k = _div(100 * (row["Close"] - lowest), highest - lowest)
        return k, self._d.push(k)


@dataclass(frozen=True, kw_only=True, slots=True)
class Stochastic(Indicator):
    """Price stochastic in 0..100: `_k` = 100 (Close - LL) / (HH - LL) over `window`; `_d` = SMA(smooth_d).

    NaN during warm-up and where HH == LL (a flat window).
    """

    window: int = 14
    smooth_d: int = 3
    SUFFIXES: ClassVar[tuple[str, ...]] = ("_k", "_d")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("High", "Low", "Close")

    def window_fields(self) -> tuple[str, ...]:
        return ("window", "smooth_d")

    def kernel(self) -> Kernel:
        return _StochasticKernel(self.window, self.smooth_d)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        lowest = _series(cols["Low"]).rolling(self.window).min()
        highest = _series(cols["High"]).rolling(self.window).max()
        k = 100 * (_series(cols["Close"]) - lowest) / (highest - lowest)
        return k.to_numpy(), k.rolling(self.smooth_d).mean().to_numpy()

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="stoch"), cls(name="stoch_slow", window=21, smooth_d=5))
