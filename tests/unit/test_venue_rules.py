"""Venue rules, engine side: the account-info parsers, equity in standard and unified mode, the
start-up account check, and the ledger + watch after a venue liquidation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.enums import (
    AccountAbstraction,
    AlertKind,
    LedgerKind,
    LiquidationPolicy,
    Mode,
    TradingStateEvent,
    UserRole,
)
from engine.execution.oms_trades import LIQUIDATION_REASON, classify, export_trades
from engine.execution.trade_store import TradeStore
from engine.oms.ledger import FillSource, LiveOms, OmsConfig
from engine.oms.liquidation import LiquidationWatch
from engine.oms.states import OrderState
from engine.venue import types as hl
from engine.venue.account_check import AccountRoleError, check_account
from engine.venue.account_info import (
    RoleInfo,
    parse_spot_state,
    parse_user_abstraction,
    parse_user_rate_limit,
    parse_user_role,
)
from engine.venue.equity import AccountEquityReader, account_equity
from strategies.enums import PositionSide

MASTER = "0x" + "a" * 40
AGENT = "0x" + "b" * 40
T0 = 1_700_000_000_000


def _state(account_value: float, upnl: float = 0.0, margin: float = 0.0) -> hl.UserState:
    positions = []
    if upnl or margin:
        positions.append({"type": "oneWay", "position": {
            "coin": "ETH", "szi": "1.0", "leverage": {"type": "cross", "value": 5}, "entryPx": "100.0",
            "positionValue": "100.0", "unrealizedPnl": str(upnl), "marginUsed": str(margin),
        }})  # fmt: skip
    totals = {"accountValue": str(account_value), "totalNtlPos": "0.0", "totalRawUsd": "0.0",
              "totalMarginUsed": str(margin)}
    return hl.parse_user_state({"marginSummary": totals, "crossMarginSummary": totals,
                                "withdrawable": "0.0", "assetPositions": positions})


# --- parsers ----------------------------------------------------------------------------------


def test_spot_state_totals_usdc_and_omits_nothing_it_was_given() -> None:
    spot = parse_spot_state({"balances": [
        {"coin": "USDC", "token": 0, "total": "1234.5", "hold": "20.0", "entryNtl": "0.0"},
        {"coin": "HYPE", "token": 150, "total": "3.0", "hold": "0.0", "entryNtl": "90.0"},
    ]})  # fmt: skip
    assert (spot.total(), spot.hold(), spot.total("HYPE")) == (1234.5, 20.0, 3.0)
    assert parse_spot_state({"balances": []}).total() == 0.0


@pytest.mark.parametrize("body", [{"balances": [{"coin": "USDC", "total": "-1", "hold": "0"}]}, {}, []])
def test_spot_state_refuses_bad_shapes_naming_the_request(body: Any) -> None:
    with pytest.raises(hl.ParseError, match="spotClearinghouseState"):
        parse_spot_state(body)


@pytest.mark.parametrize("mode", list(AccountAbstraction))
def test_user_abstraction_parses_every_mode(mode: AccountAbstraction) -> None:
    assert parse_user_abstraction(mode.value) is mode
    assert mode.spot_collateral is (mode in (AccountAbstraction.UNIFIED_ACCOUNT,
                                             AccountAbstraction.PORTFOLIO_MARGIN))


@pytest.mark.parametrize("body", ["unifiedaccount", None, {"mode": "default"}])
def test_user_abstraction_refuses_an_unknown_answer(body: Any) -> None:
    with pytest.raises(hl.ParseError, match="userAbstraction"):
        parse_user_abstraction(body)


def test_user_rate_limit_parses_the_recorded_shape() -> None:
    limit = parse_user_rate_limit({"cumVlm": "2854574.593578", "nRequestsUsed": 2890,
                                   "nRequestsCap": 2864574, "nRequestsSurplus": 0})
    assert (limit.requests_used, limit.requests_cap, limit.cum_volume_usd) == (2890, 2864574, 2854574.593578)
    with pytest.raises(hl.ParseError, match="nRequestsUsed"):
        parse_user_rate_limit({"cumVlm": "0.0", "nRequestsUsed": -1, "nRequestsCap": 10})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"role": "user"}, RoleInfo(UserRole.USER)),
        ({"role": "missing"}, RoleInfo(UserRole.MISSING)),
        ({"role": "vault"}, RoleInfo(UserRole.VAULT)),
        ({"role": "agent", "data": {"user": "0x" + "A" * 40}}, RoleInfo(UserRole.AGENT, MASTER)),
        ({"role": "subAccount", "data": {"master": MASTER}}, RoleInfo(UserRole.SUB_ACCOUNT, MASTER)),
    ],
)
def test_user_role_parses_each_role(body: dict[str, Any], expected: RoleInfo) -> None:
    assert parse_user_role(body) == expected


@pytest.mark.parametrize("body", [{"role": "admin"}, {"role": "agent"}, {"role": "agent", "data": {}}])
def test_user_role_refuses_unknown_roles_and_agents_without_master(body: dict[str, Any]) -> None:
    with pytest.raises(hl.ParseError, match="userRole"):
        parse_user_role(body)


def test_fill_with_liquidation_object_is_parsed() -> None:
    fill = hl.parse_fill({
        "coin": "ETH", "px": "90.0", "sz": "1.0", "side": "A", "time": T0, "startPosition": "1.0",
        "dir": "Close Long", "closedPnl": "-10.0", "hash": "0x01", "oid": 9, "crossed": True, "fee": "0.04",
        "tid": 5, "liquidation": {"liquidatedUser": MASTER, "markPx": "90.1", "method": "market"},
    })  # fmt: skip
    assert fill.liquidation is not None
    assert (fill.liquidation.liquidated_user, fill.liquidation.mark_px, fill.liquidation.method) == (
        MASTER, 90.1, "market",
    )


# --- equity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [AccountAbstraction.DEFAULT, AccountAbstraction.DISABLED,
                                  AccountAbstraction.DEX_ABSTRACTION])
def test_standard_equity_is_the_perp_account_value(mode: AccountAbstraction) -> None:
    equity = account_equity(mode, _state(1_050.0, upnl=50.0, margin=20.0), None)
    assert (equity.equity_usd, equity.cash_usd, equity.unrealised_pnl_usd, equity.margin_used_usd) == (
        1_050.0, 1_000.0, 50.0, 20.0,
    )


@pytest.mark.parametrize("mode", [AccountAbstraction.UNIFIED_ACCOUNT, AccountAbstraction.PORTFOLIO_MARGIN])
def test_unified_equity_is_spot_usdc_plus_unrealised_not_account_value(mode: AccountAbstraction) -> None:
    spot = parse_spot_state({"balances": [{"coin": "USDC", "total": "1000.0", "hold": "20.0"}]})
    state = _state(50.0, upnl=50.0, margin=20.0)  # the perp side shows only the unrealised PnL
    equity = account_equity(mode, state, spot)
    assert (equity.equity_usd, equity.cash_usd) == (1_050.0, 1_000.0)
    assert account_equity(mode, _state(0.0), spot).equity_usd == 1_000.0  # flat: accountValue reads 0
    with pytest.raises(ValueError, match="spotClearinghouseState"):
        account_equity(mode, state, None)


@dataclass
class FakeInfo:
    """Answers userAbstraction / spotClearinghouseState / userRole from a table; counts reads."""

    answers: dict[str, Any]
    roles: dict[str, Any] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    reads: dict[str, int] = field(default_factory=dict)

    def post_raw(self, info_type: Any, payload: Mapping[str, Any]) -> Any:
        kind = str(info_type)
        self.reads[kind] = self.reads.get(kind, 0) + 1
        if kind in self.fail:
            raise hl.TemporaryVenueError(kind, 1, "http 502")
        if kind == "userRole":
            return self.roles.get(payload["user"], {"role": "missing"})
        return self.answers[kind]


def test_equity_reader_caches_the_mode_and_keeps_the_last_spot_on_failure() -> None:
    now = [T0]
    info = FakeInfo({"userAbstraction": "unifiedAccount",
                     "spotClearinghouseState": {"balances": [{"coin": "USDC", "total": "500", "hold": "0"}]}})
    reader = AccountEquityReader(info, MASTER, clock_ms=lambda: now[0], mode_max_age_ms=600_000)
    state = _state(0.0)
    assert reader.equity(state).equity_usd == 500.0 and not reader.stale
    assert reader.equity(state).equity_usd == 500.0 and info.reads["spotClearinghouseState"] == 1
    info.answers["spotClearinghouseState"] = {"balances": [{"coin": "USDC", "total": "480", "hold": "0"}]}
    assert reader.equity(_state(0.0)).equity_usd == 480.0  # a new perp state: the spot is read with it
    info.fail.add("spotClearinghouseState")
    assert reader.equity(_state(0.0)).equity_usd == 480.0 and reader.stale
    assert info.reads["userAbstraction"] == 1
    now[0] += 600_001
    info.answers["userAbstraction"] = "default"  # the operator switched modes
    assert reader.equity(_state(700.0)).equity_usd == 700.0


def test_equity_reader_without_any_mode_read_raises() -> None:
    reader = AccountEquityReader(FakeInfo({}, fail={"userAbstraction"}), MASTER)
    with pytest.raises(hl.VenueError):
        reader.equity(_state(100.0))


# --- the start-up account check -----------------------------------------------------------------


def test_account_check_accepts_a_user_and_its_approved_agent() -> None:
    info = FakeInfo({}, roles={MASTER: {"role": "user"}, AGENT: {"role": "agent", "data": {"user": MASTER}}})
    assert check_account(info, MASTER, MASTER).role is UserRole.USER
    assert check_account(info, MASTER, AGENT).role is UserRole.USER


@pytest.mark.parametrize(
    ("roles", "user", "signer", "reason"),
    [
        ({AGENT: {"role": "agent", "data": {"user": MASTER}}}, AGENT, AGENT,
         f"account address {AGENT} is an agent \\(API\\) wallet of {MASTER}"),
        ({}, MASTER, MASTER, "Must deposit before performing actions"),
        ({MASTER: {"role": "vault"}}, MASTER, MASTER, "is a vault on the venue"),
        ({MASTER: {"role": "user"}}, MASTER, AGENT, f"User or API Wallet {AGENT} does not exist"),
        ({MASTER: {"role": "user"}, AGENT: {"role": "agent", "data": {"user": "0x" + "c" * 40}}},
         MASTER, AGENT, f"is an agent of 0x{'c' * 40}, not of the account {MASTER}"),
    ],
)
def test_account_check_refuses_with_the_venues_reason(
    roles: dict[str, Any], user: str, signer: str, reason: str
) -> None:
    with pytest.raises(AccountRoleError, match=reason):
        check_account(FakeInfo({}, roles=roles), user, signer)


# --- liquidation: ledger, trades export, watch ------------------------------------------------------


def _fill(oid: int, *, side: str, start: float, sz: float, tid: int, liquidation: bool = False,
          cloid: str | None = None) -> hl.Fill:
    body: dict[str, Any] = {
        "coin": "ETH", "px": "100.0", "sz": str(sz), "side": side, "time": T0 + tid,
        "startPosition": str(start), "dir": "Open Long" if side == "B" else "Close Long", "closedPnl": "0",
        "hash": f"0x{tid:02x}", "oid": oid, "crossed": True, "fee": "0.01", "tid": tid,
    }  # fmt: skip
    if cloid is not None:
        body["cloid"] = cloid
    if liquidation:
        body["liquidation"] = {"liquidatedUser": MASTER, "markPx": "100.0", "method": "market"}
    return hl.parse_fill(body)


@pytest.fixture
def oms(tmp_path: Path) -> LiveOms:
    ledger = LiveOms(tmp_path / "oms.db", mode="live", config=OmsConfig(synchronous_full=False),
                     clock_ms=lambda: T0)
    yield ledger
    ledger.close()


def _entry(oms: LiveOms) -> str:
    created = oms.create_intent(
        symbol="ETH", action="OPEN", position_side="LONG", is_buy=True, size_coins=2.0, limit_px=101.0,
        reduce_only=False, reference_price=100.0, leverage=5.0, reason="entry", event_ms=T0,
    )  # fmt: skip
    return created.intent.cloid


def test_liquidation_fills_explain_positions_are_flagged_and_never_orphans(oms: LiveOms) -> None:
    cloid = _entry(oms)
    oms.ingest_fills([_fill(1, side="B", start=0.0, sz=2.0, tid=1, cloid=cloid)], source=FillSource.WS)
    stats = oms.ingest_fills([_fill(77, side="A", start=2.0, sz=1.5, tid=2, liquidation=True),
                              _fill(77, side="A", start=0.5, sz=0.5, tid=3, liquidation=True)],
                             source=FillSource.REST)
    assert (stats.inserted, stats.liquidations, stats.matched, stats.orphans) == (2, 2, 0, 0)
    assert oms.ledger_positions() == {}  # 2.0 bought by us, 2.0 sold by the venue's liquidation
    assert oms.orphan_fills() == []
    assert [f.liquidation for f in oms.fills()] == [False, True, True]
    liq = oms.liquidation_fills()
    assert len(liq) == 2 and all('"method":"market"' in (f.liquidation_json or "") for f in liq)
    assert len(oms.fill_links()) == 1  # the venue's order is not one of our intents
    assert classify(liq[0]) == (LedgerKind.REDUCE, PositionSide.LONG)
    assert classify(liq[1]) == (LedgerKind.CLOSE, PositionSide.LONG)


def test_liquidation_cancelled_orders_are_recorded_with_their_status(oms: LiveOms) -> None:
    cloid = _entry(oms)
    update = hl.parse_order_updates([{"order": {"coin": "ETH", "side": "B", "limitPx": "90.0", "sz": "2.0",
                                                "oid": 5, "timestamp": T0, "cloid": cloid},
                                      "status": "open", "statusTimestamp": T0}])
    oms.apply_order_updates(update)
    cancelled = hl.parse_order_updates([{"order": {"coin": "ETH", "side": "B", "limitPx": "90.0", "sz": "2.0",
                                                   "oid": 5, "timestamp": T0, "cloid": cloid},
                                         "status": "liquidatedCanceled", "statusTimestamp": T0 + 1}])
    assert oms.apply_order_updates(cancelled) == 1
    intent = oms.intent_by_cloid(cloid)
    assert intent is not None and oms.liquidation_cancels() == [intent.intent_id]
    order = oms.order(intent.intent_id)
    assert order is not None and order.state is OrderState.CANCELLED


@dataclass
class Recorder:
    risk: list[tuple[TradingStateEvent, Mapping[str, Any]]] = field(default_factory=list)
    alerts: list[tuple[AlertKind, str]] = field(default_factory=list)
    reconciles: int = 0

    def apply(self, event: TradingStateEvent, now_ms: int, details: Mapping[str, Any]) -> None:
        self.risk.append((event, dict(details)))

    def alert(self, kind: AlertKind, message: str, extra: Mapping[str, object]) -> None:
        self.alerts.append((kind, message))

    def reconcile(self) -> None:
        self.reconciles += 1


@pytest.mark.parametrize(
    ("policy", "event"),
    [(LiquidationPolicy.REDUCING, TradingStateEvent.LIQUIDATION_CLOSE_ONLY),
     (LiquidationPolicy.HALTED, TradingStateEvent.LIQUIDATION_HALT)],
)
def test_watch_moves_risk_alerts_once_and_reconciles_per_liquidation(
    oms: LiveOms, policy: LiquidationPolicy, event: TradingStateEvent
) -> None:
    seen = Recorder()
    watch = LiquidationWatch(oms=oms, policy=policy, apply_risk=seen.apply, alert=seen.alert,
                             reconcile=seen.reconcile, clock_ms=lambda: T0)
    cloid = _entry(oms)
    oms.ingest_fills([_fill(1, side="B", start=0.0, sz=2.0, tid=1, cloid=cloid)], source=FillSource.WS)
    assert watch.check() is None and seen.risk == []  # an ordinary fill: nothing to do
    oms.ingest_fills([_fill(77, side="A", start=2.0, sz=2.0, tid=2, liquidation=True)], source=FillSource.WS)
    result = watch.check()
    assert result is not None and result.coins == ("ETH",) and result.methods == ("market",)
    assert [e for e, _ in seen.risk] == [event]
    assert seen.risk[0][1]["policy"] == policy.value
    assert seen.alerts == [(AlertKind.RISK, "venue liquidated the account")] and seen.reconciles == 1
    assert [k for k, *_ in oms.reconcile_events("liquidation")] == ["liquidation"]
    assert watch.check() is None and len(seen.alerts) == 1  # handled once (cursor moved)


def test_liquidation_fills_export_as_flagged_close_rows(oms: LiveOms, tmp_path: Path) -> None:
    cloid = _entry(oms)
    oms.ingest_fills([_fill(1, side="B", start=0.0, sz=2.0, tid=1, cloid=cloid),
                      _fill(77, side="A", start=2.0, sz=2.0, tid=2, liquidation=True)], source=FillSource.WS)
    store = TradeStore.open(tmp_path / "trades.db", Mode.LIVE)
    try:
        assert export_trades(oms, store, account_value_usd=900.0).exported == 2
        rows = store.fills()
    finally:
        store.close()
    assert [(r.kind, r.reason.split(" ")[0]) for r in rows] == [
        (LedgerKind.OPEN, "entry"), (LedgerKind.CLOSE, LIQUIDATION_REASON),
    ]
