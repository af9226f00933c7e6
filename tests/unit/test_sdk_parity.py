"""strategy_parity finds what it is for: a batch twin that drifts, an array form that disagrees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from strategies.sdk.builtin.breakout import DonchianBreakout
from strategies.sdk.library import Columns, Indicator, Kernel
from strategies.sdk.parity import strategy_parity
from strategies.sdk.strategy import ColumnDecisions, ColumnWindow
from tests.unit.sdk_data import CANDLE_FILES, load_candles


@dataclass(frozen=True, kw_only=True, slots=True)
class NaiveChannelHigh(Indicator):
    """A user-written indicator whose batch twin is one bar late: what parity must catch."""

    window: int = 20
    SUFFIXES = ("_high", "_low")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("High", "Low")

    def window_fields(self) -> tuple[str, ...]:
        return ("window",)

    def kernel(self) -> Kernel:
        return _Channel(self.window)

    def batch(self, cols: Columns) -> tuple[np.ndarray, ...]:
        high = pd.Series(cols["High"]).rolling(self.window).max().shift(1).to_numpy()
        low = pd.Series(cols["Low"]).rolling(self.window).min().to_numpy()
        return high, low

    @classmethod
    def examples(cls) -> tuple[Indicator, ...]:
        return (cls(name="x"),)


class _Channel:
    def __init__(self, window: int) -> None:
        self.highs: list[float] = []
        self.lows: list[float] = []
        self.window = window

    def push(self, row: dict[str, float]) -> tuple[float, ...]:
        self.highs = [*self.highs, row["High"]][-self.window:]
        self.lows = [*self.lows, row["Low"]][-self.window:]
        if len(self.highs) < self.window:
            return float("nan"), float("nan")
        return max(self.highs), min(self.lows)


class DriftingBreakout(DonchianBreakout):
    def indicators(self) -> Sequence[Indicator]:
        return (NaiveChannelHigh(name="dc", window=self.params.channel_bars), *super().indicators()[1:])


class DisagreeingBreakout(DonchianBreakout):
    def decide_columns(self, window: ColumnWindow) -> ColumnDecisions | None:
        out = super().decide_columns(window)
        assert out is not None
        return ColumnDecisions(out.signal, out.confidence, out.score * 1.0000001)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return load_candles(CANDLE_FILES[0])


def test_parity_catches_a_drifting_batch_twin(candles: pd.DataFrame) -> None:
    report = strategy_parity(DriftingBreakout.configure(), candles, "ADA")
    assert not report.ok
    assert report.max_rel_err > 0 and report.signal_mismatches > 0


def test_parity_catches_an_array_form_that_disagrees(candles: pd.DataFrame) -> None:
    report = strategy_parity(DisagreeingBreakout.configure(), candles, "ADA")
    assert not report.ok
    # every signal bar differs twice: from the batch frame's window and from the columnar state's
    assert report.column_mismatches == 2 * report.signals > 0
    assert report.signal_mismatches == 0 and report.max_rel_err == 0.0


def test_parity_report_json_shape(candles: pd.DataFrame) -> None:
    report = strategy_parity(DonchianBreakout.configure(), candles.iloc[:300], "ADA").to_dict()
    assert report["bars"] == 300 and report["ok"] is True
    assert {"bars", "max_rel_err", "signal_mismatches"} <= set(report)
