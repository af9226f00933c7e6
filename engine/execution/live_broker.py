"""The venue brokers: `LiveBroker` (signs and POSTs) and `DryLiveBroker` (signs, records, never POSTs).

Both implement `engine.execution.broker.Broker` on top of the OMS ledger (`engine.oms.ledger.LiveOms`). One
`execute` call, in this order, failing closed at every step:

1. Build the order: IOC limit at the reference price +- the slippage bound (market-like), size
   rounded to the asset's lot; REDUCE and CLOSE are reduce-only (CLOSE sizes from the venue
   position, read fresh).
2. Commit the intent with its cloid (OPEN deduped per symbol/side/candle; ADD too, retried in
   its candle only after every earlier attempt settled unfilled: `engine.oms.dedupe`). A
   duplicate or a failed commit sends nothing.
3. Run the pre-send check (`engine.execution.broker.PreSendCheck`, injected in the constructor:
   risk and kill switch) with the broker's own account, positions and now. A `Deny`, an
   exception (RiskReason.CHECK_FAILED) or anything that is not a verdict records DENIED, with
   the reason code and details in the OMS row and the `Deny` in `OrderResult.deny`; nothing is sent.
4. For OPEN/ADD, set the leverage (`updateLeverage`) when it differs from what we last set.
5. Sign the order. dry_live records WOULD_SEND and stops; live POSTs once and records the outcome.
   An ambiguous outcome is PENDING (UNKNOWN in the ledger): never treated as rejected, never
   re-sent; the reconciler settles it by cloid.

Positions and the account come from the venue's `clearinghouseState` (the source of truth in
live). A failed read is never "flat": the last good snapshot is used and flagged stale, and with
no snapshot at all the read raises.

`DryLiveBroker` is constructed without any transport, so it cannot POST by construction.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config.env import env_float
from engine.config.perp_dexes import PerpDexSelection
from engine.enums import BrokerReject, ExecutionStatus, GateReason, Mode, NotSentReason, RoundDirection, Tif
from engine.execution.address_budget import (
    AddressBudget,
    AddressBudgetConfig,
    Alert,
    BudgetedTransport,
    is_budget_refusal,
    with_address_budget,
)
from engine.execution.broker import (
    AccountSnapshot,
    ExitState,
    Fill,
    OrderIntent,
    OrderResult,
    Position,
    PreSendCheck,
)
from engine.execution.gates import GateVerdict, live_gate
from engine.execution.verdicts import Allow, Deny, RiskVerdict, check_failed
from engine.oms.ledger import LiveOms, dedupe_key_for_add, dedupe_key_for_open
from engine.oms.states import OmsEvent, OrderState
from engine.runtime.clock import wall_ms
from engine.venue import types as hl
from engine.venue.account_info import read_user_rate_limit
from engine.venue.equity import AccountEquityReader
from engine.venue.exchange_client import (
    ActionSigner,
    ExchangeAccepted,
    ExchangeNotSent,
    ExchangeOutcome,
    ExchangeTransport,
    OrderSpec,
    SignedAction,
    SigningKey,
    aggressive_limit_price,
    round_size,
)
from engine.venue.info_client import HyperliquidInfoClient, RetryPolicy
from engine.venue.rate_budget import RateBudget
from strategies.enums import PositionSide, TradeAction

log = logging.getLogger(__name__)

_PENDING_STATES = {OrderState.UNKNOWN, OrderState.NEW, OrderState.ACCEPTED, OrderState.PARTIAL}



@dataclass(frozen=True, slots=True, kw_only=True)
class LiveBrokerConfig:
    """`user`: the main account address (positions, fills); `slippage`: IOC limit bound as a
    fraction of the reference price (0.01 = 1 %); `state_max_age_ms`: how old a clearinghouse
    snapshot may be before positions()/account() re-read it; `budget_wait_secs`: how long a send
    may wait for rate budget before it is NOT_SENT."""

    user: str
    slippage: float = 0.01
    state_max_age_ms: int = 2_000
    budget_wait_secs: float = 2.0
    cross_margin: bool = True

    @classmethod
    def from_env(cls, user: str, env: Mapping[str, str] | None = None) -> LiveBrokerConfig:
        """Read HL_LIVE_MARKET_SLIPPAGE_PCT (fraction, [0.0005, 0.10], the reference's name and range)."""
        return cls(
            user=user, slippage=env_float("HL_LIVE_MARKET_SLIPPAGE_PCT", 0.01, env, lo=0.0005, hi=0.10)
        )


@dataclass(slots=True)
class _Venue:
    state: hl.UserState | None = None
    state_ms: int = 0
    stale: bool = True
    meta: hl.Meta | None = None
    leverage_set: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Order:
    asset: hl.AssetMeta
    is_buy: bool
    size: float
    limit_px: float
    reduce_only: bool


class _Refused(Exception):
    def __init__(self, reject: BrokerReject, detail: Mapping[str, object], deny: Deny | None = None) -> None:
        super().__init__(str(reject))
        self.reject = reject
        self.detail = dict(detail)
        self.deny = deny


class _VenueBroker:
    """What live and dry_live share: order building, the OMS steps, venue reads."""

    _mode: Mode

    def __init__(
        self,
        *,
        oms: LiveOms,
        info: HyperliquidInfoClient,
        signer: ActionSigner,
        config: LiveBrokerConfig,
        pre_send_check: PreSendCheck,
        clock_ms: Callable[[], int] = wall_ms,
        equity: AccountEquityReader | None = None,
    ) -> None:
        self.oms = oms
        self.info = info
        self.signer = signer
        self.config = config
        self._pre_send_check = pre_send_check
        self._clock_ms = clock_ms
        # equity as the account's mode (standard / unified) requires: engine.venue.equity
        self.equity = equity or AccountEquityReader(info, config.user, clock_ms=clock_ms)
        self._venue = _Venue()
        self._lock = threading.RLock()
        # told the symbol after an order went out or the exit state moved (venue-side protection)
        self.on_change: Callable[[str], None] | None = None

    @property
    def mode(self) -> Mode:
        return self._mode

    # --- venue reads ------------------------------------------------------------------------

    def refresh(self) -> hl.UserState:
        """Re-read clearinghouseState; on failure keep the last snapshot, flag it stale, re-raise."""
        try:
            state = self.info.clearinghouse_state(self.config.user)
        except hl.VenueError:
            self._venue.stale = True
            raise
        self._venue.state, self._venue.state_ms, self._venue.stale = state, self._clock_ms(), False
        return state

    def _state(self) -> hl.UserState:
        if (
            self._venue.state is None
            or self._clock_ms() - self._venue.state_ms > self.config.state_max_age_ms
        ):
            try:
                return self.refresh()
            except hl.VenueError:
                if self._venue.state is None:
                    raise
                log.warning(
                    "clearinghouse read failed; using the last snapshot", extra={"mode": str(self.mode)}
                )
        return self._venue.state  # type: ignore[return-value]

    @property
    def state_stale(self) -> bool:
        """True when the last venue read failed (positions are the last known, not fresh)."""
        return self._venue.stale

    def _asset(self, symbol: str) -> hl.AssetMeta:
        if self._venue.meta is None or self._venue.meta.asset(symbol) is None:
            self._venue.meta = self.info.meta()
        asset = self._venue.meta.asset(symbol)
        if asset is None or asset.is_delisted:
            raise _Refused(BrokerReject.UNKNOWN_SYMBOL, {"symbol": symbol})
        return asset

    def positions(self) -> Mapping[str, Position]:
        """Return the venue's open positions by coin, with exit and pyramiding state from the
        ledger (trailing stop, TP1 taken, adds, last add): the venue knows none of them, and
        without them live would add past its limits, or take TP1 again after a restart."""
        state = self._state()
        out: dict[str, Position] = {}
        for pos in state.positions:
            if pos.szi == 0:
                continue
            entry = self.oms.last_filled_entry(pos.coin)
            exit_state = self.oms.exit_state(pos.coin)
            meta = _meta(entry.meta_json) if entry is not None else {}
            since = self.oms.since_entry(pos.coin)
            out[pos.coin] = Position(
                symbol=pos.coin,
                side=PositionSide.LONG if pos.szi > 0 else PositionSide.SHORT,
                size_coins=abs(pos.szi),
                entry_price=float(pos.entry_px or 0.0),
                leverage=float(pos.leverage),
                margin_used_usd=pos.margin_used_usd,
                open_trade_id=0,
                opened_ms=entry.event_ms if entry is not None else 0,
                last_funding_ms=0,
                entry_atr=meta.get("entry_atr"),
                entry_adx_threshold=meta.get("entry_adx_threshold"),
                trailing_sl=exit_state[0] if exit_state else None,
                tp1_taken=bool(exit_state and exit_state[1]) or since.reduces > 0,
                adds_count=since.adds,
                last_add_ms=since.last_add_ms,
            )
        return out

    def account(self, marks: Mapping[str, float], now_ms: int) -> AccountSnapshot:
        """Return equity and cash from the venue, read as the account mode requires (standard:
        accountValue; unified: the spot USDC balance + unrealised PnL); stale if a read failed."""
        state = self._state()
        equity = self.equity.equity(state)
        return AccountSnapshot(
            mode=self.mode,
            cash_usd=equity.cash_usd,
            equity_usd=equity.equity_usd,
            unrealised_pnl_usd=equity.unrealised_pnl_usd,
            margin_used_usd=equity.margin_used_usd,
            open_positions=sum(1 for p in state.positions if p.szi != 0),
            recorded_ms=now_ms,
            marks_stale=self._venue.stale or self.equity.stale,
        )

    def update_exit_state(self, symbol: str, state: ExitState, now_ms: int) -> None:
        if symbol not in self.positions():
            raise KeyError(f"no open {self.mode} position for {symbol}")
        self.oms.set_exit_state(symbol, state.trailing_sl, state.tp1_taken)
        self._changed(symbol)

    def _changed(self, symbol: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(symbol)
            except Exception:  # protection's own failure must never fail the order that triggered it
                log.exception("on_change hook failed symbol=%s", symbol)

    def accrue_funding(
        self, rates: Mapping[str, float], marks: Mapping[str, float], now_ms: int
    ) -> tuple[Fill, ...]:
        return ()  # the venue charges funding itself; it shows in accountValue

    # --- execution --------------------------------------------------------------------------

    def execute(self, intent: OrderIntent, now_ms: int) -> OrderResult:
        """Run the steps in the module docstring; never raises for a refusal."""
        with self._lock:
            try:
                result = self._execute(intent)
            except _Refused as refused:
                return OrderResult(
                    intent=intent,
                    status=ExecutionStatus.REJECTED,
                    reject=refused.reject,
                    detail=refused.detail,
                    deny=refused.deny,
                )
        self._changed(intent.symbol)
        return result

    def _build(self, intent: OrderIntent) -> _Order:
        asset = self._asset(intent.symbol)
        opening = intent.action in (TradeAction.OPEN, TradeAction.ADD)
        is_buy = (intent.side is PositionSide.LONG) == opening
        if intent.action is TradeAction.CLOSE:
            venue_pos = self.refresh().position(intent.symbol)
            if venue_pos is None or (venue_pos.szi > 0) != (intent.side is PositionSide.LONG):
                raise _Refused(BrokerReject.NO_POSITION, {"symbol": intent.symbol})
            size = abs(venue_pos.szi)
        else:
            direction = RoundDirection.DOWN if opening else RoundDirection.UP
            size = round_size(float(intent.size_coins or 0.0), asset.sz_decimals, direction)
        if size <= 0:
            raise _Refused(BrokerReject.INVALID_SIZE, {"size_coins": intent.size_coins})
        ref = _reference_price(intent, is_buy)
        if ref is None:
            raise _Refused(BrokerReject.NO_PRICE, {"symbol": intent.symbol})
        limit_px = aggressive_limit_price(ref, is_buy, self.config.slippage, asset.sz_decimals)
        return _Order(asset, is_buy, size, limit_px, not opening)

    def _execute(self, intent: OrderIntent) -> OrderResult:
        try:
            order = self._build(intent)
        except hl.VenueError as exc:  # meta / position unreadable: nothing committed, nothing sent
            raise _Refused(
                BrokerReject.NOT_SENT, {"error": type(exc).__name__, "stage": "venue_read"}
            ) from exc
        dedupe = _entry_dedupe_key(intent)
        try:
            created = self.oms.create_intent(
                symbol=intent.symbol, action=str(intent.action), position_side=str(intent.side),
                is_buy=order.is_buy, size_coins=order.size, limit_px=order.limit_px,
                reduce_only=order.reduce_only, reference_price=intent.reference_price,
                leverage=intent.leverage, reason=intent.reason, event_ms=intent.event_ms,
                decision_id=intent.decision_id, dedupe_key=dedupe,
                retry_unfilled=intent.action is TradeAction.ADD,
                meta={"entry_atr": intent.entry_atr, "entry_adx_threshold": intent.entry_adx_threshold,
                      "confidence": None if intent.confidence is None else str(intent.confidence)},
            )  # fmt: skip
        except Exception as exc:  # the ledger is the precondition of any send: fail closed
            log.error(
                "intent commit failed; not sending", extra={"symbol": intent.symbol, "error": repr(exc)}
            )
            raise _Refused(BrokerReject.OMS_UNAVAILABLE, {"error": type(exc).__name__}) from exc
        record = created.intent
        ids = {"intent_id": record.intent_id, "cloid": record.cloid}
        if created.duplicate:
            raise _Refused(BrokerReject.DUPLICATE_INTENT, {**ids, "state": str(created.state)})
        if intent.action is TradeAction.OPEN:
            self.oms.clear_exit_state(intent.symbol)  # a new position: no trailing stop of an old one
        verdict = self._pre_send(intent)
        if isinstance(verdict, Deny):
            self.oms.apply(record.intent_id, OmsEvent.DENY, reason=verdict.reason, detail=verdict.details)
            raise _Refused(BrokerReject.RISK_DENIED, {**ids, "risk_reason": verdict.reason}, verdict)
        if not order.reduce_only and not self._ensure_leverage(order.asset, intent.leverage):
            self.oms.apply(record.intent_id, OmsEvent.DENY, reason=BrokerReject.LEVERAGE_UPDATE_FAILED)
            raise _Refused(BrokerReject.LEVERAGE_UPDATE_FAILED, ids)
        spec = OrderSpec(
            asset=order.asset.asset_id, is_buy=order.is_buy, limit_px=order.limit_px, sz=order.size,
            reduce_only=order.reduce_only, tif=Tif.IOC, cloid=record.cloid,
        )  # fmt: skip
        try:
            signed = self.signer.sign_orders([spec])
        except ValueError as exc:  # not representable on the wire: refuse, never send something else
            self.oms.apply(
                record.intent_id, OmsEvent.DENY, reason=BrokerReject.INVALID_SIZE, detail={"stage": "signing"}
            )
            raise _Refused(BrokerReject.INVALID_SIZE, {**ids, "error": str(exc)[:200]}) from exc
        return self._dispatch(intent, record.intent_id, signed, ids)

    def _pre_send(self, intent: OrderIntent) -> RiskVerdict:
        # Fail closed: an unreadable account, a raising check or a non-verdict all deny.
        try:
            now = self._clock_ms()
            verdict = self._pre_send_check(intent, self.account({}, now), self.positions(), now)
        except Exception as exc:
            log.error("pre-send check raised; denying", extra={"symbol": intent.symbol, "error": repr(exc)})
            return check_failed("pre_send_check", exc)
        if isinstance(verdict, Allow | Deny):
            return verdict
        log.error("pre-send check returned %s, not a verdict; denying", type(verdict).__name__)
        return check_failed("not_a_verdict")

    def _ensure_leverage(self, asset: hl.AssetMeta, leverage: float) -> bool:
        wanted = max(1, min(round(leverage), asset.max_leverage))
        if self._venue.leverage_set.get(asset.name) == wanted:
            return True
        signed = self.signer.sign_update_leverage(asset.asset_id, wanted, is_cross=self.config.cross_margin)
        if not self._send_leverage(signed):
            return False
        self._venue.leverage_set[asset.name] = wanted
        return True

    def _dispatch(
        self, intent: OrderIntent, intent_id: str, signed: SignedAction, ids: dict[str, str]
    ) -> OrderResult:
        raise NotImplementedError

    def _send_leverage(self, signed: SignedAction) -> bool:
        raise NotImplementedError


class LiveBroker(_VenueBroker):
    """Sends through `transport` (shared RateBudget with the info client). mode = live."""

    _mode = Mode.LIVE

    def __init__(
        self,
        *,
        transport: ExchangeTransport,
        gate: Callable[[], GateVerdict] = lambda: live_gate(Mode.LIVE),
        on_sent: Callable[[OrderIntent, int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.transport = transport
        self._gate = gate
        self._on_sent = on_sent

    def _gate_verdict(self) -> GateVerdict:
        try:
            return self._gate()
        except Exception:  # a broken gate never opens
            log.exception("live gate raised; treating as closed")
            return GateVerdict(may_send=False, reason=GateReason.INVALID_VALUE)

    def _dispatch(
        self, intent: OrderIntent, intent_id: str, signed: SignedAction, ids: dict[str, str]
    ) -> OrderResult:
        verdict = self._gate_verdict()  # re-read right before the POST
        if not verdict.may_send:
            self.oms.apply(intent_id, OmsEvent.WOULD_SEND, detail={"gate": str(verdict.reason)})
            return OrderResult(
                intent=intent, status=ExecutionStatus.WOULD_SEND, detail={**ids, "gate": str(verdict.reason)}
            )
        outcome = self.transport.post(signed, budget_wait_secs=self.config.budget_wait_secs)
        state = self.oms.record_outcome(intent_id, outcome)
        self._venue.state_ms = 0  # positions changed (or may have): re-read on next use
        # a venue budget refusal used nothing and did nothing: not "sent" for the order-rate limits
        if self._on_sent is not None and state is not OrderState.NOT_SENT and not is_budget_refusal(outcome):
            self._on_sent(intent, self._clock_ms())
        return _result(intent, state, outcome, ids)

    def _send_leverage(self, signed: SignedAction) -> bool:
        if not self._gate_verdict().may_send:
            return True  # nothing will be sent: the order is recorded as WOULD_SEND next
        outcome = self.transport.post(signed, budget_wait_secs=self.config.budget_wait_secs)
        return isinstance(outcome, ExchangeAccepted)

    def cancel(self, symbol: str, oid: int) -> ExchangeOutcome:
        """Cancel one of our orders by exchange oid (never cancel-all). Only the hard kill (or a
        closed gate) stops a cancel: then nothing is sent and the outcome is NOT_SENT."""
        signed = self.signer.sign_cancels([(self._asset(symbol).asset_id, int(oid))])
        verdict = self._gate_verdict()
        if not verdict.may_send:
            return ExchangeNotSent(
                signed.action_type, signed.nonce, NotSentReason.CONNECT_FAILED, str(verdict.reason)
            )
        return self.transport.post(signed, budget_wait_secs=self.config.budget_wait_secs)

    def schedule_cancel(self, time_ms: int | None) -> ExchangeOutcome:
        """Arm (or with None clear) the venue's dead man's switch: cancel all open orders at time_ms."""
        signed = self.signer.sign_schedule_cancel(time_ms)
        verdict = self._gate_verdict()
        if not verdict.may_send:
            return ExchangeNotSent(
                signed.action_type, signed.nonce, NotSentReason.CONNECT_FAILED, str(verdict.reason)
            )
        return self.transport.post(signed)


class DryLiveBroker(_VenueBroker):
    """Reads the real account, builds and signs every action, records WOULD_SEND; holds no
    transport, so it cannot POST. mode = dry_live."""

    _mode = Mode.DRY_LIVE

    def __init__(self, **kwargs: Any) -> None:
        if "transport" in kwargs:
            raise TypeError("DryLiveBroker takes no transport: it must not be able to send")
        super().__init__(**kwargs)
        self.would_send: deque[dict[str, object]] = deque(maxlen=1000)  # the latest, for inspection

    def _dispatch(
        self, intent: OrderIntent, intent_id: str, signed: SignedAction, ids: dict[str, str]
    ) -> OrderResult:
        self.oms.apply(intent_id, OmsEvent.WOULD_SEND, detail={"nonce": signed.nonce})
        self.would_send.append({"action": str(signed.action_type), "nonce": signed.nonce, **ids})
        return OrderResult(intent=intent, status=ExecutionStatus.WOULD_SEND, detail=ids)

    def _send_leverage(self, signed: SignedAction) -> bool:
        self.would_send.append({"action": str(signed.action_type), "nonce": signed.nonce})
        return True


def _result(
    intent: OrderIntent, state: OrderState, outcome: ExchangeOutcome, ids: dict[str, str]
) -> OrderResult:
    detail: dict[str, object] = {**ids, "state": str(state), "outcome": str(outcome.kind)}
    if isinstance(outcome, ExchangeAccepted) and outcome.ack.statuses:
        status = outcome.ack.statuses[0]
        if isinstance(status, hl.FilledStatus):
            detail.update(oid=status.oid, total_sz=status.total_sz, avg_px=status.avg_px)
        elif isinstance(status, hl.ErrorStatus):
            detail.update(message=status.message[:200])
    if state is OrderState.FILLED:
        return OrderResult(intent=intent, status=ExecutionStatus.FILLED, detail=detail)
    if state in _PENDING_STATES:
        return OrderResult(intent=intent, status=ExecutionStatus.PENDING, detail=detail)
    reject = BrokerReject.NOT_SENT if state is OrderState.NOT_SENT else BrokerReject.VENUE_REJECTED
    detail["reason"] = str(getattr(outcome, "reason", ""))
    return OrderResult(intent=intent, status=ExecutionStatus.REJECTED, reject=reject, detail=detail)


def _entry_dedupe_key(intent: OrderIntent) -> str | None:
    """The ledger's dedupe key of an entry, which adds exposure (None for exits: they are
    reduce-only, and CLOSE sizes from the venue position read fresh)."""
    side = str(intent.side)
    if intent.action is TradeAction.OPEN:
        return dedupe_key_for_open(intent.symbol, side, intent.event_ms)
    if intent.action is TradeAction.ADD:
        return dedupe_key_for_add(intent.symbol, side, intent.event_ms)
    return None


def _reference_price(intent: OrderIntent, is_buy: bool) -> float | None:
    quote = intent.quote
    if quote is not None:
        touch = quote.ask if is_buy else quote.bid
        for candidate in (touch, quote.mid):
            if candidate is not None and candidate > 0:
                return float(candidate)
    return intent.reference_price if intent.reference_price > 0 else None


def _meta(meta_json: str) -> dict[str, Any]:
    try:
        value = json.loads(meta_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)
class VenueBrokerParts:
    """What `build_venue_broker` wired: close `info` and `transport` when done."""

    broker: LiveBroker | DryLiveBroker
    info: HyperliquidInfoClient
    transport: ExchangeTransport | None
    address_budget: AddressBudget | None = None  # polled by the live stack (engine.execution.address_budget)


def build_venue_broker(
    *,
    mode: Mode,
    base_url: str,
    key: SigningKey,
    oms: LiveOms,
    config: LiveBrokerConfig,
    pre_send_check: PreSendCheck,
    budget: RateBudget | None = None,
    timeout_secs: float = 5.0,
    retry: RetryPolicy | None = None,
    clock_ms: Callable[[], int] = wall_ms,
    gate: Callable[[], GateVerdict] | None = None,
    on_sent: Callable[[OrderIntent, int], None] | None = None,
    address_budget: AddressBudgetConfig | None = None,
    alert: Alert | None = None,
    perp_dexes: PerpDexSelection | None = None,
) -> VenueBrokerParts:
    """Wire a live or dry_live broker: one RateBudget shared by the info client and (live only) the
    transport; testnet signatures for any non-mainnet URL. dry_live gets no transport at all.
    `gate` defaults to `live_gates.live_gate(Mode.LIVE)` read from the environment before every
    POST; `on_sent(intent, now_ms)` is told about every order that was (or may have been) sent.
    With `address_budget` set, the per-address request budget counts every post and sheds entries
    before it runs out (`alert` is told when shedding starts and ends)."""
    budget = budget or RateBudget()
    info = HyperliquidInfoClient(
        base_url, timeout_secs=timeout_secs, budget=budget, retry=retry, perp_dexes=perp_dexes
    )  # perp_dexes: meta, state and open orders span AI_QUANT_PERP_DEXES
    addresses = None
    if address_budget is not None:
        addresses = AddressBudget(
            read=lambda: read_user_rate_limit(info, config.user), config=address_budget, alert=alert,
            clock_ms=clock_ms,
        )  # fmt: skip
        pre_send_check = with_address_budget(pre_send_check, addresses)
    signer = ActionSigner.for_base_url(key, base_url)
    common: dict[str, Any] = {
        "oms": oms, "info": info, "signer": signer, "config": config, "pre_send_check": pre_send_check,
        "clock_ms": clock_ms,
    }  # fmt: skip
    if mode is Mode.DRY_LIVE:
        return VenueBrokerParts(DryLiveBroker(**common), info, None, addresses)
    if mode is not Mode.LIVE:
        raise ValueError(f"build_venue_broker builds live or dry_live, not {mode}")
    transport = (
        ExchangeTransport(base_url, timeout_secs=timeout_secs, budget=budget)
        if addresses is None
        else BudgetedTransport(base_url, address_budget=addresses, timeout_secs=timeout_secs, budget=budget)
    )
    extra: dict[str, Any] = {"on_sent": on_sent}
    if gate is not None:
        extra["gate"] = gate
    return VenueBrokerParts(LiveBroker(transport=transport, **common, **extra), info, transport, addresses)
