"""engine/tools/metrics.py against numbers worked out by hand on a small fixed ledger.

The ledger (seed 1,000 USD; D = a UTC midnight, H = one hour):
  #  time     row                                   fee   realised  funding  cash after
  1  D0+0h    SEED                                  -     -         -        1000.0
  2  D0+10h   OPEN  BTC long   (entry)              1.0   -         -         999.0
  3  D0+20h   CLOSE BTC        take_profit          1.0   +51       -        1049.0  (999 + 51 - 1)
  4  D1+8h    OPEN  ETH short                       0.5   -         -        1048.5
  5  D1+12h   FUNDING ETH                           -     -         -1.0     1047.5
  6  D1+16h   CLOSE ETH        stop_loss            0.5   -30       -        1017.0  (1047.5 - 30 - 0.5)
  7  D2+9h    OPEN  BTC long                        1.0   -         -        1016.0
  8  D2+21h   CLOSE BTC        take_profit          1.0   +21       -        1036.0  (1016 + 21 - 1)
  9  D3+6h    OPEN  SOL long 10 @ 20.0              0.5   -         -        1035.5  (still open)
Final point D3+12h: SOL marked at 21: unrealised 10 x (21 - 20) = +10, close fee 10 x 21 x 0.0025
= 0.525, equity 1035.5 + 10 - 0.525 = 1044.975.
"""

from __future__ import annotations

import math

import pytest

from engine.enums import LedgerKind, Mode
from engine.execution.broker import Fill, Position
from engine.tools import metrics
from strategies.enums import PositionSide

H = 3_600_000
D0 = 20_000 * metrics.DAY_MS  # a UTC midnight
D1, D2, D3 = (D0 + k * metrics.DAY_MS for k in (1, 2, 3))


def row(
    kind: LedgerKind, symbol: str, t: int, balance: float, *, side: PositionSide | None = None,
    fee: float = 0.0, pnl: float = 0.0, funding: float = 0.0, reason: str = "signal",
) -> Fill:  # fmt: skip
    return Fill(
        trade_id=0, mode=Mode.PAPER, kind=kind, symbol=symbol, position_side=side, order_side=None,
        size_coins=1.0, price=1.0, notional_usd=1.0, fee_usd=fee, fee_rate=0.0025, liquidity=None,
        realised_pnl_usd=pnl, funding_usd=funding, cash_delta_usd=pnl - fee + funding, balance_usd=balance,
        reason=reason, event_ms=t, recorded_ms=t,
    )  # fmt: skip


L, S = PositionSide.LONG, PositionSide.SHORT
LEDGER = [
    row(LedgerKind.SEED, "", D0, 1000.0),
    row(LedgerKind.OPEN, "BTC", D0 + 10 * H, 999.0, side=L, fee=1.0),
    row(LedgerKind.CLOSE, "BTC", D0 + 20 * H, 1049.0, side=L, fee=1.0, pnl=51.0, reason="take_profit"),
    row(LedgerKind.OPEN, "ETH", D1 + 8 * H, 1048.5, side=S, fee=0.5),
    row(LedgerKind.FUNDING, "ETH", D1 + 12 * H, 1047.5, side=S, funding=-1.0, reason="funding"),
    row(LedgerKind.CLOSE, "ETH", D1 + 16 * H, 1017.0, side=S, fee=0.5, pnl=-30.0, reason="stop_loss"),
    row(LedgerKind.OPEN, "BTC", D2 + 9 * H, 1016.0, side=L, fee=1.0),
    row(LedgerKind.CLOSE, "BTC", D2 + 21 * H, 1036.0, side=L, fee=1.0, pnl=21.0, reason="take_profit"),
    row(LedgerKind.OPEN, "SOL", D3 + 6 * H, 1035.5, side=L, fee=0.5),
]
SOL = Position(symbol="SOL", side=L, size_coins=10.0, entry_price=20.0, leverage=1.0, margin_used_usd=200.0,
               open_trade_id=9, opened_ms=D3 + 6 * H, last_funding_ms=D3 + 6 * H)  # fmt: skip


def curve() -> list[metrics.EquityPoint]:
    value = metrics.value_account(1035.5, {"SOL": SOL}, {"SOL": 21.0}, {"SOL": 0.0025})
    points = metrics.equity_curve(LEDGER[1:], 1000.0, D0)
    return [*points, metrics.EquityPoint(D3 + 12 * H, value.equity_usd)]


def test_open_position_is_valued_like_the_paper_broker():
    value = metrics.value_account(1035.5, {"SOL": SOL}, {"SOL": 21.0}, {"SOL": 0.0025})
    assert value.unrealised_pnl_usd == pytest.approx(10.0)  # 10 x (21 - 20)
    assert value.close_fees_usd == pytest.approx(0.525)  # 10 x 21 x 0.0025
    assert value.equity_usd == pytest.approx(1044.975)  # 1035.5 + 10 - 0.525
    unmarked = metrics.value_account(1035.5, {"SOL": SOL}, {}, {"SOL": 0.0025})
    assert unmarked.unmarked == ("SOL",)
    assert unmarked.equity_usd == pytest.approx(1035.5 - 0.5)  # at entry: no PnL, fee 10 x 20 x 0.0025


def test_round_trips_and_trade_statistics():
    trips = metrics.round_trips(LEDGER)
    assert [(t.symbol, t.closed) for t in trips] == [
        ("BTC", True),
        ("ETH", True),
        ("BTC", True),
        ("SOL", False),
    ]
    # net = realised - fees + funding: BTC 51 - 2 = 49; ETH -30 - 1 - 1 = -32; BTC 21 - 2 = 19
    assert [round(t.net_pnl_usd, 9) for t in trips[:3]] == [49.0, -32.0, 19.0]
    stats = metrics.trade_stats(trips)
    assert (stats.trades, stats.wins, stats.losses) == (3, 2, 1)
    assert stats.win_rate == pytest.approx(2 / 3)
    assert stats.profit_factor == pytest.approx(68 / 32)  # (49 + 19) / 32 = 2.125
    assert stats.avg_win_usd == pytest.approx(34.0)  # (49 + 19) / 2
    assert stats.avg_loss_usd == pytest.approx(-32.0)
    assert stats.fees_usd == pytest.approx(5.0)  # 2 + 1 + 2 (the open SOL trip is not counted)
    assert stats.funding_usd == pytest.approx(-1.0)


def test_groups_per_symbol_and_exit_reason():
    trips = metrics.round_trips(LEDGER)
    by_symbol = metrics.grouped(trips, lambda t: t.symbol)
    assert list(by_symbol) == ["BTC", "ETH"]  # SOL is still open
    assert by_symbol["BTC"].net_pnl_usd == pytest.approx(68.0) and by_symbol["BTC"].profit_factor is None
    assert by_symbol["ETH"].win_rate == 0.0
    by_exit = metrics.grouped(trips, lambda t: t.exit_reason or "open")
    assert {k: (v.trades, round(v.net_pnl_usd, 9)) for k, v in by_exit.items()} == {
        "stop_loss": (1, -32.0), "take_profit": (2, 68.0)}  # fmt: skip
    assert list(metrics.grouped(trips, lambda t: t.strategy)) == [metrics.DEFAULT_STRATEGY]


def test_headline_metrics():
    m = metrics.run_metrics(LEDGER[1:], curve(), metrics.round_trips(LEDGER))
    assert m.start_equity_usd == 1000.0 and m.end_equity_usd == pytest.approx(1044.975)
    assert m.total_return == pytest.approx(0.044975)  # 1044.975 / 1000 - 1
    assert m.max_drawdown_usd == pytest.approx(33.0)  # peak 1049 (D0+20h) to 1016 (D2+9h)
    assert m.max_drawdown == pytest.approx(33 / 1049)  # 0.0314585...
    assert m.fees_usd == pytest.approx(5.5)  # 1 + 1 + 0.5 + 0.5 + 1 + 1 + 0.5
    assert m.funding_usd == pytest.approx(-1.0)
    assert m.realised_pnl_usd == pytest.approx(42.0)  # 51 - 30 + 21
    assert m.open_trades == 1
    # Exposure over D0 .. D3+12h = 84 h: BTC 10 h + ETH 8 h + BTC 12 h + SOL 6 h (to the end) = 36 h.
    assert m.exposure == pytest.approx(36 / 84)


def test_daily_returns_sharpe_sortino_calmar():
    returns = metrics.daily_returns(curve())
    # Day closes: D0 1049, D1 1017, D2 1036, D3 1044.975 (the first against the start, 1000).
    expected = [1049 / 1000 - 1, 1017 / 1049 - 1, 1036 / 1017 - 1, 1044.975 / 1036 - 1]
    assert returns == pytest.approx(expected)  # 0.049, -0.0305052, 0.0186824, 0.0086631
    m = metrics.run_metrics(LEDGER[1:], curve(), metrics.round_trips(LEDGER))
    # mean 0.0114601, sample stdev 0.0328142 -> 0.0114601 / 0.0328142 x sqrt(365) = 6.67224
    assert m.sharpe == pytest.approx(6.67224, rel=1e-5)
    # downside deviation sqrt(0.0305052^2 / 4) = 0.0152526 -> 0.0114601 / 0.0152526 x sqrt(365) = 14.35454
    assert m.sortino == pytest.approx(14.35454, rel=1e-5)
    # 3.5 days: annualised 1.044975^(365 / 3.5) - 1 = 97.2817; / (33 / 1049) = 3092.38
    assert m.calmar == pytest.approx(3092.38, rel=1e-5)


def test_short_windows_give_no_ratio_instead_of_a_made_up_one():
    points = [metrics.EquityPoint(D0, 1000.0), metrics.EquityPoint(D0 + H, 1010.0)]
    assert metrics.sharpe(metrics.daily_returns(points)) is None  # one daily return
    assert metrics.calmar(1000.0, 990.0, H, 0.01) is None  # under a day
    assert metrics.sortino([0.01, 0.02]) is None  # no losing day: downside deviation 0
    assert not math.isnan(metrics.exposure([], D0, D0 + H))
