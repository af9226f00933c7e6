"""bench.tick's parity check names WHICH (symbol, tick) disagreed with the batch strategy, and how.

Why: a parity failure seen once under load (a count only) could not be told apart as a shard bug
(one symbol, every tick after some bar) or a bench race (one tick, many symbols). The check runs
here on real synthetic candles: the batch decisions themselves stand in for the shards' records,
one of them altered.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from bench.tick import MISMATCH_EXAMPLES, _parity
from bench.universe import series, symbol_names
from strategies.config import default_config
from strategies.enums import Signal
from strategies.mei_alpha_v1 import analyze_series, btc_bullish_series

WARM, TICKS = 120, 3


def _history(n: int) -> dict:
    hist = {s: series(i, WARM + TICKS) for i, s in enumerate(symbol_names(n))}
    hist["BTC"] = series(0, WARM + TICKS, anchor=True)
    return hist


def _batch_records(hist: dict, symbols: list[str]) -> list[dict]:
    """Per tick, each symbol's batch decision (what a correct shard reports)."""
    bullish = btc_bullish_series(pd.Series([c.c for c in hist["BTC"]]))
    per_symbol = {}
    for sym in symbols:
        candles = hist[sym]
        df = pd.DataFrame({"Open": [c.o for c in candles], "High": [c.h for c in candles],
                           "Low": [c.l for c in candles], "Close": [c.c for c in candles],
                           "Volume": [c.v for c in candles]})
        per_symbol[sym] = analyze_series(df, sym, default_config(sym), bullish)
    return [{s: per_symbol[s][WARM + k] for s in symbols} for k in range(TICKS)]


def test_parity_names_the_mismatched_symbol_and_tick() -> None:
    hist = _history(3)
    symbols = symbol_names(3)
    records = _batch_records(hist, symbols)
    examples: list = []
    assert _parity(hist, symbols, WARM, records, examples) == (3 * TICKS, 0) and examples == []

    good = records[1][symbols[2]]
    flipped = Signal.SELL if good.signal is not Signal.SELL else Signal.BUY
    records[1][symbols[2]] = dataclasses.replace(good, signal=flipped, score=good.score + 1.0)
    assert _parity(hist, symbols, WARM, records, examples) == (3 * TICKS, 1)
    (example,) = examples
    assert (example["symbol"], example["tick"], example["bar"]) == (symbols[2], 1, WARM + 1)
    assert example["bar_t"] == hist[symbols[2]][WARM + 1].t
    assert example["shard"]["signal"] == flipped.value and example["batch"]["signal"] == good.signal.value
    assert example["shard"]["score"] == float(good.score) + 1.0
    assert example["batch"]["score"] == float(good.score)


def test_parity_examples_are_capped() -> None:
    hist = _history(MISMATCH_EXAMPLES + 5)
    symbols = symbol_names(MISMATCH_EXAMPLES + 5)
    records = [{s: dataclasses.replace(d, score=d.score + 1.0) for s, d in r.items()}
               for r in _batch_records(hist, symbols)]
    examples: list = []
    assert _parity(hist, symbols, WARM, records, examples) == (len(symbols) * TICKS, len(symbols) * TICKS)
    assert len(examples) == MISMATCH_EXAMPLES
