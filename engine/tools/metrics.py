"""Performance metrics of a run, from its ledger rows: pure functions, no I/O, no clock.

Why pure: the status command, the HTML report and the tests must agree on every number, and the
numbers must be checkable by hand. Input is the trades ledger (`Fill` rows in id order) plus the
open positions valued at marks; output is typed values.

Definitions (written once, here):
- Equity curve: the cash balance after every ledger row in the window (fees, realised PnL and
  funding are booked as they happen), starting at the balance before the window, plus one final
  point valuing open positions at the marks when the window reaches "now" (`value_account`).
- A round trip runs from a symbol's OPEN to its CLOSE; ADD/REDUCE/FUNDING rows in between belong
  to it. Net PnL = realised - fees + funding. A win is net > 0. Round trips still open at the end
  are counted as open, not as wins or losses.
- Drawdown: equity / running peak - 1 (<= 0); max drawdown is its minimum, as a positive fraction.
- Daily returns: equity at the end of each UTC day (carried forward over days without rows),
  against the previous day's (the first day against the starting equity).
- Sharpe = mean / sample stdev (ddof 1) of daily returns x sqrt(365) (crypto trades every day).
- Sortino = mean / downside deviation x sqrt(365), downside deviation = sqrt(sum(min(r, 0)^2) / n).
- Calmar = annualised return / max drawdown; annualised return = (end / start)^(365 / days) - 1.
  Sharpe and Sortino need two daily returns, Calmar a window of at least one day; else None.
- Exposure: the fraction of the window with at least one position open.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from engine.enums import LedgerKind, Mode
from engine.execution import fill_model
from engine.execution.broker import Fill, Position
from engine.oms.records import LedgerFill
from strategies.enums import PositionSide

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365
DEFAULT_STRATEGY = "default"  # trades carry no strategy id yet: every round trip is this one


@dataclass(frozen=True, slots=True)
class EquityPoint:
    t_ms: int
    equity_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTrip:
    """One position from OPEN to CLOSE (close_ms None while still open)."""

    symbol: str
    side: PositionSide | None
    open_ms: int
    close_ms: int | None
    entry_reason: str
    exit_reason: str | None
    realised_pnl_usd: float
    fees_usd: float
    funding_usd: float
    strategy: str = DEFAULT_STRATEGY

    @property
    def net_pnl_usd(self) -> float:
        return self.realised_pnl_usd - self.fees_usd + self.funding_usd

    @property
    def closed(self) -> bool:
        return self.close_ms is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkedPosition:
    """An open position valued at a mark (mark None: no price known, valued at entry)."""

    position: Position
    mark: float | None
    unrealised_pnl_usd: float
    close_fee_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountValue:
    cash_usd: float
    unrealised_pnl_usd: float
    close_fees_usd: float
    equity_usd: float
    positions: tuple[MarkedPosition, ...]
    unmarked: tuple[str, ...]  # symbols valued at their entry price for want of a mark


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeStats:
    """Round-trip statistics of one group (all trades, a symbol, an exit reason, a strategy)."""

    trades: int
    wins: int
    losses: int
    win_rate: float | None
    net_pnl_usd: float
    gross_profit_usd: float
    gross_loss_usd: float
    profit_factor: float | None
    avg_win_usd: float | None
    avg_loss_usd: float | None
    fees_usd: float
    funding_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMetrics:
    start_equity_usd: float
    end_equity_usd: float
    total_return: float
    max_drawdown: float
    max_drawdown_usd: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    exposure: float
    fees_usd: float
    funding_usd: float
    realised_pnl_usd: float
    open_trades: int
    trades: TradeStats


def value_account(
    cash_usd: float,
    positions: Mapping[str, Position],
    marks: Mapping[str, float],
    fee_rates: Mapping[str, float],
) -> AccountValue:
    """Cash plus positions at `marks`, less the fee to close each at its `fee_rates` entry.

    The paper broker's own definition of equity (engine/execution/paper_broker.py `account`); a
    symbol without a mark is valued at its entry price and listed in `unmarked`.
    """
    marked = []
    for symbol, position in sorted(positions.items()):
        mark = marks.get(symbol)
        price = mark if mark is not None and mark > 0 else position.entry_price
        unrealised = fill_model.unrealised_pnl_usd(
            position.side, position.entry_price, price, position.size_coins
        )
        fee = fill_model.fee_usd(position.size_coins, price, fee_rates.get(symbol, 0.0))
        marked.append(
            MarkedPosition(position=position, mark=mark, unrealised_pnl_usd=unrealised, close_fee_usd=fee)
        )
    unrealised_total = sum(m.unrealised_pnl_usd for m in marked)
    fees_total = sum(m.close_fee_usd for m in marked)
    return AccountValue(
        cash_usd=cash_usd,
        unrealised_pnl_usd=unrealised_total,
        close_fees_usd=fees_total,
        equity_usd=cash_usd + unrealised_total - fees_total,
        positions=tuple(marked),
        unmarked=tuple(m.position.symbol for m in marked if m.mark is None or not m.mark > 0),
    )


PAPER_EQUITY_BASIS = (
    "cash + open positions at the marks - the fees to close them (the paper broker's valuation)"
)
VENUE_EQUITY_BASIS = "the venue's account value at the last ledger row (it already includes unrealised PnL)"


def run_equity(mode: Mode, value: AccountValue) -> tuple[float, str]:
    """A run's equity and how it was found: paper values its own positions; in live and dry_live
    every ledger row carries the venue's account value, which is equity already (adding the
    positions again would count them twice)."""
    if mode is Mode.PAPER:
        return value.equity_usd, PAPER_EQUITY_BASIS
    return value.cash_usd, VENUE_EQUITY_BASIS


def net_positions(fills: Sequence[LedgerFill]) -> dict[str, Position]:
    """The open positions implied by venue fills in time order (live / dry_live, where the trades
    table does not hold positions): net size per coin, the size-weighted entry of the fills since
    it was last flat (a reduction keeps the entry; crossing through zero starts a new position at
    that fill's price). Leverage and margin are not in the fills: 1.0 and 0.0 stand for unknown.
    """
    state: dict[str, tuple[float, float, int]] = {}  # coin -> (signed size, entry, opened_ms)
    for f in fills:
        size, entry, opened = state.get(f.coin, (0.0, 0.0, f.time_ms))
        delta = f.sz if f.is_buy else -f.sz
        new = size + delta
        if abs(new) <= 1e-12:
            state.pop(f.coin, None)
            continue
        if size == 0.0 or (size > 0) != (new > 0):  # from flat, or flipped through zero
            state[f.coin] = (new, f.px, f.time_ms)
        elif abs(new) > abs(size):
            state[f.coin] = (new, fill_model.weighted_entry(abs(size), entry, abs(delta), f.px), opened)
        else:
            state[f.coin] = (new, entry, opened)
    return {
        coin: Position(
            symbol=coin, side=PositionSide.LONG if size > 0 else PositionSide.SHORT, size_coins=abs(size),
            entry_price=entry, leverage=1.0, margin_used_usd=0.0, open_trade_id=0, opened_ms=opened,
            last_funding_ms=opened,
        )
        for coin, (size, entry, opened) in sorted(state.items())
    }  # fmt: skip


def equity_curve(fills: Sequence[Fill], start_balance_usd: float, start_ms: int) -> list[EquityPoint]:
    """The balance after every row of `fills` (one window, id order), from a starting point."""
    points = [EquityPoint(start_ms, start_balance_usd)]
    points.extend(EquityPoint(f.event_ms, f.balance_usd) for f in fills)
    return points


def drawdowns(points: Sequence[EquityPoint]) -> list[float]:
    """Equity / running peak - 1 at every point (0 at a new peak)."""
    peak = -math.inf
    out = []
    for point in points:
        peak = max(peak, point.equity_usd)
        out.append(point.equity_usd / peak - 1.0 if peak > 0 else 0.0)
    return out


def max_drawdown(points: Sequence[EquityPoint]) -> tuple[float, float]:
    """(largest fall from a running peak as a positive fraction, the same in USD)."""
    peak = -math.inf
    worst_frac = worst_usd = 0.0
    for point in points:
        peak = max(peak, point.equity_usd)
        if peak > 0:
            worst_frac = max(worst_frac, 1.0 - point.equity_usd / peak)
        worst_usd = max(worst_usd, peak - point.equity_usd)
    return worst_frac, worst_usd


def daily_returns(points: Sequence[EquityPoint]) -> list[float]:
    """Returns from one UTC day's closing equity to the next; the first day against points[0]."""
    if not points:
        return []
    closes: dict[int, float] = {}
    for point in points[1:]:
        closes[point.t_ms // DAY_MS] = point.equity_usd
    if not closes:
        return []
    first_day, last_day = min(closes), max(closes)
    previous = points[0].equity_usd
    returns = []
    for day in range(first_day, last_day + 1):
        equity = closes.get(day, previous)
        returns.append(equity / previous - 1.0 if previous else 0.0)
        previous = equity
    return returns


def sharpe(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    stdev = statistics.stdev(returns)
    return None if stdev == 0 else statistics.fmean(returns) / stdev * math.sqrt(DAYS_PER_YEAR)


def sortino(returns: Sequence[float]) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    return None if downside == 0 else statistics.fmean(returns) / downside * math.sqrt(DAYS_PER_YEAR)


def calmar(start_usd: float, end_usd: float, span_ms: int, max_dd: float) -> float | None:
    days = span_ms / DAY_MS
    if days < 1 or max_dd <= 0 or start_usd <= 0 or end_usd <= 0:
        return None
    annual = (end_usd / start_usd) ** (DAYS_PER_YEAR / days) - 1.0
    return annual / max_dd


def round_trips(fills: Sequence[Fill], strategy: str = DEFAULT_STRATEGY) -> list[RoundTrip]:
    """Group position rows into round trips per symbol, in the order they opened."""
    current: dict[str, dict[str, object]] = {}
    done: list[RoundTrip] = []
    for fill in fills:
        if fill.kind is LedgerKind.OPEN:
            current[fill.symbol] = {
                "side": fill.position_side, "open_ms": fill.event_ms, "entry": fill.reason,
                "pnl": 0.0, "fees": fill.fee_usd, "funding": 0.0,
            }  # fmt: skip
            continue
        trip = current.get(fill.symbol)
        if trip is None or fill.kind is LedgerKind.SEED:
            continue  # a row of a position opened before the window: not a whole round trip
        trip["pnl"] = float(trip["pnl"]) + fill.realised_pnl_usd  # type: ignore[arg-type]
        trip["fees"] = float(trip["fees"]) + fill.fee_usd  # type: ignore[arg-type]
        trip["funding"] = float(trip["funding"]) + fill.funding_usd  # type: ignore[arg-type]
        if fill.kind is LedgerKind.CLOSE:
            done.append(_trip(fill.symbol, current.pop(fill.symbol), fill.event_ms, fill.reason, strategy))
    done.extend(_trip(symbol, trip, None, None, strategy) for symbol, trip in current.items())
    return sorted(done, key=lambda t: t.open_ms)


def _trip(symbol: str, t: Mapping[str, object], close_ms: int | None, exit_reason: str | None,
          strategy: str) -> RoundTrip:  # fmt: skip
    return RoundTrip(
        symbol=symbol, side=t["side"], open_ms=int(t["open_ms"]),  # type: ignore[arg-type, call-overload]
        close_ms=close_ms, entry_reason=str(t["entry"]), exit_reason=exit_reason,
        realised_pnl_usd=float(t["pnl"]), fees_usd=float(t["fees"]),  # type: ignore[arg-type]
        funding_usd=float(t["funding"]), strategy=strategy,  # type: ignore[arg-type]
    )  # fmt: skip


def trade_stats(trips: Sequence[RoundTrip]) -> TradeStats:
    """Statistics over the closed round trips of `trips`."""
    closed = [t for t in trips if t.closed]
    wins = [t.net_pnl_usd for t in closed if t.net_pnl_usd > 0]
    losses = [t.net_pnl_usd for t in closed if t.net_pnl_usd <= 0]
    profit, loss = sum(wins), -sum(losses)
    return TradeStats(
        trades=len(closed),
        wins=len(wins),
        losses=len(losses),
        win_rate=len(wins) / len(closed) if closed else None,
        net_pnl_usd=sum(t.net_pnl_usd for t in closed),
        gross_profit_usd=profit,
        gross_loss_usd=loss,
        profit_factor=profit / loss if loss > 0 else None,
        avg_win_usd=statistics.fmean(wins) if wins else None,
        avg_loss_usd=statistics.fmean(losses) if losses else None,
        fees_usd=sum(t.fees_usd for t in closed),
        funding_usd=sum(t.funding_usd for t in closed),
    )


def grouped(trips: Sequence[RoundTrip], key: Callable[[RoundTrip], str]) -> dict[str, TradeStats]:
    """Trade statistics per group of closed round trips, groups sorted by name."""
    groups: dict[str, list[RoundTrip]] = {}
    for trip in trips:
        if trip.closed:
            groups.setdefault(key(trip), []).append(trip)
    return {name: trade_stats(groups[name]) for name in sorted(groups)}


def exposure(trips: Sequence[RoundTrip], start_ms: int, end_ms: int) -> float:
    """The fraction of [start_ms, end_ms] with at least one position open."""
    if end_ms <= start_ms:
        return 0.0
    spans = sorted(
        (max(t.open_ms, start_ms), min(end_ms if t.close_ms is None else t.close_ms, end_ms)) for t in trips
    )
    covered, reach = 0, start_ms
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered / (end_ms - start_ms)


def run_metrics(
    fills: Sequence[Fill], points: Sequence[EquityPoint], trips: Sequence[RoundTrip]
) -> RunMetrics:
    """Every headline number of a run over its window (points[0] to points[-1])."""
    start, end = points[0], points[-1]
    dd, dd_usd = max_drawdown(points)
    returns = daily_returns(points)
    return RunMetrics(
        start_equity_usd=start.equity_usd,
        end_equity_usd=end.equity_usd,
        total_return=end.equity_usd / start.equity_usd - 1.0 if start.equity_usd else 0.0,
        max_drawdown=dd,
        max_drawdown_usd=dd_usd,
        sharpe=sharpe(returns),
        sortino=sortino(returns),
        calmar=calmar(start.equity_usd, end.equity_usd, end.t_ms - start.t_ms, dd),
        exposure=exposure(trips, start.t_ms, end.t_ms),
        fees_usd=sum(f.fee_usd for f in fills),
        funding_usd=sum(f.funding_usd for f in fills),
        realised_pnl_usd=sum(f.realised_pnl_usd for f in fills),
        open_trades=sum(1 for t in trips if not t.closed),
        trades=trade_stats(trips),
    )
