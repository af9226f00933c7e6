"""The daemon's candle-close waiter against a real redis-server that dies under it.

A Redis outage must never kill the daemon: the waiter falls back to its poll interval. The race
CI caught: a notification arrived, then Redis died while the waiter drained the ones queued
behind it, and the drain's ConnectionError ended the daemon.
"""

from __future__ import annotations

import redis

from engine.daemon.loop import CandleCloseWaiter
from engine.daemon.stop import StopFlag
from engine.runtime.redis_server import EmbeddedRedis

CHANNEL = "t:closed:5m"


def test_notification_then_redis_death_still_wakes_the_tick(private_redis: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(private_redis.url)
    waiter = CandleCloseWaiter(client, CHANNEL)
    assert waiter.wait(0.5, StopFlag(), lambda: None) is False  # subscribed, nothing yet
    publisher = redis.Redis.from_url(private_redis.url)
    assert publisher.publish(CHANNEL, b"[]") == 1  # queued to the waiter's socket
    publisher.close()
    private_redis.kill()  # the message is in the socket; the connection's end follows it
    assert waiter.wait(2.0, StopFlag(), lambda: None) is True
    assert waiter.wait(0.6, StopFlag(), lambda: None) is False  # down: times out, does not raise
    waiter.close()
    client.close()
