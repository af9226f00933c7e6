"""The incremental engine's streaming kernels reproduce pandas' rolling/ewm results bit for bit.

Inputs are adversarial on purpose: NaN gaps, signed zeros, negative values, long constant runs
(pandas' same-value shortcut), huge spikes next to tiny values (roll_var's cancellation recompute
and roll_mean's sign clamps) and windows of 1 (pandas re-seeds every window).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.incremental import _div, _Ewm, _RollMean, _RollMinMax, _RollVar

values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 1.0, 1.0, 1e-9, 2.5, -3.0, 1e12, math.nan]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
series = st.lists(values, min_size=1, max_size=80)
windows = st.integers(min_value=1, max_value=12)


def same(a: list[float], b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a, dtype=float), b, equal_nan=True)


@settings(max_examples=150, deadline=None)
@given(series, windows)
def test_roll_mean_matches_pandas_bit_for_bit(xs: list[float], window: int) -> None:
    kernel = _RollMean(window)
    got = [kernel.push(x) for x in xs]
    assert same(got, pd.Series(xs, dtype=float).rolling(window).mean().to_numpy())


@settings(max_examples=150, deadline=None)
@given(series, windows, st.sampled_from([0, 1]))
def test_roll_var_matches_pandas_bit_for_bit(xs: list[float], window: int, ddof: int) -> None:
    kernel = _RollVar(window, ddof)
    got = [kernel.push(x) for x in xs]
    assert same(got, pd.Series(xs, dtype=float).rolling(window).var(ddof=ddof).to_numpy())


@settings(max_examples=100, deadline=None)
@given(series, windows)
def test_roll_min_max_matches_pandas(xs: list[float], window: int) -> None:
    kernel = _RollMinMax(window)
    got = [kernel.push(x) for x in xs]
    s = pd.Series(xs, dtype=float).rolling(window)
    assert same([g[0] for g in got], s.min().to_numpy())
    assert same([g[1] for g in got], s.max().to_numpy())


@settings(max_examples=150, deadline=None)
@given(series, st.integers(min_value=1, max_value=60), st.booleans())
def test_ewm_matches_pandas_span_and_alpha_forms(xs: list[float], window: int, by_alpha: bool) -> None:
    s = pd.Series(xs, dtype=float)
    if by_alpha:
        com = (1 - 1 / window) / (1 / window)
        expected = s.ewm(alpha=1 / window, min_periods=window, adjust=False).mean()
    else:
        com = (window - 1) / 2
        expected = s.ewm(span=window, min_periods=window, adjust=False).mean()
    kernel = _Ewm(float(com), window)
    assert same([kernel.push(x) for x in xs], expected.to_numpy())


def test_roll_var_recomputes_after_cancellation_like_pandas() -> None:
    xs = [1e9, *([1.0 + 1e-7 * (i % 3) for i in range(40)])]
    kernel = _RollVar(20, 0)
    got = [kernel.push(x) for x in xs]
    expected = pd.Series(xs).rolling(20).var(ddof=0).to_numpy()
    assert same(got, expected)
    assert 0 < got[-1] < 1e-13  # the tiny variance survives, not cancellation noise


def test_roll_mean_of_constant_run_is_exactly_the_constant() -> None:
    kernel = _RollMean(6)
    xs = [777000.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]  # the running sum alone gives 0.10000000000000002
    got = [kernel.push(x) for x in xs]
    assert got[-1] == 0.1  # pandas' same-value shortcut
    assert same(got, pd.Series(xs).rolling(6).mean().to_numpy())


def test_div_follows_ieee_like_numpy() -> None:
    with np.errstate(all="ignore"):
        for a, b in [(1.0, 0.0), (-1.0, 0.0), (1.0, -0.0), (0.0, 0.0), (math.nan, 0.0), (3.0, 2.0)]:
            assert same([_div(a, b)], np.array([np.float64(a) / np.float64(b)]))
