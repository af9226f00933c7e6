"""The columnar twin of every library indicator: one declaration advanced for many rows at once.

`columnar(spec, cap)` returns the twin of a library declaration (`strategies.sdk.library`), or
raises `NotColumnar` for a declaration without one (a caller then keeps per-row states). A twin's
`push(idx, cols)` takes, for the rows `idx`, this candle's input columns (`cols[name]`: one value
per row, price columns and earlier declarations' outputs) and returns the outputs in
`spec.outputs` order, bit-identical to the per-row kernel's `push` (and so to the batch twin);
`export(r, kernel)` / `load(r, kernel)` move row r to and from a per-row kernel object
(`spec.kernel()`), which is how checkpoints keep their format.

`tests/unit/test_sdk_library.py` runs every `LIBRARY` entry's examples through this path on the
shipped real candles and asserts bit equality, so a library indicator added without a columnar
twin fails there (or is reported as NotColumnar, never silently approximated). Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from strategies.indicator_params import SLOPE_WINDOW_MIN
from strategies.kernels import _span_com
from strategies.sdk.columnar_directional import ColAtr, ColDirectional
from strategies.sdk.columnar_kernels import (
    I64,
    NAN,
    RING_FIELDS,
    ColEwm,
    ColKernel,
    ColMinMax,
    ColRollMean,
    ColRollVar,
    ColRsi,
    Ring,
)
from strategies.sdk.library import (
    Adx,
    Atr,
    Bollinger,
    Donchian,
    Ema,
    Indicator,
    Macd,
    Rsi,
    SlopePct,
    Sma,
    SmaAbove,
    Stochastic,
    StochRsi,
)

Cols = Mapping[str, np.ndarray]
Outputs = tuple[np.ndarray, ...]


class NotColumnar(ValueError):
    """The declaration has no columnar twin (not a library indicator of a known class)."""


class ColIndicator(ColKernel):
    """Base of the twins: `push`, and `export`/`load` against the per-row kernel object."""

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        raise NotImplementedError

    def export(self, r: int, kernel: Any) -> None:
        raise NotImplementedError

    def load(self, r: int, kernel: Any) -> None:
        raise NotImplementedError


class _One(ColIndicator):
    """Sma, Ema, Rsi: one primitive over one source column (the per-row `_OneKernel`)."""

    KIDS = ("impl",)

    def __init__(self, impl: ColEwm | ColRollMean | ColRsi, source: str, cap: int) -> None:
        super().__init__(cap)
        self.impl, self.source = impl, source

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        return (self.impl.push(idx, cols[self.source]),)

    def export(self, r: int, kernel: Any) -> None:
        self.impl.export(r, kernel._impl)

    def load(self, r: int, kernel: Any) -> None:
        self.impl.load(r, kernel._impl)


class _Slope(ColIndicator):
    FIELDS = (*RING_FIELDS, ("i", 0, I64))

    def __init__(self, spec: SlopePct, cap: int) -> None:
        super().__init__(cap)
        self.window, self.source = spec.window, spec.source
        self.width = max(spec.window, SLOPE_WINDOW_MIN)
        self._ring("buf", cap, self.width)

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        a, value = self.a, cols[self.source]
        i = a["i"][idx]
        Ring.push(a, idx, value, self.width)
        lag = np.maximum(SLOPE_WINDOW_MIN, np.minimum(self.window, i)) - 1
        earlier = a["buf"][idx, (a["pos"][idx] - 1 - lag) % self.width]
        earlier = np.where(lag <= i, earlier, NAN)
        a["i"][idx] = i + 1
        with np.errstate(all="ignore"):
            return ((value - earlier) / cols["Close"],)

    def export(self, r: int, kernel: Any) -> None:
        kernel._hist = deque(Ring.ordered(self.a, r, self.width), maxlen=self.width)
        kernel._i = int(self.a["i"][r])

    def load(self, r: int, kernel: Any) -> None:
        Ring.load(self.a, r, kernel._hist, self.width)
        self.a["i"][r] = kernel._i


class _Above(ColIndicator):
    KIDS = ("fast", "slow")

    def __init__(self, spec: SmaAbove, cap: int) -> None:
        super().__init__(cap)
        self.fast, self.slow = ColRollMean(spec.fast, cap), ColRollMean(spec.slow, cap)
        self.source = spec.source

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        value = cols[self.source]
        fast, slow = self.fast.push(idx, value), self.slow.push(idx, value)
        with np.errstate(invalid="ignore"):
            return (np.where(fast > slow, 1.0, 0.0),)

    def export(self, r: int, kernel: Any) -> None:
        self.fast.export(r, kernel._fast)
        self.slow.export(r, kernel._slow)

    def load(self, r: int, kernel: Any) -> None:
        self.fast.load(r, kernel._fast)
        self.slow.load(r, kernel._slow)


class _Atr(ColIndicator):
    KIDS = ("impl",)

    def __init__(self, spec: Atr, cap: int) -> None:
        super().__init__(cap)
        self.impl = ColAtr(spec.window, cap)

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        return (self.impl.push(idx, cols["High"], cols["Low"], cols["Close"]),)

    def export(self, r: int, kernel: Any) -> None:
        self.impl.export(r, kernel)

    def load(self, r: int, kernel: Any) -> None:
        self.impl.load(r, kernel)


class _Adx(_Atr):
    def __init__(self, spec: Adx, cap: int) -> None:
        ColIndicator.__init__(self, cap)
        self.impl = ColDirectional(spec.window, cap)  # type: ignore[assignment]

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        return self.impl.push(idx, cols["High"], cols["Low"], cols["Close"])


class _Bollinger(ColIndicator):
    KIDS = ("mean", "var")

    def __init__(self, spec: Bollinger, cap: int) -> None:
        super().__init__(cap)
        self.mean, self.var = ColRollMean(spec.window, cap), ColRollVar(spec.window, 0, cap)
        self.dev, self.source = spec.dev, spec.source

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        value = cols[self.source]
        mavg = self.mean.push(idx, value)
        var = self.var.push(idx, value)
        with np.errstate(all="ignore"):
            std = np.where(var >= 0, np.sqrt(var), np.where(var < 0, 0.0, NAN))
            high = mavg + self.dev * std
            low = mavg - self.dev * std
            return high, mavg, low, (high - low) / value

    def export(self, r: int, kernel: Any) -> None:
        self.mean.export(r, kernel._mean)
        self.var.export(r, kernel._var)

    def load(self, r: int, kernel: Any) -> None:
        self.mean.load(r, kernel._mean)
        self.var.load(r, kernel._var)


class _Donchian(ColIndicator):
    KIDS = ("high", "low")

    def __init__(self, spec: Donchian, cap: int) -> None:
        super().__init__(cap)
        self.high, self.low = ColMinMax(spec.window, cap), ColMinMax(spec.window, cap)

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        return self.high.push(idx, cols["High"])[1], self.low.push(idx, cols["Low"])[0]

    def export(self, r: int, kernel: Any) -> None:
        self.high.export(r, kernel._high)
        self.low.export(r, kernel._low)

    def load(self, r: int, kernel: Any) -> None:
        self.high.load(r, kernel._high)
        self.low.load(r, kernel._low)


class _Macd(ColIndicator):
    KIDS = ("fast", "slow", "signal")

    def __init__(self, spec: Macd, cap: int) -> None:
        super().__init__(cap)
        self.fast = ColEwm(_span_com(spec.fast), spec.fast, cap)
        self.slow = ColEwm(_span_com(spec.slow), spec.slow, cap)
        self.signal = ColEwm(_span_com(spec.signal), spec.signal, cap)
        self.source = spec.source

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        value = cols[self.source]
        macd = self.fast.push(idx, value) - self.slow.push(idx, value)
        signal = self.signal.push(idx, macd)
        return macd, signal, macd - signal

    def export(self, r: int, kernel: Any) -> None:
        for name in self.KIDS:
            getattr(self, name).export(r, getattr(kernel, "_" + name))

    def load(self, r: int, kernel: Any) -> None:
        for name in self.KIDS:
            getattr(self, name).load(r, getattr(kernel, "_" + name))


class _StochRsi(ColIndicator):
    KIDS = ("rsi", "range", "k", "d")

    def __init__(self, spec: StochRsi, cap: int) -> None:
        super().__init__(cap)
        self.rsi, self.range = ColRsi(spec.window, cap), ColMinMax(spec.window, cap)
        self.k, self.d = ColRollMean(spec.smooth_k, cap), ColRollMean(spec.smooth_d, cap)
        self.source = spec.source

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        rsi = self.rsi.push(idx, cols[self.source])
        lowest, highest = self.range.push(idx, rsi)
        with np.errstate(all="ignore"):
            k = self.k.push(idx, (rsi - lowest) / (highest - lowest))
        d = self.d.push(idx, k)
        return np.where(k == k, k, 0.0), np.where(d == d, d, 0.0)

    export = _Macd.export
    load = _Macd.load


class _Stochastic(ColIndicator):
    KIDS = ("high", "low", "d")

    def __init__(self, spec: Stochastic, cap: int) -> None:
        super().__init__(cap)
        self.high, self.low = ColMinMax(spec.window, cap), ColMinMax(spec.window, cap)
        self.d = ColRollMean(spec.smooth_d, cap)

    def push(self, idx: np.ndarray, cols: Cols) -> Outputs:
        highest = self.high.push(idx, cols["High"])[1]
        lowest = self.low.push(idx, cols["Low"])[0]
        with np.errstate(all="ignore"):
            k = (100 * (cols["Close"] - lowest)) / (highest - lowest)
        return k, self.d.push(idx, k)

    export = _Macd.export
    load = _Macd.load


_TWINS: Mapping[type[Indicator], Callable[[Any, int], ColIndicator]] = {
    Sma: lambda s, cap: _One(ColRollMean(s.window, cap), s.source, cap),
    Ema: lambda s, cap: _One(ColEwm(_span_com(s.window), s.window, cap), s.source, cap),
    Rsi: lambda s, cap: _One(ColRsi(s.window, cap), s.source, cap),
    SlopePct: _Slope, SmaAbove: _Above, Atr: _Atr, Adx: _Adx, Bollinger: _Bollinger,
    Donchian: _Donchian, Macd: _Macd, StochRsi: _StochRsi, Stochastic: _Stochastic,
}


def has_columnar(spec: Indicator) -> bool:
    """True when `spec` is a library declaration with a columnar twin (exact class, not a subclass)."""
    return type(spec) in _TWINS


def columnar(spec: Indicator, cap: int) -> ColIndicator:
    """Return the columnar twin of `spec` with room for `cap` rows; raises NotColumnar."""
    make = _TWINS.get(type(spec))
    if make is None:
        raise NotColumnar(f"{spec!r} has no columnar twin (only the library's own classes do)")
    return make(spec, cap)
