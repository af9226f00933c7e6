"""Venue rules, engine side, against a strict simulator over real HTTP with real signatures:
equity in standard and unified account mode, the start-up account check (agent wallets), the
per-address request budget shedding entries but not exits, and a liquidation recorded in the ledger
(ledger == venue afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eth_account
import pytest
from hyperliquid.exchange import Exchange

from engine.enums import (
    AccountAbstraction,
    AlertKind,
    ExecutionStatus,
    LiquidationPolicy,
    Mode,
    RiskReason,
    RoundDirection,
    TradingStateEvent,
    UserRole,
)
from engine.execution.address_budget import AddressBudgetConfig
from engine.execution.broker import OrderIntent
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE, live_gate
from engine.execution.live_broker import LiveBrokerConfig, VenueBrokerParts, build_venue_broker
from engine.execution.verdicts import ALLOW
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.liquidation import LiquidationWatch
from engine.oms.reconciler import OmsReconciler, ReconcilerConfig
from engine.venue.account_check import AccountRoleError, check_account
from engine.venue.account_info import read_spot_state
from engine.venue.exchange_client import SigningKey, round_size
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator

GATES = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
COIN_INDEX = 0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    nobody = eth_account.Account.create().address  # a --fund keeps the venue strict (no fund-any)
    process = start_simulator(
        ["--speed", "0", "--seed", "5", "--rate-limit-per-min", "0", "--fund", f"{nobody}=0"],
        tmp_path_factory.mktemp("venue-rules-sim"),
    )  # fmt: skip
    try:
        yield process
    finally:
        process.stop()


@dataclass
class Alerts:
    sent: list[tuple[AlertKind, str]] = field(default_factory=list)

    def __call__(self, kind: AlertKind, message: str, extra: Any = None) -> bool:
        self.sent.append((kind, message))
        return True


@dataclass
class Wallet:
    parts: VenueBrokerParts
    oms: LiveOms
    user: str
    key: Any
    alerts: Alerts
    candle: int = 0

    def close(self) -> None:
        self.parts.info.close()
        if self.parts.transport is not None:
            self.parts.transport.close()
        self.oms.close()

    def intent(self, action: TradeAction, notional_usd: float = 40.0, leverage: float = 3.0) -> OrderIntent:
        coin = self.parts.info.meta().universe[COIN_INDEX].name
        mid = self.parts.info.all_mids()[coin]
        opening = action in (TradeAction.OPEN, TradeAction.ADD)
        size = None if action is TradeAction.CLOSE else round_size(notional_usd / mid, 4, RoundDirection.UP)
        reason = EntryKind.STANDARD if opening else ExitReason.STOP_LOSS
        self.candle += 1  # one OPEN per candle: each call is a new decision
        return OrderIntent(
            symbol=coin, action=action, side=PositionSide.LONG, reference_price=mid, event_ms=self.candle,
            reason=reason, size_coins=size, leverage=leverage,
        )  # fmt: skip


@pytest.fixture
def wallets(sim: SimulatorProcess, tmp_path: Path) -> Iterator[Any]:
    made: list[Wallet] = []

    def make(
        usd: float, *, mode: str = "standard", budget: AddressBudgetConfig | None = None,
        on_sent: Any = None,
    ) -> Wallet:  # fmt: skip
        account = eth_account.Account.create()
        sim.fund(account.address, usd, mode=mode)
        db = tmp_path / f"{account.address}.db"
        oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
        alerts = Alerts()
        parts = build_venue_broker(
            mode=Mode.LIVE, base_url=sim.base_url, key=SigningKey.from_hex(account.key.hex()), oms=oms,
            config=LiveBrokerConfig(user=account.address), pre_send_check=lambda *_: ALLOW,
            gate=lambda: live_gate(Mode.LIVE, GATES), address_budget=budget, alert=alerts, on_sent=on_sent,
        )  # fmt: skip
        wallet = Wallet(parts, oms, account.address, account, alerts)
        made.append(wallet)
        return wallet

    yield make
    for wallet in made:
        wallet.close()


def test_equity_is_read_by_account_mode_and_agrees_between_modes(sim: SimulatorProcess, wallets: Any) -> None:
    standard, unified = wallets(1_000.0), wallets(1_000.0, mode="unified")
    for wallet in (standard, unified):
        opened = wallet.parts.broker.execute(wallet.intent(TradeAction.OPEN), 1)
        assert opened.status is ExecutionStatus.FILLED
    assert standard.parts.broker.equity.mode() is AccountAbstraction.DEFAULT
    assert unified.parts.broker.equity.mode() is AccountAbstraction.UNIFIED_ACCOUNT
    a, b = standard.parts.broker.account({}, 1), unified.parts.broker.account({}, 1)
    # same deposit, same trade on a frozen market: same equity and cash, whatever the mode
    assert b.equity_usd == pytest.approx(a.equity_usd, abs=1e-6)
    assert b.cash_usd == pytest.approx(a.cash_usd, abs=1e-6)
    assert 990.0 < a.equity_usd < 1_000.0  # the deposit less fees and the spread
    # in unified mode the perp accountValue is not the equity; the spot USDC balance is the cash
    value = unified.parts.info.clearinghouse_state(unified.user).margin_summary.account_value_usd
    assert abs(value - b.equity_usd) > 900.0
    assert read_spot_state(unified.parts.info, unified.user).total() == pytest.approx(b.cash_usd, abs=1e-6)
    assert not a.marks_stale and not b.marks_stale


def test_agent_wallet_as_account_is_refused_with_its_master(sim: SimulatorProcess) -> None:
    master, stranger = eth_account.Account.create(), eth_account.Account.create()
    sim.fund(master.address, 500.0)
    approved, agent_key = Exchange(master, sim.base_url).approve_agent("bot")
    assert approved["status"] == "ok"
    agent = eth_account.Account.from_key(agent_key)
    info = build_info(sim)
    try:
        reason = f"account address {agent.address.lower()} is an agent \\(API\\) wallet of "
        reason += master.address.lower()
        with pytest.raises(AccountRoleError, match=reason):
            check_account(info, agent.address, agent.address)
        assert check_account(info, master.address, agent.address).role is UserRole.USER
        with pytest.raises(AccountRoleError, match=f"User or API Wallet {stranger.address.lower()} does not"):
            check_account(info, master.address, stranger.address)
        with pytest.raises(AccountRoleError, match="Must deposit before performing actions"):
            check_account(info, stranger.address, stranger.address)
    finally:
        info.close()


def build_info(sim: SimulatorProcess) -> Any:
    from engine.venue.info_client import HyperliquidInfoClient
    from engine.venue.rate_budget import RateBudget

    return HyperliquidInfoClient(sim.base_url, timeout_secs=5.0, budget=RateBudget())


def test_small_address_budget_sheds_entries_but_exits_go_out(sim: SimulatorProcess, wallets: Any) -> None:
    """A fresh address (10,000 requests here too) with a reserve so large that 2 sends cross it."""
    wallet = wallets(1_000.0, budget=AddressBudgetConfig(reserve_requests=9_997, poll_secs=3_600.0))
    budget = wallet.parts.address_budget
    assert budget is not None and budget.poll(force=True) is not None
    broker = wallet.parts.broker
    # leverage + order: two requests
    assert broker.execute(wallet.intent(TradeAction.OPEN), 1).status is ExecutionStatus.FILLED
    assert budget.view is not None and budget.view.remaining == 9_998 and not budget.shedding
    assert broker.execute(wallet.intent(TradeAction.ADD), 2).status is ExecutionStatus.FILLED
    assert budget.shedding and budget.view.remaining == 9_997  # same leverage: one request
    posts = sim.state()["exchange_posts"]
    shed = broker.execute(wallet.intent(TradeAction.ADD), 3)
    assert shed.status is ExecutionStatus.REJECTED and shed.deny is not None
    assert shed.deny.reason is RiskReason.ADDRESS_BUDGET
    assert sim.state()["exchange_posts"] == posts  # shed locally: nothing reached the venue
    assert broker.execute(wallet.intent(TradeAction.CLOSE), 4).status is ExecutionStatus.FILLED
    assert wallet.parts.info.clearinghouse_state(wallet.user).position(shed.intent.symbol) is None
    low = "address request budget low: shedding entries, exits continue"
    assert wallet.alerts.sent == [(AlertKind.RISK, low)]
    venue = sim.info({"type": "userRateLimit", "user": wallet.user}).json()
    assert venue["nRequestsUsed"] == 10_000 - budget.view.remaining  # the local count is the venue's


def test_venue_budget_refusal_is_rejected_never_raises_and_is_not_counted_as_sent(
    sim: SimulatorProcess, wallets: Any,
) -> None:  # fmt: skip
    sent: list[TradeAction] = []
    wallet = wallets(1_000.0, budget=AddressBudgetConfig(reserve_requests=10, poll_secs=3_600.0),
                     on_sent=lambda intent, _now: sent.append(intent.action))  # fmt: skip
    broker = wallet.parts.broker
    assert broker.execute(wallet.intent(TradeAction.OPEN), 1).status is ExecutionStatus.FILLED
    exchange = Exchange(wallet.key, sim.base_url)  # the same address spends its budget elsewhere
    limit = exchange.info.user_rate_limit(wallet.user)
    coin = exchange.info.meta()["universe"][-1]["name"]
    left = int(limit["nRequestsCap"]) - int(limit["nRequestsUsed"])
    exchange.bulk_cancel([{"coin": coin, "oid": 1 + i} for i in range(left + 1)])
    assert exchange.update_leverage(1, coin)["status"] == "ok"  # the one-per-10-s pass, used
    refused = broker.execute(wallet.intent(TradeAction.CLOSE), 2)
    assert refused.status is ExecutionStatus.REJECTED
    assert refused.detail["reason"] == "venue_error"  # the venue's refusal, recorded, nothing raised
    fills = sim.info({"type": "userFills", "user": wallet.user}).json()
    assert fills and {f["dir"] for f in fills} == {"Open Long"}  # the exit never executed
    budget = wallet.parts.address_budget
    assert budget is not None and budget.shedding and budget.view is not None and budget.view.exhausted
    assert sent == [TradeAction.OPEN]  # the refused exit is not counted against the exit rate
    low = "address request budget low: shedding entries, exits continue"
    assert wallet.alerts.sent == [(AlertKind.RISK, low)]


def test_liquidation_is_recorded_and_the_ledger_equals_the_venue(sim: SimulatorProcess, wallets: Any) -> None:
    wallet = wallets(100.0)
    broker = wallet.parts.broker
    opened = broker.execute(wallet.intent(TradeAction.OPEN, notional_usd=1_500.0, leverage=20.0), 1)
    assert opened.status is ExecutionStatus.FILLED
    coin = opened.intent.symbol
    config = ReconcilerConfig(user=wallet.user)
    reconciler = OmsReconciler(oms=wallet.oms, info=wallet.parts.info, config=config)
    risk: list[TradingStateEvent] = []
    watch = LiquidationWatch(oms=wallet.oms, policy=LiquidationPolicy.HALTED,
                             apply_risk=lambda event, *_: risk.append(event), alert=wallet.alerts,
                             reconcile=reconciler.run)  # fmt: skip
    assert reconciler.run().clean and watch.check() is None
    sim.shock(coin, -10.0)  # 10% down at 15x exposure on a 100 USD account: below maintenance
    sim.advance(ms=1_000)  # a market tick: the venue liquidates
    assert wallet.parts.info.clearinghouse_state(wallet.user).position(coin) is None
    report = reconciler.run()
    seen = watch.check()
    assert seen is not None and seen.coins == (coin,) and risk == [TradingStateEvent.LIQUIDATION_HALT]
    assert report.clean and reconciler.last_report is not None and reconciler.last_report.clean
    venue_fills = sim.info({"type": "userFills", "user": wallet.user}).json()
    liquidations = [f for f in venue_fills if "liquidation" in f]
    assert liquidations
    assert all(f["liquidation"]["liquidatedUser"] == wallet.user.lower() for f in liquidations)
    ledger = wallet.oms.fills()
    assert sorted((f.hash, f.tid) for f in ledger) == sorted((f["hash"], f["tid"]) for f in venue_fills)
    assert sorted(f.tid for f in ledger if f.liquidation) == sorted(f["tid"] for f in liquidations)
    assert wallet.oms.ledger_positions() == {} and wallet.oms.orphan_fills() == []
    assert (AlertKind.RISK, "venue liquidated the account") in wallet.alerts.sent
