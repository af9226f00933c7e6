"""Checkpoint round trips: to_state -> strict JSON -> from_state, then continuing, is bit-identical
to never stopping; plus the update contract (ordering, recent rows) and the state size budget.
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.incremental import RECENT_ROWS_KEPT, ROW_KEYS, IncrementalIndicators
from strategies.indicator_params import INDICATOR_COLUMNS, IndicatorParams
from tests.fixtures.data_files import ohlcv_path
from tests.unit.test_indicators_oracle import load_ohlcv
from tests.unit.test_indicators_properties import DEFAULT, ONES, SMALL, candle_frames

STATE_BUDGET_BYTES = 64 * 1024


def rows_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Bit-level row equality (NaN equals NaN, -0.0 differs from 0.0)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif type(x) is not type(y) or x != y or math.copysign(1, x) != math.copysign(1, y):
            return False
    return True


def checkpoint(inc: IncrementalIndicators, params: IndicatorParams) -> IncrementalIndicators:
    text = json.dumps(inc.to_state(), allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    return IncrementalIndicators.from_state(json.loads(text), params)


def candles(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [(int(r[0]), *r[1:]) for r in df.itertuples(index=False)]


@settings(max_examples=40, deadline=None)
@given(candle_frames(max_len=240), st.sampled_from([DEFAULT, SMALL, ONES]), st.data())
def test_restore_then_continue_is_bit_identical(
    df: pd.DataFrame, params: IndicatorParams, data: st.DataObject
) -> None:
    bars = candles(df)
    splits = set(data.draw(st.lists(st.integers(min_value=0, max_value=len(bars)), max_size=6)))
    straight = IncrementalIndicators(params)
    expected = [straight.update(*bar) for bar in bars]
    resumed = IncrementalIndicators(params)
    got = []
    for i, bar in enumerate(bars):
        if i in splits:
            before = resumed.recent_rows(RECENT_ROWS_KEPT)
            resumed = checkpoint(resumed, params)
            assert all(rows_equal(a, b) for a, b in zip(before, resumed.recent_rows(), strict=True))
        got.append(resumed.update(*bar))
    assert all(rows_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert resumed.bars == straight.bars == len(bars)
    assert resumed.last_t == straight.last_t
    assert resumed.to_state() == straight.to_state()


def test_update_rejects_repeated_or_older_candle() -> None:
    inc = IncrementalIndicators()
    inc.update(1_000, 1.0, 1.0, 1.0, 1.0, 1.0)
    before = inc.to_state()
    for t in (1_000, 999):
        with pytest.raises(ValueError, match="not after the last applied candle"):
            inc.update(t, 2.0, 2.0, 2.0, 2.0, 2.0)
    assert inc.to_state() == before and inc.bars == 1 and inc.last_t == 1_000


def test_recent_rows_are_the_last_rows_oldest_first() -> None:
    inc = IncrementalIndicators(SMALL)
    rows = [inc.update(60_000 * i, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0) for i in range(7)]
    assert [r["timestamp"] for r in inc.recent_rows(3)] == [r["timestamp"] for r in rows[-3:]]
    assert all(rows_equal(a, b) for a, b in zip(inc.recent_rows(), rows[-RECENT_ROWS_KEPT:], strict=True))
    assert inc.recent_rows(0) == []
    inc.recent_rows(1)[0]["Close"] = -1.0  # callers get copies
    assert inc.recent_rows(1)[0]["Close"] == rows[-1]["Close"]
    with pytest.raises(ValueError):
        inc.recent_rows(RECENT_ROWS_KEPT + 1)
    assert tuple(rows[-1]) == ROW_KEYS and isinstance(rows[-1]["timestamp"], int)
    assert all(type(rows[-1][k]) is float for k in ROW_KEYS[1:])


def test_from_state_rejects_other_params_or_version() -> None:
    inc = IncrementalIndicators(DEFAULT)
    inc.update(0, 1.0, 1.0, 1.0, 1.0, 1.0)
    state = inc.to_state()
    with pytest.raises(ValueError, match="built with"):
        IncrementalIndicators.from_state(state, SMALL)
    with pytest.raises(ValueError, match="version"):
        IncrementalIndicators.from_state({**state, "version": 999}, DEFAULT)


@pytest.mark.parametrize(
    ("field", "mutate"),
    [
        ("i", lambda ints: ints[:-1]),  # truncated counts
        ("i", lambda ints: [*ints, 0]),  # trailing count
        ("f", lambda f: f[:-12]),  # truncated float block
        ("f", lambda f: f + "AAAAAAAAAAA="),  # a trailing double
        ("f", lambda f: "not base64!"),
    ],
    ids=["ints-short", "ints-long", "floats-short", "floats-long", "floats-garbage"],
)
def test_from_state_rejects_corrupt_state(field: str, mutate: Any) -> None:
    state = _small_state()
    with pytest.raises(ValueError):
        IncrementalIndicators.from_state({**state, field: mutate(state[field])}, SMALL)


def _small_state() -> dict[str, Any]:
    inc = IncrementalIndicators(SMALL)
    for i in range(30):
        inc.update(60_000 * i, 1.0 + i % 7, 2.0 + i % 7, 0.5, 1.5 + i % 5, float(i))
    return inc.to_state()


@pytest.mark.parametrize("key", ["f", "i", "params", "bars", "last_t"])
def test_from_state_missing_key_is_a_value_error(key: str) -> None:
    state = _small_state()
    del state[key]
    with pytest.raises(ValueError):
        IncrementalIndicators.from_state(state, SMALL)


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Approximate live size in bytes: the object plus everything it references, once each."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | deque | set):
        size += sum(deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, s), seen) for s in obj.__slots__ if hasattr(obj, s))
    return size


def test_state_and_live_object_fit_the_per_symbol_budget() -> None:
    df = load_ohlcv(ohlcv_path("XRP_USDT_USDT-5m-futures"))
    inc = IncrementalIndicators(DEFAULT)
    for bar in candles(df):
        inc.update(*bar)
    state_bytes = len(json.dumps(inc.to_state(), allow_nan=False, separators=(",", ":")))
    assert state_bytes <= STATE_BUDGET_BYTES
    assert deep_size(inc) <= STATE_BUDGET_BYTES
    assert np.isfinite([inc.recent_rows(1)[0][c] for c in INDICATOR_COLUMNS]).all()
