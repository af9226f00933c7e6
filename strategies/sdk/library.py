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
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Protocol

import numpy as np
import pandas as pd

from strategies.indicator_params import SLOPE_WINDOW_MIN, IndicatorParams, slope_lag
from strategies.indicators import _atr, _directional, _ema, _rsi, _slope_pct, _stoch_rsi, _true_range
from strategies.kernels import _Directional, _div, _Ewm, _RollMean, _RollMinMax, _RollVar, _Rsi, _span_com
from strategies.sdk.errors import IndicatorDeclarationError

NAN = math.nan
PRICE_COLUMNS: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")

Row = Mapping[str, float]
Columns = Mapping[str, np.ndarray]


class Kernel(Protocol):
    """One indicator's incremental state for one (symbol, variant) row."""

    def push(self, row: Row) -> tuple[float, ...]:
        """Advance by one closed candle; return the outputs in `Indicator.outputs` order."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Indicator(ABC):
    """Base of every library indicator: a named, hashable declaration with two exact twins."""

    name: str
    SUFFIXES: ClassVar[tuple[str, ...]] = ("",)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise IndicatorDeclarationError(
                f"{type(self).__name__}: name must be an identifier, got {self.name!r}")
        for attr in self.window_fields():
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IndicatorDeclarationError(
                    f"{type(self).__name__} {self.name!r}: {attr} must be an int >= 1, got {value!r}")

    @property
    def outputs(self) -> tuple[str, ...]:
        """Columns this indicator writes, in the order `push` and `batch` return them."""
        return tuple(self.name + s for s in self.SUFFIXES)

    @property
    @abstractmethod
    def inputs(self) -> tuple[str, ...]:
        """Columns this indicator reads (price columns or earlier declarations' outputs)."""

    @abstractmethod
    def window_fields(self) -> tuple[str, ...]:
        """Names of the int fields that are window lengths in bars (validated >= 1)."""

    @abstractmethod
    def kernel(self) -> Kernel:
        """Return a fresh incremental state (no candle applied yet)."""

    @abstractmethod
    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        """Return every output over the whole history, bit-identical to pushing row by row."""

    @classmethod
    @abstractmethod
    def examples(cls) -> tuple[Indicator, ...]:
        """Declarations the library parity test runs on real candles (default and non-default)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Sourced(Indicator, ABC):
    """An indicator over one input column (`source`, Close by default)."""

    source: str = "Close"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,)


# --- moving averages, RSI, slope, crossover -----------------------------------------------------


class _OneKernel:
    """Adapts a kernels.py object whose push takes one float to the `Kernel` protocol."""

    __slots__ = ("_push", "_source")

    def __init__(self, impl: _RollMean | _Ewm | _Rsi, source: str) -> None:
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
        return (pd.Series(cols[self.source]).rolling(self.window).mean().to_numpy(),)

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
        return (_ema(pd.Series(cols[self.source]), self.window).to_numpy(),)

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
        return (np.asarray(_rsi(pd.Series(cols[self.source]), self.window), dtype=float),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="rsi"), cls(name="rsi_fast", window=3))


class _SlopeKernel:
    __slots__ = ("_hist", "_i", "_source", "_window")

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


class _AboveKernel:
    __slots__ = ("_fast", "_slow", "_source")

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
        series = pd.Series(cols[self.source])
        above = series.rolling(self.fast).mean() > series.rolling(self.slow).mean()
        return (above.to_numpy(dtype=float),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="vol_trend", fast=5, slow=20),
                cls(name="close_trend", fast=10, slow=3, source="Close"))


# --- volatility: ATR, Bollinger, Donchian --------------------------------------------------------


class _AtrKernel:
    """ATR through `_Directional`'s own ATR step (true range computed as its `push` does)."""

    __slots__ = ("_i", "_impl", "_prev_close")

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


class _BollingerKernel:
    __slots__ = ("_dev", "_mean", "_source", "_var")

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
        series = pd.Series(values)
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


class _DonchianKernel:
    __slots__ = ("_high", "_low")

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
        high = pd.Series(cols["High"]).rolling(self.window).max().to_numpy()
        low = pd.Series(cols["Low"]).rolling(self.window).min().to_numpy()
        return high, low

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="dc"), cls(name="dc_exit", window=10), cls(name="dc1", window=1))


# --- trend and momentum: ADX, MACD, stochastics ------------------------------------------------


class _AdxKernel:
    __slots__ = ("_i", "_impl")

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


class _MacdKernel:
    __slots__ = ("_fast", "_signal", "_slow", "_source")

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
        series = pd.Series(cols[self.source])
        macd = _ema(series, self.fast) - _ema(series, self.slow)
        signal = _ema(macd, self.signal)
        return macd.to_numpy(), signal.to_numpy(), (macd - signal).to_numpy()

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="macd"), cls(name="macd_fast", fast=5, slow=13, signal=4))


class _StochRsiKernel:
    __slots__ = ("_d", "_k", "_range", "_rsi", "_source")

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
        return _stoch_rsi(pd.Series(cols[self.source]), params)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="stoch"), cls(name="stoch_fast", window=7, smooth_k=1, smooth_d=5))


class _StochasticKernel:
    __slots__ = ("_d", "_high", "_low")

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
        lowest = pd.Series(cols["Low"]).rolling(self.window).min()
        highest = pd.Series(cols["High"]).rolling(self.window).max()
        k = 100 * (pd.Series(cols["Close"]) - lowest) / (highest - lowest)
        return k.to_numpy(), k.rolling(self.smooth_d).mean().to_numpy()

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="stoch"), cls(name="stoch_slow", window=21, smooth_d=5))


LIBRARY: Mapping[str, type[Indicator]] = MappingProxyType({
    cls.__name__: cls
    for cls in (Sma, Ema, Rsi, SlopePct, SmaAbove, Atr, Bollinger, Donchian, Adx, Macd, StochRsi, Stochastic)
})
"""Every library indicator by class name; the parity test is parametrized from this mapping."""
