"""IndicatorSet: declaration checks, composition, and the incremental state's guards."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from strategies.sdk.builtin.mei_indicators import mei_alpha_v1_indicators
from strategies.sdk.errors import IndicatorDeclarationError
from strategies.sdk.indicator_set import IndicatorSet, IndicatorState
from strategies.sdk.library import Atr, Bollinger, Columns, Ema, Indicator, Kernel, Sma
from tests.unit.sdk_data import CANDLE_FILES, bit_mismatches, candle_tuples, load_candles


@pytest.mark.parametrize(
    ("specs", "match"),
    [
        ([Sma(name="a", window=3), Ema(name="a", window=3)], "already exists"),
        ([Sma(name="Close", window=3)], "already exists"),
        ([Sma(name="timestamp", window=3)], "already exists"),
        ([Bollinger(name="bb"), Sma(name="bb_mid", window=2)], "already exists"),
        ([Sma(name="avg", source="atr", window=3), Atr(name="atr")], "neither a price column"),
        ([Sma(name="avg", source="nope", window=3)], "neither a price column"),
        (["Sma(20)"], "not a library indicator"),
    ],
)
def test_indicator_set_bad_declarations_are_refused(specs: list[object], match: str) -> None:
    with pytest.raises(IndicatorDeclarationError, match=match):
        IndicatorSet(specs)  # type: ignore[arg-type]


def test_indicator_set_composition_is_bit_identical_on_real_candles() -> None:
    specs = [Atr(name="atr"), Sma(name="avg_atr", source="atr", window=50), Bollinger(name="bb"),
             Ema(name="ema_of_width", source="bb_width", window=10)]
    iset = IndicatorSet(specs)
    assert iset.columns == ("atr", "avg_atr", "bb_high", "bb_mid", "bb_low", "bb_width", "ema_of_width")
    df = load_candles(CANDLE_FILES[0])
    frame = iset.batch(df)
    state = iset.incremental(keep_rows=3)
    rows = [dict(state.update(*c)) for c in candle_tuples(df)]
    for col in iset.columns:
        assert not bit_mismatches(frame[col].to_numpy(), np.array([r[col] for r in rows]))
    assert len(state.rows()) == 3 and state.rows()[-1]["timestamp"] == int(df["timestamp"].iloc[-1])
    assert state.bars == len(df) and state.last_t == int(df["timestamp"].iloc[-1])


def test_indicator_set_batch_keeps_input_and_names_missing_column() -> None:
    df = pd.DataFrame({"timestamp": [1, 2], "Open": [1.0, 2.0], "High": [1.0, 2.0], "Low": [1.0, 2.0],
                       "Close": [1.0, 2.0], "Volume": [1.0, 2.0]})
    out = IndicatorSet([Sma(name="s", window=2)]).batch(df)
    assert list(df.columns) == ["timestamp", "Open", "High", "Low", "Close", "Volume"]
    assert math.isnan(out["s"][0]) and out["s"][1] == 1.5
    with pytest.raises(KeyError, match="Volume"):
        IndicatorSet([]).batch(df.drop(columns=["Volume"]))


def test_indicator_state_refuses_replayed_or_out_of_order_candle() -> None:
    state = IndicatorSet([Sma(name="s", window=2)]).incremental(keep_rows=2)
    state.update(100, 1.0, 1.0, 1.0, 1.0, 1.0)
    for t in (100, 99):
        with pytest.raises(ValueError, match="not after"):
            state.update(t, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert state.bars == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_indicator_state_refuses_non_finite_price(bad: float) -> None:
    state = IndicatorSet([]).incremental(keep_rows=1)
    with pytest.raises(ValueError, match="Close is not finite"):
        state.update(1, 1.0, 1.0, 1.0, bad, 1.0)
    assert state.bars == 0


@pytest.mark.parametrize("keep", [0, -1, True])
def test_indicator_state_keep_rows_must_be_positive(keep: object) -> None:
    with pytest.raises(ValueError, match="keep_rows"):
        IndicatorSet([]).incremental(keep_rows=keep)  # type: ignore[arg-type]


CandleTuple = tuple[int, float, float, float, float, float]


def _mei_state(n: int) -> tuple[IndicatorSet, IndicatorState, list[CandleTuple]]:
    iset = IndicatorSet(mei_alpha_v1_indicators())
    candles = candle_tuples(load_candles(CANDLE_FILES[2]))
    state = iset.incremental(keep_rows=4)
    for c in candles[:n]:
        state.update(*c)
    return iset, state, candles


def test_indicator_state_checkpoint_round_trips_a_whole_strategy_set() -> None:
    iset, state, candles = _mei_state(3000)
    restored = iset.restore(json.loads(json.dumps(state.to_state())), keep_rows=4)
    assert restored.rows() == state.rows() and restored.last_t == state.last_t
    for c in candles[3000:3500]:
        a, b = state.update(*c), restored.update(*c)
        assert list(a) == list(b)
        assert not bit_mismatches(np.array(list(a.values()), dtype=float),
                                  np.array(list(b.values()), dtype=float))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: s.update(version=99), "version"),
        (lambda s: s.update(specs=s["specs"][:-1]), "other declarations"),
        (lambda s: s.update(i=s["i"][:-1]), "truncated"),
        (lambda s: s.update(f=s["f"][:-12]), "truncated|corrupt"),
        (lambda s: s.update(i=[*s["i"], 7]), "trailing"),
        (lambda s: s.pop("bars"), "corrupt"),
        (lambda s: s.update(f="not base64!"), "corrupt"),
    ],
)
def test_indicator_state_restore_refuses_a_bad_checkpoint(mutate: Callable[[dict[str, Any]], object],
                                                          match: str) -> None:
    iset, state, _ = _mei_state(300)
    checkpoint = state.to_state()
    mutate(checkpoint)
    with pytest.raises(ValueError, match=match):
        iset.restore(checkpoint, keep_rows=4)


class _PlainKernel:
    def push(self, row: Mapping[str, float]) -> tuple[float, ...]:
        return (row["Close"],)


@dataclass(frozen=True, kw_only=True, slots=True)
class _UserIndicator(Indicator):
    @property
    def inputs(self) -> tuple[str, ...]:
        return ("Close",)

    def window_fields(self) -> tuple[str, ...]:
        return ()

    def kernel(self) -> Kernel:
        return _PlainKernel()

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        return (np.asarray(cols["Close"], dtype=float),)

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="u"),)


def test_indicator_state_with_a_user_kernel_cannot_be_checkpointed() -> None:
    state = IndicatorSet([_UserIndicator(name="u")]).incremental(keep_rows=1)
    state.update(1, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="cannot be checkpointed"):
        state.to_state()
