"""Venue-side protection, the pure part: which protective trigger orders each live position needs,
and what to do to the ones the ledger already has.

Why: the software exits only act while the daemon runs. A stop-loss (and a take-profit where the
strategy has a fixed one) resting on the venue as a reduce-only market trigger order closes the
position when the daemon is dead. The orders follow the software exit levels:

* stop: the trailing stop when one is set (it replaces the ATR stop, as in `strategies.exits`),
  else entry -+ entry ATR x `sl_atr_mult` (the plain stop; the software may tighten or widen it
  by a few tenths of an ATR from the indicators of the moment, which the venue cannot see);
* take-profit: entry +- entry ATR x `tp_atr_mult`, only when the strategy closes the whole
  position there (partial take-profit off): with a partial ladder the software owns the exits;
* size: the whole venue position; side: the closing side; trigger prices on the venue's tick;
* both rest `buffer_atr` entry ATRs beyond those levels: while the daemon lives its own exits
  (decided on the candle, as in paper) act first and the venue's orders are the backstop for
  when it does not, so live trades like paper until the daemon dies.

`plan(desired, live, ...)` compares the wanted orders with the ledger's protective orders and
returns typed steps: PLACE what is missing, MODIFY an order whose size, side or trigger price is
out of step (a trailing stop moves it; a small move under `min_reprice_fraction` waits), CANCEL an
order no position needs (closed, flipped, duplicate). Orders still in flight (NEW, UNKNOWN) block
any step on their (symbol, kind) until the reconciler settles them, so a crash or a lost answer
never doubles an order; orders being cancelled are ignored. No I/O here: the shell is
`engine.execution.protection_keeper`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from engine.enums import AlertKind, ProtectionKind, ProtectionStep, RoundDirection
from engine.oms.states import OrderState
from engine.venue.exchange_client import round_price
from strategies.config import StrategyConfig
from strategies.enums import PositionSide
from strategies.exits import FALLBACK_ATR_PCT

PROTECT_ACTION = "PROTECT"  # the OMS intent `action` of a protective order
_SIZE_EPS = 1e-9
_WAITING = frozenset({OrderState.NEW, OrderState.UNKNOWN})
_RESTING = frozenset({OrderState.ACCEPTED, OrderState.PARTIAL})


class AlertPort(Protocol):
    """What protection and the dead man's switch say to the operator through (`Alerter.send`)."""

    def send(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionParams:
    """The strategy's exit levels in ATR units for one symbol; `take_profit` False = no venue TP."""

    sl_atr_mult: float
    tp_atr_mult: float = 0.0
    take_profit: bool = False
    buffer_atr: float = 0.0  # how far beyond the software levels the venue's orders rest


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectedPosition:
    """What protection needs to know about one venue position."""

    symbol: str
    side: PositionSide
    size_coins: float
    entry_price: float
    entry_atr: float | None = None
    trailing_sl: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredProtection:
    symbol: str
    kind: ProtectionKind
    is_buy: bool
    size_coins: float
    trigger_px: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveProtection:
    """A protective order of the ledger that is not settled (or, in dry_live, the last one recorded)."""

    intent_id: str
    cloid: str
    symbol: str
    kind: ProtectionKind
    is_buy: bool
    size_coins: float
    trigger_px: float
    state: OrderState
    oid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectionAction:
    step: ProtectionStep
    symbol: str
    kind: ProtectionKind
    desired: DesiredProtection | None = None  # PLACE, MODIFY
    existing: LiveProtection | None = None  # MODIFY, CANCEL


def desired_for(
    position: ProtectedPosition, params: ProtectionParams, sz_decimals: int
) -> tuple[DesiredProtection, ...]:
    """Return the protective orders `position` needs (stop first); none for an empty position or
    a level that is not a positive price."""
    if not (math.isfinite(position.size_coins) and position.size_coins > 0 and position.entry_price > 0):
        return ()
    sign = 1.0 if position.side is PositionSide.LONG else -1.0
    atr = position.entry_atr if position.entry_atr is not None and position.entry_atr > 0 else (
        position.entry_price * FALLBACK_ATR_PCT)
    levels: list[tuple[ProtectionKind, float]] = []
    buffer = atr * max(0.0, params.buffer_atr)
    stop = position.trailing_sl
    if stop is None or not math.isfinite(stop) or stop <= 0:
        stop = position.entry_price - sign * atr * params.sl_atr_mult if params.sl_atr_mult > 0 else None
    if stop is not None:
        levels.append((ProtectionKind.STOP_LOSS, stop - sign * buffer))
    if params.take_profit and params.tp_atr_mult > 0:
        tp = position.entry_price + sign * atr * params.tp_atr_mult
        levels.append((ProtectionKind.TAKE_PROFIT, tp + sign * buffer))
    out = []
    for kind, level in levels:
        if not (math.isfinite(level) and level > 0):
            continue
        out.append(DesiredProtection(
            symbol=position.symbol, kind=kind, is_buy=position.side is PositionSide.SHORT,
            size_coins=position.size_coins,
            trigger_px=round_price(level, sz_decimals, RoundDirection.NEAREST),
        ))  # fmt: skip
    return tuple(out)


def in_step(desired: DesiredProtection, order: LiveProtection, min_reprice_fraction: float) -> bool:
    """True when `order` already does what `desired` asks (same side and size; trigger price within
    `min_reprice_fraction` of the wanted one)."""
    if order.is_buy != desired.is_buy or abs(order.size_coins - desired.size_coins) > _SIZE_EPS * max(
        1.0, desired.size_coins
    ):
        return False
    return abs(order.trigger_px - desired.trigger_px) <= min_reprice_fraction * desired.trigger_px


def plan(
    desired: Iterable[DesiredProtection],
    live: Sequence[LiveProtection],
    *,
    min_reprice_fraction: float = 0.0,
) -> list[ProtectionAction]:
    """Return the steps that bring `live` in line with `desired` (see the module docstring)."""
    wanted = {(d.symbol, d.kind): d for d in desired}
    by_key: dict[tuple[str, ProtectionKind], list[LiveProtection]] = {}
    for order in live:
        if order.state is not OrderState.PENDING_CANCEL:
            by_key.setdefault((order.symbol, order.kind), []).append(order)
    actions: list[ProtectionAction] = []
    for key in sorted(set(wanted) | set(by_key)):
        actions.extend(_plan_one(key, wanted.get(key), by_key.get(key, []), min_reprice_fraction))
    return actions


def _plan_one(
    key: tuple[str, ProtectionKind],
    want: DesiredProtection | None,
    orders: list[LiveProtection],
    min_reprice_fraction: float,
) -> list[ProtectionAction]:
    symbol, kind = key
    if any(o.state in _WAITING for o in orders):
        return []  # an order whose fate is unknown: decide once the reconciler settled it
    resting = [o for o in orders if o.state in _RESTING or o.state is OrderState.WOULD_SEND]
    if want is None:
        return [ProtectionAction(step=ProtectionStep.CANCEL, symbol=symbol, kind=kind, existing=o)
                for o in resting if _cancellable(o)]  # fmt: skip
    if not resting:
        return [ProtectionAction(step=ProtectionStep.PLACE, symbol=symbol, kind=kind, desired=want)]
    keep = next((o for o in resting if in_step(want, o, min_reprice_fraction)), resting[0])
    actions = [ProtectionAction(step=ProtectionStep.CANCEL, symbol=symbol, kind=kind, existing=o)
               for o in resting if o is not keep and _cancellable(o)]  # fmt: skip
    if in_step(want, keep, min_reprice_fraction):
        return actions
    if keep.state is OrderState.WOULD_SEND:  # dry_live: record what would be sent now
        actions.append(ProtectionAction(step=ProtectionStep.PLACE, symbol=symbol, kind=kind, desired=want))
    elif keep.oid is not None:  # without its oid the venue order cannot be named: wait for it
        modify = ProtectionStep.MODIFY
        actions.append(ProtectionAction(step=modify, symbol=symbol, kind=kind, desired=want, existing=keep))
    return actions



def _cancellable(order: LiveProtection) -> bool:
    """On the venue and named by its oid (a dry_live record or an oid not known yet: nothing to do)."""
    return order.state is not OrderState.WOULD_SEND and order.oid is not None


def params_from_config(cfg: StrategyConfig, buffer_atr: float = 0.0) -> ProtectionParams:
    """The protective levels of a strategy config: its plain stop, and its take-profit only when
    the strategy closes the whole position there (no partial take-profit ladder)."""
    trade = cfg.trade
    return ProtectionParams(
        sl_atr_mult=trade.sl_atr_mult, tp_atr_mult=trade.tp_atr_mult,
        take_profit=trade.tp_atr_mult > 0 and not trade.enable_partial_tp, buffer_atr=buffer_atr,
    )  # fmt: skip
