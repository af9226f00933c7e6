"""cluster.redis_layout against a real redis-server: idempotent writes, bounds, keys, reads, streams."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from cluster.layout_migration import migrate_legacy
from cluster.redis_layout import LAYOUT_VERSION, AccountEvent, AccountEventKind, Bbo, Heartbeat, RedisLayout
from cluster.shard_store import CandleRead, RedisShardStore
from engine.sidecar.store import SidecarStore
from strategies.candle import Candle

IV = 60_000


def _candle(i: int, close: float = 100.0) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, close, close + 1, close - 1, close, 10.0, 3)


def _write(
    client: redis.Redis, layout: RedisLayout, batch: dict[str, list[Candle]], publish: bool = True
) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_many(pipe, "1m", batch, publish=publish)
    pipe.execute()


def test_write_closed_candles_is_idempotent_on_open_time(redis_client: redis.Redis) -> None:
    layout = RedisLayout()
    _write(redis_client, layout, {"BTC": [_candle(1), _candle(2)]})
    _write(redis_client, layout, {"BTC": [_candle(2, close=105.0)]})
    _write(redis_client, layout, {"BTC": [_candle(2, close=105.0)]})
    got = layout.read_candles(redis_client, "BTC", "1m")
    assert got == [_candle(1), _candle(2, close=105.0)]


def test_closed_candles_bounded_to_keep_bars(redis_client: redis.Redis) -> None:
    layout = RedisLayout(keep_bars=5)
    _write(redis_client, layout, {"ETH": [_candle(i) for i in range(12)]})
    assert [c.t for c in layout.read_candles(redis_client, "ETH", "1m")] == [i * IV for i in range(7, 12)]


def test_read_candles_after_and_limit(redis_client: redis.Redis) -> None:
    layout = RedisLayout()
    _write(redis_client, layout, {"SOL": [_candle(i) for i in range(10)]})
    assert [c.t // IV for c in layout.read_candles(redis_client, "SOL", "1m", after_t=6 * IV)] == [7, 8, 9]
    assert [c.t // IV for c in layout.read_candles(redis_client, "SOL", "1m", limit=3)] == [7, 8, 9]
    assert [c.t // IV for c in layout.read_candles(redis_client, "SOL", "1m", after_t=8 * IV, limit=5)] == [9]
    many = layout.read_candles_many(redis_client, {"SOL": 7 * IV, "NONE": None}, "1m")
    assert [c.t // IV for c in many["SOL"]] == [8, 9] and many["NONE"] == []


def test_candle_keys_close_and_open_in_one_read(redis_client: redis.Redis) -> None:
    layout = RedisLayout()
    _write(redis_client, layout, {"BTC": [_candle(1)], "ETH": [_candle(1), _candle(2)]})
    pipe = redis_client.pipeline(transaction=True)
    layout.write_forming(pipe, "1m", {"BTC": _candle(2)})
    pipe.execute()
    keys = layout.read_candle_keys(redis_client, ["BTC", "ETH", "DOGE"], "1m")
    assert keys["BTC"].closed_close_ms == 2 * IV - 1 and keys["BTC"].latest_open_ms == 2 * IV
    assert keys["ETH"].closed_close_ms == 3 * IV - 1 and keys["ETH"].latest_open_ms is None
    assert keys["DOGE"].closed_close_ms is None
    assert layout.read_forming(redis_client, ["BTC", "ETH"], "1m") == {"BTC": _candle(2)}
    # the driver's one-hash read gives the key `CandleKeys.pick` gives, in either mode
    for on_close in (True, False):
        picked = layout.read_picked_keys(redis_client, ["BTC", "ETH", "DOGE"], "1m", on_close)
        assert picked == {s: k.pick(on_close) for s, k in keys.items()}


def test_correction_without_publish_keeps_key(redis_client: redis.Redis) -> None:
    layout = RedisLayout()
    _write(redis_client, layout, {"BTC": [_candle(1), _candle(2)]})
    _write(redis_client, layout, {"BTC": [_candle(1, close=99.0)]}, publish=False)
    assert layout.read_candle_keys(redis_client, ["BTC"], "1m")["BTC"].closed_close_ms == 3 * IV - 1
    assert layout.read_candles(redis_client, "BTC", "1m")[0].c == 99.0


def test_close_notification_reaches_subscriber_after_candle_and_key(redis_client: redis.Redis) -> None:
    layout = RedisLayout()
    pubsub = redis_client.pubsub()
    pubsub.subscribe(layout.closed_channel("1m"))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    _write(redis_client, layout, {"BTC": [_candle(4)], "ETH": [_candle(4)]})
    message = pubsub.get_message(timeout=5)
    assert message is not None
    closed = layout.parse_closed_notification(message["data"])
    assert sorted(closed) == [("BTC", 5 * IV - 1), ("ETH", 5 * IV - 1)]
    keys = layout.read_candle_keys(redis_client, ["BTC"], "1m")
    assert layout.read_candles(redis_client, "BTC", "1m")[-1].close_ms == keys["BTC"].closed_close_ms
    pubsub.close()


def test_mids_bbo_heartbeat_checkpoint_roundtrip(redis_client: redis.Redis) -> None:
    layout = RedisLayout("p2")
    hb = Heartbeat(wall_ms=5, venue_ms=4, connected=True, interval="1m", symbols=2, pid=1, started_wall_ms=1)
    pipe = redis_client.pipeline(transaction=False)
    layout.write_mids(pipe, {"BTC": 100.5, "ETH": 2.25}, venue_ms=10, wall_ms=11)
    layout.write_bbo(pipe, {"BTC": Bbo(100.0, 1.0, 101.0, 2.0, 12, 13)})
    layout.write_heartbeat(pipe, hb)
    layout.write_checkpoint(pipe, "BTC", "1m", b"\x00state")
    pipe.execute()
    mids = layout.read_mids(redis_client, ["BTC", "ETH", "X"])
    assert (mids["BTC"].price, mids["BTC"].venue_ms, mids["BTC"].wall_ms) == (
        100.5,
        10,
        11,
    ) and "X" not in mids
    assert layout.read_bbo(redis_client, ["BTC"])["BTC"].mid == 100.5
    assert layout.read_heartbeat(redis_client) == hb
    assert layout.read_checkpoints(redis_client, ["BTC", "ETH"], "1m") == {"BTC": b"\x00state"}
    assert RedisLayout("other").read_heartbeat(redis_client) is None


def test_account_events_survive_consumer_crash_until_acked(redis_client: redis.Redis) -> None:
    layout = RedisLayout()
    user = "0xAbC"
    layout.ensure_account_group(redis_client, user, "driver")
    layout.ensure_account_group(redis_client, user, "driver")
    pipe = redis_client.pipeline(transaction=False)
    for tid in range(3):
        fills = {"user": user, "fills": [{"tid": tid, "hash": f"h{tid}"}]}
        layout.append_account_event(pipe, user, AccountEvent(AccountEventKind.USER_FILLS, fills, tid == 0, 7))
    pipe.execute()
    first = layout.read_account_events(redis_client, user, "driver", "c1", count=2)
    assert [e.data["fills"][0]["tid"] for _, e in first] == [0, 1] and first[0][1].is_snapshot
    # "crash": nothing acknowledged -> the same consumer gets the same entries again
    again = layout.read_account_events(redis_client, user, "driver", "c1", count=10)
    assert [eid for eid, _ in again] == [eid for eid, _ in first]
    layout.ack_account_events(redis_client, user, "driver", [eid for eid, _ in again])
    rest = layout.read_account_events(redis_client, user, "driver", "c1", count=10)
    assert [e.data["fills"][0]["tid"] for _, e in rest] == [2]
    layout.ack_account_events(redis_client, user, "driver", [eid for eid, _ in rest])
    assert layout.read_account_events(redis_client, user, "driver", "c1", count=10, block_ms=10) == []
    assert redis_client.xlen(layout.account_stream_key(user)) == 0
    assert json.loads(json.dumps(rest[0][1].data)) == rest[0][1].data


def test_read_candles_since_proves_continuity(redis_client: redis.Redis) -> None:
    layout = RedisLayout(keep_bars=5)
    _write(redis_client, layout, {"BTC": [_candle(i) for i in range(10)], "ETH": [_candle(1)]})
    got = layout.read_candles_since(redis_client, {"BTC": 7 * IV, "ETH": 0, "SOL": 3, "NEW": None}, "1m")
    assert got["BTC"] == (True, [_candle(8), _candle(9)])
    assert got["ETH"] == (False, [_candle(1)])  # resume candle 0 was never stored: rebuild
    assert got["SOL"] == (False, []) and got["NEW"] == (True, [])
    trimmed = layout.read_candles_since(redis_client, {"BTC": 2 * IV}, "1m")  # trimmed to the newest 5
    assert trimmed["BTC"][0] is False and [c.t // IV for c in trimmed["BTC"][1]] == [5, 6, 7, 8, 9]


def _legacy_json(candle: Candle) -> str:
    """A version-1 payload exactly as the JSON layout wrote it."""
    return json.dumps([candle.t, candle.close_ms, candle.o, candle.h, candle.l, candle.c, candle.v, candle.n],
                      separators=(",", ":"))


def test_redis_with_version1_json_keys_is_read_after_sidecar_start(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    layout = RedisLayout("mig", keep_bars=50)
    btc = [_candle(i, close=100.0 + i) for i in range(1, 21)]
    eth = [_candle(i, close=10.0 + i) for i in range(1, 6)]
    for sym, candles in {"BTC": btc, "ETH": eth}.items():
        redis_client.zadd(layout.legacy_candles_key(sym, "1m"), {_legacy_json(c): c.t for c in candles})
    redis_client.zadd(layout.legacy_candles_key("ETH", "1m"), {"not json": 99 * IV})  # dropped, counted
    redis_client.hset(layout.legacy_forming_key("1m"), "BTC", _legacy_json(_candle(21, close=121.0)))
    redis_client.hset(layout.close_key_hash("1m"), mapping={"BTC": btc[-1].close_ms, "ETH": eth[-1].close_ms})
    # a version-2 writer already stored a newer ETH candle 5 (it must win over the old copy)
    _write(redis_client, layout, {"ETH": [_candle(5, close=55.0)]}, publish=False)
    store = SidecarStore(
        client=redis_client, layout=layout, interval="1m", db_path=tmp_path / "c.db", interval_ms=IV
    )
    try:
        assert store.last_closed(["BTC", "ETH", "SOL"]) == {"BTC": 20 * IV, "ETH": 5 * IV, "SOL": None}
    finally:
        store.close()
    assert not redis_client.keys("mig:candles:1m:*")
    assert not redis_client.exists(layout.legacy_forming_key("1m"))
    assert redis_client.get(layout.layout_version_key("1m")) == str(LAYOUT_VERSION).encode()
    assert layout.read_candles(redis_client, "BTC", "1m") == btc
    assert layout.read_candles(redis_client, "ETH", "1m") == [*eth[:4], _candle(5, close=55.0)]
    assert layout.read_forming(redis_client, ["BTC"], "1m") == {"BTC": _candle(21, close=121.0)}
    shard = RedisShardStore(redis_client, layout, "1m").read_since({"BTC": 18 * IV, "ETH": None})
    assert shard["BTC"] == CandleRead(True, btc[-2:])
    assert shard["ETH"].bars["c"].tolist() == [11, 12, 13, 14, 55]
    # done once: an old-format key written later (an old sidecar still running) is not read again
    redis_client.zadd(layout.legacy_candles_key("SOL", "1m"), {_legacy_json(_candle(1)): IV})
    assert migrate_legacy(layout, redis_client, "1m") == 0
    assert layout.read_candles(redis_client, "SOL", "1m") == []
