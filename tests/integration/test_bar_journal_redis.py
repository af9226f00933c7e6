"""The layout's closed-bar journal on a real redis-server: every write of closed candles appends one
entry, queued after its candles and before its close key and notification, and `read_journal`
tells a reader exactly what changed since its cursor (or that it cannot know)."""

from __future__ import annotations

import json

import numpy as np
import redis

from cluster.candle_codec import encode_candles
from cluster.redis_layout import RedisLayout
from strategies.candle import Candle

IV = 60_000
INTERVAL = "1m"


def _candle(i: int, close: float = 100.0) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, close, close + 1, close - 1, close, 10.0, 3)


def _run(client: redis.Redis, queue: object) -> None:
    pipe = client.pipeline(transaction=True)
    queue(pipe)  # type: ignore[operator]
    pipe.execute()


def test_a_write_queues_its_entry_after_the_candles_and_before_the_key(redis_client: redis.Redis) -> None:
    layout = RedisLayout("jt")
    pipe = redis_client.pipeline(transaction=True)
    layout.write_closed_many(pipe, INTERVAL, {"BTC": [_candle(1)], "ETH": [_candle(1), _candle(2)]})
    names = [str(args[0]).upper() for args, _ in pipe.command_stack]
    xadd = names.index("XADD")
    assert names.count("XADD") == 1 and names[-2:] == ["HSET", "PUBLISH"] and xadd == len(names) - 3
    assert all(name.startswith("Z") for name in names[:xadd])
    pipe.execute()
    (_, fields), = redis_client.xrange(layout.journal_key(INTERVAL))
    assert json.loads(fields[b"s"]) == ["BTC", "ETH"]
    assert fields[b"r"] == encode_candles([_candle(1)])  # ETH's two (a gap fill): "re-read it", count 0
    assert np.frombuffer(fields[b"n"], dtype="<i4").tolist() == [1, 0]


def test_read_journal_says_what_each_write_changed_since_the_cursor(redis_client: redis.Redis) -> None:
    layout = RedisLayout("jt")
    assert layout.read_journal(redis_client, INTERVAL, None).last_id is None  # no journal yet
    _run(redis_client, lambda p: layout.write_closed_many(p, INTERVAL, {s: [_candle(1)] for s in "ABCD"}))
    head = layout.read_journal(redis_client, INTERVAL, None)
    assert head.last_id is not None and not head.intact  # a cursor, nothing to trust before it
    cursor = head.last_id
    nothing = layout.read_journal(redis_client, INTERVAL, cursor)
    assert nothing.intact and nothing.last_id == cursor and not nothing.one and not nothing.other

    c = redis_client
    _run(c, lambda p: layout.write_closed_many(p, INTERVAL, {s: [_candle(2, 7.0)] for s in "ABCD"}))
    _run(c, lambda p: layout.write_closed_candles(p, "B", INTERVAL, [_candle(1, 99.0)], publish=False))
    _run(c, lambda p: layout.queue_candles(p, "C", INTERVAL, [_candle(3)]))  # the migration's writer
    _run(c, lambda p: layout.trim_closed(p, "D", INTERVAL, 1))
    got = layout.read_journal(redis_client, INTERVAL, cursor)
    assert got.intact and got.problem is None
    assert set(got.one) == {"A"} and got.other == {"B", "C", "D"}
    assert got.bars[got.one["A"]].tobytes() == encode_candles([_candle(2, 7.0)])
    assert layout.read_candles(redis_client, "D", INTERVAL) == [_candle(2, 7.0)]  # trimmed to 1
    assert layout.read_candle_keys(redis_client, ["B"], INTERVAL)["B"].closed_close_ms == _candle(2).close_ms
    assert got.last_id == redis_client.xrevrange(layout.journal_key(INTERVAL), count=1)[0][0].decode()


def test_a_cursor_trimmed_away_or_too_far_behind_is_not_intact(redis_client: redis.Redis) -> None:
    layout = RedisLayout("jt", journal_len=2)
    _run(redis_client, lambda p: layout.write_closed_many(p, INTERVAL, {"A": [_candle(0)]}))
    cursor = layout.read_journal(redis_client, INTERVAL, None).last_id
    for i in range(1, 5):
        _run(redis_client, lambda p, i=i: layout.write_closed_many(p, INTERVAL, {"A": [_candle(i)]}))
    behind = layout.read_journal(redis_client, INTERVAL, cursor, limit=3)  # 4 entries follow it
    newest = redis_client.xrevrange(layout.journal_key(INTERVAL), count=1)[0][0].decode()
    assert (behind.intact, behind.last_id, behind.one) == (False, newest, {})
    assert layout.read_journal(redis_client, INTERVAL, cursor, limit=4).intact
    pipe = redis_client.pipeline(transaction=False)
    for i in range(5, 400):  # MAXLEN ~ trims whole stream nodes (100 entries each) once past the cap
        layout.write_closed_many(pipe, INTERVAL, {"A": [_candle(i)]})
    pipe.execute()
    assert redis_client.xlen(layout.journal_key(INTERVAL)) < 300
    trimmed = layout.read_journal(redis_client, INTERVAL, cursor, limit=1000)
    newest = redis_client.xrevrange(layout.journal_key(INTERVAL), count=1)[0][0].decode()
    assert (trimmed.intact, trimmed.last_id, trimmed.one, trimmed.other) == (False, newest, {}, set())


def test_a_malformed_entry_is_reported_and_skipped(redis_client: redis.Redis) -> None:
    layout = RedisLayout("jt")
    _run(redis_client, lambda p: layout.write_closed_many(p, INTERVAL, {"A": [_candle(0)]}))
    cursor = layout.read_journal(redis_client, INTERVAL, None).last_id
    bad = redis_client.xadd(layout.journal_key(INTERVAL), {"s": "not json"}).decode()
    got = layout.read_journal(redis_client, INTERVAL, cursor)
    assert not got.intact and got.last_id == bad and "malformed journal entry" in (got.problem or "")
