"""LiveBroker / DryLiveBroker against the simulator over real HTTP with real signatures (a fresh
eth_account key per test): entries and exits fill and positions agree on both sides; dry_live
never POSTs; lost acks and 5xx storms leave no duplicates, UNKNOWN settles by cloid and the
fill cursor never skips."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from engine.enums import BrokerReject, ExecutionStatus, Mode, RiskReason, RoundDirection
from engine.execution.broker import AccountSnapshot, OrderIntent, Position, PreSendCheck
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE, live_gate
from engine.execution.live_broker import (
    DryLiveBroker,
    LiveBroker,
    LiveBrokerConfig,
    VenueBrokerParts,
    build_venue_broker,
)
from engine.execution.verdicts import ALLOW, Deny, RiskVerdict
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.reconciler import FILLS_CURSOR, OmsReconciler, ReconcilerConfig, ReconcileVerdict
from engine.oms.states import OrderState
from engine.venue.exchange_client import SigningKey, round_size
from engine.venue.info_client import RetryPolicy
from engine.venue.rate_budget import RateBudget
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator

Positions = Mapping[str, Position]


class Clock:
    """Wall clock plus an offset the test can move (to pass the not-found grace period)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        import time

        return time.time_ns() // 1_000_000 + self.offset_ms


@dataclass
class Rig:
    sim: SimulatorProcess
    parts: VenueBrokerParts
    oms: LiveOms
    reconciler: OmsReconciler
    user: str
    coin: str
    clock: Clock
    verdicts: list[RiskVerdict]
    env: dict[str, str]

    @property
    def broker(self) -> LiveBroker | DryLiveBroker:
        return self.parts.broker

    def intent(self, action: TradeAction, *, candle: int = 1, notional_usd: float = 30.0) -> OrderIntent:
        mid = self.parts.info.all_mids()[self.coin]
        size, opening = None, action in (TradeAction.OPEN, TradeAction.ADD)
        if action is not TradeAction.CLOSE:
            size = round_size(notional_usd / mid, 4, RoundDirection.UP)
        return OrderIntent(
            symbol=self.coin, action=action, side=PositionSide.LONG, reference_price=mid,
            event_ms=candle, reason=EntryKind.STANDARD if opening else ExitReason.STOP_LOSS,
            size_coins=size, leverage=3.0,
        )  # fmt: skip

    def sim_fills(self) -> list[dict]:
        return self.sim.info({"type": "userFills", "user": self.user}).json()

    def venue_szi(self) -> float:
        state = self.parts.info.clearinghouse_state(self.user)
        pos = state.position(self.coin)
        return 0.0 if pos is None else pos.szi


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = start_simulator(
        ["--speed", "0", "--seed", "11", "--rate-limit-per-min", "0"],
        tmp_path_factory.mktemp("live-broker-sim"),
    )
    try:
        yield sim
    finally:
        sim.stop()


def _rig(sim: SimulatorProcess, tmp_path: Path, mode: Mode, check: PreSendCheck | None = None) -> Rig:
    sim.set_faults(reset=True)
    clock = Clock()
    key = SigningKey(Account.create())
    user = key.address
    oms = LiveOms(
        tmp_path / f"{mode}.db", mode=str(mode), config=OmsConfig(synchronous_full=False), clock_ms=clock
    )
    verdicts: list[RiskVerdict] = []
    env = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}

    def scripted(
        intent: OrderIntent, account: AccountSnapshot, positions: Mapping[str, Position], now_ms: int
    ) -> RiskVerdict:
        return verdicts[-1] if verdicts else ALLOW

    parts = build_venue_broker(
        mode=mode, base_url=sim.base_url, key=key, oms=oms, config=LiveBrokerConfig(user=user),
        pre_send_check=check or scripted, budget=RateBudget(1200), timeout_secs=3.0,
        retry=RetryPolicy(max_attempts=2, backoff_base_secs=0.05, total_deadline_secs=5), clock_ms=clock,
        gate=lambda: live_gate(mode, env),
    )  # fmt: skip
    parts.broker.refresh()  # the simulator funds an address the first time it is queried
    canceller = getattr(parts.broker, "cancel", None)
    reconciler = OmsReconciler(
        oms=oms, info=parts.info, config=ReconcilerConfig(user=user, cancel_stale=mode is Mode.LIVE),
        canceller=canceller, clock_ms=clock,
    )  # fmt: skip
    coin = parts.info.meta().universe[0].name
    return Rig(sim, parts, oms, reconciler, user, coin, clock, verdicts, env)


@pytest.fixture
def live(shared_sim: SimulatorProcess, tmp_path: Path) -> Iterator[Rig]:
    rig = _rig(shared_sim, tmp_path, Mode.LIVE)
    yield rig
    shared_sim.set_faults(reset=True)
    rig.parts.info.close()
    if rig.parts.transport is not None:
        rig.parts.transport.close()
    rig.oms.close()


def _assert_ledger_matches_venue(rig: Rig) -> None:
    venue_fills = rig.sim_fills()
    ledger = rig.oms.fills()
    assert sorted((f["tid"], f["oid"]) for f in venue_fills) == sorted((f.tid, f.oid) for f in ledger)
    assert rig.oms.orphan_fills() == []
    assert rig.oms.ledger_positions().get(rig.coin, 0.0) == pytest.approx(rig.venue_szi(), abs=1e-9)


def test_live_entry_and_exit_fill_and_positions_match(live: Rig) -> None:
    opened = live.broker.execute(live.intent(TradeAction.OPEN), 0)
    assert opened.status is ExecutionStatus.FILLED, opened
    assert live.reconciler.run().verdict is ReconcileVerdict.CLEAN
    position = live.broker.positions()[live.coin]
    assert position.side is PositionSide.LONG and position.size_coins == pytest.approx(live.venue_szi())
    _assert_ledger_matches_venue(live)

    closed = live.broker.execute(live.intent(TradeAction.CLOSE, candle=2), 0)
    assert closed.status is ExecutionStatus.FILLED, closed
    report = live.reconciler.run()
    assert report.verdict is ReconcileVerdict.CLEAN, report
    assert live.venue_szi() == 0.0 and live.coin not in live.broker.positions()
    _assert_ledger_matches_venue(live)
    assert {o.state for o in live.oms.orders()} == {OrderState.FILLED}


def test_same_candle_open_is_sent_once(live: Rig) -> None:
    first = live.broker.execute(live.intent(TradeAction.OPEN, candle=7), 0)
    posts = live.sim.state()["exchange_posts"]
    again = live.broker.execute(live.intent(TradeAction.OPEN, candle=7), 0)
    assert first.status is ExecutionStatus.FILLED
    assert again.status is ExecutionStatus.REJECTED and again.reject is BrokerReject.DUPLICATE_INTENT
    assert live.sim.state()["exchange_posts"] == posts


def test_same_candle_add_is_sent_once_across_a_restart(live: Rig, tmp_path: Path) -> None:
    """The kill -9 window of the live crash test: an ADD filled and the daemon died before its
    decision event, so the restarted engine (deciding the same candle again) does not know it;
    the ledger does, and the restarted broker sends nothing."""
    assert live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0).filled
    assert live.broker.execute(live.intent(TradeAction.ADD, candle=2), 0).filled
    szi = live.venue_szi()
    live.oms.close()
    oms = LiveOms(live.oms.path, mode="live", config=OmsConfig(synchronous_full=False), clock_ms=live.clock)
    live.oms = oms  # the fixture closes it
    restarted = LiveBroker(
        transport=live.parts.transport, gate=lambda: live_gate(Mode.LIVE, live.env), oms=oms,
        info=live.parts.info, signer=live.broker.signer, config=live.broker.config,
        pre_send_check=lambda *_: ALLOW, clock_ms=live.clock,
    )  # fmt: skip
    posts = live.sim.state()["exchange_posts"]
    again = restarted.execute(live.intent(TradeAction.ADD, candle=2), 0)
    assert again.status is ExecutionStatus.REJECTED and again.reject is BrokerReject.DUPLICATE_INTENT, again
    assert again.detail["state"] == OrderState.FILLED
    assert live.sim.state()["exchange_posts"] == posts and live.venue_szi() == pytest.approx(szi)
    position = restarted.positions()[live.coin]
    assert (position.adds_count, position.last_add_ms) == (1, 2)  # pyramiding limits see the add
    assert restarted.execute(live.intent(TradeAction.ADD, candle=3), 0).filled  # the next candle adds
    assert restarted.positions()[live.coin].adds_count == 2


def test_filled_partial_take_profit_is_taken_for_the_position_before_the_engine_records_it(live: Rig) -> None:
    """The engine stores tp1_taken only after the REDUCE returns (a kill -9 in between loses it):
    the position reads it from the ledger, so a restart never takes TP1 a second time."""
    assert live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0).filled
    assert not live.broker.positions()[live.coin].tp1_taken
    reduce = live.intent(TradeAction.REDUCE, candle=2, notional_usd=12.0)
    assert live.broker.execute(reduce, 0).filled
    assert live.oms.exit_state(live.coin) is None  # what the engine would have written next
    assert live.broker.positions()[live.coin].tp1_taken


def test_pre_send_denial_records_typed_deny_and_sends_nothing(live: Rig) -> None:
    posts = live.sim.state()["exchange_posts"]
    deny = Deny(RiskReason.MAX_POSITIONS, {"open": 8, "limit": 8})
    live.verdicts.append(deny)
    result = live.broker.execute(live.intent(TradeAction.OPEN), 0)
    assert result.reject is BrokerReject.RISK_DENIED and result.deny == deny
    assert live.sim.state()["exchange_posts"] == posts
    [order] = live.oms.orders()
    assert order.state is OrderState.DENIED
    [row] = live.oms.denials(order.intent_id)
    assert row.reason is RiskReason.MAX_POSITIONS and row.details == {"open": 8, "limit": 8}


def _raises(intent: OrderIntent, account: AccountSnapshot, positions: Positions, now: int) -> Deny:
    raise RuntimeError("risk state unreadable")


def _not_a_verdict(intent: OrderIntent, account: AccountSnapshot, positions: Positions, now: int) -> Deny:
    return None  # type: ignore[return-value]  # a broken check: fail closed, never "allowed"


@pytest.mark.parametrize(("check", "stage"), [(_raises, "pre_send_check"), (_not_a_verdict, "not_a_verdict")])
def test_broken_pre_send_check_denies_with_check_failed_and_sends_nothing(
    shared_sim: SimulatorProcess, tmp_path: Path, check: Callable[..., Deny], stage: str
) -> None:
    rig = _rig(shared_sim, tmp_path, Mode.LIVE, check=check)
    try:
        posts = shared_sim.state()["exchange_posts"]
        result = rig.broker.execute(rig.intent(TradeAction.OPEN), 0)
        assert result.reject is BrokerReject.RISK_DENIED and result.deny is not None
        assert result.deny.reason is RiskReason.CHECK_FAILED and result.deny.details["stage"] == stage
        assert shared_sim.state()["exchange_posts"] == posts
        [row] = rig.oms.denials()
        assert row.reason is RiskReason.CHECK_FAILED and row.details["stage"] == stage
    finally:
        rig.parts.info.close()


@pytest.mark.parametrize(
    "env",
    [
        {},
        {ENV_LIVE_ENABLE: "1"},
        {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: "yes"},
        {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE, "AI_QUANT_HARD_KILL_SWITCH": "1"},
    ],
)
def test_live_with_a_closed_gate_records_would_send_and_posts_nothing(live: Rig, env: dict[str, str]) -> None:
    posts = live.sim.state()["exchange_posts"]
    live.env.clear()
    live.env.update(env)
    result = live.broker.execute(live.intent(TradeAction.OPEN), 0)
    assert result.status is ExecutionStatus.WOULD_SEND and result.detail["gate"] != "open"
    assert [o.state for o in live.oms.orders()] == [OrderState.WOULD_SEND]
    assert live.sim.state()["exchange_posts"] == posts


def test_dry_live_signs_records_and_never_posts(shared_sim: SimulatorProcess, tmp_path: Path) -> None:
    before = shared_sim.state()["exchange_posts"]
    rig = _rig(shared_sim, tmp_path, Mode.DRY_LIVE)
    try:
        assert rig.parts.transport is None and not hasattr(rig.broker, "transport")
        result = rig.broker.execute(rig.intent(TradeAction.OPEN), 0)
        assert result.status is ExecutionStatus.WOULD_SEND
        actions = [w["action"] for w in rig.broker.would_send]
        assert actions == ["updateLeverage", "order"]
        assert [o.state for o in rig.oms.orders()] == [OrderState.WOULD_SEND]
        assert rig.broker.account({}, 0).equity_usd > 0  # reads the real account
        assert rig.reconciler.run().verdict is ReconcileVerdict.CLEAN
        assert shared_sim.state()["exchange_posts"] == before
    finally:
        rig.parts.info.close()
        rig.oms.close()


def test_lost_ack_stays_unknown_then_settles_by_cloid_without_resend(live: Rig) -> None:
    live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0)  # leverage set; not part of the fault
    live.sim.set_faults(lost_ack_next=1)
    result = live.broker.execute(live.intent(TradeAction.ADD, candle=2), 0)
    assert result.status is ExecutionStatus.PENDING, result
    (intent_id,) = [o.intent_id for o in live.oms.orders() if o.state is OrderState.UNKNOWN]
    assert live.sim.state()["lost_acks"] == 1
    report = live.reconciler.run()
    assert report.verdict is ReconcileVerdict.CLEAN, report
    assert live.oms.order(intent_id).state is OrderState.FILLED
    cloids = [f.get("cloid") for f in live.sim_fills()]
    assert len(cloids) == len(set(cloids)) == 2  # each intent reached the venue once
    _assert_ledger_matches_venue(live)


@pytest.mark.parametrize("status", [502, 503])
def test_error_storm_no_duplicates_unknown_resolves_cursor_never_skips(live: Rig, status: int) -> None:
    live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0)
    assert live.reconciler.run().clean
    cursor = live.oms.cursor(FILLS_CURSOR)
    add = live.intent(TradeAction.ADD, candle=2)
    live.sim.set_faults(rest_error_rate=1.0, rest_error_status=status)
    result = live.broker.execute(add, 0)
    assert result.status is ExecutionStatus.PENDING  # 5xx: ambiguous, in flight, never "rejected"
    storm = live.reconciler.run()
    assert storm.verdict is ReconcileVerdict.UNKNOWN and storm.failures
    assert live.oms.cursor(FILLS_CURSOR) == cursor  # a failed read never advances the cursor
    live.sim.set_faults(reset=True)
    live.clock.offset_ms += live.oms.config.not_found_grace_ms  # the storm is long over
    after = live.reconciler.run()
    assert after.verdict is ReconcileVerdict.CLEAN, after
    states = {o.state for o in live.oms.orders()}
    assert OrderState.UNKNOWN not in states and OrderState.NEW not in states
    assert len(live.sim_fills()) == 1  # the faulted order never executed; nothing was re-sent
    _assert_ledger_matches_venue(live)


def test_real_risk_manager_denies_second_position_and_lets_the_exit_through(
    shared_sim: SimulatorProcess, tmp_path: Path
) -> None:
    from engine.risk.limits import RiskLimits
    from engine.risk.manager import RiskManager
    from engine.risk.state import RiskStateStore
    from engine.storage.sqlite import open_db

    conn = open_db(tmp_path / "risk.db")
    rigs: list[Rig] = []
    try:
        risk = RiskManager(RiskLimits(max_open_positions=1), RiskStateStore(conn), env={})
        live = _rig(shared_sim, tmp_path, Mode.LIVE, check=risk.check)  # the bound method is the check
        rigs.append(live)
        assert live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0).filled
        other = live.parts.info.meta().universe[1].name
        mid = live.parts.info.all_mids()[other]
        second = OrderIntent(
            symbol=other,
            action=TradeAction.OPEN,
            side=PositionSide.LONG,
            reference_price=mid,
            event_ms=2,
            reason=EntryKind.STANDARD,
            size_coins=round_size(30.0 / mid, 3, RoundDirection.UP),
            leverage=1.0,
        )
        denied = live.broker.execute(second, 0)
        assert denied.reject is BrokerReject.RISK_DENIED
        assert denied.deny == Deny(RiskReason.MAX_POSITIONS, {"open": 1, "limit": 1})
        assert [d.reason for d in live.oms.denials()] == [RiskReason.MAX_POSITIONS]
        assert live.broker.execute(live.intent(TradeAction.CLOSE, candle=3), 0).filled
        assert live.reconciler.run().clean
    finally:
        for rig in rigs:
            rig.parts.info.close()
        conn.close()


def test_venue_fills_export_to_the_trades_ledger_once(live: Rig, tmp_path: Path) -> None:
    from engine.enums import LedgerKind
    from engine.execution.oms_trades import export_trades
    from engine.execution.trade_store import TradeStore

    assert live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0).filled
    assert live.broker.execute(live.intent(TradeAction.CLOSE, candle=2), 0).filled
    assert live.reconciler.run().clean
    store = TradeStore.open(tmp_path / "trading.db", Mode.LIVE)
    try:
        stats = export_trades(live.oms, store, account_value_usd=10_000.0)
        trades = store.fills()
        assert stats.exported == len(live.sim_fills()) == len(trades)
        assert [t.kind for t in trades] == [LedgerKind.OPEN, LedgerKind.CLOSE]
        assert [t.reason for t in trades] == [EntryKind.STANDARD.value, ExitReason.STOP_LOSS.value]
        assert all(t.symbol == live.coin for t in trades)
        assert trades[0].size_coins == pytest.approx(trades[1].size_coins)
        assert store.last_close(live.coin) is not None
        assert export_trades(live.oms, store, account_value_usd=10_000.0).exported == 0
    finally:
        store.close()


def test_dead_mans_switch_is_armed_and_cleared_and_gated(live: Rig) -> None:
    from engine.venue.exchange_client import ExchangeAccepted, ExchangeNotSent, ExchangeRejected

    now = live.clock()
    assert isinstance(
        live.broker.schedule_cancel(now + 1_000), ExchangeRejected
    )  # the venue wants >= 5 s lead
    assert isinstance(live.broker.schedule_cancel(now + 60_000), ExchangeAccepted)
    assert isinstance(live.broker.schedule_cancel(None), ExchangeAccepted)
    posts = live.sim.state()["exchange_posts"]
    live.env.clear()  # gates closed: nothing at all is sent
    assert isinstance(live.broker.schedule_cancel(now + 60_000), ExchangeNotSent)
    assert live.sim.state()["exchange_posts"] == posts
