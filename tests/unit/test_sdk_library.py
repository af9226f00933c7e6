"""Every library indicator: incremental == batch == columnar, bit for bit, on the shipped real candles.

Parametrized from `strategies.sdk.library.LIBRARY` and each entry's `examples()`, so an indicator
added to the library without an exact incremental/batch pair, or without an exact columnar twin
(`strategies.sdk.columnar_library`, what the shards run for many rows at once), fails here. The
columnar twin runs every vendored file of tests/data/ohlcv as one row, with staggered starts so
each step moves a different subset of rows, and its rows export/load the per-row checkpoint.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ta

from strategies.sdk import library
from strategies.sdk.columnar import ColumnarSet
from strategies.sdk.columnar_library import columnar, has_columnar
from strategies.sdk.errors import IndicatorDeclarationError
from strategies.sdk.indicator_set import IndicatorSet
from strategies.sdk.library import LIBRARY, Bollinger, Donchian, Indicator, Sma, Stochastic
from tests.fixtures.data_files import ohlcv_files
from tests.unit.columnar_data import Rows, vendored_rows
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


# --- the columnar twins (issue 12): every library indicator for many rows at once, bit for bit ---------


@pytest.fixture(scope="module")
def vendored() -> Rows:
    return vendored_rows()


def _columnar_outputs(spec: Indicator, rows: Rows, twin: Any = None) -> list[list[np.ndarray]]:
    """Run the columnar twin over every vendored file at once (one row each, staggered starts)."""
    twin = twin if twin is not None else columnar(spec, len(rows.names))
    out = [[np.full(len(c["Close"]), np.nan) for _ in spec.outputs] for c in rows.cols]
    for idx, bars, (_, o, h, lo, c, v) in rows.walk():
        results = twin.push(idx, dict(zip(library.PRICE_COLUMNS, (o, h, lo, c, v), strict=True)))
        for j, values in enumerate(results):
            for r, b, x in zip(idx.tolist(), bars.tolist(), values.tolist(), strict=True):
                out[r][j][b] = x
    return out


@pytest.mark.parametrize("spec", CASES, ids=[repr(s) for s in CASES])
def test_library_columnar_is_bit_identical_to_batch(spec: Indicator, vendored: Rows) -> None:
    outputs = _columnar_outputs(spec, vendored)
    for r, (name, cols) in enumerate(zip(vendored.names, vendored.cols, strict=True)):
        batch = spec.batch(cols)
        for j, col in enumerate(spec.outputs):
            bad = bit_mismatches(np.asarray(batch[j], dtype=float), outputs[r][j])
            assert not bad, f"{name} {col}: {len(bad)} bars differ, first at bar {bad[0]}"


def test_every_library_indicator_has_a_columnar_twin() -> None:
    assert all(has_columnar(spec) for spec in CASES)


def test_columnar_parity_test_catches_a_drifting_twin(vendored: Rows) -> None:
    spec = Sma(name="sma", window=20)
    twin = columnar(spec, len(vendored.names))
    push = twin.impl.push
    twin.impl.push = lambda idx, val: push(idx, val) * (1.0 + 2.0**-52)  # one ulp: still caught
    outputs = _columnar_outputs(spec, vendored, twin)
    assert bit_mismatches(spec.batch(vendored.cols[0])[0], outputs[0][0])


@pytest.mark.parametrize("spec", CASES, ids=[repr(s) for s in CASES])
def test_library_columnar_rows_export_and_load_exactly(spec: Indicator) -> None:
    """A columnar row exports the per-row checkpoint bit for bit, and a per-row state loads into a row."""
    candles = candle_tuples(load_candles(ohlcv_files()[5]))[:400]
    iset = IndicatorSet([spec])
    straight = iset.incremental(keep_rows=2)
    cset = ColumnarSet(iset, 2, capacity=1)
    row = np.array([cset.alloc()])
    cuts = {0, 1, 2, 13, 27, 29, 250}
    for i, (t, o, h, lo, c, v) in enumerate(candles):
        if i in cuts:
            assert cset.export(0).to_state() == straight.to_state(), f"export at bar {i}"
            other = ColumnarSet(iset, 2, capacity=1)
            other.load(other.alloc(), iset.restore(straight.to_state(), 2))
            cset = other  # continue on the loaded copy: loading must be exact too
        straight.update(t, o, h, lo, c, v)
        cset.update(row, *(np.array([x]) for x in (t, o, h, lo, c, v)))
    assert cset.export(0).to_state() == straight.to_state()


@pytest.mark.parametrize("spec", CASES, ids=[repr(s) for s in CASES])
def test_library_columnar_state_of_is_the_exported_checkpoint(spec: Indicator) -> None:
    """`ColumnarSet.state_of(r)` (the shard's checkpoint path: one scratch export target reused for
    every row) equals `export(r).to_state()` and the per-row state's, for rows at different bars,
    read alternately so a field left over from the previous row would show."""
    candles = candle_tuples(load_candles(ohlcv_files()[5]))[:300]
    iset = IndicatorSet([spec])
    cset = ColumnarSet(iset, 3, capacity=2)
    rows = [cset.alloc(), cset.alloc()]
    straights = [iset.incremental(keep_rows=3), iset.incremental(keep_rows=3)]
    late = 40  # row 1 starts 40 bars later (fresh, partly filled windows, then full ones)
    for i, (t, o, h, lo, c, v) in enumerate(candles):
        for r, straight in zip(rows, straights, strict=True):
            if i % 37 == 0 or i == late + 1:
                assert cset.state_of(r) == cset.export(r).to_state() == straight.to_state(), (r, i)
        live = rows if i >= late else rows[:1]
        for r in live:
            straights[r].update(t, o, h, lo, c, v)
        cset.update(np.array(live), *(np.full(len(live), x) for x in (t, o, h, lo, c, v)))
    assert [cset.state_of(r) for r in rows] == [s.to_state() for s in straights]
