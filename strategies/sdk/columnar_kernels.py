"""Columnar twins of `strategies.kernels`: one kernel's state for MANY rows as numpy arrays.

A shard holds thousands of (symbol, variant) rows. The per-row kernels of `strategies.kernels`
cost a few Python calls per value; these twins keep every state field as an array indexed by
row and advance all requested rows of one candle step in a handful of numpy operations.

Exactness: every statement of the per-row kernel is kept, in the same IEEE operation order
(numpy ufuncs round like Python floats and never fuse a multiply-add); branches become masks
(`np.where`), so a row sees bit for bit what the per-row kernel computes. The rare events that
need a per-row loop stay per row: `math.fsum` seeds of the ATR/ADX warm-up (once per row life)
and the rolling variance's recompute after cancellation (as pandas does).

Each kernel can `export(r, obj)` row r into a per-row kernel object of `strategies.kernels`
(what checkpoints are made of) and `load(r, obj)` one back, so checkpoints keep their format and
a columnar row and a per-row state are interchangeable. `take(idx)` copies some rows into a new
kernel (the open-mode peek). Pure: no I/O.

The rows of a push are an index array or, for a contiguous block, a `slice` (`Rows`): a slice
reads and writes the state in place instead of a gather and a scatter per field (most of the
cost at a few hundred rows). A block's gathers are views, so a push reads each gathered field
before it writes that field back (every push below keeps that order).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from typing import Any, ClassVar

import numpy as np

from strategies.kernels import INV_COND_TOL, _alpha_com

NAN = math.nan
I64 = np.int64

Rows = np.ndarray | slice  # the rows a push touches: an index array, or a contiguous block as a slice


def row_numbers(idx: Rows) -> np.ndarray:
    """`idx` as an index array (a 2-D gather `buf[rows, col]` needs one even for a block)."""
    return np.arange(idx.start, idx.stop) if isinstance(idx, slice) else idx


class ColKernel:
    """Base: named state arrays (first axis = row), child kernels, grow/take/reset by row."""

    FIELDS: ClassVar[tuple[tuple[str, Any, Any], ...]] = ()  # (name, fill, dtype)
    KIDS: ClassVar[tuple[str, ...]] = ()  # attributes holding child kernels

    def __init__(self, cap: int) -> None:
        self.a: dict[str, np.ndarray] = {}
        for name, fill, dtype in self.FIELDS:
            self.a[name] = np.full(cap, fill, dtype=dtype)

    def _ring(self, name: str, cap: int, width: int, fill: float = NAN) -> None:
        self.a[name] = np.full((cap, width), fill)

    def _fill(self, name: str) -> Any:
        return next((fill for field, fill, _ in self.FIELDS if field == name), NAN)

    def grow(self, cap: int) -> None:
        """Extend every array to `cap` rows (new rows fresh)."""
        for name, arr in self.a.items():
            extra = np.full((cap - arr.shape[0], *arr.shape[1:]), self._fill(name), dtype=arr.dtype)
            self.a[name] = np.concatenate([arr, extra])
        for kid in self.KIDS:
            getattr(self, kid).grow(cap)

    def reset(self, rows: np.ndarray) -> None:
        """Make `rows` fresh (no candle applied)."""
        for name, arr in self.a.items():
            arr[rows] = self._fill(name)
        for kid in self.KIDS:
            getattr(self, kid).reset(rows)

    def take(self, idx: np.ndarray) -> ColKernel:
        """A new kernel holding copies of rows `idx` (row j of the copy = row idx[j] here)."""
        twin = copy.copy(self)
        twin.a = {name: arr[idx].copy() for name, arr in self.a.items()}
        for kid in self.KIDS:
            setattr(twin, kid, getattr(self, kid).take(idx))
        return twin


class Ring:
    """Fixed-width ring buffers per row (a `deque` per row in the per-row kernels)."""

    @staticmethod
    def push(a: dict[str, np.ndarray], idx: np.ndarray, val: np.ndarray, width: int) -> np.ndarray:
        """Append `val`; return the evicted oldest value (NaN where the ring was not full)."""
        buf, pos, cnt = a["buf"], a["pos"], a["cnt"]
        p, n = pos[idx], cnt[idx]
        rows = row_numbers(idx)
        full = n == width
        if full.all():  # the steady state: every ring evicts, no count moves
            old = buf[rows, p]
            buf[rows, p] = val
            pos[idx] = (p + 1) % width
            return old
        old = np.where(full, buf[rows, p], NAN)
        buf[rows, p] = val
        pos[idx] = (p + 1) % width
        cnt[idx] = np.minimum(n + 1, width)
        return old

    @staticmethod
    def ordered(a: dict[str, np.ndarray], r: int, width: int) -> list[float]:
        """Row r's values, oldest first (what the per-row deque holds)."""
        n, p = int(a["cnt"][r]), int(a["pos"][r])
        start = (p - n) % width
        values = a["buf"][r].tolist()  # rotate as a list: a fancy index costs more than the row
        return (values[start:] + values[:start])[:n]

    @staticmethod
    def load(a: dict[str, np.ndarray], r: int, values: Any, width: int) -> None:
        vals = list(values)
        if len(vals) > width:
            raise ValueError(f"ring of width {width} cannot hold {len(vals)} values")
        a["buf"][r, :] = NAN
        a["buf"][r, : len(vals)] = vals
        a["cnt"][r] = len(vals)
        a["pos"][r] = len(vals) % width


RING_FIELDS = (("pos", 0, I64), ("cnt", 0, I64))


class ColEwm(ColKernel):
    """`_Ewm` for many rows (the general update; its steady-state shortcut is the same arithmetic)."""

    FIELDS = (("weighted", NAN, float), ("nobs", 0, I64), ("old_wt", 1.0, float), ("started", False, bool))

    def __init__(self, com: float, minp: int, cap: int) -> None:
        super().__init__(cap)
        self.alpha = 1.0 / (1.0 + com)
        self.ofac = 1.0 - self.alpha
        self.com_is_one = com == 1
        self.minp = minp

    def push(self, idx: Rows, cur: np.ndarray) -> np.ndarray:
        a = self.a
        w, nobs, old, st = a["weighted"][idx], a["nobs"][idx], a["old_wt"][idx], a["started"][idx]
        observed = cur == cur
        has_w = w == w
        if st.all() and has_w.all() and observed.all():
            return self._steady(idx, cur, w, nobs, old)
        ow = old * self.ofac
        new_wt = 1.0 - ow if self.com_is_one else self.alpha
        with np.errstate(all="ignore"):
            mixed = (ow * w + new_wt * cur) / (ow + new_wt)
        mix = has_w & observed & (w != cur)
        w_out = np.where(st, np.where(has_w, np.where(mix, mixed, w), np.where(observed, cur, w)), cur)
        a["weighted"][idx] = w_out
        a["old_wt"][idx] = np.where(st & has_w, np.where(observed, 1.0, ow), old)
        nobs_out = np.where(st, nobs + observed, observed.astype(I64))
        a["nobs"][idx] = nobs_out
        a["started"][idx] = True
        return np.where(nobs_out >= self.minp, w_out, NAN)

    def _steady(self, idx: Rows, cur: np.ndarray, w: np.ndarray, nobs: np.ndarray, old: np.ndarray,
                ) -> np.ndarray:
        """`push` where every row has started, holds a weight and observes a value: the same
        arithmetic with the masks that are all true left out (bit for bit the general branch)."""
        a = self.a
        ow = old * self.ofac
        new_wt = 1.0 - ow if self.com_is_one else self.alpha
        with np.errstate(all="ignore"):
            mixed = (ow * w + new_wt * cur) / (ow + new_wt)
        w_out = np.where(w != cur, mixed, w)
        a["weighted"][idx] = w_out
        a["old_wt"][idx] = 1.0
        nobs_out = nobs + 1
        a["nobs"][idx] = nobs_out
        return np.where(nobs_out >= self.minp, w_out, NAN)

    def export(self, r: int, obj: Any) -> None:
        a = self.a
        obj.weighted, obj.nobs = float(a["weighted"][r]), int(a["nobs"][r])
        obj.old_wt, obj.started = float(a["old_wt"][r]), bool(a["started"][r])

    def load(self, r: int, obj: Any) -> None:
        a = self.a
        a["weighted"][r], a["nobs"][r], a["old_wt"][r], a["started"][r] = (
            obj.weighted, obj.nobs, obj.old_wt, obj.started)


def _neg(x: np.ndarray) -> np.ndarray:
    """x < 0 or x is -0.0 (NaN excluded): the kernels' negative-count test."""
    return np.signbit(x) & (x == x)


class ColRollMean(ColKernel):
    """`_RollMean` (pandas roll_mean: Kahan sums, same-value shortcut, sign clamps) for many rows."""

    FIELDS = (*RING_FIELDS, ("nobs", 0, I64), ("neg_ct", 0, I64), ("same", 0, I64), ("sum_x", 0.0, float),
              ("comp_add", 0.0, float), ("comp_rem", 0.0, float), ("prev", NAN, float))

    def __init__(self, window: int, cap: int) -> None:
        super().__init__(cap)
        self.window = window
        self.width = max(window, 1)
        self._ring("buf", cap, self.width)

    def push(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        a, window = self.a, self.window
        if window <= 1:  # pandas re-seeds every non-overlapping window: start from a fresh state
            k = len(val)
            sum_x = np.zeros(k)
            nobs, neg, same = (np.zeros(k, dtype=I64) for _ in range(3))
            comp_add, comp_rem, prev = np.zeros(k), np.zeros(k), np.full(k, NAN)
            a["cnt"][idx] = 0
            a["pos"][idx] = 0
            Ring.push(a, idx, val, self.width)
        else:
            sum_x, nobs, neg, same = a["sum_x"][idx], a["nobs"][idx], a["neg_ct"][idx], a["same"][idx]
            comp_add, comp_rem, prev = a["comp_add"][idx], a["comp_rem"][idx], a["prev"][idx]
            old = Ring.push(a, idx, val, self.width)
            rem = old == old
            if rem.all() and (val == val).all():
                return self._steady(idx, val, old, (sum_x, nobs, neg, same, comp_add, comp_rem, prev))
            y = -old - comp_rem
            t = sum_x + y
            comp_rem = np.where(rem, t - sum_x - y, comp_rem)
            sum_x = np.where(rem, t, sum_x)
            nobs = nobs - rem
            neg = neg - _neg(old)
        obs = val == val
        y = val - comp_add
        t = sum_x + y
        comp_add = np.where(obs, t - sum_x - y, comp_add)
        sum_x = np.where(obs, t, sum_x)
        nobs = nobs + obs
        neg = neg + _neg(val)
        same = np.where(obs, np.where(val == prev, same + 1, 1), same)
        prev = np.where(obs, val, prev)
        a["sum_x"][idx], a["nobs"][idx], a["neg_ct"][idx], a["same"][idx] = sum_x, nobs, neg, same
        a["comp_add"][idx], a["comp_rem"][idx], a["prev"][idx] = comp_add, comp_rem, prev
        return self._mean(sum_x, nobs, neg, same, prev)

    def _steady(self, idx: Rows, val: np.ndarray, old: np.ndarray, state: tuple[np.ndarray, ...],
                ) -> np.ndarray:
        """`push` (window > 1) where every row evicts a value and observes one: the same Kahan
        steps with the all-true masks left out; the count is unchanged (one out, one in)."""
        sum_x, nobs, neg, same, comp_add, comp_rem, prev = state
        y = -old - comp_rem
        t = sum_x + y
        comp_rem = t - sum_x - y
        sum_x = t
        neg = neg - np.signbit(old) + np.signbit(val)
        y = val - comp_add
        t = sum_x + y
        comp_add = t - sum_x - y
        sum_x = t
        same = np.where(val == prev, same + 1, 1)
        a = self.a
        a["sum_x"][idx], a["neg_ct"][idx], a["same"][idx] = sum_x, neg, same
        a["comp_add"][idx], a["comp_rem"][idx], a["prev"][idx] = comp_add, comp_rem, val
        return self._mean(sum_x, nobs, neg, same, val)

    def _mean(self, sum_x: np.ndarray, nobs: np.ndarray, neg: np.ndarray, same: np.ndarray,
              prev: np.ndarray) -> np.ndarray:
        """pandas' mean from the sums: the same-value shortcut and the sign clamps."""
        with np.errstate(all="ignore"):
            result = sum_x / nobs
        clamp = ((result < 0) & (neg == 0)) | ((result > 0) & (neg == nobs))
        out = np.where(same >= nobs, prev, np.where(clamp, 0.0, result))
        return np.where((nobs < self.window) | (nobs <= 0), NAN, out)

    def export(self, r: int, obj: Any) -> None:
        a = self.a
        obj.buf = deque(Ring.ordered(a, r, self.width))
        obj.nobs, obj.neg_ct, obj.same = int(a["nobs"][r]), int(a["neg_ct"][r]), int(a["same"][r])
        obj.sum_x, obj.comp_add = float(a["sum_x"][r]), float(a["comp_add"][r])
        obj.comp_rem, obj.prev = float(a["comp_rem"][r]), float(a["prev"][r])

    def load(self, r: int, obj: Any) -> None:
        a = self.a
        Ring.load(a, r, obj.buf, self.width)
        a["nobs"][r], a["neg_ct"][r], a["same"][r] = obj.nobs, obj.neg_ct, obj.same
        a["sum_x"][r], a["comp_add"][r], a["comp_rem"][r], a["prev"][r] = (
            obj.sum_x, obj.comp_add, obj.comp_rem, obj.prev)


_VAR = ("nobs", "mean_x", "ssqdm", "comp_add", "comp_rem", "unstable")


def _var_add(s: dict[str, np.ndarray], val: np.ndarray, mask: np.ndarray) -> None:
    """`_RollVar._add` on the rows of `s` where mask is set (s holds gathered arrays, updated in place)."""
    ok = mask & (val == val)
    nobs, mean, ssqdm, comp = s["nobs"], s["mean_x"], s["ssqdm"], s["comp_add"]
    n1 = nobs + 1.0
    prev_mean = mean - comp
    y = val - comp
    t = y - mean
    comp2 = t + mean - y
    mean2 = mean + t / n1
    ss2 = ssqdm + (val - prev_mean) * (val - mean2)
    with np.errstate(invalid="ignore"):
        unstable = s["unstable"] | (ssqdm * INV_COND_TOL > ss2)
    s["nobs"], s["mean_x"] = np.where(ok, n1, nobs), np.where(ok, mean2, mean)
    s["ssqdm"] = np.where(ok, ss2, ssqdm)
    s["comp_add"], s["unstable"] = np.where(ok, comp2, comp), np.where(ok, unstable, s["unstable"])


def _var_remove(s: dict[str, np.ndarray], val: np.ndarray, mask: np.ndarray) -> None:
    """`_RollVar._remove` on the rows where mask is set (the last value out resets to zero)."""
    ok = mask & (val == val)
    nobs, mean, ssqdm, comp = s["nobs"], s["mean_x"], s["ssqdm"], s["comp_rem"]
    n1 = nobs - 1.0
    nz = n1 != 0
    prev_mean = mean - comp
    y = val - comp
    t = y - mean
    comp2 = t + mean - y
    with np.errstate(all="ignore"):
        mean2 = mean - t / n1
        ss2 = ssqdm - (val - prev_mean) * (val - mean2)
        unstable = s["unstable"] | (ssqdm * INV_COND_TOL > ss2)
    s["nobs"] = np.where(ok, n1, nobs)
    s["mean_x"] = np.where(ok, np.where(nz, mean2, 0.0), mean)
    s["ssqdm"] = np.where(ok, np.where(nz, ss2, 0.0), ssqdm)
    s["comp_rem"] = np.where(ok & nz, comp2, comp)
    s["unstable"] = np.where(ok, nz & unstable, s["unstable"])


class ColRollVar(ColKernel):
    """`_RollVar` (pandas roll_var: Welford + Kahan, recompute on cancellation) for many rows."""

    FIELDS = (*RING_FIELDS, ("nobs", 0.0, float), ("mean_x", 0.0, float), ("ssqdm", 0.0, float),
              ("comp_add", 0.0, float), ("comp_rem", 0.0, float), ("unstable", False, bool),
              ("started", False, bool))

    def __init__(self, window: int, ddof: int, cap: int) -> None:
        super().__init__(cap)
        self.window, self.ddof, self.width = window, ddof, max(window, 1)
        self._ring("buf", cap, self.width)

    def push(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        a, width = self.a, self.width
        recompute = ~a["started"][idx] if self.window > 1 else np.ones(len(val), dtype=bool)
        a["started"][idx] = True
        if self.window <= 1:
            a["cnt"][idx] = 0
            a["pos"][idx] = 0
        s = {name: a[name][idx] for name in _VAR}
        steady = ~recompute
        old = Ring.push(a, idx, val, width)
        _var_remove(s, old, steady)  # old is NaN (a no-op) where the ring was not full
        _var_add(s, val, steady)
        redo = recompute | s["unstable"]
        if redo.any():
            self._recompute(idx, s, redo)
        for name in _VAR:
            a[name][idx] = s[name]
        nobs = s["nobs"]
        with np.errstate(all="ignore"):
            var = s["ssqdm"] / (nobs - self.ddof)
        return np.where((nobs >= width) & (nobs > self.ddof), var, NAN)

    def _recompute(self, idx: np.ndarray, s: dict[str, np.ndarray], redo: np.ndarray) -> None:
        """Reset the `redo` rows and add their whole buffer again, oldest first (as the kernel does)."""
        for name in ("nobs", "mean_x", "ssqdm", "comp_add", "comp_rem"):
            s[name] = np.where(redo, 0.0, s[name])
        a, width = self.a, self.width
        cnt, pos = a["cnt"][idx], a["pos"][idx]
        start = (pos - cnt) % width
        rows = row_numbers(idx)
        for j in range(int(cnt[redo].max())):
            val = a["buf"][rows, (start + j) % width]
            _var_add(s, val, redo & (j < cnt))
        s["unstable"] = np.where(redo, False, s["unstable"])

    def export(self, r: int, obj: Any) -> None:
        a = self.a
        obj.buf = deque(Ring.ordered(a, r, self.width))
        obj.nobs, obj.mean_x, obj.ssqdm = float(a["nobs"][r]), float(a["mean_x"][r]), float(a["ssqdm"][r])
        obj.comp_add, obj.comp_rem = float(a["comp_add"][r]), float(a["comp_rem"][r])
        obj.unstable, obj.started = bool(a["unstable"][r]), bool(a["started"][r])

    def load(self, r: int, obj: Any) -> None:
        a = self.a
        Ring.load(a, r, obj.buf, self.width)
        a["nobs"][r], a["mean_x"][r], a["ssqdm"][r] = obj.nobs, obj.mean_x, obj.ssqdm
        a["comp_add"][r], a["comp_rem"][r] = obj.comp_add, obj.comp_rem
        a["unstable"][r], a["started"][r] = obj.unstable, obj.started


class ColMinMax(ColKernel):
    """`_RollMinMax` (pandas rolling min/max: NaN until `window` non-NaN values) for many rows."""

    FIELDS = (*RING_FIELDS, ("nan_ct", 0, I64))

    def __init__(self, window: int, cap: int) -> None:
        super().__init__(cap)
        self.window = window
        self._ring("buf", cap, window)

    def push(self, idx: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (min, max) per row; NaN where fewer than `window` non-NaN values are in view."""
        a = self.a
        full = a["cnt"][idx] == self.window
        old = Ring.push(a, idx, val, self.window)
        nan_ct = a["nan_ct"][idx] - (full & (old != old)) + (val != val)
        a["nan_ct"][idx] = nan_ct
        valid = a["cnt"][idx] - nan_ct >= self.window
        if valid.all():  # the steady state: every row's window is full
            bufs = a["buf"][idx]
            return bufs.min(axis=1), bufs.max(axis=1)
        lo, hi = np.full(len(valid), NAN), np.full(len(valid), NAN)
        if valid.any():
            bufs = a["buf"][row_numbers(idx)[valid]]
            lo[valid], hi[valid] = bufs.min(axis=1), bufs.max(axis=1)
        return lo, hi

    def export(self, r: int, obj: Any) -> None:
        obj.buf = deque(Ring.ordered(self.a, r, self.window))
        obj.nan_ct = int(self.a["nan_ct"][r])

    def load(self, r: int, obj: Any) -> None:
        Ring.load(self.a, r, obj.buf, self.window)
        self.a["nan_ct"][r] = obj.nan_ct


class ColRsi(ColKernel):
    """`_Rsi` (ta's Wilder RSI; 100 where the average loss is 0) for many rows."""

    FIELDS = (("prev_close", NAN, float),)
    KIDS = ("up", "down")

    def __init__(self, window: int, cap: int) -> None:
        super().__init__(cap)
        self.up = ColEwm(_alpha_com(window), window, cap)
        self.down = ColEwm(_alpha_com(window), window, cap)

    def push(self, idx: np.ndarray, close: np.ndarray) -> np.ndarray:
        diff = close - self.a["prev_close"][idx]
        self.a["prev_close"][idx] = close
        avg_gain = self.up.push(idx, np.where(diff > 0, diff, 0.0))
        avg_loss = self.down.push(idx, -np.where(diff < 0, diff, 0.0))
        with np.errstate(all="ignore"):
            rsi = 100 - (100 / (1 + avg_gain / avg_loss))
        return np.where(avg_loss == 0, 100.0, rsi)

    def export(self, r: int, obj: Any) -> None:
        self.up.export(r, obj.up)
        self.down.export(r, obj.down)
        obj.prev_close = float(self.a["prev_close"][r])

    def load(self, r: int, obj: Any) -> None:
        self.up.load(r, obj.up)
        self.down.load(r, obj.down)
        self.a["prev_close"][r] = obj.prev_close


def true_range(i: np.ndarray, h: np.ndarray, lo: np.ndarray, prev_close: np.ndarray) -> np.ndarray:
    """h - lo on row 0, else max(h, prev close) - min(lo, prev close) (Python's max/min tie rules)."""
    with np.errstate(invalid="ignore"):
        tr = np.where(prev_close > h, prev_close, h) - np.where(prev_close < lo, prev_close, lo)
    return np.where(i == 0, h - lo, tr)
