"""The engine's side of an SDK primary: its exits, its entry inputs and its faults.

A symbol whose YAML `strategies:` primary is not mei_alpha_v1 trades through the normal engine
path (ranked by score, entry gates, risk, broker); what differs is read from the shard's
`VariantDecision` for that primary (`ShardDecision.primary`), so the driver never needs
indicator rows:

* exits (`exit_decision`): the strategy's `ExitRules` (`StrategyPlan.primary_rules`) applied to
  the position at the mid every tick with `strategies.sdk.exits.check_rules_exit` (stop,
  trailing, take-profit; the same `ExitDecision` record mei's `check_exit` returns); then, on a
  fresh closed-candle record, an opposite signal closes as `signal_flip` (the entry phase
  re-enters, as for mei) and the strategy's indicator exit for the position's side closes as
  `trend_breakdown`. A faulted record never skips the price rules;
* entries: the entry ATR stored on the position is the record's `entry_atr`; mei's own entry
  filters (SSF, REEF) read mei's indicator columns and are off for an SDK primary (`entry_config`);
* faults (`fault_events`): a record with `fault` set becomes one decision event (gate_block,
  reason `strategy_fault:<kind>`, context strategy/kind/detail) on every faulted bar and one
  HEALTH alert per (strategy, symbol) until that strategy decides cleanly there again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from cluster.records import ShardDecision, VariantDecision
from engine.enums import AlertKind, DecisionEventType, DecisionPhase, DecisionStatus
from engine.execution.broker import Position
from engine.tick.decision_log import DecisionEvent
from engine.tick.strategy_manager import AlertSink
from engine.tick.types import position_state
from strategies.config import StrategyConfig
from strategies.enums import ExitAction, ExitReason, HoldReason, PositionSide, Signal
from strategies.exits import ExitDecision
from strategies.sdk.exits import check_rules_exit
from strategies.sdk.plan import StrategyPlan
from strategies.sdk.strategy import ExitRules

log = logging.getLogger(__name__)

_OPPOSITE = {PositionSide.LONG: Signal.SELL, PositionSide.SHORT: Signal.BUY}


def entry_config(cfg: StrategyConfig, *, sdk: bool) -> StrategyConfig:
    """`cfg` for an entry: for an SDK primary (`sdk`), mei_alpha_v1's indicator filters (SSF, REEF) off."""
    if not sdk:
        return cfg
    trade = dataclasses.replace(cfg.trade, enable_ssf_filter=False, enable_reef_filter=False)
    return dataclasses.replace(cfg, trade=trade)


def record_atr(record: ShardDecision) -> float:
    """The ATR an entry sizes with and stores: the SDK primary's entry ATR, else mei's feature ATR."""
    if record.primary is not None:
        return record.primary.entry_atr
    return math.nan if record.features is None else record.features.atr


def _close(reason: ExitReason, position: Position, held: ExitDecision) -> ExitDecision:
    return ExitDecision(ExitAction.CLOSE, reason, position.size_coins, 1.0, held.trailing_sl, held.tp1_taken,
                        HoldReason.NONE, held.levels)


class SdkPrimaryStep:
    """Per-engine state of the SDK primaries: exit rules by (plan, symbol) and the faults alerted."""

    def __init__(self, plan: Callable[[], StrategyPlan], alerts: AlertSink | None = None) -> None:
        """`plan()` returns the strategy plan now in force (a hot reload swaps it)."""
        self._current_plan = plan
        self._alerts = alerts
        self._plan: StrategyPlan | None = None
        self._rules: dict[str, ExitRules | None] = {}
        self._alerted: set[tuple[str, str]] = set()

    def rules(self, plan: StrategyPlan, symbol: str, cfg: StrategyConfig) -> ExitRules | None:
        """The exit rules of `symbol`'s SDK primary (None: mei_alpha_v1 trades it); rebuilt on a reload."""
        if plan is not self._plan:
            self._plan, self._rules = plan, {}
        if symbol not in self._rules:
            self._rules[symbol] = plan.primary_rules(symbol, cfg) if plan.sdk_primary(symbol) else None
        return self._rules[symbol]

    def exit_decision(self, symbol: str, cfg: StrategyConfig, position: Position, price: float,
                      decision: ShardDecision | None) -> ExitDecision | None:
        """The exit of an SDK primary's position at `price`; None when mei_alpha_v1 trades the symbol."""
        rules = self.rules(self._current_plan(), symbol, cfg)
        if rules is None:
            return None
        held = check_rules_exit(rules, position_state(position), price)
        record = None if decision is None else decision.primary
        if held.action is ExitAction.CLOSE or decision is None or record is None or record.fault is not None:
            return held
        if decision.signal is _OPPOSITE[position.side]:  # the tick's signal (auto-reverse applied)
            return _close(ExitReason.SIGNAL_FLIP, position, held)
        if record.exit_long if position.side is PositionSide.LONG else record.exit_short:
            return _close(ExitReason.TREND_BREAKDOWN, position, held)
        return held

    def fault_events(self, decisions: Mapping[str, ShardDecision],
                     event: Callable[..., DecisionEvent]) -> list[DecisionEvent]:
        """One event per faulted SDK primary record; alert once per (strategy, symbol) until it recovers."""
        out = []
        for symbol, decision in decisions.items():
            record = decision.primary
            if record is None:
                continue
            key = (record.strategy, symbol)
            if record.fault is None:
                self._alerted.discard(key)
                continue
            out.append(self._event(symbol, decision, record, event))
            if key not in self._alerted:
                self._alerted.add(key)
                self._alert(symbol, record)
        return out

    @staticmethod
    def _event(symbol: str, decision: ShardDecision, record: VariantDecision,
               event: Callable[..., DecisionEvent]) -> DecisionEvent:
        context: dict[str, Any] = {"strategy": record.strategy, "fault": record.fault,
                                   "detail": record.detail}
        return event(symbol, decision.candle_key, event_type=DecisionEventType.GATE_BLOCK,
                     status=DecisionStatus.BLOCKED, phase=DecisionPhase.SIGNAL_GENERATION,
                     action_taken="strategy_error", reason_code=f"strategy_fault:{record.fault}",
                     signal=Signal.NEUTRAL, context=context)

    def _alert(self, symbol: str, record: VariantDecision) -> None:
        log.error("strategy fault strategy=%s symbol=%s kind=%s detail=%s", record.strategy, symbol,
                  record.fault, record.detail)
        if self._alerts is None:
            return
        try:
            self._alerts.send(AlertKind.HEALTH, "strategy fault: no decisions from it on this symbol",
                              {"strategy": record.strategy, "symbol": symbol, "fault": record.fault,
                               "detail": record.detail[:200]})
        except Exception:  # an alert sink that fails must not stop the tick
            log.exception("strategy fault alert failed strategy=%s symbol=%s", record.strategy, symbol)
