"""Paper broker: tranches on one net position, cash identity to the cent, exact resume from SQLite."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.enums import BrokerReject, ExecutionStatus, FeeMode, LedgerKind, Mode
from engine.execution.broker import Broker, ExitState, OrderIntent
from engine.execution.fill_model import HOUR_MS, FillModelParams, MarketQuote
from engine.execution.paper_broker import PaperBroker, allow_all
from engine.execution.trade_store import TradeStore
from strategies.enums import Confidence, EntryKind, ExitReason, PositionSide, TradeAction

T0 = 1_700_000_000_000 - (1_700_000_000_000 % HOUR_MS) + 600_000  # 10 min past an hour
NO_SLIP = FillModelParams(slippage_bps=0.0)


def _intent(action, side=PositionSide.LONG, size=1.0, price=100.0, symbol="BTC", **kw) -> OrderIntent:
    return OrderIntent(
        symbol=symbol,
        action=action,
        side=side,
        reference_price=price,
        event_ms=T0,
        reason=EntryKind.STANDARD if action in (TradeAction.OPEN, TradeAction.ADD) else ExitReason.STOP_LOSS,
        size_coins=None if action is TradeAction.CLOSE else size,
        **kw,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "paper.db"


def _broker(db_path: Path, params: FillModelParams = NO_SLIP, seed: float = 10_000.0) -> PaperBroker:
    return PaperBroker(
        TradeStore.open(db_path, Mode.PAPER), params, seed, pre_send_check=allow_all, clock_ms=lambda: T0
    )


def test_paper_broker_implements_broker_protocol(db_path):
    assert isinstance(_broker(db_path), Broker)


def test_paper_broker_db_file_is_private(db_path):
    _broker(db_path)
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


def test_paper_broker_open_charges_taker_fee_and_records_position(db_path):
    broker = _broker(db_path)
    result = broker.execute(_intent(TradeAction.OPEN, size=2.0, leverage=4.0, confidence=Confidence.HIGH), T0)
    assert result.status is ExecutionStatus.FILLED
    (fill,) = result.fills
    assert fill.kind is LedgerKind.OPEN and fill.mode is Mode.PAPER
    assert fill.fee_usd == pytest.approx(200.0 * 0.00045)
    assert broker.cash_usd == pytest.approx(10_000.0 - 0.09)
    position = broker.positions()["BTC"]
    assert position.size_coins == 2.0 and position.entry_price == 100.0
    assert position.margin_used_usd == pytest.approx(50.0)
    assert position.open_trade_id == fill.trade_id


def test_paper_broker_add_averages_entry_and_resets_tp1(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, size=1.0, price=100.0, entry_atr=2.0), T0)
    broker.update_exit_state("BTC", ExitState(trailing_sl=95.0, tp1_taken=True), T0)
    result = broker.execute(_intent(TradeAction.ADD, size=3.0, price=200.0, entry_atr=4.0), T0 + 1)
    assert result.fills[0].kind is LedgerKind.ADD
    position = broker.positions()["BTC"]
    assert position.entry_price == pytest.approx(175.0)
    assert position.entry_atr == pytest.approx(3.5)
    assert position.adds_count == 1 and position.last_add_ms == T0 + 1
    assert position.tp1_taken is False and position.trailing_sl == 95.0


def test_paper_broker_reduce_realises_pnl_and_keeps_entry(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, size=4.0, price=100.0), T0)
    result = broker.execute(_intent(TradeAction.REDUCE, size=1.0, price=110.0), T0 + 1)
    (fill,) = result.fills
    assert fill.kind is LedgerKind.REDUCE
    assert fill.realised_pnl_usd == pytest.approx(10.0)
    assert fill.cash_delta_usd == pytest.approx(10.0 - 110.0 * 0.00045)
    assert broker.positions()["BTC"].size_coins == pytest.approx(3.0)
    assert broker.positions()["BTC"].entry_price == 100.0


def test_paper_broker_reduce_of_whole_size_becomes_close(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, side=PositionSide.SHORT, size=2.0, price=100.0), T0)
    result = broker.execute(
        _intent(TradeAction.REDUCE, side=PositionSide.SHORT, size=5.0, price=90.0), T0 + 1
    )
    (fill,) = result.fills
    assert fill.kind is LedgerKind.CLOSE and fill.size_coins == 2.0
    assert fill.realised_pnl_usd == pytest.approx(20.0)
    assert "BTC" not in broker.positions()


@pytest.mark.parametrize(
    ("setup", "intent", "reject"),
    [
        (True, _intent(TradeAction.OPEN), BrokerReject.POSITION_EXISTS),
        (False, _intent(TradeAction.ADD), BrokerReject.NO_POSITION),
        (False, _intent(TradeAction.CLOSE), BrokerReject.NO_POSITION),
        (True, _intent(TradeAction.REDUCE, side=PositionSide.SHORT), BrokerReject.SIDE_MISMATCH),
        (False, _intent(TradeAction.OPEN, price=0.0), BrokerReject.NO_PRICE),
        (False, _intent(TradeAction.OPEN, size=1e9), BrokerReject.INSUFFICIENT_CASH),
    ],
)
def test_paper_broker_refusals_change_nothing(db_path, setup, intent, reject):
    broker = _broker(db_path)
    if setup:
        broker.execute(_intent(TradeAction.OPEN), T0)
    cash, positions = broker.cash_usd, dict(broker.positions())
    result = broker.execute(intent, T0 + 1)
    assert result.status is ExecutionStatus.REJECTED and result.reject is reject and result.fills == ()
    assert broker.cash_usd == cash and dict(broker.positions()) == positions


def test_paper_broker_uses_quote_and_slippage(db_path):
    broker = _broker(db_path, FillModelParams(slippage_bps=10.0))
    quote = MarketQuote(mid=100.0, mid_ms=T0, bid=99.0, ask=101.0, bbo_ms=T0)
    fill = broker.execute(_intent(TradeAction.OPEN, price=95.0, quote=quote), T0).fills[0]
    assert fill.price == pytest.approx(101.0 * 1.001)


def test_paper_broker_maker_mode_uses_maker_fee(db_path):
    broker = _broker(db_path, FillModelParams(fee_mode=FeeMode.MAKER))
    fill = broker.execute(_intent(TradeAction.OPEN, size=10.0, price=100.0), T0).fills[0]
    assert fill.fee_usd == pytest.approx(1000.0 * 0.00015) and fill.liquidity is FeeMode.MAKER


def test_paper_broker_funding_charges_each_hour_once(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, size=2.0, price=100.0), T0)
    rows = broker.accrue_funding({"BTC": 0.0001}, {"BTC": 110.0}, T0 + 2 * HOUR_MS)
    assert [row.event_ms for row in rows] == [T0 - 600_000 + HOUR_MS, T0 - 600_000 + 2 * HOUR_MS]
    assert all(row.funding_usd == pytest.approx(-2.0 * 110.0 * 0.0001) for row in rows)
    assert broker.accrue_funding({"BTC": 0.0001}, {"BTC": 110.0}, T0 + 2 * HOUR_MS) == ()
    assert broker.positions()["BTC"].last_funding_ms == rows[-1].event_ms


def test_paper_broker_funding_without_rate_waits(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, side=PositionSide.SHORT), T0)
    assert broker.accrue_funding({}, {}, T0 + HOUR_MS) == ()
    rows = broker.accrue_funding({"BTC": 0.0002}, {}, T0 + HOUR_MS)
    assert len(rows) == 1 and rows[0].funding_usd == pytest.approx(100.0 * 0.0002)


def test_paper_broker_account_values_positions_at_marks(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, size=2.0, price=100.0, leverage=2.0), T0)
    snap = broker.account({"BTC": 110.0}, T0)
    assert snap.unrealised_pnl_usd == pytest.approx(20.0)
    assert snap.equity_usd == pytest.approx(broker.cash_usd + 20.0 - 220.0 * 0.00045)
    assert snap.margin_used_usd == pytest.approx(100.0) and not snap.marks_stale
    assert broker.account({}, T0).marks_stale


def test_paper_broker_restart_resumes_positions_cash_and_exit_state(db_path):
    broker = _broker(db_path)
    broker.execute(_intent(TradeAction.OPEN, size=2.0, price=100.0, symbol="ETH"), T0)
    broker.execute(_intent(TradeAction.OPEN, side=PositionSide.SHORT, size=1.0, symbol="SOL"), T0)
    broker.execute(_intent(TradeAction.ADD, size=1.0, price=130.0, symbol="ETH"), T0 + 5)
    broker.update_exit_state("ETH", ExitState(trailing_sl=101.5, tp1_taken=True), T0 + 6)
    broker.accrue_funding({"ETH": 0.0001, "SOL": -0.0003}, {"ETH": 120.0, "SOL": 90.0}, T0 + HOUR_MS)
    resumed = _broker(db_path, seed=55.0)  # a different seed env does not rewrite history
    assert resumed.cash_usd == broker.cash_usd
    assert dict(resumed.positions()) == dict(broker.positions())


def test_paper_broker_update_exit_state_without_position_raises(db_path):
    with pytest.raises(KeyError):
        _broker(db_path).update_exit_state("BTC", ExitState(trailing_sl=None, tp1_taken=False), T0)


_STEP = st.tuples(
    st.sampled_from(["OPEN", "ADD", "REDUCE", "CLOSE", "FUND"]),
    st.sampled_from(["BTC", "ETH"]),
    st.sampled_from([PositionSide.LONG, PositionSide.SHORT]),
    st.floats(min_value=0.001, max_value=5.0),
    st.floats(min_value=1.0, max_value=5_000.0),
    st.floats(min_value=-0.001, max_value=0.001),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_STEP, min_size=1, max_size=25), slip=st.sampled_from([0.0, 10.0]))
def test_paper_broker_cash_identity_holds_to_the_cent_over_random_fills(tmp_path_factory, steps, slip):
    db_path = tmp_path_factory.mktemp("prop") / "paper.db"
    seed = 10_000.0
    broker = _broker(db_path, FillModelParams(slippage_bps=slip), seed)
    now = T0
    fees = realised = funding = 0.0
    for kind, symbol, side, size, price, rate in steps:
        now += HOUR_MS // 2
        if kind == "FUND":
            rows = broker.accrue_funding({symbol: rate}, {symbol: price}, now)
        else:
            position = broker.positions().get(symbol)
            action = TradeAction(kind)
            if position is not None and action is not TradeAction.OPEN:
                side = position.side
            entry = action in (TradeAction.OPEN, TradeAction.ADD)
            intent = OrderIntent(
                symbol=symbol,
                action=action,
                side=side,
                reference_price=price,
                event_ms=now,
                reason=EntryKind.STANDARD if entry else ExitReason.STOP_LOSS,
                size_coins=None if action is TradeAction.CLOSE else size,
            )
            rows = broker.execute(intent, now).fills
        for row in rows:
            fees += row.fee_usd
            realised += row.realised_pnl_usd
            funding += row.funding_usd
    expected = seed - fees + realised + funding
    assert abs(broker.cash_usd - expected) < 0.005
    totals = TradeStore.open(db_path, Mode.PAPER).totals()
    assert (
        abs(
            totals.seed_usd
            - totals.fees_usd
            + totals.realised_pnl_usd
            + totals.funding_usd
            - totals.balance_usd
        )
        < 0.005
    )
    resumed = _broker(db_path, FillModelParams(slippage_bps=slip), seed)
    assert resumed.cash_usd == broker.cash_usd and dict(resumed.positions()) == dict(broker.positions())


# --- the pre-send risk check (the same RiskManager as live) -------------------------------------


def _risky_broker(db_path: Path, env: dict[str, str], kill_file: Path | None = None):
    from engine.daemon.paper import build_paper_stack
    from engine.risk.manager import RiskManager

    if kill_file is not None:
        env = {**env, "AI_QUANT_KILL_SWITCH_FILE": str(kill_file)}
    store = TradeStore.open(db_path, Mode.PAPER)
    risk = RiskManager.from_config(store.connection, {"max_open_positions": 1}, env)
    return build_paper_stack(
        store, risk, NO_SLIP, 10_000.0, clock_ms=lambda: T0, funding_enabled=False, recorded_ms=lambda: T0
    )


def test_risk_deny_refuses_the_fill_with_the_reason_and_writes_nothing(db_path):
    stack = _risky_broker(db_path, {})
    broker = stack.broker
    assert broker.execute(_intent(TradeAction.OPEN, symbol="BTC"), T0).filled
    rows = len(broker._store.fills())
    denied = broker.execute(_intent(TradeAction.OPEN, symbol="ETH"), T0 + 1)  # max_open_positions: 1
    assert denied.status is ExecutionStatus.REJECTED and denied.reject is BrokerReject.RISK_DENIED
    assert denied.detail["reason"] == "max_positions" and not denied.fills
    assert len(broker._store.fills()) == rows and set(broker.positions()) == {"BTC"}
    assert broker.execute(_intent(TradeAction.CLOSE, symbol="BTC"), T0 + 2).filled  # exits still pass


def test_kill_file_close_only_then_halt_all_persisted_in_the_paper_db(db_path, tmp_path):
    kill = tmp_path / "kill"
    stack = _risky_broker(db_path, {}, kill)
    broker = stack.broker
    assert broker.execute(_intent(TradeAction.OPEN), T0).filled
    kill.write_text("close_only\n")
    stack.before_tick()
    assert broker.execute(_intent(TradeAction.OPEN, symbol="ETH"), T0).detail["reason"] == "trading_reducing"
    assert broker.execute(_intent(TradeAction.REDUCE, size=0.5), T0).filled
    kill.write_text("halt_all\n")
    stack.before_tick()
    halted = broker.execute(_intent(TradeAction.CLOSE), T0)
    assert halted.reject is BrokerReject.RISK_DENIED and halted.detail["reason"] == "trading_halted"
    broker._store.close()
    kill.unlink()
    again = _risky_broker(db_path, {})  # a restart on the same trading DB, no kill source left
    assert again.risk.trading_state.value == "HALTED"


def test_env_halt_all_denies_everything_and_a_raising_check_fails_closed(db_path, tmp_path):
    stack = _risky_broker(db_path, {"AI_QUANT_KILL_SWITCH": "halt_all"})
    stack.start(None)
    assert stack.broker.execute(_intent(TradeAction.OPEN), T0).detail["reason"] == "trading_halted"

    def broken(*_args):
        raise RuntimeError("boom")

    other = PaperBroker(
        TradeStore.open(tmp_path / "other.db", Mode.PAPER), NO_SLIP, 10_000.0, pre_send_check=broken,
        clock_ms=lambda: T0,
    )  # fmt: skip
    refused = other.execute(_intent(TradeAction.OPEN), T0)
    assert refused.reject is BrokerReject.RISK_DENIED and refused.detail["reason"] == "check_failed"
    assert other.positions() == {}


def test_fills_feed_the_risk_windows(db_path):
    stack = _risky_broker(db_path, {"AI_QUANT_RISK_MAX_ENTRY_ORDERS_PER_MIN_PER_SYMBOL": "1"})
    broker = stack.broker
    assert broker.execute(_intent(TradeAction.OPEN), T0).filled
    assert broker.execute(_intent(TradeAction.CLOSE), T0 + 1).filled
    again = broker.execute(_intent(TradeAction.OPEN), T0 + 2)  # the per-symbol entry window is full
    assert again.reject is BrokerReject.RISK_DENIED
    assert again.detail["reason"] == "entry_rate_symbol"
