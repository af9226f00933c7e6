"""RedisLayout.read_picked_keys (one script call, values joined) equals HMGET + int() field by field.

A real redis-server (tests/fixtures): the driver reads every symbol's candle key each tick through
`READ_PICKED_LUA`; whatever the hash holds (present, missing, odd values), the answer must be the
one the plain HMGET read gave, or the same error.
"""

from __future__ import annotations

import pytest
import redis

from cluster.redis_layout import RedisLayout

IV = "1m"


def _hmget_reference(client: redis.Redis, key: str, symbols: list[str]) -> dict[str, int | None]:
    values = client.hmget(key, symbols)
    return {s: None if v is None else int(v) for s, v in zip(symbols, values, strict=True)}


@pytest.mark.parametrize("on_close", [True, False])
def test_read_picked_keys_equals_hmget_for_present_and_missing_fields(
    redis_client: redis.Redis, on_close: bool
) -> None:
    layout = RedisLayout("pk")
    key = layout.close_key_hash(IV) if on_close else layout.open_key_hash(IV)
    # 2,500 fields: more than one of the script's 1,000-field HMGET chunks; every 7th absent
    symbols = [f"S{i:04d}" for i in range(2500)]
    redis_client.hset(key, mapping={s: str(1_700_000_000_000 + i) for i, s in enumerate(symbols) if i % 7})
    got = layout.read_picked_keys(redis_client, symbols, IV, on_close)
    assert got == _hmget_reference(redis_client, key, symbols)
    assert list(got) == symbols
    assert got["S0000"] is None and got["S0001"] == 1_700_000_000_001


def test_read_picked_keys_symbol_absent_from_hash_and_hash_absent(redis_client: redis.Redis) -> None:
    layout = RedisLayout("pk2")
    assert layout.read_picked_keys(redis_client, ["BTC", "ETH"], IV, True) == {"BTC": None, "ETH": None}
    redis_client.hset(layout.close_key_hash(IV), "BTC", "123")
    assert layout.read_picked_keys(redis_client, ["ETH", "BTC", "kPEPE"], IV, True) == {
        "ETH": None, "BTC": 123, "kPEPE": None}
    assert layout.read_picked_keys(redis_client, ["BTC"], IV, True) == {"BTC": 123}
    assert layout.read_picked_keys(redis_client, [], IV, True) == {}


@pytest.mark.parametrize("raw", ["-5", "+7", " 12", "0042", "1_000", "12\n"])
def test_read_picked_keys_odd_but_int_parsable_values_match_hmget(
    redis_client: redis.Redis, raw: str
) -> None:
    layout = RedisLayout("pk3")
    key = layout.close_key_hash(IV)
    redis_client.hset(key, mapping={"A": "10", "B": raw, "C": "30"})
    symbols = ["A", "B", "C", "D"]
    got = layout.read_picked_keys(redis_client, symbols, IV, True)
    assert got == _hmget_reference(redis_client, key, symbols)
    assert got["B"] == int(raw)


@pytest.mark.parametrize("raw", ["", "abc", "1.5", "12\n34", "\n"])
def test_read_picked_keys_garbage_value_raises_like_hmget(redis_client: redis.Redis, raw: str) -> None:
    layout = RedisLayout("pk4")
    key = layout.close_key_hash(IV)
    redis_client.hset(key, mapping={"A": "10", "B": raw})
    with pytest.raises(ValueError):
        _hmget_reference(redis_client, key, ["A", "B"])
    with pytest.raises(ValueError):
        layout.read_picked_keys(redis_client, ["A", "B"], IV, True)


def test_read_picked_keys_odd_field_names_and_reload_after_script_flush(redis_client: redis.Redis) -> None:
    layout = RedisLayout("pk5")
    key = layout.close_key_hash(IV)
    names = ["", "a b", "x\ny", "ü", "A"]  # an empty name and one with the separator in it
    redis_client.hset(key, mapping={n: str(i + 1) for i, n in enumerate(names)})
    expected = _hmget_reference(redis_client, key, names)
    assert layout.read_picked_keys(redis_client, names, IV, True) == expected
    plain = ["a b", "A", "ü", "gone"]  # the script path
    assert layout.read_picked_keys(redis_client, plain, IV, True) == {"a b": 2, "A": 5, "ü": 4, "gone": None}
    redis_client.script_flush()  # the next call loads the script again
    assert layout.read_picked_keys(redis_client, plain, IV, True) == {"a b": 2, "A": 5, "ü": 4, "gone": None}
