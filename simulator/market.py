"""The simulated market: clock, replayed candles, the mid path inside each candle, book and funding.

Owns everything about prices on the venue. Base bars come from `simulator.series`; the market maps
them onto the market clock and answers, for any market time, the mid, the forming and closed
candles of any interval that is a multiple of the base interval, a deterministic order book and
an hourly funding rate. Everything is a pure function of (data, seed, market time), so two runs
with the same seed, data and start time give identical answers.

Time base: bar index ``history_bars`` is the bar that contains the clock's start time
(``--start-ms``, default wall-clock now), so replayed data is rebased to "now" and the
``history_bars`` bars before it are history that candleSnapshot serves for backfill. At speed 1
the market clock equals wall-clock time, so candle times compare sanely with a client's clock.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import numpy as np

from simulator.dexes import BuilderDex, DexTable
from simulator.series import CoinInfo, MultiSeries, Series, px_decimals, round_px

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000, "12h": 43_200_000,
    "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
VALID_INTERVALS = (*INTERVAL_MS, "1M")
CANDLE_CAP = 5000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BASE_FUNDING_HOURLY = 0.0000125
MAX_PREMIUM = 0.0004
BOOK_HALF_SPREAD = 0.0001  # 1 bp either side of mid
BOOK_LEVEL_STEP = 0.0001   # 1 bp between levels
BOOK_BASE_USD = 20_000.0   # notional of the best level; level i holds about (1 + i) times this

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)

Candle = tuple[int, int, float, float, float, float, float, int]  # t, T, o, h, l, c, v, n
Levels = list[tuple[float, float]]  # (px, sz), best first


class MarketView(Protocol):
    """What the exchange core (SIM-B) may ask of the market."""

    def coins(self) -> list[str]: ...
    def sz_decimals(self, coin: str) -> int: ...
    def max_leverage(self, coin: str) -> int: ...
    def now_ms(self) -> int: ...
    def mid(self, coin: str) -> float: ...
    def book(self, coin: str, depth: int = 20) -> tuple[Levels, Levels]: ...
    def funding_rate(self, coin: str) -> float: ...


class MarketClock:
    """Market time in ms: start + speed × elapsed wall time + manual advances (speed 0 = manual only)."""

    def __init__(self, *, start_ms: int, speed: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"speed must be >= 0, got {speed}")
        self.start_ms = start_ms
        self.speed = speed
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._offset_ms = 0

    def now_ms(self) -> int:
        return self.start_ms + self._offset_ms + int((self._monotonic() - self._t0) * 1000.0 * self.speed)

    def advance(self, ms: int) -> int:
        """Move market time forward by ``ms`` (never backwards); return the new time."""
        if ms < 0:
            raise ValueError("the market clock never goes backwards")
        self._offset_ms += ms
        return self.now_ms()


def fmt_num(x: float) -> str:
    """Format a number as the venue does: shortest round-trip decimal, '.0' for integers, no exponent."""
    r = repr(float(x))
    if "e" in r or "E" in r:
        r = format(Decimal(r), "f")
        if "." not in r:
            r += ".0"
    return r


def interval_ms_of(interval: str) -> int | None:
    """Milliseconds of a venue interval name, None for '1M' (calendar month) or unknown names."""
    return INTERVAL_MS.get(interval)


def _mix(seed: int, idx: np.ndarray, k: int) -> np.ndarray:
    """SplitMix64-style hash of (seed, coin key, bar index) → uint64, vectorised over idx."""
    x = np.asarray(idx, dtype=np.uint64) * _GOLD
    x ^= np.asarray([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) * _M1
    x ^= np.asarray([k & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) * _M2
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _tick_vec(px: np.ndarray, szd: np.ndarray) -> np.ndarray:
    return np.power(10.0, -px_decimals(px, szd).astype(np.float64))


def _floor_vec(px: np.ndarray, szd: np.ndarray) -> np.ndarray:
    scale = np.power(10.0, px_decimals(px, szd).astype(np.float64))
    return np.floor(np.round(px * scale, 6)) / scale


def _ceil_vec(px: np.ndarray, szd: np.ndarray) -> np.ndarray:
    scale = np.power(10.0, px_decimals(px, szd).astype(np.float64))
    return np.ceil(np.round(px * scale, 6)) / scale


def _unit(h: np.ndarray, shift: int) -> np.ndarray:
    return ((h >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.float64) / 65535.0


class Market:
    """Implements MarketView plus the market-data reads the server and feeds need."""

    def __init__(self, series: Series | MultiSeries, clock: MarketClock, *, interval_ms: int, seed: int,
                 history_bars: int, builders: tuple[BuilderDex, ...] = ()) -> None:
        if history_bars < 0:
            raise ValueError("history_bars must be >= 0")
        self.series = series
        self.clock = clock
        self.interval_ms = interval_ms
        self.seed = seed
        self.history_bars = history_bars
        self.t0_ms = (clock.start_ms // interval_ms) * interval_ms - history_bars * interval_ms
        self._info: list[CoinInfo] = series.coins
        self._index = {c.name: i for i, c in enumerate(series.coins)}
        self.dexes = DexTable([c.name for c in series.coins], builders)
        self._szd = np.array([c.sz_decimals for c in series.coins], dtype=np.int64)
        self._all = np.arange(len(series.coins), dtype=np.uint64)
        # per-coin hash keys from the name, so listing another coin never changes a coin's path
        self._keys = np.array([int.from_bytes(hashlib.blake2b(c.name.encode(), digest_size=8).digest(), "big")
                               for c in series.coins], dtype=np.uint64)
        self._mids_cache: tuple[int, np.ndarray] | None = None

    # --- MarketView -------------------------------------------------------------------------
    def coins(self) -> list[str]:
        return [c.name for c in self._info]

    def sz_decimals(self, coin: str) -> int:
        return self._info[self.index_of(coin)].sz_decimals

    def max_leverage(self, coin: str) -> int:
        return self._info[self.index_of(coin)].max_leverage

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def mid(self, coin: str) -> float:
        return float(self.mids_at(self.now_ms())[self.index_of(coin)])

    def book(self, coin: str, depth: int = 20) -> tuple[Levels, Levels]:
        return self.book_at(coin, self.now_ms(), depth)

    def funding_rate(self, coin: str) -> float:
        return self.funding_rate_at(coin, self.now_ms())

    # --- lookups ----------------------------------------------------------------------------
    def has(self, coin: str) -> bool:
        return coin in self._index

    def index_of(self, coin: str) -> int:
        """Row of ``coin`` in the market's arrays; raises KeyError for an unlisted coin."""
        return self._index[coin]

    def asset_of(self, coin: str) -> int:
        """The venue's asset id of ``coin`` (its dex's meta index, offset for a builder dex)."""
        return self.dexes.asset_of(coin)

    def coin_of(self, asset: int) -> str | None:
        """The coin with venue asset id ``asset``, or None."""
        return self.dexes.coin_of(asset)

    def coin_info(self) -> list[CoinInfo]:
        return list(self._info)

    def bar_index(self, t_ms: int) -> int:
        return (t_ms - self.t0_ms) // self.interval_ms

    def bar_open(self, k: int) -> int:
        return self.t0_ms + k * self.interval_ms

    def tick_size(self, coin: str, px: float) -> float:
        return 10.0 ** -int(px_decimals(px, self.sz_decimals(coin)))

    # --- the mid path -----------------------------------------------------------------------
    def _shape(self, k: int, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """(o, c, first extreme, second extreme, f1, f2) of bar k: the path runs open → first
        extreme (at fraction f1) → second extreme (at f2) → close in straight lines; whether the
        high or the low comes first, and when, is a hash of (seed, coin, bar)."""
        o, hi, lo, c, _ = (a[idx.astype(np.int64)] for a in self.series.bar(k))
        u = _mix(self.seed, self._keys[idx.astype(np.int64)], k)
        high_first = (u & np.uint64(1)).astype(bool)
        f1 = 0.15 + 0.3 * _unit(u, 8)
        f2 = f1 + (0.85 - f1) * (0.2 + 0.6 * _unit(u, 24))
        return o, c, np.where(high_first, hi, lo), np.where(high_first, lo, hi), f1, f2

    def _path(self, k: int, frac: float, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Value, high-so-far and low-so-far of bar k at fraction ``frac`` of its span."""
        o, c, e1, e2, f1, f2 = self._shape(k, idx)
        value = np.where(
            frac <= f1, o + (e1 - o) * (frac / f1),
            np.where(frac <= f2, e1 + (e2 - e1) * ((frac - f1) / (f2 - f1)),
                     e2 + (c - e2) * ((frac - f2) / (1.0 - f2))))
        hi = np.maximum(np.maximum(o, value), np.where(frac >= f1, e1, o))
        hi = np.maximum(hi, np.where(frac >= f2, e2, o))
        lo = np.minimum(np.minimum(o, value), np.where(frac >= f1, e1, o))
        lo = np.minimum(lo, np.where(frac >= f2, e2, o))
        return value, hi, lo

    def _position(self, t_ms: int) -> tuple[int, float]:
        k = max(self.bar_index(t_ms), 0)
        frac = min(max((t_ms - self.bar_open(k)) / self.interval_ms, 0.0), 1.0)
        return k, frac

    def mids_at(self, t_ms: int) -> np.ndarray:
        """Mids of every coin at market time ``t_ms`` (half-tick resolution)."""
        cached = self._mids_cache
        if cached is not None and cached[0] == t_ms:
            return cached[1]
        k, frac = self._position(t_ms)
        value, _, _ = self._path(k, frac, self._all)
        decimals = px_decimals(value, self._szd) + 1
        scale = np.power(10.0, decimals)
        mids = np.round(value * scale) / scale
        self._mids_cache = (t_ms, mids)
        return mids

    def price_at(self, coin: str, t_ms: int) -> float:
        """Trade-price (tick-rounded) value of the path at ``t_ms``."""
        return float(self.marks_at(t_ms)[self.index_of(coin)])

    def range_between(self, coin: str, start_ms: int, end_ms: int) -> tuple[float, float]:
        """(low, high) the path touched during [start_ms, end_ms]; lets resting orders fill on a
        crossing that happened between two market ticks."""
        if end_ms < start_ms:
            start_ms, end_ms = end_ms, start_ms
        i = self.index_of(coin)
        k0, f0 = self._position(start_ms)
        k1, f1 = self._position(end_ms)
        if k0 == k1:
            return self._bar_range(k0, f0, f1, i)
        parts = [self._bar_range(k0, f0, 1.0, i), self._bar_range(k1, 0.0, f1, i)]
        if k1 > k0 + 1:
            _, h_mid, l_mid, _, _ = self.series.column(i, k0 + 1, k1)
            parts.append((float(l_mid.min()), float(h_mid.max())))
        return min(p[0] for p in parts), max(p[1] for p in parts)

    def _bar_range(self, k: int, fa: float, fb: float, i: int) -> tuple[float, float]:
        idx = np.array([i], dtype=np.uint64)
        _, _, e1, e2, w1, w2 = (float(a[0]) for a in self._shape(k, idx))
        points = [float(self._path(k, fa, idx)[0][0]), float(self._path(k, fb, idx)[0][0])]
        points += [v for f, v in ((w1, e1), (w2, e2)) if fa < f < fb]
        return min(points), max(points)

    def shock(self, coin: str, factor: float) -> tuple[float, float]:
        """Move ``coin``'s price by ``factor`` now (admin, for tests: "the price goes through the
        stop"): the bar in progress and everything after it are scaled, so mids, books, marks and
        the forming candle jump together while closed candles keep their history. Returns the mid
        before and after."""
        if not factor > 0 or not math.isfinite(factor):
            raise ValueError(f"shock factor must be a positive number, got {factor}")
        now = self.now_ms()
        before = self.mid(coin)
        self.series.shock(self.index_of(coin), max(self.bar_index(now), 0), factor)
        self._mids_cache = None
        return before, self.mid(coin)

    def _round(self, px: float, i: int) -> float:
        d = int(px_decimals(px, int(self._szd[i])))
        return round(px, d)

    # --- candles ----------------------------------------------------------------------------
    def candles(self, coin: str, interval_ms: int, start_ms: int, end_ms: int, now_ms: int) -> list[Candle]:
        """Candles with ``t <= end_ms`` and ``T >= start_ms`` among the most recent CANDLE_CAP of
        ``interval_ms`` at ``now_ms`` (forming one included); [] for intervals not derivable from
        the base interval."""
        iv = self.interval_ms
        if interval_ms % iv:
            return []
        i = self.index_of(coin)
        t_last = (now_ms // interval_ms) * interval_ms
        t_first = max(t_last - (CANDLE_CAP - 1) * interval_ms, (self.t0_ms // interval_ms) * interval_ms)
        lo_t = max(t_first, (start_ms // interval_ms) * interval_ms)
        hi_t = min(t_last, (end_ms // interval_ms) * interval_ms)
        if hi_t < lo_t or end_ms < 0:
            return []
        k_now = self.bar_index(now_ms)
        k_lo = max(0, (lo_t - self.t0_ms) // iv)
        k_hi = min(k_now, (hi_t + interval_ms - self.t0_ms) // iv - 1)
        if k_hi < k_lo:
            return []
        o, h, lw, c, v = (a.copy() for a in self.series.column(i, k_lo, k_hi + 1))
        n = np.rint(np.sqrt(v)).astype(np.int64)
        if k_hi == k_now:
            frac = (now_ms - self.bar_open(k_now)) / iv
            value, hi, lo = self._path(k_now, frac, np.array([i], dtype=np.uint64))
            c[-1] = self._round(float(value[0]), i)
            h[-1] = self._round(float(hi[0]), i)
            lw[-1] = self._round(float(lo[0]), i)
            v[-1] = round(float(v[-1]) * frac, 4)
            n[-1] = int(n[-1] * frac)
        opens_ms = self.t0_ms + np.arange(k_lo, k_hi + 1, dtype=np.int64) * iv
        groups = opens_ms // interval_ms
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        ends = np.r_[starts[1:], len(groups)] - 1
        ag_o, ag_c = o[starts], c[ends]
        ag_h = np.maximum.reduceat(h, starts)
        ag_l = np.minimum.reduceat(lw, starts)
        ag_v = np.add.reduceat(v, starts)
        ag_n = np.add.reduceat(n, starts)
        out: list[Candle] = []
        for j, g in enumerate(groups[starts].tolist()):
            t = g * interval_ms
            out.append((t, t + interval_ms - 1, float(ag_o[j]), float(ag_h[j]), float(ag_l[j]),
                        float(ag_c[j]), round(float(ag_v[j]), 4), int(ag_n[j])))
        return out

    def current_candle(self, coin: str, interval_ms: int, now_ms: int) -> Candle | None:
        """The forming candle of ``interval_ms`` at ``now_ms`` (None if not derivable)."""
        got = self.candles(coin, interval_ms, now_ms, now_ms, now_ms)
        return got[-1] if got else None

    # --- book and funding -------------------------------------------------------------------
    def book_at(self, coin: str, t_ms: int, depth: int = 20) -> tuple[Levels, Levels]:
        """Deterministic book around the mid: 1 bp half-spread, 1 bp per level, sizes growing with
        depth and varying per second. This is the fill model the exchange core walks."""
        i = self.index_of(coin)
        szd = int(self._szd[i])
        mid = float(self.mids_at(t_ms)[i])
        slots = np.arange(2 * depth, dtype=np.uint64) + self._keys[i]
        u = _mix(self.seed ^ 0xB00C, slots, t_ms // 1000)
        jitter = 0.75 + 0.5 * _unit(u, 16)
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        for level in range(depth):
            bid = self._floor_px(mid * (1 - BOOK_HALF_SPREAD - level * BOOK_LEVEL_STEP), szd)
            ask = self._ceil_px(mid * (1 + BOOK_HALF_SPREAD + level * BOOK_LEVEL_STEP), szd)
            if bids and bid >= bids[-1][0]:
                bid = self._floor_px(bids[-1][0] - 10.0 ** -int(px_decimals(bids[-1][0], szd)), szd)
            if not bids and bid >= mid:
                bid = self._floor_px(mid - 10.0 ** -int(px_decimals(mid, szd)), szd)
            if asks and ask <= asks[-1][0]:
                ask = self._ceil_px(asks[-1][0] + 10.0 ** -int(px_decimals(asks[-1][0], szd)), szd)
            if not asks and ask <= mid:
                ask = self._ceil_px(mid + 10.0 ** -int(px_decimals(mid, szd)), szd)
            usd = BOOK_BASE_USD * (1 + level)
            bids.append((bid, self._size(usd * float(jitter[2 * level]) / bid, szd)))
            asks.append((ask, self._size(usd * float(jitter[2 * level + 1]) / ask, szd)))
        return bids, asks

    @staticmethod
    def _size(sz: float, szd: int) -> float:
        return max(round(sz, szd), 10.0 ** -szd)

    @staticmethod
    def _floor_px(px: float, szd: int) -> float:
        d = int(px_decimals(px, szd))
        return math.floor(round(px * 10.0**d, 6)) / 10.0**d

    @staticmethod
    def _ceil_px(px: float, szd: int) -> float:
        d = int(px_decimals(px, szd))
        return math.ceil(round(px * 10.0**d, 6)) / 10.0**d

    def premiums_at(self, t_ms: int) -> np.ndarray:
        """Hourly premium of every coin: a small fraction of the last hour's log return, clipped."""
        hour = (t_ms // HOUR_MS) * HOUR_MS
        k_now = self.bar_index(hour) - 1
        k_prev = self.bar_index(hour - HOUR_MS) - 1
        if k_prev < 0 or k_now < 0:
            return np.zeros(len(self._info))
        c_now = self.series.bar(k_now)[3]
        c_prev = self.series.bar(k_prev)[3]
        return np.clip(0.002 * np.log(c_now / c_prev), -MAX_PREMIUM, MAX_PREMIUM)

    def funding_rates_at(self, t_ms: int) -> np.ndarray:
        """Hourly funding rate (decimal) of every coin for the hour containing ``t_ms``."""
        return np.round(BASE_FUNDING_HOURLY + self.premiums_at(t_ms), 8)

    def funding_rate_at(self, coin: str, t_ms: int) -> float:
        """Hourly funding rate (decimal) of ``coin`` for the hour containing ``t_ms``."""
        return float(self.funding_rates_at(t_ms)[self.index_of(coin)])

    def marks_at(self, t_ms: int) -> np.ndarray:
        """Tick-rounded path value of every coin at ``t_ms`` (mark and oracle price)."""
        k, frac = self._position(t_ms)
        value, _, _ = self._path(k, frac, self._all)
        return round_px(value, self._szd)

    def best_bid_ask_at(self, t_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Best bid and ask prices of every coin, equal to level 0 of `book_at` (vectorised)."""
        mids = self.mids_at(t_ms)
        bid = _floor_vec(mids * (1 - BOOK_HALF_SPREAD), self._szd)
        bid = np.where(bid >= mids, _floor_vec(mids - _tick_vec(mids, self._szd), self._szd), bid)
        ask = _ceil_vec(mids * (1 + BOOK_HALF_SPREAD), self._szd)
        ask = np.where(ask <= mids, _ceil_vec(mids + _tick_vec(mids, self._szd), self._szd), ask)
        return bid, ask

    def day_stats(self, now_ms: int) -> dict[str, np.ndarray]:
        """Per-coin 24 h base and notional volume and the price 24 h ago (vectorised)."""
        k_now = self.bar_index(now_ms)
        k_from = max(0, self.bar_index(now_ms - DAY_MS) + 1)
        _, _, _, c, v = self.series.bars(k_from, k_now + 1)
        frac = (now_ms - self.bar_open(k_now)) / self.interval_ms
        weights = np.ones(len(v))
        if len(weights):
            weights[-1] = frac
        base = (v * weights[:, None]).sum(axis=0)
        ntl = (v * c * weights[:, None]).sum(axis=0)
        k_prev = max(0, self.bar_index(now_ms - DAY_MS))
        prev_close = self.series.bar(k_prev)[0] if k_prev == 0 else self.series.bar(k_prev - 1)[3]
        return {"base": base, "ntl": ntl, "prev": prev_close}
