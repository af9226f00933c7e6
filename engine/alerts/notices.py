"""What the operator is told, and in which words: fills, trading-state changes, health keys.

One module owns the wording so every sender (the engine's fills, engine/tick/protections.py for
risk and health) says the same thing the same way. Each function takes a typed record and sends
through any `AlertSink` (the `Alerter`, or a test's recording fake); none of them raises.

Messages are built to survive the alerter's dedupe (identical kind + message within its window is
dropped): a fill names its trade id or decision id, a state change its sequence number, so two
real events never collapse into one, while a repeated per-tick condition (sent by the callers
only on its edge) stays one alert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from engine.enums import AlertKind, HealthKey, KillCommand
from engine.execution.broker import OrderResult
from engine.risk.state import StateChange

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    def send(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> bool: ...


def _send(sink: AlertSink | None, kind: AlertKind, message: str, extra: Mapping[str, object]) -> bool:
    if sink is None:
        return False
    try:
        return sink.send(kind, message, extra)
    except Exception:  # alerting must never break the trading path
        log.exception("alert send failed kind=%s", kind.value)
        return False


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def notify_trade(sink: AlertSink | None, result: OrderResult) -> bool:
    """Send one TRADE alert for a filled order (paper: its ledger rows; live: the venue's ack)."""
    if sink is None or not result.filled:
        return False
    intent = result.intent
    if result.fills:
        size = sum(f.size_coins for f in result.fills)
        notional = sum(f.notional_usd for f in result.fills)
        price = notional / size if size > 0 else result.fills[0].price
        ref = f"trade #{result.fills[-1].trade_id}"
        extra: dict[str, Any] = {
            "pnl_usd": round(sum(f.realised_pnl_usd for f in result.fills), 2),
            "fee_usd": round(sum(f.fee_usd for f in result.fills), 4),
        }
    else:
        size = _number(result.detail.get("total_sz")) or 0.0
        price = _number(result.detail.get("avg_px")) or intent.reference_price
        ref = f"decision {intent.decision_id or '-'}"
        extra = {"oid": result.detail.get("oid")}
    message = f"{intent.action.value} {intent.side.value} {intent.symbol} {size:g} @ {price:g} ({ref})"
    return _send(sink, AlertKind.TRADE, message, {"reason": intent.reason, **extra})


def notify_state_change(sink: AlertSink | None, change: StateChange) -> bool:
    """Send one RISK alert for a trading-state change (breaker trip, kill switch, clear, health)."""
    message = (
        f"trading state {change.from_state.value} -> {change.to_state.value}: "
        f"{change.event.value} (change #{change.seq})"
    )
    return _send(sink, AlertKind.RISK, message, dict(change.details))


def notify_health(
    sink: AlertSink | None, key: HealthKey, message: str, kill: KillCommand | None, details: Mapping[str, Any]
) -> bool:
    """Send one HEALTH alert for a key that just became active (and the kill it applied)."""
    extra = {"key": key.value, "kill": "none" if kill is None else kill.value, **details}
    return _send(sink, AlertKind.HEALTH, f"{key.value}: {message}", extra)


def notify_health_resolved(sink: AlertSink | None, key: HealthKey) -> bool:
    """Send one HEALTH alert saying a key resolved (a kill it caused stays until CLEAR)."""
    return _send(sink, AlertKind.HEALTH, f"{key.value}: resolved", {"key": key.value})


def notify_risk(sink: AlertSink | None, message: str, extra: Mapping[str, Any]) -> bool:
    """Send a RISK alert that is not a state change (e.g. the close-all starting)."""
    return _send(sink, AlertKind.RISK, message, extra)
