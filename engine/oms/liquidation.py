"""What the live engine does after the venue liquidated the account: risk state, alert, reconcile.

The venue liquidates an account whose value fell below its maintenance margin: it cancels every
open order (status `liquidatedCanceled`) and closes the positions with fills of its own, each
carrying a `liquidation` object. The ledger stores those fills flagged (`fills.liquidation_json`,
never linked to an intent, counted in `ledger_positions`), and the cancels as order events with
their status. `LiquidationWatch.check()`, run by the live stack after the account events were
ingested, looks at the fills the ledger took in since its cursor and, when one is a liquidation:

1. moves the trading state as configured (AI_QUANT_LIQUIDATION_RISK_STATE: `reducing`, the
   default, stops entries and lets exits of whatever is left run; `halted` stops both until the
   operator's `clear`);
2. records a `liquidation` reconcile event (coins, fills, methods, the orders it cancelled) and
   sends one RISK alert;
3. reconciles at once, so the ledger equals the venue (the rest of the liquidation's fills, the
   cancelled orders' states) before the engine ticks again.

The cursor (`liquidation_watch`, an OMS fills rowid) moves only after all three were done, so a
crash in between handles the liquidation again on restart (a repeated state change is a no-op).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.enums import AlertKind, LiquidationPolicy, TradingStateEvent
from engine.oms.ledger import LedgerFill, LiveOms
from engine.runtime.clock import wall_ms

log = logging.getLogger(__name__)

CURSOR = "liquidation_watch"
EVENT_KIND = "liquidation"
ENV_LIQUIDATION_RISK_STATE = "AI_QUANT_LIQUIDATION_RISK_STATE"

EVENT_FOR_POLICY: Mapping[LiquidationPolicy, TradingStateEvent] = {
    LiquidationPolicy.REDUCING: TradingStateEvent.LIQUIDATION_CLOSE_ONLY,
    LiquidationPolicy.HALTED: TradingStateEvent.LIQUIDATION_HALT,
}

ApplyRisk = Callable[[TradingStateEvent, int, Mapping[str, Any]], object]
Alert = Callable[[AlertKind, str, Mapping[str, object]], object]


@dataclass(frozen=True, slots=True)
class LiquidationSeen:
    """One handled batch of liquidation fills."""

    coins: tuple[str, ...]
    fills: int
    methods: tuple[str, ...]
    cancelled_intents: tuple[str, ...]


def summarise(fills: list[LedgerFill], cancelled: list[str]) -> LiquidationSeen:
    """Pure: the coins, fill count and methods of `fills` (all liquidation fills)."""
    methods = sorted({str(json.loads(f.liquidation_json or "{}").get("method", "")) for f in fills})
    coins = tuple(sorted({f.coin for f in fills}))
    return LiquidationSeen(coins, len(fills), tuple(methods), tuple(cancelled))


class LiquidationWatch:
    """See the module docstring; `reconcile` is the reconciler's `run`."""

    def __init__(
        self,
        *,
        oms: LiveOms,
        policy: LiquidationPolicy,
        apply_risk: ApplyRisk,
        alert: Alert,
        reconcile: Callable[[], object],
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.oms = oms
        self.policy = policy
        self._apply_risk = apply_risk
        self._alert = alert
        self._reconcile = reconcile
        self._clock_ms = clock_ms

    def check(self, limit: int = 1000) -> LiquidationSeen | None:
        """Handle liquidation fills ingested since the cursor; return what was seen, or None."""
        start = self.oms.cursor(CURSOR) or 0
        rows = self.oms.fills_after_rowid(start, limit)
        if not rows:
            return None
        fills = [fill for _, fill in rows if fill.liquidation]
        seen = None
        if fills:
            seen = self._handle(fills)
        self.oms.advance_cursor(CURSOR, rows[-1][0])
        return seen

    def _handle(self, fills: list[LedgerFill]) -> LiquidationSeen:
        seen = summarise(fills, self.oms.liquidation_cancels())
        now = self._clock_ms()
        detail = {"coins": list(seen.coins), "fills": seen.fills, "methods": list(seen.methods),
                  "cancelled_orders": len(seen.cancelled_intents), "policy": self.policy.value}
        change = self._apply_risk(EVENT_FOR_POLICY[self.policy], now, detail)
        log.error("venue liquidated the account %s risk_change=%s", detail, change)
        symbol = seen.coins[0] if len(seen.coins) == 1 else None
        self.oms.record_reconcile_event(EVENT_KIND, detail, symbol=symbol)
        self._alert(AlertKind.RISK, "venue liquidated the account", detail)
        self._reconcile()  # the rest of its fills and the cancelled orders: ledger == venue
        return seen
