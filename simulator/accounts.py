"""Per-address margin accounts of the simulated venue: cash, one-way positions, leverage, funding.

Owns the accounting rules: weighted entry price on adds, realised PnL on reductions and flips, fees
and hourly funding booked to cash, and the cross-margin view (account value = cash + unrealised PnL
at mid; margin used = position value / leverage; maintenance = position value / (2 × maxLeverage)).
Builds the clearinghouseState body in the venue's shape. Holds no clock and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from simulator import venue_vocab as vt
from simulator.dexes import DexTable, dex_of
from simulator.matching import wire

DEFAULT_LEVERAGE = 20
USD_DECIMALS = 6
PX_DECIMALS = 8


class MarketPort(Protocol):
    """The part of SIM-A's MarketView the exchange core reads (same method names and meanings)."""

    dexes: DexTable  # which perp dex each coin is on, its asset id, fee multiplier and collateral

    def coins(self) -> list[str]: ...
    def asset_of(self, coin: str) -> int: ...
    def coin_of(self, asset: int) -> str | None: ...
    def sz_decimals(self, coin: str) -> int: ...
    def max_leverage(self, coin: str) -> int: ...
    def now_ms(self) -> int: ...
    def mid(self, coin: str) -> float: ...
    def book(
        self, coin: str, depth: int = 20
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]: ...
    def funding_rate(self, coin: str) -> float: ...
    def range_between(self, coin: str, start_ms: int, end_ms: int) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class LeverageSetting:
    value: int
    is_cross: bool


@dataclass(slots=True)
class Position:
    """A one-way position; szi > 0 long, < 0 short. Funding sums are USDC paid (negative = received)."""

    coin: str
    szi: float
    entry_px: float
    funding_all_time: float = 0.0
    funding_since_open: float = 0.0
    funding_since_change: float = 0.0


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What one fill did to a position: the fields a fill record reports."""

    start_position: float
    direction: vt.FillDir
    closed_pnl: float


@dataclass(slots=True)
class Account:
    """One user's cash (USDC, including realised PnL, fees and funding) and positions.

    `deposited_usd` is what was paid in through the simulator's configuration (an account that never
    received a deposit may not act: "Must deposit before performing actions"); `volume_usd` is the
    cumulative notional it traded, which earns address requests and unlocks scheduleCancel."""

    address: str
    cash: float
    deposited_usd: float = 0.0
    volume_usd: float = 0.0
    ledger_updates: list[dict[str, Any]] = field(default_factory=list)  # userNonFundingLedgerUpdates
    unified: bool = False  # unified account mode: USDC lives in the spot balance (see clearinghouse_state)
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, LeverageSetting] = field(default_factory=dict)
    funding_all_time: dict[str, float] = field(default_factory=dict)

    def leverage_for(self, coin: str, max_leverage: int) -> LeverageSetting:
        """Return the coin's leverage setting (default: cross, min(20, maxLeverage))."""
        return self.leverage.get(coin, LeverageSetting(min(DEFAULT_LEVERAGE, max_leverage), True))

    def szi(self, coin: str) -> float:
        pos = self.positions.get(coin)
        return pos.szi if pos is not None else 0.0


def _direction(start: float, end: float, is_buy: bool) -> vt.FillDir:
    if start > 0 and end < 0:
        return vt.FillDir.LONG_TO_SHORT
    if start < 0 and end > 0:
        return vt.FillDir.SHORT_TO_LONG
    if is_buy:
        return vt.FillDir.CLOSE_SHORT if start < 0 else vt.FillDir.OPEN_LONG
    return vt.FillDir.CLOSE_LONG if start > 0 else vt.FillDir.OPEN_SHORT


def apply_fill(
    account: Account, coin: str, is_buy: bool, px: float, sz: float, fee: float, sz_decimals: int
) -> FillEffect:
    """Book a fill of `sz` coins at `px` and its fee to the account; return the fill's effect."""
    signed = sz if is_buy else -sz
    pos = account.positions.get(coin)
    start = pos.szi if pos is not None else 0.0
    end = round(start + signed, sz_decimals)
    closed_pnl = 0.0
    if pos is None or start == 0.0:
        pos = Position(coin=coin, szi=end, entry_px=px)
        account.positions[coin] = pos
    elif (start > 0) == (signed > 0):
        pos.entry_px = (abs(start) * pos.entry_px + sz * px) / abs(end)
        pos.szi = end
    else:
        closing = min(abs(start), sz)
        closed_pnl = closing * (px - pos.entry_px) * (1.0 if start > 0 else -1.0)
        pos.szi = end
        if end != 0.0 and (end > 0) != (start > 0):
            pos.entry_px = px
            pos.funding_since_open = 0.0
    pos.funding_since_change = 0.0
    account.cash += closed_pnl - fee
    if pos.szi == 0.0:
        del account.positions[coin]
    return FillEffect(start_position=start, direction=_direction(start, end, is_buy), closed_pnl=closed_pnl)


def apply_funding(account: Account, coin: str, rate: float, mark_px: float) -> float:
    """Charge one hour of funding on the coin's position; return the USDC delta to the account.

    Positive rate: longs pay shorts. Returns 0.0 when there is no position.
    """
    pos = account.positions.get(coin)
    if pos is None:
        return 0.0
    paid = pos.szi * mark_px * rate
    account.cash -= paid
    pos.funding_all_time += paid
    pos.funding_since_open += paid
    pos.funding_since_change += paid
    account.funding_all_time[coin] = account.funding_all_time.get(coin, 0.0) + paid
    return -paid


@dataclass(frozen=True, slots=True)
class MarginSummary:
    account_value: float
    total_ntl_pos: float
    total_raw_usd: float
    total_margin_used: float
    maintenance_margin_used: float

    @property
    def free_collateral(self) -> float:
        """Account value not tied up as initial margin of open positions (USD)."""
        return self.account_value - self.total_margin_used


def margin_summary(account: Account, market: MarketPort) -> MarginSummary:
    """Cross-margin totals at current mids."""
    upnl = ntl = signed_ntl = margin = maint = 0.0
    for coin, pos in account.positions.items():
        mid = market.mid(coin)
        max_lev = market.max_leverage(coin)
        value = abs(pos.szi) * mid
        upnl += pos.szi * (mid - pos.entry_px)
        ntl += value
        signed_ntl += pos.szi * mid
        margin += value / account.leverage_for(coin, max_lev).value
        maint += value / (2 * max_lev)
    value = account.cash + upnl
    return MarginSummary(value, ntl, value - signed_ntl, margin, maint)


def liquidation_px(pos: Position, account_value: float, mid: float, max_leverage: int) -> float | None:
    """Price at which account value falls to maintenance margin, other positions held at mid; None if ≤ 0."""
    mm = 1.0 / (2 * max_leverage)
    others = account_value - pos.szi * (mid - pos.entry_px)
    denom = pos.szi - abs(pos.szi) * mm
    if denom == 0:
        return None
    px = (pos.szi * pos.entry_px - others) / denom
    return px if px > 0 else None


def _position_body(
    account: Account, pos: Position, summary: MarginSummary, market: MarketPort
) -> dict[str, Any]:
    mid = market.mid(pos.coin)
    max_lev = market.max_leverage(pos.coin)
    setting = account.leverage_for(pos.coin, max_lev)
    value = abs(pos.szi) * mid
    upnl = pos.szi * (mid - pos.entry_px)
    margin_at_entry = abs(pos.szi) * pos.entry_px / setting.value
    liq = liquidation_px(pos, summary.account_value, mid, max_lev)
    leverage: dict[str, Any] = {"type": "cross" if setting.is_cross else "isolated", "value": setting.value}
    if not setting.is_cross:
        leverage["rawUsd"] = wire(-pos.szi * mid + value / setting.value, USD_DECIMALS)
    return {
        "coin": pos.coin,
        "szi": wire(pos.szi, market.sz_decimals(pos.coin)),
        "leverage": leverage,
        "entryPx": wire(pos.entry_px, PX_DECIMALS),
        "positionValue": wire(value, USD_DECIMALS),
        "unrealizedPnl": wire(upnl, USD_DECIMALS),
        "returnOnEquity": wire(upnl / margin_at_entry if margin_at_entry else 0.0, 8),
        "liquidationPx": None if liq is None else wire(liq, PX_DECIMALS),
        "marginUsed": wire(value / setting.value, USD_DECIMALS),
        "maxLeverage": max_lev,
        "cumFunding": {
            "allTime": wire(pos.funding_all_time, USD_DECIMALS),
            "sinceOpen": wire(pos.funding_since_open, USD_DECIMALS),
            "sinceChange": wire(pos.funding_since_change, USD_DECIMALS),
        },
    }


def clearinghouse_state(account: Account, market: MarketPort, now_ms: int, dex: str = "") -> dict[str, Any]:
    """Build the clearinghouseState response body for the account on perp dex `dex` (venue key names
    and string numbers): that dex's positions and margin; accountValue and withdrawable are the whole
    account's (one collateral pool shared by the dexes, see simulator.dexes)."""
    summary = margin_summary(account, market)
    mine = {c: p for c, p in account.positions.items() if dex_of(c) == dex}
    part = summary if len(mine) == len(account.positions) else margin_summary(
        replace(account, positions=mine), market)
    # In unified mode the collateral is the spot USDC balance (spot_usdc_balance), so the perp side
    # carries no cash: accountValue is only the positions' unrealised PnL (0 when flat) and nothing is
    # withdrawable from it. [sim] The venue's exact perp numbers for a unified account with open
    # positions are not documented; users report the zeroed summary when flat.
    cash = account.cash if not account.unified else 0.0
    perp_value = summary.account_value - account.cash + cash
    totals = {
        "accountValue": wire(perp_value, USD_DECIMALS),
        "totalNtlPos": wire(part.total_ntl_pos, USD_DECIMALS),
        "totalRawUsd": wire(part.total_raw_usd - account.cash + cash, USD_DECIMALS),
        "totalMarginUsed": wire(part.total_margin_used, USD_DECIMALS),
    }
    withdrawable = 0.0 if account.unified else max(0.0, summary.free_collateral)
    order = {c: i for i, c in enumerate(market.coins())}
    positions = sorted(mine.values(), key=lambda p: order.get(p.coin, len(order)))
    return {
        "marginSummary": totals,
        "crossMarginSummary": dict(totals),
        "crossMaintenanceMarginUsed": wire(part.maintenance_margin_used, USD_DECIMALS),
        "withdrawable": wire(withdrawable, USD_DECIMALS),
        "assetPositions": [
            {"type": "oneWay", "position": _position_body(account, p, summary, market)} for p in positions
        ],
        "time": now_ms,
    }


def spot_clearinghouse_state(account: Account, hold_usd: float) -> dict[str, Any]:
    """spotClearinghouseState: a standard account holds nothing in spot (the venue omits zero
    balances); a unified account's USDC is here: total = settled cash (deposits, realised PnL, fees,
    funding), hold = margin its positions and resting orders use."""
    if not account.unified:
        return {"balances": []}
    return {"balances": [{"coin": "USDC", "token": 0, "total": wire(account.cash, USD_DECIMALS),
                          "hold": wire(hold_usd, USD_DECIMALS), "entryNtl": "0.0"}]}
