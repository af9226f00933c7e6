"""Venue-side protection, the shell: keeps a reduce-only stop (and take-profit) trigger order on
the venue for every live position, through the OMS ledger and the risk manager.

`ProtectionKeeper.sync()` reads the venue positions (the broker's view, with the trailing stop
and entry ATR from the ledger) and the ledger's protective orders, asks the pure planner
(`engine.execution.protection.plan`) what to do, and does it. Every protective order is an OMS
intent (action PROTECT, reason the `ProtectionKind`, the trigger price in its meta), committed
with its cloid before anything is signed, exactly like an entry or exit; the reconciler settles
it by cloid and links its fills, so a stop the venue fired while the daemon was dead lands in the
ledger like any other fill. Placement and modification pass `RiskManager.check_protective`
(only the hard kill and HALTED stop them), cancels `check_cancel`; the live gate is re-read before
every POST. dry_live (no `post`) and a closed gate record WOULD_SEND, remembered per symbol and
kind so one change is recorded once, not every loop.

Before sending a PLACE or MODIFY the positions are re-read from the venue (a stop that fired a
moment ago must not be re-placed on a position that is gone). A position whose stop could not be
placed (denied, rejected, not sent) is alerted once until it is protected again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config.env import env_bool, env_float
from engine.enums import AlertKind, GateReason, ProtectionKind, ProtectionStep
from engine.execution.broker import Position
from engine.execution.gates import GateVerdict
from engine.execution.protection import (
    PROTECT_ACTION,
    AlertPort,
    LiveProtection,
    ProtectedPosition,
    ProtectionAction,
    ProtectionParams,
    desired_for,
    plan,
)
from engine.execution.verdicts import Deny, RiskVerdict
from engine.oms.ledger import LiveOms
from engine.oms.states import UNSETTLED, InvalidTransition, OmsEvent, OrderState
from engine.runtime.clock import wall_ms
from engine.venue import types as hl
from engine.venue.exchange_client import (
    ActionSigner,
    ExchangeAccepted,
    ExchangeAmbiguous,
    ExchangeOutcome,
    OrderSpec,
    SignedAction,
    TriggerSpec,
    aggressive_limit_price,
)

log = logging.getLogger(__name__)

TRIGGER_SLIPPAGE = 0.10  # the limit of a fired market trigger: the venue's own 10 % tolerance
_TPSL = {ProtectionKind.STOP_LOSS: "sl", ProtectionKind.TAKE_PROFIT: "tp"}
_LIVE_AFTER_SEND = frozenset({OrderState.ACCEPTED, OrderState.PARTIAL, OrderState.FILLED, OrderState.UNKNOWN})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionConfig:
    """`enabled`: keep protective orders on the venue (AI_QUANT_PROTECT, default on);
    `min_reprice_fraction`: a trigger price move smaller than this (fraction of the price) waits
    for a larger one (AI_QUANT_PROTECT_MIN_REPRICE_BPS, default 5 bps), so a trailing stop that
    ratchets every tick does not cost a request every tick; `buffer_atr`: how many entry ATRs
    beyond the software stop / take-profit the venue's orders rest (AI_QUANT_PROTECT_BUFFER_ATR,
    default 0.5: the daemon's own exits act first while it lives)."""

    enabled: bool = True
    min_reprice_fraction: float = 0.0005
    buffer_atr: float = 0.5
    retry_secs: float = 30.0  # a refused place/modify of a (symbol, kind) waits this long

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProtectionConfig:
        """Raise ConfigError naming the variable for a bad value."""
        bps = env_float("AI_QUANT_PROTECT_MIN_REPRICE_BPS", 5.0, env, lo=0.0, hi=500.0)
        return cls(
            enabled=env_bool("AI_QUANT_PROTECT", True, env), min_reprice_fraction=bps / 10_000.0,
            buffer_atr=env_float("AI_QUANT_PROTECT_BUFFER_ATR", 0.5, env, lo=0.0, hi=10.0),
        )


@dataclass(slots=True)
class ProtectionReport:
    placed: int = 0
    modified: int = 0
    cancelled: int = 0
    refused: int = 0  # denied, rejected or not sent
    unprotected: tuple[str, ...] = ()  # symbols with a position and no stop known on the venue


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskPort:
    """The risk manager's checks protection uses (bound methods of `RiskManager`)."""

    check_protective: Callable[[int, str], RiskVerdict]
    check_cancel: Callable[[int], RiskVerdict]
    note_cancel_sent: Callable[[int], None]


@dataclass(slots=True)
class _Memory:
    would_send: dict[tuple[str, ProtectionKind], LiveProtection] = field(default_factory=dict)
    alerted: set[str] = field(default_factory=set)
    retry_at_ms: dict[tuple[str, ProtectionKind], int] = field(default_factory=dict)
    meta: hl.Meta | None = None


class ProtectionKeeper:
    """See the module docstring. Not thread-safe: call from the loop's thread."""

    def __init__(
        self,
        *,
        oms: LiveOms,
        info: Any,
        signer: ActionSigner,
        positions: Callable[[], Mapping[str, Position]],
        refresh: Callable[[], object],
        params_for: Callable[[str], ProtectionParams],
        risk: RiskPort,
        gate: Callable[[], GateVerdict],
        post: Callable[[SignedAction], ExchangeOutcome] | None,
        user: str,
        alerter: AlertPort | None = None,
        config: ProtectionConfig | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.oms, self.info, self.signer = oms, info, signer
        self._positions, self._refresh, self._params_for = positions, refresh, params_for
        self._risk, self._gate, self._post, self._user = risk, gate, post, user
        self._alerter = alerter
        self.config = config or ProtectionConfig()
        self._clock_ms = clock_ms
        self._mem = _Memory()

    # --- planning -----------------------------------------------------------------------------

    def live_protections(self) -> list[LiveProtection]:
        """The ledger's unsettled protective orders, plus what dry_live / a closed gate recorded."""
        out = list(self._mem.would_send.values())
        for row in self.oms.orders(UNSETTLED):
            intent = self.oms.intent(row.intent_id)
            if intent is None or intent.action != PROTECT_ACTION:
                continue
            meta = json.loads(intent.meta_json)
            out.append(LiveProtection(
                intent_id=intent.intent_id, cloid=intent.cloid, symbol=intent.symbol,
                kind=ProtectionKind(intent.reason), is_buy=intent.is_buy, size_coins=intent.size_coins,
                trigger_px=float(meta["trigger_px"]), state=row.state, oid=row.oid,
            ))  # fmt: skip
        return out

    def plan_now(self, symbols: Iterable[str] | None = None) -> tuple[list[ProtectionAction], list[str]]:
        """Return (the steps to take now, the symbols holding a position), limited to `symbols`."""
        only = None if symbols is None else set(symbols)
        desired = []
        held = []
        positions = self._positions()
        for key in [k for k in self._mem.would_send if k[0] not in positions]:
            del self._mem.would_send[key]  # dry_live: that position is gone
        for symbol, position in sorted(positions.items()):
            if only is not None and symbol not in only:
                continue
            held.append(symbol)
            desired.extend(desired_for(_protected(position), self._params_for(symbol), self._szd(symbol)))
        live = [p for p in self.live_protections() if only is None or p.symbol in only]
        return plan(desired, live, min_reprice_fraction=self.config.min_reprice_fraction), held

    def resting(self) -> bool:
        """True when a protective order of ours is (or may be) on the venue."""
        return any(p.state is not OrderState.WOULD_SEND for p in self.live_protections())

    def guarding(self) -> bool:
        """True while a position is open or a protective order rests: a cancel-all (the venue's
        dead man's switch) would take the stops away, so it must stay cleared."""
        return self.config.enabled and (bool(self._positions()) or self.resting())

    # --- the loop's step ------------------------------------------------------------------------

    def sync(self, symbols: Iterable[str] | None = None) -> ProtectionReport:
        """Bring the venue's protective orders in step with the positions (all, or `symbols`)."""
        report = ProtectionReport()
        if not self.config.enabled:
            return report
        now = self._clock_ms()
        actions, held = self._due(*self.plan_now(symbols), now)
        if any(a.step is not ProtectionStep.CANCEL for a in actions):
            self._refresh()  # a fresh venue read before anything is placed or moved
            actions, held = self._due(*self.plan_now(symbols), now)
        for action in actions:
            key = (action.symbol, action.kind)
            if not self._do(action, report):
                self._mem.retry_at_ms[key] = now + int(self.config.retry_secs * 1000)
            else:
                self._mem.retry_at_ms.pop(key, None)
        stops = [p for p in self.live_protections() if p.kind is ProtectionKind.STOP_LOSS]
        protected = {p.symbol for p in stops if p.state is not OrderState.PENDING_CANCEL}
        report.unprotected = tuple(s for s in held if s not in protected)
        self._alert_unprotected(held, report.unprotected, every_symbol=symbols is None)
        if actions:
            log.info(
                "protection sync placed=%d modified=%d cancelled=%d refused=%d unprotected=%s",
                report.placed, report.modified, report.cancelled, report.refused,
                ",".join(report.unprotected) or "-",
            )  # fmt: skip
        return report

    def _due(
        self, actions: list[ProtectionAction], held: list[str], now: int
    ) -> tuple[list[ProtectionAction], list[str]]:
        # A place or modify refused a moment ago waits (not a new intent and venue read every loop).
        due = [a for a in actions if a.step is ProtectionStep.CANCEL
               or now >= self._mem.retry_at_ms.get((a.symbol, a.kind), now)]  # fmt: skip
        return due, held

    def _do(self, action: ProtectionAction, report: ProtectionReport) -> bool:
        """Run one step; False when a place or modify was refused or failed."""
        try:
            if action.step is ProtectionStep.CANCEL:
                report.cancelled += self._cancel(action)
                return True
            ok = self._place(action)
        except (hl.VenueError, InvalidTransition, ValueError) as exc:  # this one order; a later sync retries
            log.warning("protection step failed step=%s symbol=%s kind=%s error=%r",
                        action.step.value, action.symbol, action.kind.value, exc)  # fmt: skip
            ok = action.step is ProtectionStep.CANCEL
        if action.step is ProtectionStep.PLACE:
            report.placed += ok
        elif action.step is ProtectionStep.MODIFY:
            report.modified += ok
        report.refused += not ok
        return ok

    def _alert_unprotected(
        self, held: list[str], unprotected: tuple[str, ...], *, every_symbol: bool
    ) -> None:
        # One alert per symbol until it is protected again (or its position is gone).
        if every_symbol:
            self._mem.alerted &= set(held)
        self._mem.alerted -= set(held) - set(unprotected)
        for symbol in unprotected:
            if symbol in self._mem.alerted or self._alerter is None:
                continue
            self._mem.alerted.add(symbol)
            self._alerter.send(AlertKind.RISK, "position has no stop on the venue", {"symbol": symbol})

    # --- steps ----------------------------------------------------------------------------------

    def _place(self, action: ProtectionAction) -> bool:
        """PLACE or MODIFY: commit the new intent, check, sign, send; True when the venue has it."""
        want = action.desired
        assert want is not None
        asset = self._asset(want.symbol)
        now = self._clock_ms()
        limit_px = aggressive_limit_price(want.trigger_px, want.is_buy, TRIGGER_SLIPPAGE, asset.sz_decimals)
        record = self.oms.create_intent(
            symbol=want.symbol, action=PROTECT_ACTION, position_side="SHORT" if want.is_buy else "LONG",
            is_buy=want.is_buy, size_coins=want.size_coins, limit_px=limit_px, reduce_only=True,
            reference_price=want.trigger_px, leverage=1.0, reason=want.kind.value, event_ms=now,
            meta={"trigger_px": want.trigger_px, "tpsl": _TPSL[want.kind], "step": action.step.value,
                  "replaces": None if action.existing is None else action.existing.cloid},
        ).intent  # fmt: skip
        verdict = self._risk.check_protective(now, action.step.value)
        if isinstance(verdict, Deny):
            self.oms.apply(record.intent_id, OmsEvent.DENY, reason=verdict.reason, detail=verdict.details)
            return False
        spec = OrderSpec(
            asset=asset.asset_id, is_buy=want.is_buy, limit_px=limit_px, sz=want.size_coins, reduce_only=True,
            cloid=record.cloid, trigger=TriggerSpec(trigger_px=want.trigger_px, tpsl=_TPSL[want.kind]),
        )  # fmt: skip
        existing = action.existing if action.step is ProtectionStep.MODIFY else None
        signed = (self.signer.sign_orders([spec]) if existing is None or existing.oid is None
                  else self.signer.sign_batch_modify([(existing.oid, spec)]))  # fmt: skip
        verdict_gate = self._gate_verdict()
        if self._post is None or not verdict_gate.may_send:
            self.oms.apply(record.intent_id, OmsEvent.WOULD_SEND, detail={"gate": str(verdict_gate.reason)})
            self._mem.would_send[(want.symbol, want.kind)] = LiveProtection(
                intent_id=record.intent_id, cloid=record.cloid, symbol=want.symbol, kind=want.kind,
                is_buy=want.is_buy, size_coins=want.size_coins, trigger_px=want.trigger_px,
                state=OrderState.WOULD_SEND,
            )  # fmt: skip
            return True
        outcome = self._post(signed)
        state = self.oms.record_outcome(record.intent_id, outcome)
        if existing is not None:
            self._after_modify(existing, state)
        return state in _LIVE_AFTER_SEND

    def _after_modify(self, old: LiveProtection, new_state: OrderState) -> None:
        if new_state in (OrderState.ACCEPTED, OrderState.PARTIAL, OrderState.FILLED):
            try:  # the venue replaced it: the old order's cancel is confirmed by its next status
                via = {"via": "modify"}
                self.oms.apply(old.intent_id, OmsEvent.CANCEL_REQUESTED, oid=old.oid, detail=via)
            except InvalidTransition:
                pass  # already settled by a venue update
        elif new_state is OrderState.REJECTED:
            self._settle(old)  # the old order may be gone (fired, cancelled): learn its fate now

    def _cancel(self, action: ProtectionAction) -> int:
        order = action.existing
        if order is None or order.oid is None:  # the planner never asks for it; nothing to name
            return 0
        now = self._clock_ms()
        if self._post is None or not self._gate_verdict().may_send:
            return 0
        if isinstance(self._risk.check_cancel(now), Deny):
            return 0
        signed = self.signer.sign_cancels([(self._asset(order.symbol).asset_id, order.oid)])
        via = {"via": "protection"}
        self.oms.apply(order.intent_id, OmsEvent.CANCEL_REQUESTED, oid=order.oid, detail=via)
        outcome = self._post(signed)
        self._risk.note_cancel_sent(now)
        if isinstance(outcome, ExchangeAccepted) and outcome.ack.all_ok:
            return 1
        if not isinstance(outcome, ExchangeAmbiguous):
            self.oms.apply(order.intent_id, OmsEvent.CANCEL_FAILED, detail={"outcome": str(outcome.kind)})
            self._settle(order)
        return 0

    def _settle(self, order: LiveProtection) -> None:
        try:
            info = self.info.order_status(self._user, order.cloid)
            self.oms.apply_order_status(order.intent_id, info)
        except (hl.VenueError, InvalidTransition) as exc:  # the reconciler settles it later
            log.warning("protective order status unknown cloid=%s error=%r", order.cloid, exc)

    # --- venue helpers --------------------------------------------------------------------------

    def _gate_verdict(self) -> GateVerdict:
        try:
            return self._gate()
        except Exception:  # a broken gate never opens
            log.exception("live gate raised; treating as closed")
            return GateVerdict(may_send=False, reason=GateReason.INVALID_VALUE)

    def _asset(self, symbol: str) -> hl.AssetMeta:
        meta = self._mem.meta
        if meta is None or meta.asset(symbol) is None:
            meta = self._mem.meta = self.info.meta()
        asset = meta.asset(symbol)
        if asset is None:
            raise ValueError(f"unknown symbol {symbol}")
        return asset

    def _szd(self, symbol: str) -> int:
        return self._asset(symbol).sz_decimals


def _protected(position: Position) -> ProtectedPosition:
    return ProtectedPosition(
        symbol=position.symbol, side=position.side, size_coins=position.size_coins,
        entry_price=position.entry_price, entry_atr=position.entry_atr, trailing_sl=position.trailing_sl,
    )  # fmt: skip
