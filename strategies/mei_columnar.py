"""`IncrementalIndicators` for MANY rows: mei_alpha_v1's indicator state as numpy columns, exact.

Why a twin of `IncrementalIndicators` itself (and not the SDK declaration set of
`strategies.sdk.builtin.mei_indicators`): a shard's checkpoint of a mei_alpha_v1 symbol is
`IncrementalIndicators.to_state()`. Keeping the same kernels in the same layout (one ATR/ADX
kernel with two windows, the StochRSI reusing the RSI when the windows agree, vol_trend compared
with vol_sma) lets `export(r)` give back an `IncrementalIndicators` and `load(r, ind)` take one,
bit for bit, so checkpoints keep their format and a restarted shard decides exactly as before.

`MeiColumns(params)` offers the row interface `cluster.columnar_book.ColumnBook` drives
(`alloc`, `release`, `update(idx, t, o, h, l, c, v)`, `bars`, `window`, `rows`): `update` applies
one closed candle to each row of `idx` in a few numpy operations per kernel (the columnar
kernels of `strategies.sdk.columnar_kernels`, same IEEE operation order) and keeps the last
4 rows of every column. Like `IncrementalIndicators.advance`, a candle not after the row's last
one is refused (False in the returned mask); prices are not checked for finiteness. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.incremental import RECENT_ROWS_KEPT, ROW_KEYS, IncrementalIndicators
from strategies.indicator_params import (
    BB_WINDOW_DEV,
    MACD_FAST_WINDOW,
    MACD_SIGNAL_WINDOW,
    MACD_SLOW_WINDOW,
    SLOPE_WINDOW_MIN,
    IndicatorParams,
)
from strategies.kernels import _span_com
from strategies.sdk.columnar_directional import ColDirectional, _load_seed, _seed_list, atr_step
from strategies.sdk.columnar_kernels import (
    NAN,
    RING_FIELDS,
    ColEwm,
    ColKernel,
    ColMinMax,
    ColRollMean,
    ColRollVar,
    ColRsi,
    Ring,
    Rows,
    row_numbers,
    true_range,
)
from strategies.sdk.strategy import ColumnWindow

__all__ = ["MeiColumns"]

NO_T = np.iinfo(np.int64).min
FLOAT_KEYS = ROW_KEYS[1:]  # Open..ema_slow_slope_pct


def _shift_left(arr: np.ndarray) -> None:
    """Drop the oldest bar of each kept column (last axis) in place; the caller fills the last bar.

    On a C-contiguous array the last axis is contiguous, so one flat move by one element does
    every column at once (the last slot of each column takes the next column's first value,
    which the caller overwrites); a strided per-column shift costs several times more."""
    if arr.flags.c_contiguous:
        flat = arr.reshape(-1)
        flat[:-1] = flat[1:]
    else:
        arr[..., :-1] = arr[..., 1:]


def _as_block(idx: np.ndarray, t: np.ndarray, prices: list[np.ndarray],
              ) -> tuple[Rows, np.ndarray, list[np.ndarray]]:
    """The rows as a slice when they are a contiguous block in any order (candles reordered to
    match; every row's arithmetic is its own, so the order of rows changes no bit), else `idx`."""
    lo, hi = int(idx.min()), int(idx.max())
    if hi - lo + 1 != len(idx):
        return idx, t, prices
    if idx[0] == lo and (len(idx) == 1 or bool((idx[1:] > idx[:-1]).all())):
        return slice(lo, hi + 1), t, prices
    order = np.argsort(idx, kind="stable")
    if not bool((idx[order] == np.arange(lo, hi + 1)).all()):  # duplicates: not a block
        return idx, t, prices
    return slice(lo, hi + 1), t[order], [x[order] for x in prices]


class _Directional2(ColDirectional):
    """`strategies.kernels._Directional(atr_window, adx_window)` for many rows: ATR, ADX, +DI, -DI."""

    def __init__(self, atr_window: int, adx_window: int, cap: int) -> None:
        super().__init__(adx_window, cap)
        self.n_atr = atr_window
        self._ring("atr_seed", cap, atr_window)

    def push4(self, idx: np.ndarray, i: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`_Directional.push(i, h, lo, c)` per row (i = the row's bar number)."""
        a = self.a
        tr = true_range(i, h, lo, a["prev_close"][idx])
        atr = atr_step(a, idx, i, tr, self.n_atr)
        up = h - a["prev_high"][idx]
        down = a["prev_low"][idx] - lo
        with np.errstate(invalid="ignore"):
            pdm = np.where((up > down) & (up > 0), up, 0.0)
            ndm = np.where((down > up) & (down > 0), down, 0.0)
        adx, dip, din = self._adx(idx, i, tr, pdm, ndm)
        a["prev_high"][idx], a["prev_low"][idx], a["prev_close"][idx] = h, lo, c
        return atr, adx, dip, din

    def export_to(self, r: int, bars: int, impl: Any) -> None:
        a, n = self.a, self.n
        for name in ("prev_high", "prev_low", "prev_close", "atr", "tr_sum", "dm_pos", "dm_neg", "adx"):
            setattr(impl, name, float(a[name][r]))
        impl.atr_seed = _seed_list(a["atr_seed"], r, bars) if bars < self.n_atr else []
        for name in ("seed_tr", "seed_pos", "seed_neg"):
            setattr(impl, name, _seed_list(a[name], r, bars - 1) if bars <= n else [])
        impl.dx_seed = _seed_list(a["dx_seed"], r, bars - n) if bars < 2 * n else []

    def load_from(self, r: int, impl: Any) -> None:
        a = self.a
        for name in ("prev_high", "prev_low", "prev_close", "atr", "tr_sum", "dm_pos", "dm_neg", "adx"):
            a[name][r] = getattr(impl, name)
        for name in self.SEEDS:
            _load_seed(a[name], r, list(getattr(impl, name)))


class _SlopeHist(ColKernel):
    """The EMA_slow history ring of `IncrementalIndicators` (`_ema_slow_hist`)."""

    FIELDS = RING_FIELDS

    def __init__(self, width: int, cap: int) -> None:
        super().__init__(cap)
        self.width = width
        self._ring("buf", cap, width)


# (attribute of IncrementalIndicators, attribute here) for the kernels with a plain export/load
_PLAIN = (("_ema_fast", "ema_fast"), ("_ema_slow", "ema_slow"), ("_ema_macro", "ema_macro"),
          ("_macd_fast", "macd_fast"), ("_macd_slow", "macd_slow"), ("_macd_signal", "macd_signal"),
          ("_rsi", "rsi"), ("_stoch_range", "stoch_range"), ("_stoch_k", "stoch_k"),
          ("_stoch_d", "stoch_d"), ("_bb_mean", "bb_mean"), ("_bb_var", "bb_var"),
          ("_bb_width_avg", "bb_width_avg"), ("_atr_avg", "atr_avg"), ("_vol_sma", "vol_sma"),
          ("_vol_trend", "vol_trend"))


class MeiColumns:
    """See the module docstring."""

    def __init__(self, params: IndicatorParams | None = None, capacity: int = 64) -> None:
        p = params if params is not None else IndicatorParams()
        self.params = p
        self.keep = RECENT_ROWS_KEPT
        cap = self._cap = max(1, capacity)
        self.ema_fast = ColEwm(_span_com(p.ema_fast_window), p.ema_fast_window, cap)
        self.ema_slow = ColEwm(_span_com(p.ema_slow_window), p.ema_slow_window, cap)
        self.ema_macro = ColEwm(_span_com(p.ema_macro_window), p.ema_macro_window, cap)
        self.slope = _SlopeHist(max(p.slow_drift_slope_window, SLOPE_WINDOW_MIN), cap)
        self.macd_fast = ColEwm(_span_com(MACD_FAST_WINDOW), MACD_FAST_WINDOW, cap)
        self.macd_slow = ColEwm(_span_com(MACD_SLOW_WINDOW), MACD_SLOW_WINDOW, cap)
        self.macd_signal = ColEwm(_span_com(MACD_SIGNAL_WINDOW), MACD_SIGNAL_WINDOW, cap)
        self.rsi = ColRsi(p.rsi_window, cap)
        self.stoch_rsi = ColRsi(p.stoch_rsi_window, cap) if p.stoch_rsi_window != p.rsi_window else None
        self.stoch_range = ColMinMax(p.stoch_rsi_window, cap)
        self.stoch_k = ColRollMean(p.stoch_rsi_smooth1, cap)
        self.stoch_d = ColRollMean(p.stoch_rsi_smooth2, cap)
        self.bb_mean = ColRollMean(p.bb_window, cap)
        self.bb_var = ColRollVar(p.bb_window, 0, cap)
        self.bb_width_avg = ColRollMean(p.bb_width_avg_window, cap)
        self.atr_avg = ColRollMean(p.effective_avg_atr_window, cap)
        self.vol_sma = ColRollMean(p.vol_sma_window, cap)
        self.vol_trend = ColRollMean(p.vol_trend_window, cap)
        self.directional = _Directional2(p.atr_window, p.adx_window, cap)
        self.bars = np.zeros(cap, dtype=np.int64)
        self.last_t = np.full(cap, NO_T, dtype=np.int64)
        self.kept = np.full((cap, len(FLOAT_KEYS), self.keep), NAN)  # [row, column (FLOAT_KEYS), bar]
        self.kept_t = np.zeros((cap, self.keep), dtype=np.int64)
        self._free: list[int] = list(range(cap - 1, -1, -1))
        self.used = 0

    def _kernels(self) -> list[ColKernel]:
        ks = [getattr(self, mine) for _, mine in _PLAIN]
        return [*ks, self.slope, self.directional, *([self.stoch_rsi] if self.stoch_rsi is not None else [])]

    # ------------------------------------------------------------------ rows
    def alloc(self) -> int:
        """Return a fresh row number (no candle applied)."""
        if not self._free:
            self._grow(2 * self._cap)
        self.used += 1
        return self._free.pop()

    def release(self, r: int) -> None:
        """Give row r back (reset; the number may be handed out again)."""
        rows = np.array([r])
        for kernel in self._kernels():
            kernel.reset(rows)
        self.bars[r], self.last_t[r] = 0, NO_T
        self.kept[r] = NAN
        self.kept_t[r] = 0
        self._free.append(r)
        self.used -= 1

    def _grow(self, cap: int) -> None:
        for kernel in self._kernels():
            kernel.grow(cap)
        extra = cap - self._cap
        self.bars = np.concatenate([self.bars, np.zeros(extra, dtype=np.int64)])
        self.last_t = np.concatenate([self.last_t, np.full(extra, NO_T, dtype=np.int64)])
        self.kept = np.concatenate([self.kept, np.full((extra, *self.kept.shape[1:]), NAN)])
        self.kept_t = np.concatenate([self.kept_t, np.zeros((extra, self.keep), dtype=np.int64)])
        self._free.extend(range(cap - 1, self._cap - 1, -1))
        self._cap = cap

    # ------------------------------------------------------------------ the hot path
    def update(self, idx: np.ndarray, t: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray,
               c: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Apply one closed candle per row of `idx` (distinct rows); return the mask of rows applied."""
        idx = np.asarray(idx, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        prices = [np.asarray(x, dtype=float) for x in (o, h, low, c, v)]
        ok = t > self.last_t[idx]
        if not ok.all():
            idx, t, prices = idx[ok], t[ok], [x[ok] for x in prices]
        if len(idx) == 0:
            return ok
        rows, t, prices = _as_block(idx, t, prices)
        row = self._advance(rows, *prices)
        self._keep(rows, t, row)
        return ok

    def _advance(self, idx: Rows, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                 v: np.ndarray) -> dict[str, np.ndarray]:
        """`IncrementalIndicators.advance`, statement for statement, for the rows `idx`."""
        i = self.bars[idx]
        ema_slow = self.ema_slow.push(idx, c)
        earlier = self._earlier(idx, i, ema_slow)
        macd = self.macd_fast.push(idx, c) - self.macd_slow.push(idx, c)
        rsi = self.rsi.push(idx, c)
        stoch_rsi = rsi if self.stoch_rsi is None else self.stoch_rsi.push(idx, c)
        lowest, highest = self.stoch_range.push(idx, stoch_rsi)
        with np.errstate(all="ignore"):
            stoch_k = self.stoch_k.push(idx, (stoch_rsi - lowest) / (highest - lowest))
        stoch_d = self.stoch_d.push(idx, stoch_k)
        mavg = self.bb_mean.push(idx, c)
        var = self.bb_var.push(idx, c)
        with np.errstate(all="ignore"):
            std = np.where(var >= 0, np.sqrt(var), np.where(var < 0, 0.0, NAN))
            bb_high = mavg + BB_WINDOW_DEV * std
            bb_low = mavg - BB_WINDOW_DEV * std
            bb_width = (bb_high - bb_low) / c
        atr, adx, di_pos, di_neg = self.directional.push4(row_numbers(idx), i, h, lo, c)
        self.directional.a["i"][idx] = i + 1
        vol_sma = self.vol_sma.push(idx, v)
        with np.errstate(invalid="ignore"):
            vol_trend = np.where(self.vol_trend.push(idx, v) > vol_sma, 1.0, 0.0)
            slope = (ema_slow - earlier) / c
        return {
            "Open": o, "High": h, "Low": lo, "Close": c, "Volume": v,
            "EMA_fast": self.ema_fast.push(idx, c), "EMA_slow": ema_slow,
            "EMA_macro": self.ema_macro.push(idx, c), "ADX": adx, "ADX_pos": di_pos, "ADX_neg": di_neg,
            "bb_high": bb_high, "bb_low": bb_low, "bb_width": bb_width,
            "avg_bb_width": self.bb_width_avg.push(idx, bb_width), "ATR": atr,
            "avg_atr": self.atr_avg.push(idx, atr), "RSI": rsi,
            "MACD_hist": macd - self.macd_signal.push(idx, macd), "vol_sma": vol_sma, "vol_trend": vol_trend,
            "stoch_k": np.where(stoch_k == stoch_k, stoch_k, 0.0),
            "stoch_d": np.where(stoch_d == stoch_d, stoch_d, 0.0), "ema_slow_slope_pct": slope,
        }  # fmt: skip

    def _earlier(self, idx: Rows, i: np.ndarray, ema_slow: np.ndarray) -> np.ndarray:
        """Push EMA_slow into the history ring; return the value `slope_lag` rows back (NaN if none)."""
        s = self.slope
        Ring.push(s.a, idx, ema_slow, s.width)
        lag = np.maximum(SLOPE_WINDOW_MIN, np.minimum(self.params.slow_drift_slope_window, i)) - 1
        earlier = s.a["buf"][row_numbers(idx), (s.a["pos"][idx] - 1 - lag) % s.width]
        return np.where(lag <= i, earlier, NAN)

    def _keep(self, idx: Rows, t: np.ndarray, row: dict[str, np.ndarray]) -> None:
        sub = self.kept[idx]  # a view for a block (shifted in place), a copy for an index array
        _shift_left(sub)
        for k, name in enumerate(FLOAT_KEYS):
            sub[:, k, -1] = row[name]
        sub_t = self.kept_t[idx]
        _shift_left(sub_t)
        sub_t[:, -1] = t
        if not isinstance(idx, slice):
            self.kept[idx] = sub
            self.kept_t[idx] = sub_t
        self.bars[idx] += 1
        self.last_t[idx] = t

    def window(self, idx: np.ndarray) -> ColumnWindow:
        """The kept rows of `idx` (n x 4 per column, NaN-padded in front) for the array decision."""
        sub = self.kept[idx]
        return ColumnWindow({name: sub[:, i, :] for i, name in enumerate(FLOAT_KEYS)}, self.bars[idx])

    def rows(self, r: int) -> tuple[dict[str, Any], ...]:
        """Row r's kept rows as `IncrementalIndicators.rows_view()` gives them (oldest first)."""
        n = int(min(self.bars[r], self.keep))
        if n == 0:
            return ()
        first = self.keep - n
        values = self.kept[r, :, first:].T.tolist()  # one list of FLOAT_KEYS values per kept row
        stamps = self.kept_t[r, first:].tolist()
        return tuple({"timestamp": t, **dict(zip(FLOAT_KEYS, row, strict=True))}
                     for t, row in zip(stamps, values, strict=True))

    # ------------------------------------------------------------------ per-row states in and out
    def export(self, r: int) -> IncrementalIndicators:
        """Row r as an `IncrementalIndicators` (bit-exact; its `to_state()` is the checkpoint)."""
        ind = IncrementalIndicators(self.params)
        bars = int(self.bars[r])
        for theirs, mine in _PLAIN:
            getattr(self, mine).export(r, getattr(ind, theirs))
        if self.stoch_rsi is not None:
            self.stoch_rsi.export(r, ind._stoch_rsi)
        self.directional.export_to(r, bars, ind._directional)
        ind._ema_slow_hist.extend(Ring.ordered(self.slope.a, r, self.slope.width))
        ind._rows.extend(self.rows(r))
        ind._bars = bars
        ind._last_t = None if bars == 0 else int(self.last_t[r])
        return ind

    def load(self, r: int, ind: IncrementalIndicators) -> None:
        """Put `ind` into row r; raises ValueError when it does not fit (row r is left reset)."""
        try:
            if ind.params != self.params:
                raise ValueError(f"state params {ind.params} are not this set's {self.params}")
            for theirs, mine in _PLAIN:
                getattr(self, mine).load(r, getattr(ind, theirs))
            if self.stoch_rsi is not None:
                self.stoch_rsi.load(r, ind._stoch_rsi)
            self.directional.load_from(r, ind._directional)
            self.directional.a["i"][r] = ind.bars
            Ring.load(self.slope.a, r, ind._ema_slow_hist, self.slope.width)
            self._load_rows(r, ind.rows_view())
            self.bars[r] = ind.bars
            self.last_t[r] = NO_T if ind.last_t is None else ind.last_t
        except (AttributeError, TypeError, KeyError, ValueError) as e:
            self._reset_row(r)
            raise ValueError(f"indicator state does not fit the columns: {e!r}") from e

    def _load_rows(self, r: int, rows: tuple[dict[str, Any], ...]) -> None:
        self.kept[r] = NAN
        self.kept_t[r] = 0
        for j, row in enumerate(rows, start=self.keep - len(rows)):
            self.kept_t[r, j] = row["timestamp"]
            self.kept[r, :, j] = [row[name] for name in FLOAT_KEYS]

    def _reset_row(self, r: int) -> None:
        rows = np.array([r])
        for kernel in self._kernels():
            kernel.reset(rows)
        self._load_rows(r, ())
        self.bars[r], self.last_t[r] = 0, NO_T

