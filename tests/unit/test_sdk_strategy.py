"""The Strategy contract: construction checks, the fenced `evaluate`, and the array form's guards."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from strategies.enums import Confidence, PositionSide, Signal
from strategies.sdk.enums import FaultKind
from strategies.sdk.errors import StrategyConfigError, StrategyOutputError
from strategies.sdk.library import Atr, Indicator, Sma
from strategies.sdk.params import StrategyParams, param
from strategies.sdk.strategy import (
    WARMUP,
    ColumnDecisions,
    ColumnWindow,
    DecisionContext,
    ExitRules,
    Row,
    Strategy,
    StrategyDecision,
    StrategyFault,
    evaluate,
    evaluate_columns,
)

Behaviour = Callable[[Sequence[Row], DecisionContext], Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbeParams(StrategyParams):
    window: int = param(3, lo=1, hi=50)


class Probe(Strategy[ProbeParams]):
    """A test strategy whose decision (and array form) is injected."""

    NAME = "probe"
    PARAMS = ProbeParams
    LOOKBACK_ROWS = 2

    def __init__(self, params: ProbeParams, behaviour: Behaviour | None = None, *, atr_column: str = "atr",
                 warmup: Any = None, columns: Callable[[ColumnWindow], Any] | None = None) -> None:
        self._behaviour = behaviour or (lambda rows, ctx: StrategyDecision(Signal.BUY, Confidence.HIGH, 1.0))
        self._atr_column, self._warmup, self._columns = atr_column, warmup, columns
        self.seen: list[Sequence[Row]] = []
        super().__init__(params)

    def indicators(self) -> Sequence[Indicator]:
        return (Sma(name="sma", window=self.params.window), Atr(name="atr", window=3))

    def warmup_bars(self) -> int:
        return self.params.window if self._warmup is None else self._warmup

    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        self.seen.append(rows)
        return self._behaviour(rows, ctx)

    def exit_rules(self) -> ExitRules:
        return ExitRules(atr_column=self._atr_column, stop_loss_atr=1.0)

    def decide_columns(self, window: ColumnWindow) -> ColumnDecisions | None:
        return None if self._columns is None else self._columns(window)


ROWS = [{"Close": float(i), "sma": float(i), "atr": 1.0} for i in range(5)]
CTX = DecisionContext(symbol="ETH", bars=5)


def test_evaluate_before_warmup_is_neutral_without_calling_decide() -> None:
    probe = Probe(ProbeParams(window=10))
    assert evaluate(probe, ROWS, CTX) is WARMUP
    assert probe.seen == []


def test_evaluate_passes_only_the_last_k_rows() -> None:
    probe = Probe(ProbeParams())
    decision = evaluate(probe, ROWS, CTX)
    assert isinstance(decision, StrategyDecision) and decision.side is PositionSide.LONG
    assert probe.seen == [ROWS[-2:]]


def _raise(rows: Sequence[Row], ctx: DecisionContext) -> Any:
    raise ZeroDivisionError("boom")


@pytest.mark.parametrize(
    ("behaviour", "kind", "detail"),
    [
        (_raise, FaultKind.EXCEPTION, "ZeroDivisionError: boom"),
        (lambda r, c: None, FaultKind.BAD_OUTPUT, "not StrategyDecision"),
        (lambda r, c: StrategyDecision(Signal.BUY, Confidence.HIGH, math.nan), FaultKind.BAD_OUTPUT, "score"),
        (lambda r, c: StrategyDecision(Signal.BUY, Confidence.HIGH, math.inf), FaultKind.BAD_OUTPUT, "score"),
        (lambda r, c: StrategyDecision(Signal.BUY, Confidence.HIGH, True), FaultKind.BAD_OUTPUT, "score"),
        (lambda r, c: StrategyDecision("BUY", Confidence.HIGH, 1.0), FaultKind.BAD_OUTPUT, "enums"),
        (lambda r, c: StrategyDecision(Signal.NEUTRAL, Confidence.LOW, 2.0), FaultKind.BAD_OUTPUT, "NEUTRAL"),
        (lambda r, c: StrategyDecision(Signal.NEUTRAL, Confidence.HIGH, 0.0), FaultKind.BAD_OUTPUT,
         "NEUTRAL"),
        (lambda r, c: StrategyDecision(Signal.SELL, Confidence.LOW, 1.0, 7), FaultKind.BAD_OUTPUT, "reason"),
        (lambda r, c: StrategyDecision(Signal.SELL, Confidence.LOW, 1.0, "x", {"a": math.nan}),
         FaultKind.BAD_OUTPUT, "details['a']"),
        (lambda r, c: StrategyDecision(Signal.SELL, Confidence.LOW, 1.0, "x", {"a": "high"}),
         FaultKind.BAD_OUTPUT, "details['a']"),
        (lambda r, c: StrategyDecision(Signal.SELL, Confidence.LOW, 1.0, "x", [1]), FaultKind.BAD_OUTPUT,
         "mapping"),
    ],
)
def test_evaluate_fences_a_broken_strategy_into_a_fault(
    behaviour: Behaviour, kind: FaultKind, detail: str
) -> None:
    fault = evaluate(Probe(ProbeParams(), behaviour), ROWS, CTX)
    assert isinstance(fault, StrategyFault)
    assert (fault.strategy, fault.symbol, fault.kind) == ("probe", "ETH", kind)
    assert detail in fault.detail


def test_evaluate_accepts_bool_and_int_details() -> None:
    good = StrategyDecision(Signal.SELL, Confidence.MEDIUM, 2, "x", {"flag": True, "n": 3, "f": 0.5})
    assert evaluate(Probe(ProbeParams(), lambda r, c: good), ROWS, CTX) is good


def test_strategy_exit_atr_column_must_be_declared() -> None:
    with pytest.raises(StrategyConfigError, match="'missing' is not declared"):
        Probe(ProbeParams(), atr_column="missing")


@pytest.mark.parametrize("warmup", [0, -1, 2.5, True])
def test_strategy_warmup_must_be_a_positive_int(warmup: object) -> None:
    with pytest.raises(StrategyConfigError, match="warmup_bars"):
        Probe(ProbeParams(), warmup=warmup)


def test_strategy_refuses_params_of_another_class() -> None:
    @dataclass(frozen=True, kw_only=True, slots=True)
    class OtherParams(StrategyParams):
        window: int = 3

    with pytest.raises(StrategyConfigError, match="takes ProbeParams"):
        Probe(OtherParams())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stop_loss_atr": None},
        {"stop_loss_atr": 0.0},
        {"stop_loss_atr": math.nan},
        {"take_profit_atr": -1.0},
        {"trailing_distance_atr": True},
        {"trailing_start_atr": 1.0},
    ],
)
def test_exit_rules_refuse_bad_distances(kwargs: dict[str, Any]) -> None:
    with pytest.raises(StrategyConfigError, match="ExitRules"):
        ExitRules(atr_column="atr", **{"stop_loss_atr": 1.0, **kwargs})


def test_column_window_from_rows_pads_short_histories_with_nan() -> None:
    window = ColumnWindow.from_rows([ROWS[:1], ROWS[:3]], [1, 3], ["Close"], k=2)
    assert np.isnan(window.columns["Close"][0, 0]) and window.col("Close")[0] == 0.0
    assert window.col("Close").tolist() == [0.0, 2.0] and window.col("Close", 1)[1] == 1.0


def test_evaluate_columns_masks_warmup_and_neutral_rows() -> None:
    def columns(window: ColumnWindow) -> ColumnDecisions:
        n = len(window.bars)
        return ColumnDecisions(np.array([1, -1, 0]), np.full(n, 2), np.array([3.0, 4.0, 9.0]))

    probe = Probe(ProbeParams(window=3), columns=columns)
    window = ColumnWindow.from_rows([ROWS[:2], ROWS, ROWS], [2, 5, 5], ["Close"], k=2)
    out = evaluate_columns(probe, window)
    assert out is not None
    assert [out.at(i) for i in range(3)] == [(Signal.NEUTRAL, Confidence.LOW, 0.0),
                                             (Signal.SELL, Confidence.HIGH, 4.0),
                                             (Signal.NEUTRAL, Confidence.LOW, 0.0)]


def test_evaluate_columns_is_none_without_an_array_form() -> None:
    window = ColumnWindow.from_rows([ROWS], [5], ["Close"], k=2)
    assert evaluate_columns(Probe(ProbeParams()), window) is None


@pytest.mark.parametrize(
    "result",
    [
        ColumnDecisions(np.array([1]), np.array([1]), np.array([1.0])),
        ColumnDecisions(np.array([1, 1]), np.array([1, 1]), np.array([1.0, math.nan])),
        "not decisions",
    ],
)
def test_evaluate_columns_refuses_bad_arrays(result: Any) -> None:
    probe = Probe(ProbeParams(), columns=lambda w: result)
    window = ColumnWindow.from_rows([ROWS, ROWS], [5, 5], ["Close"], k=2)
    with pytest.raises(StrategyOutputError):
        evaluate_columns(probe, window)


def test_strategy_exit_rules_must_be_an_exit_rules_record() -> None:
    class Loose(Probe):
        def exit_rules(self) -> ExitRules:
            return {"stop_loss_atr": 2.0}  # type: ignore[return-value]

    with pytest.raises(StrategyConfigError, match="exit_rules must return ExitRules"):
        Loose(ProbeParams())
