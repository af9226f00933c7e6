"""engine.execution.address_budget: the per-address request budget sheds entries, never exits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from engine.config.env import ConfigError
from engine.enums import (
    AlertKind,
    ExchangeActionType,
    Mode,
    NotSentReason,
    RequestPriority,
    RiskReason,
    VenueRejectReason,
)
from engine.execution.address_budget import (
    AddressBudget,
    AddressBudgetConfig,
    BudgetView,
    requests_counted,
    shed_decision,
    with_address_budget,
)
from engine.execution.broker import AccountSnapshot, OrderIntent
from engine.execution.verdicts import ALLOW, Deny
from engine.venue import types as hl
from engine.venue.account_info import UserRateLimit
from engine.venue.exchange_client import ExchangeAccepted, ExchangeNotSent, ExchangeRejected
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction

TOO_MANY = (
    "Too many cumulative requests sent (41 > 40) for cumulative volume traded $0.00. "
    "Place taker orders to free up 1 request per USDC traded."
)


@dataclass
class Clock:
    now: int = 1_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Reader:
    """Answers userRateLimit from a script; raises VenueError when told to."""

    used: int = 0
    cap: int = 100
    fail: bool = False
    reads: int = 0

    def __call__(self) -> UserRateLimit:
        self.reads += 1
        if self.fail:
            raise hl.TemporaryVenueError("userRateLimit", 1, "http 502")
        return UserRateLimit(cum_volume_usd=0.0, requests_used=self.used, requests_cap=self.cap)


@dataclass
class Alerts:
    sent: list[tuple[AlertKind, str, Mapping[str, object]]] = field(default_factory=list)

    def __call__(self, kind: AlertKind, message: str, extra: Mapping[str, object]) -> bool:
        self.sent.append((kind, message, dict(extra)))
        return True


def _budget(reserve: int = 10, **reader: int) -> tuple[AddressBudget, Reader, Alerts, Clock]:
    source, alerts, clock = Reader(**reader), Alerts(), Clock()
    budget = AddressBudget(read=source, config=AddressBudgetConfig(reserve_requests=reserve, poll_secs=60.0),
                           alert=alerts, clock_ms=clock)
    return budget, source, alerts, clock


def _accepted() -> ExchangeAccepted:
    ack = hl.parse_exchange_reply({"status": "ok", "response": {"type": "default"}}, "test")
    assert isinstance(ack, hl.ExchangeAck)
    return ExchangeAccepted(ExchangeActionType.ORDER, 1, ack)


def _intent(action: TradeAction) -> OrderIntent:
    reason = EntryKind.STANDARD if action in (TradeAction.OPEN, TradeAction.ADD) else ExitReason.STOP_LOSS
    return OrderIntent(symbol="ETH", action=action, side=PositionSide.LONG, reference_price=100.0,
                       event_ms=1, reason=reason, size_coins=1.0, leverage=2.0)


def _account() -> AccountSnapshot:
    return AccountSnapshot(mode=Mode.LIVE, cash_usd=1000.0, equity_usd=1000.0, unrealised_pnl_usd=0.0,
                           margin_used_usd=0.0, open_positions=0, recorded_ms=1)


@pytest.mark.parametrize(
    ("remaining", "shedding", "expected"),
    [(11, False, False), (10, False, True), (0, False, True), (20, True, True), (21, True, False)],
)
def test_shed_decision_starts_at_the_reserve_and_stops_above_twice_it(
    remaining: int, shedding: bool, expected: bool
) -> None:
    assert shed_decision(BudgetView(used=100 - remaining, cap=100), 10, shedding) is expected


def test_shed_decision_unknown_budget_admits_and_exhausted_sheds() -> None:
    assert shed_decision(None, 10, False) is False
    assert BudgetView(used=0, cap=10_000, exhausted=True).remaining == 0
    assert shed_decision(BudgetView(used=0, cap=10_000, exhausted=True), 10, False) is True


def test_requests_counted_only_for_what_the_venue_may_have_processed() -> None:
    assert requests_counted(_accepted())
    assert not requests_counted(ExchangeNotSent(ExchangeActionType.ORDER, 1, NotSentReason.RATE_BUDGET, "x"))
    ip_429 = ExchangeRejected(ExchangeActionType.ORDER, 1, VenueRejectReason.RATE_LIMITED, "", 429)
    assert not requests_counted(ip_429)
    refusal = ExchangeRejected(ExchangeActionType.ORDER, 1, VenueRejectReason.VENUE_ERROR, TOO_MANY, 200)
    assert not requests_counted(refusal)
    other = ExchangeRejected(ExchangeActionType.ORDER, 1, VenueRejectReason.VENUE_ERROR, "Invalid size.")
    assert requests_counted(other)


def test_local_count_sheds_entries_before_the_venue_says_no_with_one_alert_each_way() -> None:
    budget, source, alerts, clock = _budget(reserve=10, used=80, cap=100)
    budget.poll(force=True)
    assert budget.admits(RequestPriority.NON_ESSENTIAL)
    for _ in range(9):  # 20 left -> 11 left
        budget.note_outcome(1, _accepted())
    assert budget.admits(RequestPriority.NON_ESSENTIAL) and alerts.sent == []
    budget.note_outcome(1, _accepted())  # 10 left: at the reserve
    assert budget.shedding and not budget.admits(RequestPriority.NON_ESSENTIAL)
    assert budget.admits(RequestPriority.ESSENTIAL)
    for _ in range(5):
        budget.note_outcome(2, _accepted())  # exits keep going, still one alert
    low = "address request budget low"
    assert [(k, m.split(":")[0]) for k, m, _ in alerts.sent] == [(AlertKind.RISK, low)]
    assert alerts.sent[0][2] == {"remaining": 10, "cap": 100, "reserve": 10}
    # traded volume raised the cap; the next periodic read ends the shedding, with one alert
    source.used, source.cap = 90, 200
    clock.now += 60_000
    budget.poll()
    assert not budget.shedding and budget.admits(RequestPriority.NON_ESSENTIAL)
    assert [m for _, m, _ in alerts.sent] == [
        "address request budget low: shedding entries, exits continue",
        "address request budget recovered: entries resume",
    ]
    assert alerts.sent[1][2]["shed"] == 1  # the one entry refused while shedding


def test_venue_refusal_marks_the_budget_spent_and_brings_the_next_read_forward() -> None:
    budget, source, alerts, clock = _budget(reserve=5, used=0, cap=10_000)
    budget.poll(force=True)
    refusal = ExchangeRejected(ExchangeActionType.ORDER, 7, VenueRejectReason.VENUE_ERROR, TOO_MANY, 200)
    budget.note_outcome(1, refusal)
    assert budget.shedding and budget.view is not None and budget.view.remaining == 0
    assert len(alerts.sent) == 1
    reads = source.reads
    clock.now += 9_999
    budget.poll()
    assert source.reads == reads  # not before the venue's 10 s window
    clock.now += 1
    budget.poll()
    assert source.reads == reads + 1


def test_a_failed_read_keeps_the_last_view_and_never_raises() -> None:
    budget, source, _alerts, clock = _budget(reserve=10, used=95, cap=100)
    budget.poll(force=True)
    assert budget.shedding
    source.fail = True
    clock.now += 60_000
    assert budget.poll() == BudgetView(95, 100)
    assert budget.shedding


def test_never_read_budget_admits_entries() -> None:
    budget, source, alerts, _clock = _budget()
    source.fail = True
    assert budget.poll(force=True) is None
    assert budget.admits(RequestPriority.NON_ESSENTIAL) and alerts.sent == []


@pytest.mark.parametrize("action", list(TradeAction))
def test_pre_send_wrapper_denies_only_entries_while_shedding(action: TradeAction) -> None:
    budget, *_ = _budget(reserve=10, used=95, cap=100)
    budget.poll(force=True)
    checked = with_address_budget(lambda *_: ALLOW, budget)
    verdict = checked(_intent(action), _account(), {}, 1)
    if action in (TradeAction.OPEN, TradeAction.ADD):
        assert verdict == Deny(RiskReason.ADDRESS_BUDGET, {"remaining": 5, "reserve": 10})
    else:
        assert verdict == ALLOW


def test_pre_send_wrapper_keeps_the_inner_denial() -> None:
    budget, *_ = _budget(reserve=10, used=95, cap=100)
    budget.poll(force=True)
    inner = Deny(RiskReason.MAX_POSITIONS, {"open": 1, "limit": 1})
    checked = with_address_budget(lambda *_: inner, budget)
    assert checked(_intent(TradeAction.OPEN), _account(), {}, 1) == inner


def test_config_from_env_validates_and_names_the_variable() -> None:
    assert AddressBudgetConfig.from_env({}) == AddressBudgetConfig(reserve_requests=1_000, poll_secs=60.0)
    env = {"AI_QUANT_ADDRESS_BUDGET_RESERVE": "25", "AI_QUANT_ADDRESS_BUDGET_POLL_SECS": "5"}
    assert AddressBudgetConfig.from_env(env) == AddressBudgetConfig(reserve_requests=25, poll_secs=5.0)
    with pytest.raises(ConfigError, match="AI_QUANT_ADDRESS_BUDGET_RESERVE"):
        AddressBudgetConfig.from_env({"AI_QUANT_ADDRESS_BUDGET_RESERVE": "-1"})
    with pytest.raises(ConfigError, match="AI_QUANT_ADDRESS_BUDGET_POLL_SECS"):
        AddressBudgetConfig.from_env({"AI_QUANT_ADDRESS_BUDGET_POLL_SECS": "0"})
