"""Pure parts of cluster.redis_layout: payload round trips, rejection of malformed payloads, key names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.candle_codec import decode_legacy_candle
from cluster.redis_layout import (
    CANDLE_DTYPE,
    RECORD_BYTES,
    CandleKeys,
    LayoutError,
    RedisLayout,
    bars_to_candles,
    decode_bars,
    decode_candle,
    encode_candle,
)
from strategies.candle import Candle

finite = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(t=st.integers(0, 2**45), o=finite, h=finite, low=finite, c=finite, v=finite, n=st.integers(0, 10**9))
def test_candle_payload_roundtrip_is_exact(
    t: int, o: float, h: float, low: float, c: float, v: float, n: int
) -> None:
    hi, lo = max(h, low), min(h, low)
    candle = Candle(t, t + 59_999, o, hi, lo, c, v, n)
    payload = encode_candle(candle)
    assert len(payload) == RECORD_BYTES == 64
    assert decode_candle(payload) == candle
    assert bars_to_candles(decode_bars(payload * 3)) == [candle] * 3


def _record(**change: float) -> bytes:
    row = np.array([(60_000, 119_999, 1.0, 2.0, 0.5, 1.5, 3.0, 4)], dtype=CANDLE_DTYPE)
    for name, value in change.items():
        row[name] = value
    return row.tobytes()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "expected one candle record"),
        (b"[1,60000,1,1,1,1,1,1]", "not a whole number"),
        (_record()[:63], "not a whole number"),
        (_record(o=float("nan")), "field o is not finite"),
        (_record(c=float("inf")), "field c is not finite"),
        (_record(h=0.1), "below low"),
        (_record(v=-1.0), "negative volume"),
        (_record(close_ms=0), "close time"),
        (_record() * 2, "expected one candle record"),
    ],
)
def test_decode_candle_malformed_payload_raises_layout_error(raw: bytes, error: str) -> None:
    with pytest.raises(LayoutError, match=error) as caught:
        decode_candle(raw, "where")
    assert "where" in str(caught.value)


@given(st.binary(max_size=200))
def test_decode_bars_fuzzed_bytes_raise_only_layout_error(raw: bytes) -> None:
    try:
        bars = decode_bars(raw, "fuzz")
    except LayoutError:
        return
    assert all(isinstance(c, Candle) for c in bars_to_candles(bars))  # whatever decodes is a valid Candle


def test_legacy_json_payload_still_parses_for_migration_only() -> None:
    legacy = b"[60000,119999,1,2,0.5,1.5,3,4]"
    assert decode_legacy_candle(legacy) == Candle(60_000, 119_999, 1, 2, 0.5, 1.5, 3, 4)
    with pytest.raises(LayoutError):
        decode_candle(b"[60000,119999,1,2,0.5,1.5,3,4]")
    with pytest.raises(LayoutError):
        decode_legacy_candle(_record())


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
    keys += [layout.legacy_candles_key("kPEPE", "1m"), layout.legacy_forming_key("1m"),
             layout.layout_version_key("1m")]
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
