"""engine.venue.rate_budget: the shared REST weight bucket and Hyperliquid's documented weights."""

from __future__ import annotations

import threading

import pytest

from engine.enums import InfoType
from engine.venue.rate_budget import (
    RateBudget,
    RateBudgetExhausted,
    exchange_weight,
    info_extra_weight,
    info_weight,
)
from engine.venue.types import TemporaryVenueError


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.now += secs


@pytest.mark.parametrize("info_type", list(InfoType))
def test_info_weight_matches_the_documented_table(info_type: InfoType) -> None:
    light = {InfoType.L2_BOOK, InfoType.ALL_MIDS, InfoType.CLEARINGHOUSE_STATE, InfoType.ORDER_STATUS,
             InfoType.SPOT_CLEARINGHOUSE_STATE}  # the documented weight-2 reads
    heavy = {InfoType.USER_ROLE: 60}
    assert info_weight(info_type) == (2 if info_type in light else heavy.get(info_type, 20))


def test_info_extra_weight_per_items() -> None:
    assert info_extra_weight(InfoType.USER_FILLS, 500) == 25
    assert info_extra_weight(InfoType.USER_FILLS_BY_TIME, 19) == 0
    assert info_extra_weight(InfoType.FUNDING_HISTORY, 40) == 2
    assert info_extra_weight(InfoType.CANDLE_SNAPSHOT, 5000) == 83
    assert info_extra_weight(InfoType.META, 1000) == 0
    assert info_weight("userRole") == 60 and info_weight("exchangeStatus") == 2


def test_exchange_weight_is_one_plus_batch_over_forty() -> None:
    assert [exchange_weight(n) for n in (1, 39, 40, 79, 80)] == [1, 1, 2, 2, 3]


def test_budget_acquire_waits_for_refill_at_the_per_minute_rate() -> None:
    clock = ManualClock()
    budget = RateBudget(1200, clock=clock, sleep=clock.sleep)
    budget.acquire(1200)
    budget.acquire(20)  # 20 weight refill at 20/s takes 1 s
    assert clock.sleeps == [pytest.approx(1.0)]
    assert budget.available() == pytest.approx(0.0)


def test_budget_acquire_raises_when_deadline_too_close_without_waiting() -> None:
    clock = ManualClock()
    budget = RateBudget(60, clock=clock, sleep=clock.sleep)  # 1 weight per second
    budget.acquire(60)
    with pytest.raises(RateBudgetExhausted) as err:
        budget.acquire(10, deadline=clock.now + 5.0)
    assert isinstance(err.value, TemporaryVenueError) and err.value.weight == 10
    assert clock.sleeps == []
    budget.acquire(10, deadline=clock.now + 10.0)
    assert clock.sleeps == [pytest.approx(10.0)]


def test_budget_charge_puts_it_in_debt_and_refill_repays() -> None:
    clock = ManualClock()
    budget = RateBudget(1200, clock=clock, sleep=clock.sleep)
    budget.charge(1300)
    assert budget.available() == -100
    assert not budget.try_acquire(1)
    clock.now += 6.0  # 120 weight refilled
    assert budget.try_acquire(20)
    assert budget.available() == pytest.approx(0.0)


def test_budget_penalise_keeps_it_empty_for_retry_after() -> None:
    clock = ManualClock()
    budget = RateBudget(1200, clock=clock, sleep=clock.sleep)
    budget.penalise(2.0)
    assert not budget.try_acquire(1)
    clock.now += 2.0
    assert budget.available() == pytest.approx(0.0)


def test_budget_refill_never_exceeds_capacity() -> None:
    clock = ManualClock()
    budget = RateBudget(1200, clock=clock, sleep=clock.sleep)
    clock.now += 3600
    assert budget.available() == 1200


@pytest.mark.parametrize("weight", [0, -1, 1201])
def test_budget_rejects_impossible_weights(weight: int) -> None:
    with pytest.raises(ValueError):
        RateBudget(1200).acquire(weight)


def test_budget_is_thread_safe_under_concurrent_acquires() -> None:
    clock = ManualClock()  # frozen: no refill, so exactly the capacity can be granted
    budget = RateBudget(1200, clock=clock, sleep=clock.sleep)
    granted = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        granted.append(sum(budget.try_acquire(1) for _ in range(400)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 1200
    assert budget.available() == 0
