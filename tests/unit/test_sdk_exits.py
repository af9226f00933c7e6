"""SDK exits: ATR stop, take-profit and trailing stop, then the strategy's fenced indicator exit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pytest

from strategies.enums import ExitAction, ExitReason, PositionSide
from strategies.exits import PositionState, with_exit_applied
from strategies.sdk.builtin.breakout import DonchianBreakout
from strategies.sdk.enums import FaultKind
from strategies.sdk.exits import check_rules_exit, entry_atr, evaluate_exit
from strategies.sdk.strategy import ExitRules, Row

RULES = ExitRules(atr_column="atr", stop_loss_atr=2.0, take_profit_atr=4.0, trailing_start_atr=1.0,
                  trailing_distance_atr=1.5)


def position(side: PositionSide, trailing: float | None = None) -> PositionState:
    return PositionState(side=side, entry_price=100.0, size_coins=3.0, entry_atr=1.0, entry_time_ms=0,
                         trailing_sl=trailing)


@pytest.mark.parametrize(
    ("side", "price", "action", "reason"),
    [
        (PositionSide.LONG, 98.0, ExitAction.CLOSE, ExitReason.STOP_LOSS),
        (PositionSide.LONG, 98.01, ExitAction.HOLD, None),
        (PositionSide.LONG, 104.0, ExitAction.CLOSE, ExitReason.TAKE_PROFIT),
        (PositionSide.SHORT, 102.0, ExitAction.CLOSE, ExitReason.STOP_LOSS),
        (PositionSide.SHORT, 96.0, ExitAction.CLOSE, ExitReason.TAKE_PROFIT),
        (PositionSide.SHORT, 99.0, ExitAction.HOLD, None),
    ],
)
def test_rules_exit_stop_and_take_profit(side: PositionSide, price: float, action: ExitAction,
                                         reason: ExitReason | None) -> None:
    decision = check_rules_exit(RULES, position(side), price)
    assert (decision.action, decision.reason) == (action, reason)
    assert decision.size_coins == (3.0 if action is ExitAction.CLOSE else 0.0)


def test_rules_exit_trailing_starts_ratchets_and_closes_long() -> None:
    pos = position(PositionSide.LONG)
    before_start = check_rules_exit(RULES, pos, 100.9)
    assert before_start.action is ExitAction.HOLD and before_start.trailing_sl is None
    started = check_rules_exit(RULES, pos, 102.0)
    assert started.trailing_sl == 100.5
    pos = with_exit_applied(pos, started)
    assert pos is not None
    higher = check_rules_exit(RULES, pos, 103.0)
    assert higher.trailing_sl == 101.5
    pos = with_exit_applied(pos, higher)
    assert pos is not None
    pullback = check_rules_exit(RULES, pos, 102.5)  # a pullback never loosens the stop
    assert pullback.action is ExitAction.HOLD and pullback.trailing_sl == 101.5
    hit = check_rules_exit(RULES, pos, 101.5)
    assert (hit.action, hit.reason) == (ExitAction.CLOSE, ExitReason.TRAILING_STOP)


def test_rules_exit_trailing_mirrors_for_short() -> None:
    pos = position(PositionSide.SHORT)
    started = check_rules_exit(RULES, pos, 97.0)
    assert started.trailing_sl == 98.5
    hit = check_rules_exit(RULES, replace(pos, trailing_sl=started.trailing_sl), 98.5)
    assert (hit.action, hit.reason) == (ExitAction.CLOSE, ExitReason.TRAILING_STOP)


def test_rules_exit_fixed_stop_binds_while_trailing_is_looser() -> None:
    decision = check_rules_exit(RULES, position(PositionSide.LONG, trailing=90.0), 98.0)
    assert decision.reason is ExitReason.STOP_LOSS


def test_rules_exit_with_only_a_stop_holds_above_it() -> None:
    rules = ExitRules(atr_column="atr", stop_loss_atr=60.0)
    decision = check_rules_exit(rules, position(PositionSide.LONG), 500.0)
    assert decision.action is ExitAction.HOLD and decision.trailing_sl is None
    assert decision.levels["sl"] == 40.0 and math.isnan(decision.levels["tp"])


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan, math.inf])
def test_rules_exit_refuses_a_bad_price(price: float) -> None:
    with pytest.raises(ValueError, match="finite price"):
        check_rules_exit(RULES, position(PositionSide.LONG), price)


@pytest.mark.parametrize(
    ("value", "expected"), [(1.5, 1.5), (math.nan, 0.0), (0.0, 0.0), (None, 0.0), (True, 0.0)]
)
def test_entry_atr_reads_the_declared_column(value: object, expected: float) -> None:
    assert entry_atr(RULES, {"atr": value}) == expected


ROWS: Sequence[Row] = ({"Close": 100.0, "dc_exit_low": 99.0, "dc_exit_high": 101.0},
                       {"Close": 98.9, "dc_exit_low": 98.0, "dc_exit_high": 101.0})


class _Raising(DonchianBreakout):
    def indicator_exit(self, side: PositionSide, rows: Sequence[Row]) -> ExitReason | None:
        raise KeyError("dc_exit_low")


class _WrongType(DonchianBreakout):
    def indicator_exit(self, side: PositionSide, rows: Sequence[Row]) -> ExitReason | None:
        return "close please"  # type: ignore[return-value]


def test_evaluate_exit_applies_the_strategy_indicator_exit() -> None:
    strategy = DonchianBreakout.configure()
    decision, fault = evaluate_exit(strategy, position(PositionSide.LONG), 98.9 + 0.5, ROWS, "ETH")
    assert fault is None
    assert (decision.action, decision.reason) == (ExitAction.CLOSE, ExitReason.TREND_BREAKDOWN)


def test_evaluate_exit_fault_keeps_the_price_rules() -> None:
    strategy = _Raising.configure()
    held, fault = evaluate_exit(strategy, position(PositionSide.LONG), 99.5, ROWS, "ETH")
    assert held.action is ExitAction.HOLD
    assert fault is not None and fault.kind is FaultKind.EXCEPTION and "KeyError" in fault.detail
    stopped, fault = evaluate_exit(strategy, position(PositionSide.LONG), 97.0, ROWS, "ETH")
    assert (stopped.action, stopped.reason, fault) == (ExitAction.CLOSE, ExitReason.STOP_LOSS, None)


def test_evaluate_exit_wrong_typed_reason_is_a_fault() -> None:
    decision, fault = evaluate_exit(_WrongType.configure(), position(PositionSide.LONG), 99.5, ROWS, "ETH")
    assert decision.action is ExitAction.HOLD
    assert fault is not None and fault.kind is FaultKind.BAD_OUTPUT
