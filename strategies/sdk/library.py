"""The indicator library: declarations a strategy makes instead of looping over candles.

Each library indicator is a frozen dataclass (its parameters, the column it reads, the name of
the columns it writes) with two twins that are BIT-IDENTICAL on every bar, NaN positions included:

* `kernel()` returns an incremental state advanced one closed candle at a time (`push(row)`,
  where `row` holds the candle's Open..Volume and every column declared before this one);
* `batch(columns)` computes the whole history at once with pandas/numpy.

The twins reuse, never copy, the project's exact code: the incremental kernels of
`strategies.kernels` (pandas' own rolling/ewm update rules, statement by statement) and the
batch formulas of `strategies.indicators`. `tests/unit/test_sdk_library.py` runs every entry of
`LIBRARY` (through its `examples()`) on real candles and asserts bit equality, so an indicator
added here without an exact pair fails the suite.

Why declarations: a declaration is plain, hashable data. A shard that holds many (symbol,
variant) rows can group identical declarations and update one indicator for all of its rows in
one vectorised step (issue 12), and the batch twin stays the oracle for that path too.

Output columns: single-output indicators write `name`; multi-output ones write `name + suffix`
for each entry of `SUFFIXES` (e.g. `Bollinger(name="bb")` writes bb_high, bb_mid, bb_low,
bb_width). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from strategies.indicator_params import SLOPE_WINDOW_MIN, slope_lag
from strategies.indicators import _atr, _ema, _rsi, _series, _slope_pct, _true_range
from strategies.kernels import (
    _Directional,
    _div,
    _Ewm,
    _Packer,
    _RollMean,
    _RollMinMax,
    _RollVar,
    _Rsi,
    _span_com,
    _Unpacker,
)
from strategies.sdk.errors import IndicatorDeclarationError
from strategies.sdk.indicator_base import (
    NAN,
    PRICE_COLUMNS,
    Checkpointed,
    Columns,
    Indicator,
    Kernel,
    Row,
    _Sourced,
)
from strategies.sdk.library_momentum import Adx, Macd, Stochastic, StochRsi

__all__ = [
    "LIBRARY", "PRICE_COLUMNS", "Adx", "Atr", "Bollinger", "Columns", "Donchian", "Ema", "Indicator",
    "Kernel", "Macd", "Row", "Rsi", "SlopePct", "Sma", "SmaAbove", "StochRsi", "Stochastic",
]


# --- moving averages, RSI, slope, crossover -----------------------------------------------------


class _OneKernel(Checkpointed):
    """Adapts a kernels.py object whose push takes one float to the `Kernel` protocol."""

    __slots__ = ("_impl", "_push", "_source")
    _PARTS = ("_impl",)

    def __init__(self, impl: _RollMean | _Ewm | _Rsi, source: str) -> None:
        self._impl = impl
        self._push = impl.push
        self._source = source

    def push(self, row: Row) -> tuple[float, ...]:
        return (self._push(row[self._source]),)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sma(_Sourced):
    """Simple moving average: pandas `rolling(window).mean()` (NaN until `window` values)."""

    window: int

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _OneKernel(_RollMean(self.window), self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        return (_series(cols[self.source]).rolling(self.window).mean().to_numpy(),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="sma", window=20), cls(name="vol_sma", window=7, source="Volume"),
                cls(name="sma1", window=1, source="High"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Ema(_Sourced):
    """Exponential moving average: `ewm(span=window, adjust=False, min_periods=window).mean()`."""

    window: int

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _OneKernel(_Ewm(_span_com(self.window), self.window), self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        return (_ema(_series(cols[self.source]), self.window).to_numpy(),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="ema", window=20), cls(name="ema_long", window=200), cls(name="ema1", window=1))


@dataclass(frozen=True, kw_only=True, slots=True)
class Rsi(_Sourced):
    """Wilder RSI as `ta` 0.11 computes it (100 where the average loss is 0)."""

    window: int = 14

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _OneKernel(_Rsi(self.window), self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        return (np.asarray(_rsi(_series(cols[self.source]), self.window), dtype=float),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="rsi"), cls(name="rsi_fast", window=3))


class _SlopeKernel(Checkpointed):
    __slots__ = ("_hist", "_i", "_source", "_window")

    def dump(self, out: _Packer) -> None:
        out.seq(self._hist)
        out.ints.append(self._i)

    def load(self, src: _Unpacker) -> None:
        self._hist = deque(src.next_seq(), maxlen=self._hist.maxlen)
        self._i = src.next_int()

    def __init__(self, window: int, source: str) -> None:
        self._window, self._source, self._i = window, source, 0
        self._hist: deque[float] = deque(maxlen=max(window, SLOPE_WINDOW_MIN))  # >= the largest lag + 1

    def push(self, row: Row) -> tuple[float, ...]:
        value = row[self._source]
        hist = self._hist
        hist.append(value)
        lag = slope_lag(self._window, self._i)
        earlier = hist[-1 - lag] if lag <= self._i else NAN
        self._i += 1
        return (_div(value - earlier, row["Close"]),)


@dataclass(frozen=True, kw_only=True, slots=True)
class SlopePct(_Sourced):
    """(source[i] - source[i - (W-1)]) / Close[i], W = max(3, min(window, i)); NaN before row 0.

    The look-back grows from 3 rows during warm-up, as mei_alpha_v1's `ema_slow_slope_pct` does.
    """

    window: int

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source, "Close")

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _SlopeKernel(self.window, self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        return (_slope_pct(np.asarray(cols[self.source], dtype=float), cols["Close"], self.window),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="slope", window=20), cls(name="slope_vol", window=1, source="Volume"))


class _AboveKernel(Checkpointed):
    __slots__ = ("_fast", "_slow", "_source")
    _PARTS = ("_fast", "_slow")

    def __init__(self, fast: int, slow: int, source: str) -> None:
        self._fast, self._slow, self._source = _RollMean(fast), _RollMean(slow), source

    def push(self, row: Row) -> tuple[float, ...]:
        value = row[self._source]
        return (1.0 if self._fast.push(value) > self._slow.push(value) else 0.0,)


@dataclass(frozen=True, kw_only=True, slots=True)
class SmaAbove(_Sourced):
    """1.0 where SMA(fast) > SMA(slow) of `source`, else 0.0 (NaN compares False): volume trend."""

    fast: int
    slow: int
    source: str = "Volume"

    def window_fields(self) -> tuple[str, ...]:
        return ("fast", "slow")

    def kernel(self) -> Kernel:
        return _AboveKernel(self.fast, self.slow, self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        series = _series(cols[self.source])
        above = series.rolling(self.fast).mean() > series.rolling(self.slow).mean()
        return (above.to_numpy(dtype=float),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="vol_trend", fast=5, slow=20),
                cls(name="close_trend", fast=10, slow=3, source="Close"))


# --- volatility: ATR, Bollinger, Donchian --------------------------------------------------------


class _AtrKernel(Checkpointed):
    """ATR through `_Directional`'s own ATR step (true range computed as its `push` does)."""

    __slots__ = ("_i", "_impl", "_prev_close")
    _PARTS, _INTS, _FLOATS = ("_impl",), ("_i",), ("_prev_close",)

    def __init__(self, window: int) -> None:
        self._impl = _Directional(window, window)
        self._i = 0
        self._prev_close = NAN

    def push(self, row: Row) -> tuple[float, ...]:
        h, lo, c = row["High"], row["Low"], row["Close"]
        prev = self._prev_close
        tr = h - lo if self._i == 0 else max(h, prev) - min(lo, prev)
        atr = self._impl._push_atr(self._i, tr)
        self._i += 1
        self._prev_close = c
        return (atr,)


@dataclass(frozen=True, kw_only=True, slots=True)
class Atr(Indicator):
    """`ta` 0.11 ATR: Wilder average of the true range seeded by the mean of the first `window`.

    Rows before window-1 are 0.0, not NaN (ta's warm-up), so a strategy must not trust ATR before
    `window` bars.
    """

    window: int = 14

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("High", "Low", "Close")

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _AtrKernel(self.window)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        return (_atr(_true_range(cols["High"], cols["Low"], cols["Close"]), self.window),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="atr"), cls(name="atr_short", window=3))


class _BollingerKernel(Checkpointed):
    __slots__ = ("_dev", "_mean", "_source", "_var")
    _PARTS = ("_mean", "_var")

    def __init__(self, window: int, dev: float, source: str) -> None:
        self._mean, self._var = _RollMean(window), _RollVar(window, ddof=0)
        self._dev, self._source = dev, source

    def push(self, row: Row) -> tuple[float, ...]:
        value = row[self._source]
        mavg = self._mean.push(value)
        var = self._var.push(value)
        std = math.sqrt(var) if var >= 0 else (0.0 if var < 0 else NAN)  # pandas' zsqrt
        high = mavg + self._dev * std
        low = mavg - self._dev * std
        return high, mavg, low, _div(high - low, value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Bollinger(_Sourced):
    """Bollinger bands: SMA(window) +- dev x population std; width = (high - low) / source."""

    window: int = 20
    dev: float = 2.0
    SUFFIXES: ClassVar[tuple[str, ...]] = ("_high", "_mid", "_low", "_width")

    def __post_init__(self) -> None:
        Indicator.__post_init__(self)
        if isinstance(self.dev, bool) or not isinstance(self.dev, int | float) or not self.dev > 0:
            raise IndicatorDeclarationError(
                f"Bollinger {self.name!r}: dev must be a number > 0, got {self.dev!r}")

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _BollingerKernel(self.window, self.dev, self.source)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        values = np.asarray(cols[self.source], dtype=float)
        series = _series(values)
        mavg = series.rolling(self.window).mean().to_numpy()
        mstd = series.rolling(self.window).std(ddof=0).to_numpy()
        high = mavg + self.dev * mstd
        low = mavg - self.dev * mstd
        with np.errstate(all="ignore"):
            width = (high - low) / values
        return high, mavg, low, width

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="bb"), cls(name="bb_tight", window=10, dev=1.5))


class _DonchianKernel(Checkpointed):
    __slots__ = ("_high", "_low")
    _PARTS = ("_high", "_low")

    def __init__(self, window: int) -> None:
        self._high, self._low = _RollMinMax(window), _RollMinMax(window)

    def push(self, row: Row) -> tuple[float, ...]:
        return self._high.push(row["High"])[1], self._low.push(row["Low"])[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class Donchian(Indicator):
    """Donchian channel: highest High and lowest Low of the last `window` bars (this bar included).

    A breakout compares this bar's Close with the PREVIOUS row's channel.
    """

    window: int = 20
    SUFFIXES: ClassVar[tuple[str, ...]] = ("_high", "_low")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("High", "Low")

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _DonchianKernel(self.window)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        high = _series(cols["High"]).rolling(self.window).max().to_numpy()
        low = _series(cols["Low"]).rolling(self.window).min().to_numpy()
        return high, low

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="dc"), cls(name="dc_exit", window=10), cls(name="dc1", window=1))


LIBRARY: Mapping[str, type[Indicator]] = MappingProxyType({
    cls.__name__: cls
    for cls in (Sma, Ema, Rsi, SlopePct, SmaAbove, Atr, Bollinger, Donchian, Adx, Macd, StochRsi, Stochastic)
})
"""Every library indicator by class name; the parity test is parametrized from this mapping."""
