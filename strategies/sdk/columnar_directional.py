"""Columnar twins of `strategies.kernels._Directional`: ta 0.11's ATR and ADX/+DI/-DI for many rows.

Same statements as the per-row kernel (see `strategies.sdk.columnar_kernels` for the exactness
rules). The warm-up seeds are kept as fixed-width arrays per row and summed with `math.fsum`
per row on the one bar that seeds them, exactly as the kernel does. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from strategies.sdk.columnar_kernels import I64, NAN, ColKernel, true_range


def _fsum_rows(seed: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    return np.array([math.fsum(seed[r, :n].tolist()) for r in rows], dtype=float)


def atr_step(a: dict[str, np.ndarray], idx: np.ndarray, i: np.ndarray, tr: np.ndarray, n: int) -> np.ndarray:
    """`_Directional._push_atr` for rows idx at row numbers i; returns the ATR (0.0 in the warm-up)."""
    atr = a["atr"][idx]
    seeding = i < n
    a["atr_seed"][idx[seeding], i[seeding]] = tr[seeding]
    atr = np.where(seeding, atr, (atr * (n - 1) + tr) / float(n))
    done = np.flatnonzero(i == n - 1)
    if len(done):
        atr[done] = _fsum_rows(a["atr_seed"], idx[done], n) / n
    a["atr"][idx] = atr
    return atr


def _seed_list(seed: np.ndarray, r: int, length: int) -> list[float]:
    return [float(x) for x in seed[r, : max(0, length)]]


def _load_seed(seed: np.ndarray, r: int, values: list[float]) -> None:
    if len(values) > seed.shape[1]:
        raise ValueError(f"warm-up seed of {len(values)} values exceeds the window {seed.shape[1]}")
    seed[r, :] = NAN
    seed[r, : len(values)] = values


class ColAtr(ColKernel):
    """The library `Atr` kernel (`_AtrKernel`) for many rows."""

    FIELDS = (("i", 0, I64), ("prev_close", NAN, float), ("atr", 0.0, float))

    def __init__(self, window: int, cap: int) -> None:
        super().__init__(cap)
        self.n = window
        self._ring("atr_seed", cap, window)

    def push(self, idx: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
        a = self.a
        i = a["i"][idx]
        atr = atr_step(a, idx, i, true_range(i, h, lo, a["prev_close"][idx]), self.n)
        a["i"][idx] = i + 1
        a["prev_close"][idx] = c
        return atr

    def export(self, r: int, kernel: Any) -> None:
        a, n = self.a, self.n
        count = int(a["i"][r])
        kernel._i, kernel._prev_close = count, float(a["prev_close"][r])
        kernel._impl.atr = float(a["atr"][r])
        kernel._impl.atr_seed = _seed_list(a["atr_seed"], r, count) if count < n else []

    def load(self, r: int, kernel: Any) -> None:
        a = self.a
        a["i"][r], a["prev_close"][r], a["atr"][r] = kernel._i, kernel._prev_close, kernel._impl.atr
        _load_seed(a["atr_seed"], r, kernel._impl.atr_seed)


class ColDirectional(ColKernel):
    """The library `Adx` kernel (`_AdxKernel` over `_Directional`) for many rows."""

    FIELDS = (("i", 0, I64), ("prev_high", NAN, float), ("prev_low", NAN, float), ("prev_close", NAN, float),
              ("atr", 0.0, float), ("tr_sum", 0.0, float), ("dm_pos", 0.0, float), ("dm_neg", 0.0, float),
              ("adx", 0.0, float))
    SEEDS = ("atr_seed", "seed_tr", "seed_pos", "seed_neg", "dx_seed")

    def __init__(self, window: int, cap: int) -> None:
        super().__init__(cap)
        self.n = window
        for name in self.SEEDS:
            self._ring(name, cap, window)

    def push(self, idx: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (ADX, +DI, -DI) per row (the ATR is kept in the state, as the kernel does)."""
        a = self.a
        i = a["i"][idx]
        tr = true_range(i, h, lo, a["prev_close"][idx])
        atr_step(a, idx, i, tr, self.n)
        up = h - a["prev_high"][idx]
        down = a["prev_low"][idx] - lo
        with np.errstate(invalid="ignore"):
            pdm = np.where((up > down) & (up > 0), up, 0.0)
            ndm = np.where((down > up) & (down > 0), down, 0.0)
        out = self._adx(idx, i, tr, pdm, ndm)
        a["prev_high"][idx], a["prev_low"][idx], a["prev_close"][idx] = h, lo, c
        a["i"][idx] = i + 1
        return out

    def _smooth(self, idx: np.ndarray, i: np.ndarray, tr: np.ndarray, pdm: np.ndarray, ndm: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Wilder sums of TR, +DM, -DM: seeded (fsum) on row n, smoothed after."""
        a, n = self.a, self.n
        live = i > 0
        seeding = live & (i <= n)
        rows, col = idx[seeding], i[seeding] - 1
        for name, values in (("seed_tr", tr), ("seed_pos", pdm), ("seed_neg", ndm)):
            a[name][rows, col] = values[seeding]
        steady = live & (i > n)
        sums = []
        parts = (("tr_sum", tr, "seed_tr"), ("dm_pos", pdm, "seed_pos"), ("dm_neg", ndm, "seed_neg"))
        for name, add, seed in parts:
            old = a[name][idx]
            new = np.where(steady, old - old / float(n) + add, old)
            done = np.flatnonzero(live & (i == n))
            if len(done):
                new[done] = _fsum_rows(a[seed], idx[done], n)
            a[name][idx] = new
            sums.append(new)
        return sums[0], sums[1], sums[2]

    def _adx(self, idx: np.ndarray, i: np.ndarray, tr: np.ndarray, pdm: np.ndarray, ndm: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, n = self.a, self.n
        trs, dm_pos, dm_neg = self._smooth(idx, i, tr, pdm, ndm)
        active = (i > 0) & (i >= n)
        with np.errstate(all="ignore"):
            dip = np.where(trs != 0, 100 * (dm_pos / trs), 0.0)
            din = np.where(trs != 0, 100 * (dm_neg / trs), 0.0)
            total = dip + din
            dx = np.where(total != 0, 100 * np.abs((dip - din) / total), 0.0)
        adx = a["adx"][idx]
        seeding = active & (i < 2 * n)
        a["dx_seed"][idx[seeding], i[seeding] - n] = dx[seeding]
        adx = np.where(active & (i >= 2 * n), (adx * (n - 1) + dx) / float(n), adx)
        done = np.flatnonzero(active & (i == 2 * n - 1))
        if len(done):
            adx[done] = _fsum_rows(a["dx_seed"], idx[done], n) / n
        a["adx"][idx] = adx
        shown = active & (i != n)  # ta leaves +DI/-DI at 0.0 on the seed row
        return np.where(active, adx, 0.0), np.where(shown, dip, 0.0), np.where(shown, din, 0.0)

    def export(self, r: int, kernel: Any) -> None:
        a, n, impl = self.a, self.n, kernel._impl
        count = int(a["i"][r])
        kernel._i = count
        for name in ("prev_high", "prev_low", "prev_close", "atr", "tr_sum", "dm_pos", "dm_neg", "adx"):
            setattr(impl, name, float(a[name][r]))
        impl.atr_seed = _seed_list(a["atr_seed"], r, count) if count < n else []
        for name in ("seed_tr", "seed_pos", "seed_neg"):
            setattr(impl, name, _seed_list(a[name], r, count - 1) if count <= n else [])
        impl.dx_seed = _seed_list(a["dx_seed"], r, count - n) if count < 2 * n else []

    def load(self, r: int, kernel: Any) -> None:
        a, impl = self.a, kernel._impl
        a["i"][r] = kernel._i
        for name in ("prev_high", "prev_low", "prev_close", "atr", "tr_sum", "dm_pos", "dm_neg", "adx"):
            a[name][r] = getattr(impl, name)
        for name in self.SEEDS:
            _load_seed(a[name], r, list(getattr(impl, name)))
