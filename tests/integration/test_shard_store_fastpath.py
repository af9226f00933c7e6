"""RedisShardStore's fast paths (one script call returning one blob of binary records for warm
and cold symbols alike, one-argument request, MSET checkpoints) give exactly what the per-member
path gives, and fail naming the key on a malformed or invalid payload."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.universe import INTERVAL, series
from cluster.redis_layout import CANDLE_DTYPE, LayoutError, RedisLayout, decode_candle
from cluster.shard_store import CandleRead, RedisShardStore, decode_checkpoint

PREFIX = "t-fast"


def _write(client: Any, layout: RedisLayout, symbol: str, candles: list) -> None:
    pipe = client.pipeline(transaction=True)
    layout.write_closed_candles(pipe, symbol, INTERVAL, candles)
    pipe.execute()


def _slow_read(client: Any, layout: RedisLayout, resume: dict[str, int | None]) -> dict[str, CandleRead]:
    """The reference: resume-inclusive ZRANGEBYSCORE per symbol, decode_candle per member."""
    out = {}
    for symbol, t in resume.items():
        key = layout.candles_key(symbol, INTERVAL)
        found = t is None or client.zcount(key, t, t) > 0
        members = client.zrangebyscore(key, "-inf" if t is None else f"({t}", "+inf")
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
    resume["S9"] = None  # cold: everything stored, in the same round trip
    resume["NEVER"] = None
    got = store.read_since(resume)
    assert got == _slow_read(redis_client, layout, resume)
    assert got["S7"].resume_found is False and got["MISSING"] == CandleRead(False, [])
    assert got["S1"] == CandleRead(True, hist["S1"][-1:])
    assert got["S9"] == CandleRead(True, hist["S9"][-30:]) and got["NEVER"] == CandleRead(True, [])
    bars = got["S2"].bars  # the columnar view: one read-only record array per symbol
    assert bars.dtype == CANDLE_DTYPE and not bars.flags.writeable
    assert bars["c"].tolist() == [c.c for c in hist["S2"][-2:]]


def test_read_is_one_round_trip_whatever_the_symbol_count(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    hist = {f"S{i}": series(i, 5) for i in range(300)}
    pipe = redis_client.pipeline(transaction=True)
    layout.write_closed_many(pipe, INTERVAL, hist)
    pipe.execute()
    calls: list[str] = []
    counting = _CountingClient(redis_client, calls)
    store = RedisShardStore(counting, layout, INTERVAL)
    resume = {s: (c[1].t if i % 2 else None) for i, (s, c) in enumerate(hist.items())}
    store.read_since({"S0": None})  # loads the script into the server (SCRIPT LOAD, once)
    calls.clear()
    got = store.read_since(resume)
    assert calls == ["evalsha"]
    assert got["S1"] == CandleRead(True, hist["S1"][2:]) and got["S0"] == CandleRead(True, hist["S0"])


class _CountingClient:
    """A redis client that records the name of every request it makes (a pipeline counts once)."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self._inner, self._calls = inner, calls

    def register_script(self, script: str) -> Any:
        from redis.commands.core import Script

        return Script(self, script)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return attr(*args, **kwargs)

        return call


def test_malformed_member_raises_layout_error_naming_the_key(redis_client: Any) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    a = series(0, 10)
    _write(redis_client, layout, "A", a)
    _write(redis_client, layout, "B", a)
    redis_client.zadd(layout.candles_key("B", INTERVAL), {"[1,2,3,4,5,6,7,8] old json": a[-1].t + 1})
    with pytest.raises(LayoutError, match="B"):
        store.read_since({"A": a[5].t, "B": a[5].t})
    with pytest.raises(LayoutError, match="B"):
        store.read_since({"A": None, "B": None})
    assert store.read_since({"A": a[5].t}) == {"A": CandleRead(True, a[6:])}


@pytest.mark.parametrize(("field", "value", "error"), [
    ("v", -1.0, "negative volume"), ("h", 0.0, "below low"), ("c", float("nan"), "not finite"),
    ("close_ms", 0, "close time"),
])
def test_invalid_candle_values_fail_like_the_candle_constructor(
    redis_client: Any, field: str, value: Any, error: str
) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    a = series(0, 10)
    _write(redis_client, layout, "A", a)
    _write(redis_client, layout, "B", a)
    c = a[-1]
    row = np.array([(c.t + 300_000, c.close_ms + 300_000, c.o, c.h, c.l, c.c, c.v, c.n)], dtype=CANDLE_DTYPE)
    row[field] = value
    redis_client.zadd(layout.candles_key("B", INTERVAL), {row.tobytes(): c.t + 300_000})
    with pytest.raises(LayoutError, match=error) as caught:
        store.read_since({"A": a[5].t, "B": a[5].t})
    assert layout.candles_key("B", INTERVAL) in str(caught.value)


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


def test_warm_only_read_comes_joined_and_equals_the_per_member_read(redis_client: Any) -> None:
    """A steady tick (every symbol warm) is answered as one blob; the resume candle, read along to
    prove continuity, is never handed out; a trimmed resume, an empty key and a malformed member
    behave as in the per-key form."""
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    hist = {f"S{i}": series(i, 50) for i in range(20)}
    for symbol, candles in hist.items():
        _write(redis_client, layout, symbol, candles)
    resume = {s: c[-1 - (i % 6)].t for i, (s, c) in enumerate(hist.items())}
    resume["S7"] = hist["S7"][5].t  # trimmed away: not found, everything stored after it returned
    resume["S8"] = hist["S8"][-1].t + 1  # between candles: not found, nothing after it
    resume["MISSING"] = hist["S0"][-2].t
    script = layout.bars_script(redis_client)
    keys = [layout.candles_key(s, INTERVAL) for s in resume]
    arg = "\n".join(f"{k}\n{t}" for k, t in zip(keys, resume.values(), strict=True))
    assert len(script(keys=[], args=[arg, "1"])) == 2  # the meta string and ONE blob
    batch = store.read_batch(resume)
    assert batch.as_dict().keys() == resume.keys()
    got = {s: CandleRead(found, bars=bars) for s, (found, bars) in batch.as_dict().items()}
    assert got == _slow_read(redis_client, layout, resume) == store.read_since(resume)
    assert got["S7"] == CandleRead(False, hist["S7"][-30:]) and got["S8"] == CandleRead(False, [])
    assert got["S5"] == CandleRead(True, hist["S5"][-5:])
    redis_client.zadd(layout.candles_key("S3", INTERVAL), {b"short": hist["S3"][-1].t + 1})
    with pytest.raises(LayoutError, match=layout.candles_key("S3", INTERVAL)):
        store.read_batch(resume)


@pytest.mark.parametrize("warm", [True, False], ids=["warm_joined", "cold_per_key"])
def test_a_key_holding_a_newline_is_read_through_keys_and_args(redis_client: Any, warm: bool) -> None:
    layout = RedisLayout(PREFIX, keep_bars=30)
    store = RedisShardStore(redis_client, layout, INTERVAL)
    odd = series(1, 12)
    _write(redis_client, layout, "A\nB", odd)
    _write(redis_client, layout, "C", series(2, 12))
    resume = {"A\nB": odd[8].t if warm else None, "C": odd[10].t}
    got = store.read_since(resume)
    assert got == _slow_read(redis_client, layout, resume)
    assert got["A\nB"] == CandleRead(True, odd[9:] if warm else odd)
