"""scheduleCancel as the venue gates it: refused (with the venue's text) until the account traded
$1,000,000, and at most 10 triggers per UTC day."""

from __future__ import annotations

from simulator import venue_vocab as vt
from tests.unit.test_sim_exchange_support import T0_MS, Client, Venue

DAY_MS = 86_400_000


def test_refused_below_one_million_traded_then_accepted() -> None:
    venue = Venue(schedule_cancel_min_volume_usd=1_000_000.0)
    alice = Client(venue)
    alice.order("ETH", True, 0.05, 4_100, "Ioc")  # trades ~$200
    refused = alice.schedule_cancel(venue.wall_ms + 60_000)
    assert refused["status"] == "err"
    assert refused["response"].startswith(
        "Cannot set scheduled cancel time until enough volume traded. Required: $1000000. Traded: $200.0"
    )
    assert alice.schedule_cancel(None)["status"] == "err"  # clearing is refused the same way
    venue.core.fund(alice.address, 0.0, volume_usd=1_000_000.0)
    assert alice.schedule_cancel(venue.wall_ms + 60_000) == {"status": "ok", "response": {"type": "default"}}
    assert vt.schedule_cancel_volume(1_000_000, 373.47205).endswith("Required: $1000000. Traded: $373.47205.")


def test_at_most_ten_triggers_a_utc_day() -> None:
    venue = Venue()
    alice = Client(venue)
    venue.wall_ms = T0_MS - T0_MS % DAY_MS + 1_000  # just after 00:00 UTC
    for _ in range(10):
        assert alice.schedule_cancel(venue.wall_ms + 5_000)["status"] == "ok"
        venue.wall_ms += 5_000
        venue.tick()  # fires: one trigger
    assert alice.schedule_cancel(venue.wall_ms + 5_000) == {
        "status": "err", "response": vt.SCHEDULE_CANCEL_DAILY_LIMIT,
    }
    venue.wall_ms = venue.wall_ms - venue.wall_ms % DAY_MS + DAY_MS  # next UTC day
    assert alice.schedule_cancel(venue.wall_ms + 5_000)["status"] == "ok"
