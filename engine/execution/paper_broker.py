"""The paper broker: one net position per symbol, filled locally by `engine.execution.fill_model`.

Cash = seed - fees + realised PnL + funding, with every movement written as a ledger row (see
`engine.execution.trade_store`) before memory changes, so a restart (SIGTERM or kill -9) resumes positions
and cash exactly. The seed is written once, as the first ledger row; a later change of
`AI_QUANT_PAPER_BALANCE` does not rewrite history.

Gates (max positions, cooldowns, margin cap, minimum notional, dust) belong to the mode-blind
engine above; this broker refuses only what it cannot do: OPEN onto an existing position, ADD or
REDUCE without one, a side mismatch, no usable price, or a fee larger than cash.

Like the live broker, it runs the risk manager's pre-send check right before a fill, against its
own account (valued at the latest marks it was shown) and positions: a `Deny` refuses the fill
(REJECTED, `risk_denied`, with the reason code in the detail the engine records in the decision
event); a check that raises refuses too (fail closed). `on_fill(intent, fill)` is told about every
trading fill (the risk manager's send windows, daily PnL and slippage window).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType

from engine.enums import BrokerReject, ExecutionStatus, LedgerKind, Mode
from engine.execution import fill_model
from engine.execution.broker import (
    AccountSnapshot,
    ExitState,
    Fill,
    OrderIntent,
    OrderResult,
    Position,
    PreSendCheck,
)
from engine.execution.fill_model import FillModelParams, PricedFill
from engine.execution.trade_store import THIS_TRADE, TradeStore
from engine.execution.verdicts import ALLOW, Allow, Deny, check_failed
from engine.runtime.clock import wall_ms
from strategies.enums import PositionSide, TradeAction

log = logging.getLogger(__name__)

SEED_SYMBOL = "__SEED__"
_FULL_CLOSE_REL = 1e-9





def allow_all(
    _intent: OrderIntent, _account: AccountSnapshot, _positions: Mapping[str, Position], _now_ms: int
) -> Allow:
    """A pre-send check that allows everything (unit tests of the fill model only)."""
    return ALLOW


class PaperBroker:
    """Implements `engine.execution.broker.Broker` for paper mode over a `TradeStore`."""

    def __init__(
        self,
        store: TradeStore,
        params: FillModelParams,
        seed_balance_usd: float,
        *,
        pre_send_check: PreSendCheck,
        on_fill: Callable[[OrderIntent, Fill], None] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        if store.mode is not Mode.PAPER:
            raise ValueError(f"PaperBroker needs a paper TradeStore, got mode {store.mode}")
        if not seed_balance_usd > 0:
            raise ValueError(f"paper seed balance must be > 0 USD, got {seed_balance_usd!r}")
        self._store = store
        self._params = params
        self._clock_ms = clock_ms
        self._pre_send_check = pre_send_check
        self._on_fill = on_fill
        self._marks: dict[str, float] = {}
        balance = store.last_balance()
        if balance is None:
            now = clock_ms()
            seed = self._row(
                kind=LedgerKind.SEED,
                symbol=SEED_SYMBOL,
                side=None,
                size=0.0,
                priced=None,
                fee=0.0,
                realised=0.0,
                funding=0.0,
                cash_delta=seed_balance_usd,
                balance=seed_balance_usd,
                reason="seed",
                event_ms=now,
                leverage=1.0,
                margin=0.0,
                decision_id=None,
            )
            store.append(seed, None, touches_position=False)
            balance = seed_balance_usd
        self._cash = balance
        self._positions: dict[str, Position] = store.load_positions()
        log.info(
            "paper broker ready mode=paper cash_usd=%.2f open_positions=%d", self._cash, len(self._positions)
        )

    @property
    def mode(self) -> Mode:
        return Mode.PAPER

    @property
    def cash_usd(self) -> float:
        return self._cash

    def positions(self) -> Mapping[str, Position]:
        return MappingProxyType(dict(self._positions))

    def execute(self, intent: OrderIntent, now_ms: int) -> OrderResult:
        """Fill an intent at the modelled price; return REJECTED (never raise) when it cannot."""
        position = self._positions.get(intent.symbol)
        reject = _precheck(intent, position)
        if reject is not None:
            return OrderResult(intent=intent, status=ExecutionStatus.REJECTED, reject=reject)
        opening = intent.action in (TradeAction.OPEN, TradeAction.ADD)
        side = fill_model.order_side(intent.side, opening)
        priced = fill_model.fill_price(side, intent.quote, intent.reference_price, self._params, now_ms)
        if priced is None:
            return OrderResult(intent=intent, status=ExecutionStatus.REJECTED, reject=BrokerReject.NO_PRICE)
        denied = self._risk_denied(intent, now_ms)
        if denied is not None:
            return denied
        if opening:
            result = self._enter(intent, position, priced, now_ms)
        else:
            assert position is not None  # _precheck guarantees it for REDUCE/CLOSE
            result = self._exit(intent, position, priced, now_ms)
        if self._on_fill is not None:
            for fill in result.fills:
                self._on_fill(intent, fill)
        return result

    def _risk_denied(self, intent: OrderIntent, now_ms: int) -> OrderResult | None:
        """Run the pre-send check on this broker's own account and positions; None = may fill."""
        marks = dict(self._marks)
        if intent.reference_price > 0:
            marks[intent.symbol] = intent.reference_price
        try:
            verdict = self._pre_send_check(intent, self.account(marks, now_ms), self.positions(), now_ms)
        except Exception as exc:  # a broken check never lets an order through
            log.error("pre-send check raised; denying symbol=%s error=%r", intent.symbol, exc)
            return _risk_rejected(intent, check_failed("pre_send_check", exc))
        if isinstance(verdict, Deny):
            log.warning(
                "risk denied symbol=%s action=%s reason=%s",
                intent.symbol, intent.action.value, verdict.reason.value,
            )  # fmt: skip
            return _risk_rejected(intent, verdict)
        if not isinstance(verdict, Allow):
            return _risk_rejected(intent, check_failed("not_a_verdict"))
        return None

    @property
    def marks(self) -> Mapping[str, float]:
        """The latest mark seen per symbol (what the pre-send check and the risk poll value at)."""
        return MappingProxyType(dict(self._marks))

    def _enter(
        self, intent: OrderIntent, position: Position | None, priced: PricedFill, now_ms: int
    ) -> OrderResult:
        size = float(intent.size_coins or 0.0)
        fee = fill_model.fee_usd(size, priced.price, self._params.fee_rate_for(intent.symbol))
        if fee > self._cash:
            return OrderResult(
                intent=intent,
                status=ExecutionStatus.REJECTED,
                reject=BrokerReject.INSUFFICIENT_CASH,
                detail={"fee_usd": fee, "cash_usd": self._cash},
            )
        if position is None:
            new_position = Position(
                symbol=intent.symbol,
                side=intent.side,
                size_coins=size,
                entry_price=priced.price,
                leverage=intent.leverage,
                margin_used_usd=size * priced.price / intent.leverage,
                open_trade_id=THIS_TRADE,
                opened_ms=now_ms,
                last_funding_ms=now_ms,
                entry_atr=intent.entry_atr,
                entry_adx_threshold=intent.entry_adx_threshold,
                confidence=intent.confidence,
            )
            kind, leverage = LedgerKind.OPEN, intent.leverage
        else:
            new_position = _added(position, size, priced.price, intent.entry_atr, now_ms)
            kind, leverage = LedgerKind.ADD, position.leverage
        margin = size * priced.price / leverage
        return self._commit(intent, kind, size, priced, fee, 0.0, leverage, margin, new_position, now_ms)

    def _exit(self, intent: OrderIntent, position: Position, priced: PricedFill, now_ms: int) -> OrderResult:
        size = position.size_coins
        if intent.action is TradeAction.REDUCE:
            size = min(float(intent.size_coins or 0.0), position.size_coins)
        remaining = position.size_coins - size
        full = remaining <= position.size_coins * _FULL_CLOSE_REL
        if full:
            size, remaining = position.size_coins, 0.0
        fee = fill_model.fee_usd(size, priced.price, self._params.fee_rate_for(intent.symbol))
        realised = fill_model.realised_pnl_usd(position.side, position.entry_price, priced.price, size)
        new_position: Position | None = None
        if not full:
            new_position = dataclasses.replace(
                position,
                size_coins=remaining,
                margin_used_usd=remaining * position.entry_price / position.leverage,
            )
        kind = LedgerKind.CLOSE if full else LedgerKind.REDUCE
        released = -(size * position.entry_price / position.leverage)
        return self._commit(
            intent, kind, size, priced, fee, realised, position.leverage, released, new_position, now_ms
        )

    def _commit(
        self,
        intent: OrderIntent,
        kind: LedgerKind,
        size: float,
        priced: PricedFill,
        fee: float,
        realised: float,
        leverage: float,
        margin: float,
        new_position: Position | None,
        now_ms: int,
    ) -> OrderResult:
        cash_delta = realised - fee
        row = self._row(
            kind=kind,
            symbol=intent.symbol,
            side=intent.side,
            size=size,
            priced=priced,
            fee=fee,
            realised=realised,
            funding=0.0,
            cash_delta=cash_delta,
            balance=self._cash + cash_delta,
            reason=intent.reason,
            event_ms=now_ms,
            leverage=leverage,
            margin=margin,
            decision_id=intent.decision_id,
        )
        stored, stored_position = self._store.append(row, new_position)
        self._apply(intent.symbol, stored, stored_position)
        return OrderResult(intent=intent, status=ExecutionStatus.FILLED, fills=(stored,))

    def _apply(self, symbol: str, fill: Fill, position: Position | None) -> None:
        self._cash = fill.balance_usd
        if position is None:
            self._positions.pop(symbol, None)
        else:
            self._positions[symbol] = position

    def update_exit_state(self, symbol: str, state: ExitState, now_ms: int) -> None:
        """Persist the trailing stop and TP1 flag of `symbol`; raise KeyError when flat."""
        position = self._positions[symbol]
        self._store.update_exit_state(symbol, state, now_ms)
        self._positions[symbol] = dataclasses.replace(
            position, trailing_sl=state.trailing_sl, tp1_taken=state.tp1_taken
        )

    def accrue_funding(
        self, rates: Mapping[str, float], marks: Mapping[str, float], now_ms: int
    ) -> tuple[Fill, ...]:
        """Charge or credit each whole hour crossed since a position's last funding.

        The rate is the venue's current hourly rate for the symbol (from metaAndAssetCtxs); a
        symbol with no known rate is skipped and catches up later. The price is the mark, else
        the entry price.
        """
        rows: list[Fill] = []
        for symbol in sorted(self._positions):
            rate = rates.get(symbol)
            if rate is None:
                continue
            for hour_ms in fill_model.funding_hours(self._positions[symbol].last_funding_ms, now_ms):
                rows.append(self._fund(symbol, rate, marks.get(symbol), hour_ms))
        return tuple(rows)

    def _fund(self, symbol: str, rate: float, mark: float | None, hour_ms: int) -> Fill:
        position = self._positions[symbol]
        price = mark if mark is not None and mark > 0 else position.entry_price
        delta = fill_model.funding_usd(position.side, position.size_coins, price, rate)
        priced = PricedFill(price=price, source=None, slippage_bps=0.0)  # type: ignore[arg-type]
        row = self._row(
            kind=LedgerKind.FUNDING,
            symbol=symbol,
            side=position.side,
            size=position.size_coins,
            priced=priced,
            fee=0.0,
            realised=0.0,
            funding=delta,
            cash_delta=delta,
            balance=self._cash + delta,
            reason=f"funding rate={rate:+.10f}",
            event_ms=hour_ms,
            leverage=position.leverage,
            margin=0.0,
            decision_id=None,
        )
        stored, stored_position = self._store.append(
            row, dataclasses.replace(position, last_funding_ms=hour_ms)
        )
        self._apply(symbol, stored, stored_position)
        return stored

    def account(self, marks: Mapping[str, float], now_ms: int) -> AccountSnapshot:
        """Value cash plus positions at `marks`, less the fees to close them (the marks are kept)."""
        self._marks.update({s: m for s, m in marks.items() if m is not None and m > 0})
        unrealised = close_fees = margin = 0.0
        stale = False
        for symbol, position in self._positions.items():
            mark = marks.get(symbol)
            if mark is None or not mark > 0:
                mark, stale = position.entry_price, True
            unrealised += fill_model.unrealised_pnl_usd(
                position.side, position.entry_price, mark, position.size_coins
            )
            close_fees += fill_model.fee_usd(position.size_coins, mark, self._params.fee_rate_for(symbol))
            margin += position.margin_used_usd
        return AccountSnapshot(
            mode=Mode.PAPER,
            cash_usd=self._cash,
            equity_usd=self._cash + unrealised - close_fees,
            unrealised_pnl_usd=unrealised,
            margin_used_usd=margin,
            open_positions=len(self._positions),
            recorded_ms=now_ms,
            marks_stale=stale,
        )

    def _row(
        self,
        *,
        kind: LedgerKind,
        symbol: str,
        side: PositionSide | None,
        size: float,
        priced: PricedFill | None,
        fee: float,
        realised: float,
        funding: float,
        cash_delta: float,
        balance: float,
        reason: str,
        event_ms: int,
        leverage: float,
        margin: float,
        decision_id: str | None,
    ) -> Fill:
        trading = kind in (LedgerKind.OPEN, LedgerKind.ADD, LedgerKind.REDUCE, LedgerKind.CLOSE)
        price = 0.0 if priced is None else priced.price
        order_side = None
        if trading and side is not None:
            order_side = fill_model.order_side(side, kind in (LedgerKind.OPEN, LedgerKind.ADD))
        return Fill(
            trade_id=0,
            mode=Mode.PAPER,
            kind=kind,
            symbol=symbol,
            position_side=side,
            order_side=order_side,
            size_coins=size,
            price=price,
            notional_usd=size * price,
            fee_usd=fee,
            fee_rate=self._params.fee_rate_for(symbol) if trading else 0.0,
            liquidity=self._params.fee_mode if trading else None,
            realised_pnl_usd=realised,
            funding_usd=funding,
            cash_delta_usd=cash_delta,
            balance_usd=balance,
            reason=reason,
            event_ms=event_ms,
            recorded_ms=self._clock_ms(),
            price_source=None if priced is None else priced.source,
            leverage=leverage,
            margin_used_usd=margin,
            decision_id=decision_id,
        )


def _risk_rejected(intent: OrderIntent, deny: Deny) -> OrderResult:
    return OrderResult(
        intent=intent, status=ExecutionStatus.REJECTED, reject=BrokerReject.RISK_DENIED,
        detail={"reason": deny.reason.value, **deny.details}, deny=deny,
    )  # fmt: skip


def _precheck(intent: OrderIntent, position: Position | None) -> BrokerReject | None:
    if intent.action is TradeAction.OPEN:
        return BrokerReject.POSITION_EXISTS if position is not None else None
    if position is None:
        return BrokerReject.NO_POSITION
    if position.side is not intent.side:
        return BrokerReject.SIDE_MISMATCH
    return None


def _added(position: Position, size: float, price: float, atr: float | None, now_ms: int) -> Position:
    total = position.size_coins + size
    entry = fill_model.weighted_entry(position.size_coins, position.entry_price, size, price)
    entry_atr = position.entry_atr
    if position.entry_atr is not None and atr is not None:
        entry_atr = (position.entry_atr * position.size_coins + atr * size) / total
    elif entry_atr is None:
        entry_atr = atr
    return dataclasses.replace(
        position,
        size_coins=total,
        entry_price=entry,
        entry_atr=entry_atr,
        margin_used_usd=total * entry / position.leverage,
        adds_count=position.adds_count + 1,
        last_add_ms=now_ms,
        tp1_taken=False,
    )
