"""`engine.status` / `engine.report` on a live state dir, written by the owners (LiveOms, export_trades).

In live the trades table holds no positions (exported rows do not touch `position_state`) and each
row's balance is the venue's account value, which already includes unrealised PnL. Status must
take positions from the OMS fills (sizes equal to `LiveOms.ledger_positions`) and must not add
the positions to the account value a second time. Also: the pure fold from fills to positions.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.enums import ExchangeActionType, Mode
from engine.execution.oms_trades import export_trades
from engine.execution.trade_store import TradeStore
from engine.oms.ledger import FillSource, LiveOms, OmsConfig
from engine.oms.records import LedgerFill
from engine.storage.sqlite import ensure_candles_table, open_db, upsert_candles
from engine.tools import metrics, report, run_db, status
from engine.venue import types as hl
from engine.venue.exchange_client import ExchangeAccepted
from strategies.candle import Candle
from strategies.enums import PositionSide

T0 = 1_780_000_000_000
MIN = 60_000


def venue_fill(oid: int, coin: str, is_buy: bool, sz: float, px: float, t: int, start: float) -> hl.Fill:
    body: dict[str, Any] = {
        "coin": coin, "px": str(px), "sz": str(sz), "side": "B" if is_buy else "A", "time": t,
        "startPosition": str(start), "dir": ("Open Long" if is_buy else "Open Short"), "closedPnl": "0",
        "hash": f"0x{oid:04x}", "oid": oid, "crossed": True, "fee": "0.05", "feeToken": "USDC", "tid": oid,
    }  # fmt: skip
    return hl.parse_fill(body)


def filled_open(
    oms: LiveOms, oid: int, coin: str, is_buy: bool, sz: float, px: float, t: int, start: float
) -> None:
    created = oms.create_intent(
        symbol=coin, action="OPEN", position_side="LONG" if is_buy else "SHORT", is_buy=is_buy, size_coins=sz,
        limit_px=px, reduce_only=False, reference_price=px, leverage=3.0, reason="standard", event_ms=t,
    ).intent  # fmt: skip
    ack = ExchangeAccepted(ExchangeActionType.ORDER, 1, hl.ExchangeAck("order", (hl.RestingStatus(oid=oid),)))
    oms.record_outcome(created.intent_id, ack)
    oms.ingest_fills([venue_fill(oid, coin, is_buy, sz, px, t, start)], source=FillSource.WS)


@pytest.fixture
def live_state(tmp_path):
    state = tmp_path / "state"
    db = state / "trading_live.db"
    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False), clock_ms=lambda: T0 + 30 * MIN)
    filled_open(oms, 1, "BTC", True, 1.0, 100.0, T0 + MIN, 0.0)
    filled_open(oms, 2, "ETH", False, 2.0, 50.0, T0 + 2 * MIN, 0.0)
    filled_open(oms, 3, "BTC", True, 1.0, 110.0, T0 + 3 * MIN, 1.0)
    store = TradeStore.open(db, Mode.LIVE)
    export_trades(oms, store, account_value_usd=5_000.0, clock_ms=lambda: T0 + 30 * MIN)
    candles = open_db(state / "candles_dbs" / "candles_1h.db")
    ensure_candles_table(candles)
    upsert_candles(candles, "BTC", "1h", [Candle(T0, T0 + 60 * MIN - 1, 110.0, 121.0, 109.0, 120.0, 5.0)])
    candles.close()
    yield state, oms
    store.close()
    oms.close()


def test_live_status_takes_positions_from_the_oms_and_equity_from_the_venue(live_state):
    state, oms = live_state
    s = status.collect(state, now_ms=T0 + 33 * MIN)
    assert s.mode == "live" and s.total.fills == 3
    sizes = {p.symbol: p.size_coins * (1 if p.side == "LONG" else -1) for p in s.positions}
    assert sizes == pytest.approx(oms.ledger_positions())  # the owner's net: BTC +2, ETH -2
    btc = next(p for p in s.positions if p.symbol == "BTC")
    assert btc.entry_price == pytest.approx(105.0)  # (1 x 100 + 1 x 110) / 2
    assert btc.unrealised_pnl_usd == pytest.approx(30.0)  # 2 x (120 - 105)
    assert btc.age_secs == pytest.approx(32 * 60) and btc.leverage is None
    assert s.equity_usd == 5_000.0 and s.equity_basis == metrics.VENUE_EQUITY_BASIS  # not 5,000 + 30
    assert s.send_gate is not None and s.send_gate["may_send"] is False  # no live enable in this shell
    assert s.unmarked == ["ETH"]
    rep = report.build(run_db.find_trading_db(state).path, Mode.LIVE, marks={}, title="live")
    assert rep.end_equity_usd == 5_000.0 and any("account value" in n for n in rep.notes)
    out = state.parent / "live.html"
    assert report.main(["--db", str(state / "trading_live.db"), "--out", str(out)]) == 0  # mode from the name
    assert "mode <b>live</b>" in out.read_text()


def test_net_positions_fold():
    def f(coin: str, is_buy: bool, sz: float, px: float, t: int) -> LedgerFill:
        return LedgerFill(
            fill_key=str(t), hash="h", tid=t, oid=t, cloid=None, coin=coin, is_buy=is_buy, px=px, sz=sz,
            time_ms=t, start_position=0.0, dir="", closed_pnl=0.0, fee=0.0, fee_token=None, crossed=True,
            source="ws", recorded_ms=t,
        )  # fmt: skip

    fills = [f("BTC", True, 1.0, 100.0, 1), f("BTC", True, 1.0, 110.0, 2)]  # long 2 @ 105
    fills.append(f("BTC", False, 0.5, 120.0, 3))  # a reduction keeps the entry: long 1.5 @ 105
    (btc,) = metrics.net_positions(fills).values()
    assert (btc.side, btc.size_coins, btc.entry_price, btc.opened_ms) == (PositionSide.LONG, 1.5, 105.0, 1)
    fills.append(f("BTC", False, 2.0, 130.0, 4))  # through zero: short 0.5 @ 130, opened at 4
    (btc,) = metrics.net_positions(fills).values()
    assert (btc.side, btc.size_coins, btc.entry_price, btc.opened_ms) == (PositionSide.SHORT, 0.5, 130.0, 4)
    fills.append(f("BTC", True, 0.5, 125.0, 5))  # flat
    assert metrics.net_positions(fills) == {}
