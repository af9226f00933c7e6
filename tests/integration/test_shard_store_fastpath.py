"""RedisShardStore's fast paths (one-JSON candle read, one-argument request, MSET checkpoints)
give exactly what the per-member path gives, and fail the same way on a malformed payload."""

from __future__ import annotations

from typing import Any

import pytest

from bench.universe import INTERVAL, series
from cluster.redis_layout import LayoutError, RedisLayout, decode_candle
from cluster.shard_store import CandleRead, RedisShardStore, decode_checkpoint

PREFIX = "t-fast"


def _write(client: Any, layout: RedisLayout, symbol: str, candles: list) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_candles(pipe, symbol, INTERVAL, candles)
    pipe.execute()


def _slow_read(client: Any, layout: RedisLayout, resume: dict[str, int]) -> dict[str, CandleRead]:
    """The reference: resume-inclusive ZRANGEBYSCORE per symbol, decode_candle per member."""
    out = {}
    for symbol, t in resume.items():
        key = layout.candles_key(symbol, INTERVAL)
        found = client.zcount(key, t, t) > 0
        members = client.zrangebyscore(key, f"({t}", "+inf")
        out[symbol] = CandleRead(found, [decode_candle(m, key) for m in members])
    return out


def test_fast_read_equals_per_member_read_for_many_symbols(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    hist = {f"S{i}": series(i, 50) for i in range(40)}
    for symbol, candles in hist.items():
        _write(redis_client, layout, symbol, candles)
    # behind by 0..3 candles, one trimmed away (continuity lost), one symbol never written
    resume = {s: c[-1 - (i % 4)].t for i, (s, c) in enumerate(hist.items())}
    resume["S7"] = hist["S7"][5].t
    resume["MISSING"] = hist["S0"][-2].t
    got = store.read_since(resume)
    assert got == _slow_read(redis_client, layout, resume)
    assert got["S7"].resume_found is False and got["MISSING"] == CandleRead(False, [])
    assert got["S1"] == CandleRead(True, hist["S1"][-1:])


def test_malformed_member_raises_layout_error_naming_the_key(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    a = series(0, 10)
    _write(redis_client, layout, "A", a)
    _write(redis_client, layout, "B", a)
    redis_client.zadd(layout.candles_key("B", INTERVAL), {"not json": a[-1].t + 1})
    with pytest.raises(LayoutError, match="B"):
        store.read_since({"A": a[5].t, "B": a[5].t})
    bad_shape = '[1, 2, "x", 4, 5, 6, 7, 8]'
    redis_client.zadd(layout.candles_key("A", INTERVAL), {bad_shape: a[-1].t + 1})
    with pytest.raises(LayoutError, match="A"):
        store.read_since({"A": a[5].t})


@pytest.mark.parametrize(("field", "value", "error"), [
    (6, -1.0, "negative volume"), (3, 0.0, "below low"), (5, "NaN", "not finite"), (1, 0, "close time"),
])
def test_invalid_candle_values_fail_like_the_candle_constructor(
    redis_client: Any, field: int, value: Any, error: str
) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    a = series(0, 10)
    _write(redis_client, layout, "A", a)
    c = a[-1]
    payload = [c.t + 300_000, c.close_ms + 300_000, c.o, c.h, c.l, c.c, c.v, c.n]
    payload[field] = value
    member = "[" + ",".join(str(x) for x in payload) + "]"
    redis_client.zadd(layout.candles_key("A", INTERVAL), {member: c.t + 300_000})
    with pytest.raises(LayoutError, match=error):
        store.read_since({"A": a[5].t})


def test_checkpoints_written_in_one_mset_read_back_bit_exact(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    states = {f"S{i}": {"v": 1, "x": [float(i), -0.0, float("nan")], "s": "a"} for i in range(5)}
    store.save_checkpoints(states)
    raw = redis_client.get(layout.checkpoint_key("S3", INTERVAL))
    assert decode_checkpoint(raw)["x"][:2] == [3.0, -0.0]
    loaded = store.load_checkpoints([*states, "NONE"])
    assert sorted(loaded) == sorted(states)
    assert repr(loaded["S4"]) == repr(states["S4"])  # NaN and -0.0 survive
