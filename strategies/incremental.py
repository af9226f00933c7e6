"""Incremental indicators: the batch formulas of `strategies.indicators`, one closed candle at a time.

Why this mirrors pandas' kernels instead of simply recomputing windows: pandas' rolling mean is a
Kahan-compensated running sum (with a same-value shortcut), rolling variance is Welford with Kahan
compensation (with a recompute when cancellation is detected), and ewm normalises each step. The
result of a window therefore depends, in its last bits, on the whole history before it. Copying
those update rules statement by statement makes every value here bit-identical to the batch path
(and to `ta` 0.11, which calls the same pandas kernels), not merely close: comparisons such as
`vol5 > vol_sma` or `ADX > ADX_prev` then cannot flip between the two paths on ties.

Each update is O(1) amortised: state is a handful of floats plus ring buffers of the window sizes
(the rolling-variance recompute walks the Bollinger window, 20 values, only when pandas would).
State round-trips through plain JSON types (`to_state`/`from_state`) bit for bit, compactly. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections import deque
from typing import Any

from strategies.indicator_params import (
    BB_WINDOW_DEV,
    INDICATOR_COLUMNS,
    MACD_FAST_WINDOW,
    MACD_SIGNAL_WINDOW,
    MACD_SLOW_WINDOW,
    SLOPE_WINDOW_MIN,
    IndicatorParams,
    slope_lag,
)
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

__all__ = ["INDICATOR_COLUMNS", "RECENT_ROWS_KEPT", "STATE_VERSION", "IncrementalIndicators"]

NAN = math.nan
RECENT_ROWS_KEPT = 4
STATE_VERSION = 2
ROW_KEYS: tuple[str, ...] = ("timestamp", "Open", "High", "Low", "Close", "Volume", *INDICATOR_COLUMNS)


_PARAMS_DICTS: dict[IndicatorParams, dict[str, int]] = {}


def _params_dict(params: IndicatorParams) -> dict[str, int]:
    """`params.to_dict()`, memoised per (frozen, hashable) params: asdict() was ~40% of to_state."""
    cached = _PARAMS_DICTS.get(params)
    if cached is None:
        if len(_PARAMS_DICTS) >= 1024:  # bounded: a handful of distinct params exist in practice
            _PARAMS_DICTS.clear()
        cached = _PARAMS_DICTS[params] = params.to_dict()
    return dict(cached)


_KERNELS: tuple[str, ...] = (
    "_ema_fast", "_ema_slow", "_ema_macro", "_macd_fast", "_macd_slow", "_macd_signal", "_rsi",
    "_stoch_rsi", "_stoch_range", "_stoch_k", "_stoch_d", "_bb_mean", "_bb_var", "_bb_width_avg",
    "_atr_avg", "_vol_sma", "_vol_trend", "_directional",
)


class IncrementalIndicators:
    """Per-symbol indicator state advanced one closed candle at a time.

    `update()` returns the same row `compute_indicators` gives for that bar over the same history
    (bit-identical floats; NaN where undefined). Rows hold plain Python floats, except `timestamp`
    which is the candle open time as int epoch ms. `vol_trend` is 1.0/0.0.
    """

    __slots__ = ("_bars", "_ema_slow_hist", "_last_t", "_params", "_rows", *_KERNELS)

    def __init__(self, params: IndicatorParams | None = None) -> None:
        p = params if params is not None else IndicatorParams()
        self._params = p
        self._bars = 0
        self._last_t: int | None = None
        self._rows: deque[dict[str, Any]] = deque(maxlen=RECENT_ROWS_KEPT)
        self._ema_fast = _Ewm(_span_com(p.ema_fast_window), p.ema_fast_window)
        self._ema_slow = _Ewm(_span_com(p.ema_slow_window), p.ema_slow_window)
        self._ema_macro = _Ewm(_span_com(p.ema_macro_window), p.ema_macro_window)
        self._ema_slow_hist: deque[float] = deque(maxlen=max(p.slow_drift_slope_window, SLOPE_WINDOW_MIN))
        self._macd_fast = _Ewm(_span_com(MACD_FAST_WINDOW), MACD_FAST_WINDOW)
        self._macd_slow = _Ewm(_span_com(MACD_SLOW_WINDOW), MACD_SLOW_WINDOW)
        self._macd_signal = _Ewm(_span_com(MACD_SIGNAL_WINDOW), MACD_SIGNAL_WINDOW)
        self._rsi = _Rsi(p.rsi_window)
        self._stoch_rsi = _Rsi(p.stoch_rsi_window) if p.stoch_rsi_window != p.rsi_window else None
        self._stoch_range = _RollMinMax(p.stoch_rsi_window)
        self._stoch_k = _RollMean(p.stoch_rsi_smooth1)
        self._stoch_d = _RollMean(p.stoch_rsi_smooth2)
        self._bb_mean = _RollMean(p.bb_window)
        self._bb_var = _RollVar(p.bb_window, ddof=0)
        self._bb_width_avg = _RollMean(p.bb_width_avg_window)
        self._atr_avg = _RollMean(p.effective_avg_atr_window)
        self._vol_sma = _RollMean(p.vol_sma_window)
        self._vol_trend = _RollMean(p.vol_trend_window)
        self._directional = _Directional(p.atr_window, p.adx_window)

    @property
    def params(self) -> IndicatorParams:
        return self._params

    @property
    def bars(self) -> int:
        """Number of candles applied since the start of the history."""
        return self._bars

    @property
    def last_t(self) -> int | None:
        """Open time (epoch ms) of the last applied candle, None before the first."""
        return self._last_t

    def recent_rows(self, k: int = RECENT_ROWS_KEPT) -> list[dict[str, Any]]:
        """Return copies of the last k rows (oldest -> newest); k <= 4. Raises ValueError otherwise."""
        if not 0 <= k <= RECENT_ROWS_KEPT:
            raise ValueError(f"recent_rows keeps at most {RECENT_ROWS_KEPT} rows, asked for {k}")
        rows = list(self._rows)
        return [dict(r) for r in rows[len(rows) - min(k, len(rows)):]]

    def rows_view(self) -> tuple[dict[str, Any], ...]:
        """Return the kept rows (oldest -> newest, <= 4) WITHOUT copying them: read-only use.

        For hot loops (the shard decides for thousands of symbols per tick) where the copies
        `recent_rows` makes would cost more than the decision; mutating them corrupts the state.
        """
        return tuple(self._rows)

    def update(self, t_open_ms: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, Any]:  # noqa: E741
        """Apply one closed candle and return its row (keys: ROW_KEYS).

        Prices are floats, volume in coins, t_open_ms the candle open time in epoch ms. Raises
        ValueError if t_open_ms is not after the last applied candle's (a candle applied twice or
        out of order would silently corrupt every window).
        """
        return dict(self.advance(t_open_ms, o, h, l, c, v))

    def advance(self, t_open_ms: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, Any]:  # noqa: E741
        """`update` without the defensive copy: returns the kept row itself (read-only use)."""
        if self._last_t is not None and t_open_ms <= self._last_t:
            raise ValueError(f"candle t={t_open_ms} is not after the last applied candle t={self._last_t}")
        i = self._bars
        o, h, l, c, v = float(o), float(h), float(l), float(c), float(v)  # noqa: E741
        ema_slow = self._ema_slow.push(c)
        hist = self._ema_slow_hist
        hist.append(ema_slow)
        lag = slope_lag(self._params.slow_drift_slope_window, i)
        earlier = hist[-1 - lag] if lag <= i else NAN
        macd = self._macd_fast.push(c) - self._macd_slow.push(c)
        rsi = self._rsi.push(c)
        stoch_rsi = rsi if self._stoch_rsi is None else self._stoch_rsi.push(c)
        lowest, highest = self._stoch_range.push(stoch_rsi)
        stoch_k = self._stoch_k.push(_div(stoch_rsi - lowest, highest - lowest))
        stoch_d = self._stoch_d.push(stoch_k)
        mavg = self._bb_mean.push(c)
        var = self._bb_var.push(c)
        std = math.sqrt(var) if var >= 0 else (0.0 if var < 0 else NAN)
        bb_high = mavg + BB_WINDOW_DEV * std
        bb_low = mavg - BB_WINDOW_DEV * std
        bb_width = _div(bb_high - bb_low, c)
        atr, adx, di_pos, di_neg = self._directional.push(i, h, l, c)
        vol_sma = self._vol_sma.push(v)
        row: dict[str, Any] = {
            "timestamp": int(t_open_ms), "Open": o, "High": h, "Low": l, "Close": c, "Volume": v,
            "EMA_fast": self._ema_fast.push(c), "EMA_slow": ema_slow, "EMA_macro": self._ema_macro.push(c),
            "ADX": adx, "ADX_pos": di_pos, "ADX_neg": di_neg,
            "bb_high": bb_high, "bb_low": bb_low, "bb_width": bb_width,
            "avg_bb_width": self._bb_width_avg.push(bb_width),
            "ATR": atr, "avg_atr": self._atr_avg.push(atr), "RSI": rsi,
            "MACD_hist": macd - self._macd_signal.push(macd),
            "vol_sma": vol_sma, "vol_trend": 1.0 if self._vol_trend.push(v) > vol_sma else 0.0,
            "stoch_k": stoch_k if stoch_k == stoch_k else 0.0,
            "stoch_d": stoch_d if stoch_d == stoch_d else 0.0,
            "ema_slow_slope_pct": _div(ema_slow - earlier, c),
        }
        self._rows.append(row)
        self._bars = i + 1
        self._last_t = int(t_open_ms)
        return row

    def to_state(self) -> dict[str, Any]:
        """Return the full state as plain JSON types; restoring it is bit-exact.

        Floats travel as one base64 string of little-endian IEEE doubles ("f"), so NaN, -0.0 and
        every last bit survive any JSON library, and encoding costs microseconds, not the
        hundreds a float-by-float JSON list costs. "i" holds counts and flags in the same order.
        """
        out = _Packer()
        out.seq(self._ema_slow_hist)
        out.ints.append(len(self._rows))
        for row in self._rows:
            out.ints.append(row["timestamp"])
            out.floats.extend([row[k] for k in ROW_KEYS[1:]])
        for name in _KERNELS:
            kernel = getattr(self, name)
            if kernel is not None:
                kernel.dump(out)
        packed = struct.pack(f"<{len(out.floats)}d", *out.floats)
        return {
            "version": STATE_VERSION,
            "params": _params_dict(self._params),
            "bars": self._bars,
            "last_t": self._last_t,
            "i": out.ints,
            "f": base64.b64encode(packed).decode("ascii"),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], params: IndicatorParams | None = None
    ) -> IncrementalIndicators:
        """Rebuild from `to_state()` output.

        Raises ValueError on a version or params mismatch and on a truncated or corrupt state
        (missing keys and wrong types included), so a caller can fall back to a full rebuild.
        """
        p = params if params is not None else IndicatorParams()
        try:
            version = state.get("version")
            if version != STATE_VERSION:
                raise ValueError(f"indicator state version {version!r}, expected {STATE_VERSION}")
            if IndicatorParams.from_dict(state["params"]) != p:
                raise ValueError(f"indicator state was built with {state['params']}, not {p.to_dict()}")
            raw = base64.b64decode(state["f"], validate=True)
            obj = cls(p)
            obj._load(state, _Unpacker(list(state["i"]), struct.unpack(f"<{len(raw) // 8}d", raw)))
        except (KeyError, TypeError, AttributeError, binascii.Error, struct.error) as e:
            raise ValueError(f"indicator state is corrupt: {e!r}") from e
        return obj

    def _load(self, state: dict[str, Any], src: _Unpacker) -> None:
        self._bars = int(state["bars"])
        self._last_t = None if state["last_t"] is None else int(state["last_t"])
        self._ema_slow_hist.extend(src.next_seq())
        width = len(ROW_KEYS) - 1
        for _ in range(src.next_int()):
            row: dict[str, Any] = {"timestamp": src.next_int()}
            row.update(zip(ROW_KEYS[1:], src.next_floats(width), strict=True))
            self._rows.append(row)
        for name in _KERNELS:
            kernel = getattr(self, name)
            if kernel is not None:
                kernel.load(src)
        src.assert_done()
