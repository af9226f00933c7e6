"""Simulator rate limit (weights, per-IP token bucket) and fault switches."""

from __future__ import annotations

import pytest

from simulator.faults import FaultError, Faults, FaultSettings
from simulator.ratelimit import RateLimiter, exchange_weight, info_extra_weight, info_weight


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("kind", "weight"), [
    ("l2Book", 2), ("allMids", 2), ("clearinghouseState", 2), ("orderStatus", 2),
    ("userRole", 60), ("meta", 20), ("metaAndAssetCtxs", 20), ("openOrders", 20), ("candleSnapshot", 20),
])
def test_info_weight_matches_documented_table(kind: str, weight: int) -> None:
    assert info_weight(kind) == weight


def test_info_extra_weight_per_items_returned() -> None:
    assert info_extra_weight("userFills", 39) == 1
    assert info_extra_weight("fundingHistory", 40) == 2
    assert info_extra_weight("candleSnapshot", 5000) == 83
    assert info_extra_weight("meta", 5000) == 0


def test_exchange_weight_grows_with_batch_length() -> None:
    assert exchange_weight({"type": "order", "orders": [{}] * 39}) == 1
    assert exchange_weight({"type": "order", "orders": [{}] * 40}) == 2
    assert exchange_weight({"type": "cancel", "cancels": [{}] * 85}) == 3
    assert exchange_weight({"type": "updateLeverage"}) == 1
    assert exchange_weight(None) == 1


def test_rate_limiter_refuses_over_budget_per_ip_and_refills() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(1200, monotonic=clock)
    assert all(limiter.try_acquire("1.1.1.1", 20) for _ in range(60))
    assert not limiter.try_acquire("1.1.1.1", 20)
    assert limiter.try_acquire("2.2.2.2", 20)  # another IP has its own budget
    assert limiter.retry_after_secs("1.1.1.1", 20) == 1
    clock.now += 1.0  # 20 weight per second comes back
    assert limiter.try_acquire("1.1.1.1", 20)
    assert not limiter.try_acquire("1.1.1.1", 2)


def test_rate_limiter_post_charge_can_go_negative_and_delays_next_call() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(1200, monotonic=clock)
    assert limiter.try_acquire("ip", 20)
    limiter.charge("ip", 1500)
    assert not limiter.try_acquire("ip", 2)
    assert limiter.retry_after_secs("ip", 2) == 17
    clock.now += 17.0
    assert limiter.try_acquire("ip", 2)


def test_rate_limiter_zero_disables() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.try_acquire("ip", 60) for _ in range(1000))


def test_faults_update_validates_and_reset_restores_defaults() -> None:
    faults = Faults(FaultSettings(rest_error_rate=0.5), seed=1)
    assert faults.update({"pause_candle_feed": True})["rest_error_rate"] == 0.5
    for bad in ({"nope": 1}, {"rest_error_rate": 1.5}, {"rest_error_status": 404},
                {"pause_candle_feed": 1}, {"lost_ack_next": -1}, {"rest_delay_secs": "x"}):
        with pytest.raises(FaultError):
            faults.update(bad)
    assert faults.update({"reset": True}) == Faults().as_dict()


def test_faults_rates_all_or_nothing_and_lost_ack_countdown() -> None:
    faults = Faults(seed=3)
    assert faults.rest_error_status() is None and faults.rest_delay_secs() == 0.0
    faults.update({"rest_error_rate": 1.0, "rest_error_status": 503, "rest_delay_rate": 1.0,
                   "rest_delay_secs": 2.5, "lost_ack_next": 2})
    assert faults.rest_error_status() == 503 and faults.rest_delay_secs() == 2.5
    assert [faults.take_lost_ack() for _ in range(3)] == [True, True, False]


def test_faults_same_seed_hits_same_requests() -> None:
    a = Faults(FaultSettings(rest_error_rate=0.3), seed=9)
    b = Faults(FaultSettings(rest_error_rate=0.3), seed=9)
    hits_a = [a.rest_error_status() for _ in range(200)]
    assert hits_a == [b.rest_error_status() for _ in range(200)]
    assert 20 < sum(h is not None for h in hits_a) < 100
