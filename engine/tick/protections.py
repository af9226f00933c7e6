"""Protections that act each tick: kill switches and breakers polled, the drawdown close-all
executed, the health guard's kills applied, and the operator told about each of them once.

`UnifiedEngine(..., protections=Protections(risk, alerts))` calls `on_tick` once per tick, before
the strategy's exits:

1. `risk.poll(now, account)`: kill-switch env/file and the drawdown breaker (idempotent, so a
   driver that also polls before the tick changes nothing). Every trading-state change, whoever
   caused it (this poll, the pre-send check, a fill, the reconciler), reaches the operator as
   one RISK alert through the risk manager's listener. A state other than ACTIVE found at start
   is announced once.
2. While `risk.close_all_armed` (policy `close_all`, drawdown tripped since the last CLEAR,
   state REDUCING), every open position is closed through the broker like any exit, with reason
   code `drawdown_close_all` and an EXIT_CHECK decision event. Each close first passes
   `risk.check` (in every mode, whatever pre-send check the broker has): REDUCING never blocks an
   exit; the hard kill, HALTED and the exit rate do (a BLOCKED event, nothing sent). One RISK
   alert per trip; a position that cannot be closed (no/stale price, no account, denied, refused)
   is retried every tick and raises the `close_all_blocked` health key (one HEALTH alert until it
   resolves).
3. A failed risk-state write raises `risk_state_unpersisted` (the state is enforced in memory).
4. Health keys not seen for a while resolve (one HEALTH alert each).

The live driver feeds the fill path's health with `health_check(HealthSample(...))` each
iteration (engine/risk/health_guard.py): a key's configured kill is applied as HEALTH_BREACH
(close_only → REDUCING) or KILL_HALT_ALL (halt_all → HALTED). Health timing (cooldown,
resolution) runs on the wall clock, never the venue clock, so a fast replay cannot age it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.alerts.notices import (
    AlertSink,
    notify_health,
    notify_health_resolved,
    notify_risk,
    notify_state_change,
    notify_trade,
)
from engine.enums import (
    DecisionEventType,
    DecisionPhase,
    DecisionStatus,
    ExecutionStatus,
    ForcedExitReason,
    HealthKey,
    KillCommand,
    TradingState,
    TradingStateEvent,
)
from engine.execution.broker import AccountSnapshot, Broker, OrderIntent, OrderResult, Position
from engine.marketdata.hub import PriceQuote
from engine.risk.close_all import CloseAllSettings, ForcedClose, SkippedClose, plan_close_all
from engine.risk.health_guard import HealthFinding, HealthGuard, HealthMonitor, HealthSample, HealthSettings
from engine.risk.manager import RiskManager
from engine.risk.state import StateChange
from engine.tick.decision_log import DecisionEvent, new_decision_id
from engine.tick.types import (
    TickCounts,
    execution_fields,
    market_quote,
    pending_fields,
    reject_detail,
    wall_ms,
)
from strategies.enums import TradeAction

log = logging.getLogger(__name__)

EventFactory = Callable[..., DecisionEvent]
"""The engine's `_event(symbol, event_ms, **fields)`: a decision event stamped with the tick."""


@dataclass(frozen=True, slots=True)
class _Tick:
    """What one tick hands the close-all: where to send, at what prices, where to count and record."""

    broker: Broker
    account: AccountSnapshot | None
    quotes: Mapping[str, PriceQuote]
    now_ms: int
    counts: TickCounts
    event: EventFactory
    record: Callable[[DecisionEvent], None]


class Protections:
    """Per-tick protections over one RiskManager; see the module docstring."""

    def __init__(
        self,
        risk: RiskManager,
        alerts: AlertSink | None,
        *,
        health: HealthSettings | None = None,
        close_all: CloseAllSettings | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._risk = risk
        self._alerts = alerts
        self._clock_ms = clock_ms
        settings = health or HealthSettings()
        self._guard = HealthGuard(settings)
        self._monitor = HealthMonitor(settings, clock_ms())
        self._close_all = close_all or CloseAllSettings()
        self._persist_failures = risk.persist_failures
        self._announced_start = False
        self._announced_trip: int | None = None
        risk.add_listener(self._state_changed)

    @classmethod
    def from_env(cls, risk: RiskManager, alerts: AlertSink | None, env: Mapping[str, str]) -> Protections:
        """Read AI_QUANT_HEALTH_* and AI_QUANT_DRAWDOWN_CLOSE_ALL_*; raise ConfigError if invalid."""
        health, close_all = HealthSettings.from_env(env), CloseAllSettings.from_env(env)
        return cls(risk, alerts, health=health, close_all=close_all)

    @property
    def risk(self) -> RiskManager:
        return self._risk

    @property
    def active_health_keys(self) -> frozenset[HealthKey]:
        return self._guard.active

    # ------------------------------------------------------------------ per tick
    def on_tick(
        self,
        broker: Broker,
        quotes: Mapping[str, PriceQuote],
        now_ms: int,
        counts: TickCounts,
        event: EventFactory,
        record: Callable[[DecisionEvent], None],
    ) -> None:
        """Poll the risk manager, run the close-all when armed, raise/resolve health keys."""
        marks = {s: q.price for s, q in quotes.items() if q.price is not None}
        account: AccountSnapshot | None = None
        try:
            account = broker.account(marks, now_ms)
        except Exception:  # without an account the drawdown cannot be judged this tick; polls still run
            counts.errors += 1
            log.exception("protections: account unavailable mode=%s", broker.mode)
        self._announce_start()
        self._risk.poll(now_ms, account)
        findings: list[HealthFinding] = []
        if self._risk.persist_failures > self._persist_failures:
            findings.append(HealthFinding(
                key=HealthKey.RISK_STATE_UNPERSISTED,
                message="risk state not written to the DB; enforced in memory",
                details={"failures": self._risk.persist_failures},
            ))  # fmt: skip
            self._persist_failures = self._risk.persist_failures
        findings.extend(self._close_all_now(_Tick(broker, account, quotes, now_ms, counts, event, record)))
        self._raise(findings)
        self._resolve()

    def health_check(self, sample: HealthSample) -> None:
        """Feed one iteration's fill-path observations (the live driver, before each tick)."""
        now = self._clock_ms()
        self._raise(self._monitor.findings(sample, now))
        self._resolve()

    # ------------------------------------------------------------------ close-all
    def _close_all_now(self, tick: _Tick) -> list[HealthFinding]:
        if not self._risk.close_all_armed:
            return []
        positions = tick.broker.positions()
        if not positions:
            return []
        closes, skipped = plan_close_all(positions, tick.quotes, self._close_all)
        if tick.account is None:  # the venue is unreadable: nothing can be checked or sent; next tick
            unread = (SkippedClose(symbol=c.symbol, reason="no_account", age_secs=None) for c in closes)
            closes, skipped = (), (*skipped, *unread)
        tripped = self._risk.counters.drawdown_tripped_ms
        if self._announced_trip != tripped:
            self._announced_trip = tripped
            notify_risk(self._alerts, f"drawdown close-all: closing {len(positions)} position(s)", {
                "symbols": ",".join(sorted(positions)), "tripped_ms": tripped,
            })  # fmt: skip
        refused: list[str] = []
        for close in closes:
            try:
                if not self._force_close(tick, positions[close.symbol], close):
                    refused.append(close.symbol)
            except Exception:  # per symbol, like the engine's exits: the others still close
                tick.counts.errors += 1
                refused.append(close.symbol)
                log.exception("protections: forced close failed symbol=%s", close.symbol)
        return _blocked_finding(skipped, refused)

    def _force_close(self, tick: _Tick, position: Position, close: ForcedClose) -> bool:
        if close.stale:
            log.warning(
                "drawdown close-all uses a stale price symbol=%s age_secs=%.1f", close.symbol, close.age_secs
            )
        reason = ForcedExitReason.DRAWDOWN_CLOSE_ALL
        event_id = new_decision_id(self._clock_ms())
        now_ms = tick.now_ms
        intent = OrderIntent(
            symbol=close.symbol, action=TradeAction.CLOSE, side=close.side, reference_price=close.price,
            event_ms=now_ms, reason=reason, quote=market_quote(tick.quotes[close.symbol], now_ms),
            confidence=position.confidence, decision_id=event_id,
        )  # fmt: skip
        assert tick.account is not None
        verdict = self._risk.check(intent, tick.account, tick.broker.positions(), now_ms)
        if not verdict.allowed:  # the hard kill, HALTED or the exit rate: never sent
            reason_code = str(getattr(verdict, "reason", "risk_denied"))
            tick.record(tick.event(
                close.symbol, now_ms, event_id=event_id, event_type=DecisionEventType.EXIT_CHECK,
                status=DecisionStatus.BLOCKED, phase=DecisionPhase.RISK_CHECK, action_taken="blocked",
                action=TradeAction.CLOSE, reason_code=reason_code,
                context={"price": close.price, "intent_reason": reason},
            ))  # fmt: skip
            return False
        tick.record(tick.event(  # on disk before the order goes out: no fill without its event
            close.symbol, now_ms, event_id=event_id, event_type=DecisionEventType.EXIT_CHECK,
            **pending_fields(TradeAction.CLOSE),
        ))  # fmt: skip
        result = tick.broker.execute(intent, now_ms)
        tick.counts.closed += result.filled
        notify_trade(self._alerts, result)
        tick.record(tick.event(
            close.symbol, now_ms, event_id=event_id, event_type=DecisionEventType.EXIT_CHECK,
            context={"price": close.price, "price_age_secs": close.age_secs, **reject_detail(result)},
            **execution_fields(result, TradeAction.CLOSE, reason),
        ))  # fmt: skip
        return _accepted(result)

    # ------------------------------------------------------------------ alerts and kills
    def _announce_start(self) -> None:
        if self._announced_start:
            return
        self._announced_start = True
        state = self._risk.trading_state
        if state is not TradingState.ACTIVE:
            notify_risk(self._alerts, f"trading state at start: {state.value}", {"state": state.value})

    def _state_changed(self, change: StateChange) -> None:
        self._announced_start = True  # the change itself tells the operator the state
        notify_state_change(self._alerts, change)

    def _raise(self, findings: list[HealthFinding]) -> None:
        if not findings:
            return
        now = self._clock_ms()
        for activation in self._guard.observe(findings, now):
            finding = activation.finding
            if finding.kill is not None:
                event = (
                    TradingStateEvent.KILL_HALT_ALL
                    if finding.kill is KillCommand.HALT_ALL
                    else TradingStateEvent.HEALTH_BREACH
                )
                details: dict[str, Any] = {"source": "health", "key": finding.key.value, **finding.details}
                self._risk.apply(event, now, details)
            log.warning("health key active key=%s kill=%s %s", finding.key, finding.kill, finding.message)
            if activation.notify:
                notify_health(self._alerts, finding.key, finding.message, finding.kill, finding.details)

    def _resolve(self) -> None:
        for key in self._guard.resolve(self._clock_ms()):
            log.info("health key resolved key=%s", key.value)
            notify_health_resolved(self._alerts, key)


def _accepted(result: OrderResult) -> bool:
    # FILLED or an outcome still in flight (PENDING, WOULD_SEND) counts as sent; a refusal does not.
    return result.status is not ExecutionStatus.REJECTED


def _blocked_finding(skipped: tuple[SkippedClose, ...], refused: list[str]) -> list[HealthFinding]:
    if not skipped and not refused:
        return []
    details = {
        "skipped": ",".join(f"{s.symbol}:{s.reason}" for s in skipped) or "-",
        "refused": ",".join(refused) or "-",
    }
    count = len(skipped) + len(refused)
    return [HealthFinding(
        key=HealthKey.CLOSE_ALL_BLOCKED, message=f"drawdown close-all could not close {count} position(s)",
        details=details,
    )]  # fmt: skip
