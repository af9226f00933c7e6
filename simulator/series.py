"""The simulated venue's base candles: loading CSV data, rescaling, gap filling, random-walk growth.

Owns the raw numbers the market replays. Every coin shares one time grid of base bars (bar k opens
at ``t0 + k * interval``); the arrays grow on demand with a seeded random walk, which is how
synthetic symbols are made and how replayed data continues once the file runs out. Prices are
rounded to the venue's precision (5 significant figures, at most ``6 - szDecimals`` decimals) when
they enter the series, so every candle price is a valid order price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK_BARS = 64
SYNTHETIC_MAX = 10_000
SYNTHETIC_SIGMA_PER_BAR = 0.003
MIN_SIGMA, MAX_SIGMA = 1e-4, 0.02


class SeriesError(ValueError):
    """Bad simulator data or arguments (stop at start-up)."""


@dataclass(frozen=True, kw_only=True)
class CoinInfo:
    """Static facts about one listed coin."""

    name: str
    sz_decimals: int
    max_leverage: int
    price_scale: float  # multiplier applied to the source prices (1.0 for synthetic coins)


def sz_decimals_for(px: float) -> int:
    """Pick szDecimals the way the venue's listings look: one lot is worth roughly $0.1-$1."""
    if px <= 0 or not math.isfinite(px):
        raise SeriesError(f"price must be positive and finite, got {px}")
    return max(0, min(5, math.floor(math.log10(px)) + 1))


def px_decimals(px: np.ndarray | float, sz_decimals: np.ndarray | int) -> np.ndarray:
    """Decimals allowed for a perp price: 5 significant figures, at most 6 - szDecimals, >= 0."""
    arr = np.asarray(px, dtype=np.float64)
    safe = np.where(arr > 0, arr, 1.0)
    sig = 4 - np.floor(np.log10(safe))
    return np.clip(np.minimum(sig, 6 - np.asarray(sz_decimals)), 0, None).astype(np.int64)


def round_px(px: np.ndarray, sz_decimals: np.ndarray | int) -> np.ndarray:
    """Round prices to the nearest valid venue price (vectorised)."""
    scale = np.power(10.0, px_decimals(px, sz_decimals))
    return np.round(np.asarray(px, dtype=np.float64) * scale) / scale


def price_scale_for(first_close: float) -> float:
    """The power of ten that brings a BTC-quoted price to at least 1 (prices look like USD)."""
    if first_close <= 0 or not math.isfinite(first_close):
        raise SeriesError(f"first close must be positive, got {first_close}")
    k = 0
    while first_close * 10.0**k < 1.0:
        k += 1
    return 10.0**k


class Series:
    """Base bars for all coins, arrays shaped (n_bars, n_coins), grown by a seeded random walk."""

    def __init__(
        self,
        coins: list[CoinInfo],
        bars: dict[str, np.ndarray],
        *,
        seed: int,
        sigma: np.ndarray,
        last_close: np.ndarray,
        base_volume: np.ndarray,
        stream: int = 0,
    ) -> None:
        self.coins = coins
        self._arrays = {k: np.ascontiguousarray(bars[k], dtype=np.float64) for k in "ohlcv"}
        self._n = int(bars["c"].shape[0])  # bars in use; the arrays may hold spare rows
        self._sigma = sigma
        self._last_close = last_close.astype(np.float64)
        self._base_volume = base_volume
        self._szd = np.array([c.sz_decimals for c in coins], dtype=np.int64)
        self._rng = np.random.default_rng([seed, 0x5EED, stream])

    @property
    def n_bars(self) -> int:
        return self._n

    def ensure(self, k: int) -> None:
        """Grow the series until bar index ``k`` exists (deterministic: fixed-size chunks, in order)."""
        while self.n_bars <= k:
            self._grow()

    def bars(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Views (o, h, l, c, v) of bars [start, stop) for all coins."""
        self.ensure(stop - 1)
        sl = slice(start, min(stop, self._n))
        return tuple(self._arrays[k][sl] for k in "ohlcv")

    def column(self, i: int, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Views (o, h, l, c, v) of coin ``i`` over bars [start, stop)."""
        self.ensure(stop - 1)
        sl = slice(start, min(stop, self._n))
        return tuple(self._arrays[k][sl, i] for k in "ohlcv")

    def bar(self, k: int) -> tuple[np.ndarray, ...]:
        """Arrays (o, h, l, c, v) of bar k across all coins."""
        self.ensure(k)
        if k < 0:
            raise IndexError(f"bar index {k} < 0")
        return tuple(self._arrays[k_][k] for k_ in "ohlcv")

    def shock(self, i: int, from_bar: int, factor: float) -> None:
        """Multiply coin ``i``'s prices from bar ``from_bar`` on by ``factor`` (an admin price shock);
        the random walk continues from the shifted level."""
        self.ensure(from_bar)
        rows = slice(from_bar, self._n)
        for key in "ohlc":
            self._arrays[key][rows, i] = round_px(self._arrays[key][rows, i] * factor, int(self._szd[i]))
        self._last_close[i] = self._arrays["c"][self._n - 1, i]

    def _grow(self) -> None:
        n = len(self.coins)
        z = self._rng.standard_normal((CHUNK_BARS, n))
        up = np.abs(self._rng.standard_normal((CHUNK_BARS, n)))
        down = np.abs(self._rng.standard_normal((CHUNK_BARS, n)))
        vz = self._rng.standard_normal((CHUNK_BARS, n))
        closes = self._last_close * np.exp(np.cumsum(self._sigma * z, axis=0))
        closes = round_px(closes, self._szd)
        opens = np.vstack([self._last_close[None, :], closes[:-1]])
        highs = round_px(np.maximum(opens, closes) * (1 + 0.5 * self._sigma * up), self._szd)
        lows = round_px(np.minimum(opens, closes) * (1 - 0.5 * self._sigma * down), self._szd)
        highs = np.maximum(highs, np.maximum(opens, closes))
        lows = np.minimum(lows, np.minimum(opens, closes))
        vols = np.round(self._base_volume * np.exp(0.5 * vz), 4)
        if self._n + CHUNK_BARS > self._arrays["c"].shape[0]:  # double the capacity
            capacity = max(2 * self._arrays["c"].shape[0], self._n + CHUNK_BARS)
            for key, arr in self._arrays.items():
                grown = np.zeros((capacity, n), dtype=np.float64)
                grown[: self._n] = arr[: self._n]
                self._arrays[key] = grown
        rows = slice(self._n, self._n + CHUNK_BARS)
        for key, chunk in zip("ohlcv", (opens, highs, lows, closes, vols), strict=True):
            self._arrays[key][rows] = chunk
        self._n += CHUNK_BARS
        self._last_close = closes[-1].copy()


def _empty(n: int) -> np.ndarray:
    return np.zeros((0, n), dtype=np.float64)


def synthetic_series(count: int, *, seed: int, start_index: int = 0, names: Sequence[str] | None = None,
                     stream: int = 0) -> Series:
    """``count`` seeded random-walk coins named SYN0001… (or `names`); start prices spread over
    1…1000. `stream` separates universes sharing a seed (a builder dex's coins use their own)."""
    if not 1 <= count <= SYNTHETIC_MAX:
        raise SeriesError(f"--synthetic must be in 1..{SYNTHETIC_MAX}, got {count}")
    if names is not None and len(names) != count:
        raise SeriesError(f"{len(names)} names for {count} synthetic coins")
    rng = np.random.default_rng([seed, 0x51, stream] if stream else [seed, 0x51])
    p0 = np.power(10.0, rng.uniform(0.0, 3.0, size=count))
    coins = []
    for i in range(count):
        szd = sz_decimals_for(float(p0[i]))
        name = names[i] if names is not None else f"SYN{start_index + i + 1:04d}"
        coins.append(CoinInfo(name=name, sz_decimals=szd, max_leverage=10,
                              price_scale=1.0))
    szd_arr = np.array([c.sz_decimals for c in coins], dtype=np.int64)
    bars = {k: _empty(count) for k in "ohlcv"}
    return Series(coins, bars, seed=seed, sigma=np.full(count, SYNTHETIC_SIGMA_PER_BAR),
                  last_close=round_px(p0, szd_arr), base_volume=np.round(50_000.0 / p0, 4), stream=2 + stream)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(open times ms, rows of o,h,l,c,v) of one CSV file, validated."""
    with path.open() as fh:
        header = [h.strip() for h in fh.readline().split(",")]
    missing = {"t", "o", "h", "l", "c", "v"} - set(header)
    if missing:
        raise SeriesError(f"{path}: missing columns {sorted(missing)}")
    cols = [header.index(k) for k in "tohlcv"]
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=cols, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise SeriesError(f"{path}: bad number ({e})") from e
    if table.shape[0] == 0:
        raise SeriesError(f"{path}: no rows")
    times, values = table[:, 0].astype(np.int64), table[:, 1:]
    bad = ~np.isfinite(values).all(axis=1) | (values[:, :4] <= 0).any(axis=1) | (values[:, 4] < 0)
    if bad.any():
        raise SeriesError(f"{path}:{int(np.argmax(bad)) + 2}: prices must be positive and finite")
    return times, values


def coin_from_filename(path: Path) -> tuple[str, str]:
    """``ETH_BTC-5m.csv`` → ("ETH", "5m")."""
    stem = path.name.removesuffix(".csv")
    symbol, sep, interval = stem.rpartition("-")
    if not sep or not symbol:
        raise SeriesError(f"{path.name}: expected SYMBOL-interval.csv")
    return symbol.split("_")[0], interval


def load_csv_dir(directory: Path, *, interval: str, interval_ms: int, seed: int) -> Series:
    """Load every ``SYMBOL-<interval>.csv`` in ``directory`` onto one gap-filled grid, rescaled."""
    files = sorted(p for p in directory.glob("*.csv") if coin_from_filename(p)[1] == interval)
    if not files:
        raise SeriesError(f"{directory}: no *-{interval}.csv files")
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for path in files:
        coin = coin_from_filename(path)[0]
        if coin in tables:
            raise SeriesError(f"{directory}: two files for coin {coin}")
        tables[coin] = _read_csv(path)
    t_min = min(int(times.min()) for times, _ in tables.values())
    t_max = max(int(times.max()) for times, _ in tables.values())
    grid = np.arange(t_min, t_max + 1, interval_ms, dtype=np.int64)
    n = len(tables)
    arrays = {k: np.zeros((len(grid), n)) for k in "ohlcv"}
    coins: list[CoinInfo] = []
    for j, (coin, tab) in enumerate(tables.items()):
        _fill_column(arrays, j, grid, tab)
        scale = price_scale_for(arrays["c"][0, j])
        for k in "ohlc":
            arrays[k][:, j] *= scale
        coins.append(CoinInfo(name=coin, sz_decimals=sz_decimals_for(arrays["c"][0, j]), max_leverage=20,
                              price_scale=scale))
    szd = np.array([c.sz_decimals for c in coins], dtype=np.int64)
    for k in "ohlc":
        arrays[k] = round_px(arrays[k], szd)
    arrays["h"] = np.maximum.reduce([arrays["h"], arrays["o"], arrays["c"]])
    arrays["l"] = np.minimum.reduce([arrays["l"], arrays["o"], arrays["c"]])
    log_ret = np.diff(np.log(arrays["c"]), axis=0)
    sigma = np.clip(np.std(log_ret, axis=0), MIN_SIGMA, MAX_SIGMA) if len(log_ret) else np.full(n, 0.003)
    base_volume = np.maximum(np.mean(arrays["v"], axis=0), 1.0)
    return Series(coins, arrays, seed=seed, sigma=sigma, last_close=arrays["c"][-1].copy(),
                  base_volume=base_volume, stream=1)


def _fill_column(arrays: dict[str, np.ndarray], j: int, grid: np.ndarray,
                 tab: tuple[np.ndarray, np.ndarray]) -> None:
    """Copy one coin's rows onto the grid; a missing bar is flat at the previous close with v=0
    (bars before the coin's first row are flat at its first open)."""
    times, values = tab
    step = int(grid[1] - grid[0]) if len(grid) > 1 else 1
    pos = (times - grid[0]) // step
    on_grid = (times - grid[0]) % step == 0
    pos, values = pos[on_grid], values[on_grid]
    present = np.full(len(grid), -1, dtype=np.int64)
    present[pos] = np.arange(len(pos))
    last = np.maximum.accumulate(present)  # row index of the latest bar at or before each slot
    have = present >= 0
    prev_close = np.where(last >= 0, values[np.maximum(last, 0), 3], values[np.argmin(pos), 0])
    for col, key in enumerate("ohlc"):
        arrays[key][:, j] = np.where(have, values[np.maximum(present, 0), col], prev_close)
    arrays["v"][:, j] = np.where(have, values[np.maximum(present, 0), 4], 0.0)


class MultiSeries:
    """Several series side by side (CSV coins, then synthetic ones); each grows on its own, so
    combining a short synthetic universe with long CSV data never materialises one huge matrix."""

    def __init__(self, parts: list[Series]) -> None:
        self.parts = parts
        self.coins = [c for p in parts for c in p.coins]
        names = [c.name for c in self.coins]
        if len(set(names)) != len(names):
            raise SeriesError("duplicate coin names across --data and --synthetic")
        self._offsets = np.cumsum([0] + [len(p.coins) for p in parts])

    @property
    def n_bars(self) -> int:
        return min(p.n_bars for p in self.parts)

    def ensure(self, k: int) -> None:
        for p in self.parts:
            p.ensure(k)

    def bars(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        got = [p.bars(start, stop) for p in self.parts]
        return tuple(np.hstack([g[j] for g in got]) for j in range(5))

    def bar(self, k: int) -> tuple[np.ndarray, ...]:
        got = [p.bar(k) for p in self.parts]
        return tuple(np.concatenate([g[j] for g in got]) for j in range(5))

    def column(self, i: int, start: int, stop: int) -> tuple[np.ndarray, ...]:
        j = int(np.searchsorted(self._offsets, i, side="right")) - 1
        return self.parts[j].column(i - int(self._offsets[j]), start, stop)

    def shock(self, i: int, from_bar: int, factor: float) -> None:
        j = int(np.searchsorted(self._offsets, i, side="right")) - 1
        self.parts[j].shock(i - int(self._offsets[j]), from_bar, factor)


def merge(parts: list[Series]) -> Series | MultiSeries:
    """One series for the market: the only part, or the parts side by side."""
    return parts[0] if len(parts) == 1 else MultiSeries(parts)
