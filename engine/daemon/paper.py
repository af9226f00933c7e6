"""The paper broker stack: `PaperBroker` behind the same `RiskManager` as live.

Risk is built by the node from the trading DB (paper's own file, so the ACTIVE/REDUCING/HALTED
state survives a restart), YAML `global.risk` and `AI_QUANT_RISK_*`, and the kill switch
(`AI_QUANT_KILL_SWITCH` and the file `AI_QUANT_KILL_SWITCH_FILE`). The broker runs `risk.check`
right before each fill; every fill is reported back (`note_order_sent`, then `note_fill`: the
entry rate windows, the daily loss and the slippage window). `before_tick` polls the kill
switches and the drawdown breaker once per tick, as the live stack does. The replay tool
(engine/tools/replay.py) builds the same stack, so a paper run and its replay deny alike.

The clock is the caller's: the daemon passes the venue clock the engine ticks on, the replay
the candle clock, so the risk windows and the UTC day follow the same time as the fills.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from engine.enums import LedgerKind
from engine.execution.broker import Fill, OrderIntent
from engine.execution.fill_model import FillModelParams
from engine.execution.paper_broker import PaperBroker
from engine.execution.trade_store import TradeStore
from engine.risk.manager import RiskManager
from strategies.enums import TradeAction

log = logging.getLogger("engine.daemon.paper")

_TRADING = frozenset({LedgerKind.OPEN, LedgerKind.ADD, LedgerKind.REDUCE, LedgerKind.CLOSE})


@dataclass
class PaperStack:
    """The paper broker and the risk manager it checks with; the node's broker stack for paper."""

    broker: PaperBroker
    risk: RiskManager
    clock_ms: Callable[[], int]
    funding_enabled: bool = True
    ready: bool = True

    def start(self, stop: object) -> None:
        """Nothing to reconcile: the ledger is the truth. Poll risk once so a kill switch set
        before start-up holds from the first tick."""
        del stop
        self.before_tick()

    def before_tick(self) -> bool:
        """Kill switches and the drawdown breaker, valued at the latest marks; always may tick
        (risk state changes act through the pre-send check, exits stay possible)."""
        now = self.clock_ms()
        try:
            account = self.broker.account(self.broker.marks, now)
            for change in self.risk.poll(now, account):
                log.warning("risk state change %s", change)
        except Exception:  # a failed poll must not stop the loop; the pre-send check still applies
            log.exception("risk poll failed")
        return True

    def final_sync(self) -> None:
        """Paper commits every fill as it happens: nothing to bring up to date."""

    def close(self) -> None:
        """The trading DB belongs to the node (it closes it)."""


def risk_fill_feed(risk: RiskManager) -> Callable[[OrderIntent, Fill], None]:
    """`PaperBroker(on_fill=...)`: count the order as sent and feed the fill to the breakers."""

    def on_fill(intent: OrderIntent, fill: Fill) -> None:
        if fill.kind not in _TRADING or fill.order_side is None:
            return
        risk.note_order_sent(intent, fill.event_ms)
        change = risk.note_fill(
            action=TradeAction.OPEN if fill.kind in (LedgerKind.OPEN, LedgerKind.ADD) else TradeAction.CLOSE,
            event_ms=fill.event_ms,
            side=fill.order_side,
            fill_price=fill.price,
            reference_price=intent.reference_price,
            realised_pnl_usd=fill.realised_pnl_usd,
            fee_usd=fill.fee_usd,
        )
        if change is not None:
            log.warning("risk state change from a fill %s", change)

    return on_fill


def build_paper_stack(
    store: TradeStore,
    risk: RiskManager,
    params: FillModelParams,
    seed_balance_usd: float,
    *,
    clock_ms: Callable[[], int],
    funding_enabled: bool,
    recorded_ms: Callable[[], int] | None = None,
) -> PaperStack:
    """Wire the paper broker to `risk` (pre-send check and fill feed)."""
    broker = PaperBroker(
        store, params, seed_balance_usd, pre_send_check=risk.check, on_fill=risk_fill_feed(risk),
        **({} if recorded_ms is None else {"clock_ms": recorded_ms}),
    )  # fmt: skip
    return PaperStack(broker, risk, clock_ms, funding_enabled)
