"""Export the OMS ledger's venue fills into the trades ledger (`engine.execution.trade_store`) for live and
dry_live, so reports, the re-entry cooldown (`TradeStore.last_close`) and the audit trail see live
fills exactly like paper fills.

Idempotent and crash-safe: a cursor in the OMS (`trades_export`, the OMS fills rowid) advances
only after the trade row is committed, and the trades table is UNIQUE on (fill hash, tid), so a
crash between the two re-exports a fill that the trades table then refuses as a duplicate.
`position_state` is left alone: in live the venue owns positions.

The link from a trade row to its intent lives in the OMS (`fill_links`, joined on hash + tid);
the trades table has no `meta_json` column to carry `oms.intent_id`.

`export_funding` does the same for the venue's funding payments (`engine.oms.funding`): one
FUNDING row per payment, like paper's, so live PnL in `trades` = realised - fees + funding as
the venue booked them. Its cursor lives in the funding ledger; the row's (fill_hash, fill_tid)
is ("funding:<coin>:<hour ms>", 0), which no venue fill can have.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from engine.enums import FeeMode, LedgerKind, Mode, OrderSide, PriceSource
from engine.execution.broker import Fill
from engine.execution.trade_store import TradeStore
from engine.oms.funding import FundingLedger, FundingPayment
from engine.oms.ledger import LedgerFill, LiveOms
from engine.runtime.clock import wall_ms
from strategies.enums import PositionSide

EXPORT_CURSOR = "trades_export"
FUNDING_EXPORT_CURSOR = "trades_export"  # in the funding ledger's own cursor table
_FLAT = 1e-12
LIQUIDATION_REASON = "LIQUIDATION"  # the trades row's reason starts so for a venue liquidation fill


@dataclass(frozen=True, slots=True)
class ExportStats:
    exported: int
    duplicates: int
    skipped: int  # fills whose `dir` is not an open/close of a long/short (liquidation text, flips)


def classify(fill: LedgerFill) -> tuple[LedgerKind, PositionSide] | None:
    """Return (kind, position side) from the venue's `dir` and start position, or None. A venue
    liquidation fill closes (or reduces) the position it started from, whatever its `dir` says."""
    if fill.liquidation and abs(fill.start_position) >= _FLAT:
        side = PositionSide.LONG if fill.start_position > 0 else PositionSide.SHORT
        left = abs(fill.start_position) - fill.sz
        return (LedgerKind.CLOSE if left < _FLAT else LedgerKind.REDUCE), side
    text = fill.dir.lower()
    if "long" in text and "short" not in text:
        side = PositionSide.LONG
    elif "short" in text and "long" not in text:
        side = PositionSide.SHORT
    else:
        return None
    if text.startswith("open"):
        return (LedgerKind.OPEN if abs(fill.start_position) < _FLAT else LedgerKind.ADD), side
    if text.startswith("close"):
        end = fill.start_position - fill.sz if side is PositionSide.LONG else fill.start_position + fill.sz
        return (LedgerKind.CLOSE if abs(end) < _FLAT else LedgerKind.REDUCE), side
    return None


def export_trades(
    oms: LiveOms,
    store: TradeStore,
    *,
    account_value_usd: float,
    limit: int = 1000,
    clock_ms: Callable[[], int] = wall_ms,
) -> ExportStats:
    """Append OMS fills not exported yet as trade rows (balance = the given account value)."""
    mode = Mode(store.mode)
    start = oms.cursor(EXPORT_CURSOR) or 0
    rows = oms.fills_after_rowid(start, limit)
    links = oms.fill_links()
    exported = duplicates = skipped = 0
    for rowid, fill in rows:
        kind_side = classify(fill)
        if kind_side is None:
            skipped += 1
        else:
            intent = None
            link = links.get(fill.fill_key)
            if link is not None:
                intent = oms.intent(link[0])
            trade = _trade(fill, kind_side, mode, intent, account_value_usd, clock_ms())
            try:
                store.append(trade, None, touches_position=False, fill_hash=fill.hash, fill_tid=fill.tid)
                exported += 1
            except sqlite3.IntegrityError:
                duplicates += 1  # exported before a crash, cursor not yet moved
        oms.advance_cursor(EXPORT_CURSOR, rowid)
    return ExportStats(exported, duplicates, skipped)


def _trade(
    fill: LedgerFill,
    kind_side: tuple[LedgerKind, PositionSide],
    mode: Mode,
    intent: object | None,
    account_value_usd: float,
    now_ms: int,
) -> Fill:
    kind, side = kind_side
    notional = fill.px * fill.sz
    leverage = float(getattr(intent, "leverage", 1.0) or 1.0)
    reason = str(getattr(intent, "reason", "") or f"LIVE_FILL {fill.dir}")
    if fill.liquidation_json is not None:  # flagged: the venue liquidated the position
        reason = f"{LIQUIDATION_REASON} {fill.liquidation_json}"
    return Fill(
        trade_id=0, mode=mode, kind=kind, symbol=fill.coin, position_side=side,
        order_side=OrderSide.BUY if fill.is_buy else OrderSide.SELL, size_coins=fill.sz, price=fill.px,
        notional_usd=notional, fee_usd=fill.fee, fee_rate=fill.fee / notional if notional > 0 else 0.0,
        liquidity=FeeMode.TAKER if fill.crossed else FeeMode.MAKER, realised_pnl_usd=fill.closed_pnl,
        funding_usd=0.0, cash_delta_usd=fill.closed_pnl - fill.fee, balance_usd=account_value_usd,
        reason=reason, event_ms=fill.time_ms, recorded_ms=now_ms, price_source=PriceSource.NONE,
        leverage=max(1.0, leverage), margin_used_usd=notional / max(1.0, leverage),
        decision_id=getattr(intent, "decision_id", None),
    )  # fmt: skip


def export_funding(
    ledger: FundingLedger,
    store: TradeStore,
    *,
    account_value_usd: float,
    limit: int = 1000,
    clock_ms: Callable[[], int] = wall_ms,
) -> ExportStats:
    """Append funding payments not exported yet as FUNDING trade rows (balance = the account value)."""
    mode = Mode(store.mode)
    start = ledger.cursor(FUNDING_EXPORT_CURSOR) or 0
    exported = duplicates = 0
    for rowid, payment in ledger.payments_after_rowid(start, limit):
        try:
            store.append(
                _funding_row(payment, mode, account_value_usd, clock_ms()), None, touches_position=False,
                fill_hash=f"funding:{payment.coin}:{payment.time_ms}", fill_tid=0,
            )  # fmt: skip
            exported += 1
        except sqlite3.IntegrityError:
            duplicates += 1  # exported before a crash, cursor not yet moved
        ledger.advance_cursor(FUNDING_EXPORT_CURSOR, rowid)
    return ExportStats(exported, duplicates, 0)


def _funding_row(payment: FundingPayment, mode: Mode, account_value_usd: float, now_ms: int) -> Fill:
    """The venue pays on the signed size at the hour's mark: price = |usdc / (szi x rate)|."""
    size = abs(payment.szi)
    side = PositionSide.LONG if payment.szi > 0 else PositionSide.SHORT
    base = payment.szi * payment.funding_rate
    price = abs(payment.usdc / base) if abs(base) > 0 else 0.0
    return Fill(
        trade_id=0, mode=mode, kind=LedgerKind.FUNDING, symbol=payment.coin, position_side=side,
        order_side=None, size_coins=size, price=price, notional_usd=size * price, fee_usd=0.0, fee_rate=0.0,
        liquidity=None, realised_pnl_usd=0.0, funding_usd=payment.usdc, cash_delta_usd=payment.usdc,
        balance_usd=account_value_usd, reason=f"funding rate={payment.funding_rate:+.10f}",
        event_ms=payment.time_ms, recorded_ms=now_ms, price_source=None, leverage=1.0, margin_used_usd=0.0,
        decision_id=None,
    )  # fmt: skip
