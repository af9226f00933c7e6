"""Pure parts of cluster.redis_layout: payload round trips, rejection of malformed payloads, key names."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.redis_layout import CandleKeys, LayoutError, RedisLayout, decode_candle, encode_candle
from strategies.candle import Candle

finite = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(t=st.integers(0, 2**45), o=finite, h=finite, low=finite, c=finite, v=finite, n=st.integers(0, 10**9))
def test_candle_payload_roundtrip_is_exact(
    t: int, o: float, h: float, low: float, c: float, v: float, n: int
) -> None:
    hi, lo = max(h, low), min(h, low)
    candle = Candle(t, t + 59_999, o, hi, lo, c, v, n)
    assert decode_candle(encode_candle(candle)) == candle
    assert decode_candle(encode_candle(candle).encode()) == candle


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1,2,3]",
        b'{"t":1}',
        b"[1,2,1,1,1,1,1,NaN]",
        b'[1,60000,1,"x",1,1,1,1]',
        b"[1,60000,1,1,2,1,1,1]",
        b"[1,60000,1,2,1,1,-1,1]",
        b"[1,60000,1,2,1,Infinity,1,1]",
        b"null",
    ],
)
def test_decode_candle_malformed_payload_raises_layout_error(raw: bytes) -> None:
    with pytest.raises(LayoutError):
        decode_candle(raw, "where")


@given(st.binary(max_size=64))
def test_decode_candle_fuzzed_bytes_raise_only_layout_error(raw: bytes) -> None:
    try:
        decode_candle(raw)
    except LayoutError:
        pass


def test_keys_carry_prefix_interval_and_symbol_case() -> None:
    layout = RedisLayout("eng2")
    keys = [
        layout.candles_key("kPEPE", "1m"),
        layout.forming_key("1m"),
        layout.close_key_hash("1m"),
        layout.open_key_hash("1m"),
        layout.mids_key(),
        layout.bbo_key(),
        layout.heartbeat_key(),
        layout.closed_channel("1m"),
        layout.checkpoint_key("BTC", "1h"),
        layout.account_stream_key("0xAB"),
    ]
    assert all(k.startswith("eng2:") for k in keys)
    assert len(set(keys)) == len(keys)
    assert layout.candles_key("kPEPE", "1m").endswith(":1m:kPEPE")
    assert layout.account_stream_key("0xAB") == layout.account_stream_key("0xab")


@pytest.mark.parametrize("prefix", ["", "a b", "x\n"])
def test_layout_rejects_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError):
        RedisLayout(prefix)


@pytest.mark.parametrize("signal_on_close", [True, False])
def test_candle_keys_pick_follows_close_mode(signal_on_close: bool) -> None:
    keys = CandleKeys(closed_close_ms=119_999, latest_open_ms=120_000)
    assert keys.pick(signal_on_close) == (119_999 if signal_on_close else 120_000)


def test_parse_closed_notification_roundtrip_and_garbage() -> None:
    assert RedisLayout.parse_closed_notification(json.dumps([["BTC", 5], ["ETH", 7]])) == [
        ("BTC", 5),
        ("ETH", 7),
    ]
    with pytest.raises(LayoutError):
        RedisLayout.parse_closed_notification(b"[[1]]")
