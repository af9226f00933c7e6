"""Every library indicator: incremental == batch, bit for bit, on the shipped real candles.

Parametrized from `strategies.sdk.library.LIBRARY` and each entry's `examples()`, so an indicator
added to the library without an exact incremental/batch pair fails here.
"""

from __future__ import annotations

import inspect
import json
import sys

import numpy as np
import pandas as pd
import pytest
import ta

from strategies.sdk import library
from strategies.sdk.errors import IndicatorDeclarationError
from strategies.sdk.indicator_set import IndicatorSet
from strategies.sdk.library import LIBRARY, Bollinger, Donchian, Indicator, Sma, Stochastic
from tests.unit.sdk_data import CANDLE_FILES, bit_mismatches, candle_tuples, load_candles

CASES = [spec for cls in LIBRARY.values() for spec in cls.examples()]


@pytest.fixture(scope="module", params=CANDLE_FILES, ids=[p.stem for p in CANDLE_FILES])
def candles(request: pytest.FixtureRequest) -> pd.DataFrame:
    return load_candles(request.param)


def _concrete_subclasses(cls: type) -> set[type]:
    out: set[type] = set()
    for sub in cls.__subclasses__():
        if not inspect.isabstract(sub):
            out.add(sub)
        out |= _concrete_subclasses(sub)
    return out


def test_library_lists_every_concrete_indicator_class() -> None:
    # slots=True dataclasses leave their pre-slots class behind in __subclasses__: keep the live ones
    defined = {c for c in _concrete_subclasses(Indicator)
               if c.__module__.startswith(library.__name__)
               and getattr(sys.modules[c.__module__], c.__name__, None) is c}
    assert defined == set(LIBRARY.values())


@pytest.mark.parametrize("cls", list(LIBRARY.values()), ids=list(LIBRARY))
def test_library_indicator_has_examples_of_its_own_class(cls: type[Indicator]) -> None:
    examples = cls.examples()
    assert examples and all(type(e) is cls for e in examples)


def test_candle_data_is_shipped() -> None:
    assert len(CANDLE_FILES) >= 7


@pytest.mark.parametrize("spec", CASES, ids=[repr(s) for s in CASES])
def test_library_incremental_is_bit_identical_to_batch(spec: Indicator, candles: pd.DataFrame) -> None:
    cols = {c: candles[c].to_numpy(dtype=float) for c in library.PRICE_COLUMNS}
    batch = spec.batch(cols)
    kernel = spec.kernel()
    pushed = [kernel.push(dict(zip(("timestamp", *library.PRICE_COLUMNS), row, strict=True)))
              for row in candle_tuples(candles)]
    assert len(batch) == len(spec.outputs)
    for j, name in enumerate(spec.outputs):
        inc = np.array([row[j] for row in pushed], dtype=float)
        bad = bit_mismatches(np.asarray(batch[j], dtype=float), inc)
        assert not bad, f"{name}: {len(bad)} rows differ, first at bar {bad[0]}"
        assert np.isfinite(inc).sum() > len(inc) // 2, f"{name}: mostly undefined, the check proves little"


def test_donchian_matches_ta(candles: pd.DataFrame) -> None:
    dc = Donchian(name="dc", window=20).batch({c: candles[c].to_numpy() for c in ("High", "Low")})
    ref = ta.volatility.DonchianChannel(candles["High"], candles["Low"], candles["Close"], window=20)
    assert not bit_mismatches(dc[0], ref.donchian_channel_hband().to_numpy())
    assert not bit_mismatches(dc[1], ref.donchian_channel_lband().to_numpy())


def test_stochastic_matches_ta(candles: pd.DataFrame) -> None:
    cols = {c: candles[c].to_numpy() for c in ("High", "Low", "Close")}
    k, d = Stochastic(name="st", window=14, smooth_d=3).batch(cols)
    ref = ta.momentum.StochasticOscillator(candles["High"], candles["Low"], candles["Close"], 14, 3)
    np.testing.assert_allclose(k, ref.stoch().to_numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(d, ref.stoch_signal().to_numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "20"])
def test_indicator_window_not_a_positive_int_is_refused(bad: object) -> None:
    with pytest.raises(IndicatorDeclarationError, match="window"):
        Sma(name="s", window=bad)  # type: ignore[arg-type]


def test_indicator_name_must_be_an_identifier() -> None:
    with pytest.raises(IndicatorDeclarationError, match="identifier"):
        Sma(name="my sma", window=3)


@pytest.mark.parametrize("dev", [0, -1.0, float("nan"), "2"])
def test_bollinger_dev_must_be_positive(dev: object) -> None:
    with pytest.raises(IndicatorDeclarationError, match="dev"):
        Bollinger(name="bb", dev=dev)  # type: ignore[arg-type]


def test_declarations_are_hashable_values() -> None:
    assert Sma(name="a", window=5) == Sma(name="a", window=5)
    assert len({Sma(name="a", window=5), Sma(name="a", window=5), Sma(name="a", window=6)}) == 2


@pytest.mark.parametrize("spec", CASES, ids=[repr(s) for s in CASES])
def test_library_checkpoint_restores_bit_exact_at_any_bar(spec: Indicator) -> None:
    candles = candle_tuples(load_candles(CANDLE_FILES[1]))[:600]
    iset = IndicatorSet([spec])
    straight = iset.incremental(keep_rows=2)
    expected = [dict(straight.update(*c)) for c in candles]
    for cut in (0, 1, 2, 13, 27, 250):
        state = iset.incremental(keep_rows=2)
        for c in candles[:cut]:
            state.update(*c)
        restored = iset.restore(json.loads(json.dumps(state.to_state())), keep_rows=2)
        assert restored.bars == cut and [r["timestamp"] for r in restored.rows()] == [
            r["timestamp"] for r in expected[max(0, cut - 2):cut]]
        resumed = [dict(restored.update(*c)) for c in candles[cut:]]
        for col in spec.outputs:
            bad = bit_mismatches(np.array([r[col] for r in expected[cut:]]),
                                 np.array([r[col] for r in resumed]))
            assert not bad, f"{col} after a checkpoint at bar {cut}: first difference at bar {cut + bad[0]}"
