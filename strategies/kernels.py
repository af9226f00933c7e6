"""Incremental kernels: pandas' rolling/ewm update rules, one value at a time, bit for bit.

Used by `strategies.incremental.IncrementalIndicators`; see its module docstring for why these
copy pandas' statements instead of recomputing windows. `_Packer`/`_Unpacker` serialise a kernel's
state as ints plus raw doubles so a checkpoint round-trips exactly. Pure: no I/O.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from typing import Any

NAN = math.nan
INV_COND_TOL = sys.float_info.epsilon * 1e3  # pandas roll_var's cancellation threshold

_copysign = math.copysign


def _div(a: float, b: float) -> float:
    """IEEE division like numpy's: x/0 is +-inf, 0/0 and NaN/0 are NaN, never raises."""
    if b != 0.0:
        return a / b
    if a != a or a == 0.0:
        return NAN
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


class _Packer:
    """Collects a state as ints (counts, flags) and floats (packed later as raw doubles)."""

    __slots__ = ("floats", "ints")

    def __init__(self) -> None:
        self.ints: list[int] = []
        self.floats: list[float] = []

    def seq(self, xs: Any) -> None:
        self.ints.append(len(xs))
        self.floats.extend(xs)


class _Unpacker:
    """Reads back what `_Packer` wrote, in the same order; raises ValueError when it runs short."""

    __slots__ = ("fi", "floats", "ii", "ints")

    def __init__(self, ints: list[int], floats: tuple[float, ...]) -> None:
        self.ints, self.floats = ints, floats
        self.ii = self.fi = 0

    def next_int(self) -> int:
        if self.ii >= len(self.ints):
            raise ValueError("indicator state is truncated (ints)")
        self.ii += 1
        return int(self.ints[self.ii - 1])

    def next_floats(self, n: int) -> tuple[float, ...]:
        if n < 0 or self.fi + n > len(self.floats):
            raise ValueError("indicator state is truncated (floats)")
        self.fi += n
        return self.floats[self.fi - n : self.fi]

    def next_seq(self) -> tuple[float, ...]:
        return self.next_floats(self.next_int())

    def assert_done(self) -> None:
        if self.ii != len(self.ints) or self.fi != len(self.floats):
            raise ValueError("indicator state has trailing data")


class _Ewm:
    """pandas `ewm(com=..., adjust=False, ignore_na=False, min_periods=minp).mean()`, one value at a time."""

    __slots__ = ("alpha", "com_is_one", "denom", "minp", "nobs", "ofac", "old_wt", "started", "weighted")

    def __init__(self, com: float, minp: int) -> None:
        self.alpha = 1.0 / (1.0 + com)
        self.ofac = 1.0 - self.alpha
        self.denom = self.ofac + self.alpha  # the steady state's (ofac + alpha), same IEEE sum
        self.com_is_one = com == 1
        self.minp = minp
        self.weighted = NAN
        self.nobs = 0
        self.old_wt = 1.0
        self.started = False

    def push(self, cur: float) -> float:
        w = self.weighted
        if self.old_wt == 1.0 and w == w and cur == cur and not self.com_is_one:
            # Steady state (same arithmetic as below): old_wt = 1.0 * ofac, new_wt = alpha.
            self.nobs += 1
            if w != cur:
                w = (self.ofac * w + self.alpha * cur) / self.denom
                self.weighted = w
            return w if self.nobs >= self.minp else NAN
        if not self.started:
            self.started = True
            w = cur
            self.nobs = int(cur == cur)
        else:
            observed = cur == cur
            self.nobs += observed
            if w == w:
                old_wt = self.old_wt * self.ofac
                if observed:
                    if w != cur:
                        new_wt = 1.0 - old_wt if self.com_is_one else self.alpha
                        w = (old_wt * w + new_wt * cur) / (old_wt + new_wt)
                    old_wt = 1.0
                self.old_wt = old_wt
            elif observed:
                w = cur
        self.weighted = w
        return w if self.nobs >= self.minp else NAN

    def dump(self, out: _Packer) -> None:
        out.ints += (self.nobs, int(self.started))
        out.floats += (self.weighted, self.old_wt)

    def load(self, src: _Unpacker) -> None:
        self.nobs, self.started = src.next_int(), bool(src.next_int())
        self.weighted, self.old_wt = src.next_floats(2)


def _mean_out(sum_x: float, nobs: int, neg_ct: int, same: int, prev: float) -> float:
    """pandas calc_mean once min_periods is met: the same-value shortcut, then the sign clamps."""
    if same >= nobs:
        return prev
    result = sum_x / nobs
    if result < 0:
        if neg_ct == 0:
            return 0.0
    elif result > 0 and neg_ct == nobs:
        return 0.0
    return result


class _RollMean:
    """pandas `rolling(window).mean()` (roll_mean: Kahan sums, same-value shortcut, sign clamps)."""

    __slots__ = ("buf", "comp_add", "comp_rem", "neg_ct", "nobs", "prev", "same", "sum_x", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.buf: deque[float] = deque()
        self._reset()

    def _reset(self) -> None:
        self.nobs = self.neg_ct = self.same = 0
        self.sum_x = self.comp_add = self.comp_rem = 0.0
        self.prev = NAN

    def push(self, val: float) -> float:
        """Steady-state fast path of `_push_general` for window >= 2: same statements, fewer loads."""
        window = self.window
        if window <= 1:
            return self._push_general(val)
        buf = self.buf
        sum_x = self.sum_x
        nobs = self.nobs
        if len(buf) == window:
            old = buf.popleft()
            if old == old:
                nobs -= 1
                y = -old - self.comp_rem
                t = sum_x + y
                self.comp_rem = t - sum_x - y
                sum_x = t
                if old <= 0.0 and (old < 0.0 or _copysign(1.0, old) < 0.0):
                    self.neg_ct -= 1
        buf.append(val)
        if val == val:
            nobs += 1
            y = val - self.comp_add
            t = sum_x + y
            self.comp_add = t - sum_x - y
            sum_x = t
            if val <= 0.0 and (val < 0.0 or _copysign(1.0, val) < 0.0):
                self.neg_ct += 1
            self.same = self.same + 1 if val == self.prev else 1
            self.prev = val
        self.sum_x = sum_x
        self.nobs = nobs
        if nobs < window:  # also covers nobs <= 0 (window >= 2 here)
            return NAN
        return _mean_out(sum_x, nobs, self.neg_ct, self.same, self.prev)

    def _push_general(self, val: float) -> float:
        buf = self.buf
        window = self.window
        sum_x = self.sum_x
        nobs = self.nobs
        neg_ct = self.neg_ct
        if window <= 1:  # pandas re-seeds every window that does not overlap the previous one
            buf.clear()
            self._reset()
            sum_x, nobs, neg_ct = 0.0, 0, 0
        elif len(buf) == window:
            old = buf.popleft()
            if old == old:  # remove_mean, with its own Kahan compensation
                nobs -= 1
                y = -old - self.comp_rem
                t = sum_x + y
                self.comp_rem = t - sum_x - y
                sum_x = t
                if old < 0.0 or (old == 0.0 and math.copysign(1.0, old) < 0.0):
                    neg_ct -= 1
        buf.append(val)
        if val == val:  # add_mean
            nobs += 1
            y = val - self.comp_add
            t = sum_x + y
            self.comp_add = t - sum_x - y
            sum_x = t
            if val < 0.0 or (val == 0.0 and math.copysign(1.0, val) < 0.0):
                neg_ct += 1
            self.same = self.same + 1 if val == self.prev else 1
            self.prev = val
        self.sum_x, self.nobs, self.neg_ct = sum_x, nobs, neg_ct
        if nobs < window or nobs <= 0:  # calc_mean with min_periods = window
            return NAN
        return _mean_out(sum_x, nobs, neg_ct, self.same, self.prev)

    def dump(self, out: _Packer) -> None:
        out.seq(self.buf)
        out.ints += (self.nobs, self.neg_ct, self.same)
        out.floats += (self.sum_x, self.comp_add, self.comp_rem, self.prev)

    def load(self, src: _Unpacker) -> None:
        self.buf = deque(src.next_seq())
        self.nobs, self.neg_ct, self.same = src.next_int(), src.next_int(), src.next_int()
        self.sum_x, self.comp_add, self.comp_rem, self.prev = src.next_floats(4)


class _RollVar:
    """pandas `rolling(window).var(ddof)` (roll_var: Welford + Kahan, recompute on cancellation)."""

    __slots__ = ("buf", "comp_add", "comp_rem", "ddof", "mean_x", "nobs", "ssqdm", "started",
                 "unstable", "window")

    def __init__(self, window: int, ddof: int) -> None:
        self.window = window
        self.ddof = ddof
        self.buf: deque[float] = deque()
        self.nobs = self.mean_x = self.ssqdm = self.comp_add = self.comp_rem = 0.0
        self.unstable = False
        self.started = False

    def _add(self, val: float) -> None:
        prev_m2 = self.ssqdm
        if val != val:
            return
        self.nobs += 1
        mean = self.mean_x
        prev_mean = mean - self.comp_add
        y = val - self.comp_add
        t = y - mean
        self.comp_add = t + mean - y
        mean = mean + t / self.nobs if self.nobs else 0.0
        self.mean_x = mean
        self.ssqdm = self.ssqdm + (val - prev_mean) * (val - mean)
        if prev_m2 * INV_COND_TOL > self.ssqdm:
            self.unstable = True

    def _remove(self, val: float) -> None:
        prev_m2 = self.ssqdm
        if val == val:
            self.nobs -= 1
            if self.nobs:
                mean = self.mean_x
                prev_mean = mean - self.comp_rem
                y = val - self.comp_rem
                t = y - mean
                self.comp_rem = t + mean - y
                mean = mean - t / self.nobs
                self.mean_x = mean
                self.ssqdm = self.ssqdm - (val - prev_mean) * (val - mean)
                if prev_m2 * INV_COND_TOL > self.ssqdm:
                    self.unstable = True
            else:
                self.mean_x = 0.0
                self.ssqdm = 0.0
                self.unstable = False

    def push(self, val: float) -> float:
        buf = self.buf
        recompute = not self.started or self.window <= 1
        self.started = True
        if recompute:
            if self.window <= 1:
                buf.clear()
            buf.append(val)
        else:
            if len(buf) == self.window:
                self._remove(buf.popleft())
            buf.append(val)
            self._add(val)
        if recompute or self.unstable:
            self.nobs = self.mean_x = self.ssqdm = self.comp_add = self.comp_rem = 0.0
            for x in buf:
                self._add(x)
            self.unstable = False
        if self.nobs >= max(self.window, 1) and self.nobs > self.ddof:
            return self.ssqdm / (self.nobs - self.ddof)
        return NAN

    def dump(self, out: _Packer) -> None:
        out.seq(self.buf)
        out.ints += (int(self.unstable), int(self.started))
        out.floats += (self.nobs, self.mean_x, self.ssqdm, self.comp_add, self.comp_rem)

    def load(self, src: _Unpacker) -> None:
        self.buf = deque(src.next_seq())
        self.unstable, self.started = bool(src.next_int()), bool(src.next_int())
        self.nobs, self.mean_x, self.ssqdm, self.comp_add, self.comp_rem = src.next_floats(5)


class _RollMinMax:
    """pandas `rolling(window).min()` and `.max()`: NaN until `window` non-NaN values are in view."""

    __slots__ = ("buf", "nan_ct", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.buf: deque[float] = deque()
        self.nan_ct = 0

    def push(self, val: float) -> tuple[float, float]:
        buf = self.buf
        if len(buf) == self.window:
            old = buf.popleft()
            if old != old:
                self.nan_ct -= 1
        buf.append(val)
        if val != val:
            self.nan_ct += 1
        if len(buf) - self.nan_ct < self.window:
            return NAN, NAN
        return min(buf), max(buf)

    def dump(self, out: _Packer) -> None:
        out.seq(self.buf)
        out.ints.append(self.nan_ct)

    def load(self, src: _Unpacker) -> None:
        self.buf = deque(src.next_seq())
        self.nan_ct = src.next_int()


def _span_com(span: int) -> float:
    return float((span - 1) / 2)


def _alpha_com(window: int) -> float:
    alpha = 1 / window
    return float((1 - alpha) / alpha)


class _Rsi:
    """ta's RSI: Wilder ewm of gains/losses, row 0 counting as a zero observation; 100 if no loss."""

    __slots__ = ("down", "prev_close", "up")

    def __init__(self, window: int) -> None:
        self.up = _Ewm(_alpha_com(window), window)
        self.down = _Ewm(_alpha_com(window), window)
        self.prev_close = NAN

    def push(self, close: float) -> float:
        diff = close - self.prev_close  # NaN on row 0: both branches below give 0.0
        self.prev_close = close
        avg_gain = self.up.push(diff if diff > 0 else 0.0)
        avg_loss = self.down.push(-(diff if diff < 0 else 0.0))
        if avg_loss == 0:
            return 100.0
        return 100 - (100 / (1 + avg_gain / avg_loss))

    def dump(self, out: _Packer) -> None:
        self.up.dump(out)
        self.down.dump(out)
        out.floats.append(self.prev_close)

    def load(self, src: _Unpacker) -> None:
        self.up.load(src)
        self.down.load(src)
        (self.prev_close,) = src.next_floats(1)


class _Directional:
    """ta 0.11's ATR and ADX/+DI/-DI with their zero-filled warm-ups (see strategies.indicators)."""

    __slots__ = ("adx", "adx_window", "atr", "atr_seed", "atr_window", "dm_neg", "dm_pos", "dx_seed",
                 "prev_close", "prev_high", "prev_low", "seed_neg", "seed_pos", "seed_tr", "tr_sum")

    def __init__(self, atr_window: int, adx_window: int) -> None:
        self.atr_window = atr_window
        self.adx_window = adx_window
        self.prev_high = self.prev_low = self.prev_close = NAN
        self.atr = 0.0
        self.atr_seed: list[float] = []
        self.tr_sum = self.dm_pos = self.dm_neg = self.adx = 0.0
        self.seed_tr: list[float] = []
        self.seed_pos: list[float] = []
        self.seed_neg: list[float] = []
        self.dx_seed: list[float] = []

    def push(self, i: int, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
        """Advance to row i; return (ATR, ADX, ADX_pos, ADX_neg)."""
        prev_close = self.prev_close
        tr = h - lo if i == 0 else max(h, prev_close) - min(lo, prev_close)
        atr = self._push_atr(i, tr)
        adx = di_pos = di_neg = 0.0
        if i > 0:
            up = h - self.prev_high
            down = self.prev_low - lo
            adx, di_pos, di_neg = self._push_adx(
                i, tr, up if (up > down and up > 0) else 0.0, down if (down > up and down > 0) else 0.0
            )
        self.prev_high, self.prev_low, self.prev_close = h, lo, c
        return atr, adx, di_pos, di_neg

    def _push_atr(self, i: int, tr: float) -> float:
        n = self.atr_window
        if i >= n:
            self.atr = (self.atr * (n - 1) + tr) / float(n)
        else:
            self.atr_seed.append(tr)
            if i == n - 1:
                self.atr = math.fsum(self.atr_seed) / n
                self.atr_seed = []
        return self.atr

    def _push_adx(self, i: int, tr: float, pdm: float, ndm: float) -> tuple[float, float, float]:
        n = self.adx_window
        if i > n:
            self.tr_sum = self.tr_sum - self.tr_sum / float(n) + tr
            self.dm_pos = self.dm_pos - self.dm_pos / float(n) + pdm
            self.dm_neg = self.dm_neg - self.dm_neg / float(n) + ndm
        else:
            self.seed_tr.append(tr)
            self.seed_pos.append(pdm)
            self.seed_neg.append(ndm)
            if i < n:
                return 0.0, 0.0, 0.0
            self.tr_sum = math.fsum(self.seed_tr)
            self.dm_pos = math.fsum(self.seed_pos)
            self.dm_neg = math.fsum(self.seed_neg)
            self.seed_tr, self.seed_pos, self.seed_neg = [], [], []
        trs = self.tr_sum
        dip = 100 * (self.dm_pos / trs) if trs != 0 else 0.0
        din = 100 * (self.dm_neg / trs) if trs != 0 else 0.0
        dx = 100 * abs((dip - din) / (dip + din)) if dip + din != 0 else 0.0
        if i >= 2 * n:
            self.adx = (self.adx * (n - 1) + dx) / float(n)
        else:
            self.dx_seed.append(dx)
            if i == 2 * n - 1:
                self.adx = math.fsum(self.dx_seed) / n
                self.dx_seed = []
        if i == n:  # ta leaves +DI/-DI at 0.0 on the seed row
            return self.adx, 0.0, 0.0
        return self.adx, dip, din

    def dump(self, out: _Packer) -> None:
        out.floats += (self.prev_high, self.prev_low, self.prev_close, self.atr, self.tr_sum,
                       self.dm_pos, self.dm_neg, self.adx)
        for seq in (self.atr_seed, self.seed_tr, self.seed_pos, self.seed_neg, self.dx_seed):
            out.seq(seq)

    def load(self, src: _Unpacker) -> None:
        (self.prev_high, self.prev_low, self.prev_close, self.atr, self.tr_sum, self.dm_pos,
         self.dm_neg, self.adx) = src.next_floats(8)
        self.atr_seed, self.seed_tr, self.seed_pos, self.seed_neg, self.dx_seed = (
            list(src.next_seq()) for _ in range(5)
        )
