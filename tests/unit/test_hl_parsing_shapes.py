"""engine.venue parsers on shapes Hyperliquid documents but the recordings lack, edge rejections,
and a fuzz of mutated bodies (the recorded responses are in test_hl_parsing.py)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.enums import VenueOrderStatus
from engine.venue import types as hl
from tests.unit.test_hl_parsing import RECORDED  # the recordings seed the fuzz

# --- shapes documented by Hyperliquid but not in the recordings -------------------------------

META_AND_CTXS = [
    {
        "universe": [
            {"name": "BTC", "szDecimals": 5, "maxLeverage": 40, "marginTableId": 56},
            {"name": "OLD", "szDecimals": 1, "maxLeverage": 3, "onlyIsolated": True, "isDelisted": True},
        ],
        "marginTables": [
            [
                56,
                {
                    "description": "tiered 40x",
                    "marginTiers": [
                        {"lowerBound": "0.0", "maxLeverage": 40},
                        {"lowerBound": "150000000.0", "maxLeverage": 20},
                    ],
                },
            ]
        ],
    },
    [
        {
            "funding": "0.0000125",
            "openInterest": "25000.5",
            "prevDayPx": "64000.0",
            "dayNtlVlm": "1.2e9",
            "premium": "0.0001",
            "oraclePx": "65000.0",
            "markPx": "65010.0",
            "midPx": "65005.5",
            "impactPxs": ["65004.0", "65007.0"],
            "dayBaseVlm": "18000.1",
        },
        {
            "funding": "-0.0001",
            "openInterest": "0.0",
            "prevDayPx": "1.0",
            "dayNtlVlm": "0.0",
            "premium": None,
            "oraclePx": "1.0",
            "markPx": "1.0",
            "midPx": None,
            "impactPxs": None,
        },
    ],
]


def test_parse_meta_and_asset_ctxs_documented_shape() -> None:
    parsed = hl.parse_meta_and_asset_ctxs(META_AND_CTXS)
    btc, old = parsed.ctxs
    assert btc.coin == "BTC" and btc.funding == 0.0000125 and btc.mid_px == 65005.5
    assert btc.impact_pxs == (65004.0, 65007.0) and btc.day_ntl_vlm == 1.2e9
    assert old.coin == "OLD" and old.mid_px is None and old.premium is None
    assert parsed.meta.universe[1].only_isolated and parsed.meta.universe[1].is_delisted
    assert parsed.meta.margin_tables[0].tiers[1] == hl.MarginTier(150000000.0, 20)


def test_parse_meta_and_asset_ctxs_length_mismatch_raises() -> None:
    with pytest.raises(hl.ParseError, match="2 assets"):
        hl.parse_meta_and_asset_ctxs([META_AND_CTXS[0], META_AND_CTXS[1][:1]])


def test_parse_order_status_documented_shapes() -> None:
    body = {
        "status": "order",
        "order": {
            "status": "filled",
            "statusTimestamp": 1700000000123,
            "order": {
                "coin": "ETH",
                "side": "A",
                "limitPx": "2000.5",
                "sz": "0.0",
                "oid": 42,
                "timestamp": 1700000000000,
                "origSz": "1.5",
                "cloid": "0x" + "AB" * 16,
                "reduceOnly": True,
                "orderType": "Limit",
                "tif": "Ioc",
            },
        },
    }
    info = hl.parse_order_status(body)
    assert info.known and info.status is VenueOrderStatus.FILLED and info.order is not None
    assert info.order.cloid == "0x" + "ab" * 16 and info.order.orig_sz == 1.5 and info.order.sz == 0.0
    unknown = hl.parse_order_status({"status": "unknownOid"})
    assert not unknown.known and unknown.order is None


def test_parse_order_updates_ws_shape() -> None:
    body = [
        {"order": {"coin": "BTC", "side": "B", "limitPx": "65000.0", "sz": "0.01", "oid": 9, "timestamp": 5,
                   "origSz": "0.01", "cloid": "0x" + "0f" * 16}, "status": "open", "statusTimestamp": 6},
        {"order": {"coin": "BTC", "side": "B", "limitPx": "65000.0", "sz": "0.0", "oid": 9, "timestamp": 5,
                   "origSz": "0.01"}, "status": "canceled", "statusTimestamp": 7},
    ]  # fmt: skip
    opened, canceled = hl.parse_order_updates(body)
    assert opened.status is VenueOrderStatus.OPEN and opened.order.cloid == "0x" + "0f" * 16
    assert canceled.status is VenueOrderStatus.CANCELED and canceled.status_timestamp_ms == 7


def test_parse_order_status_unknown_status_value_raises() -> None:
    body = {
        "status": "order",
        "order": {
            "status": "teleported",
            "statusTimestamp": 1,
            "order": {"coin": "ETH", "side": "A", "limitPx": "1", "sz": "1", "oid": 1, "timestamp": 1},
        },
    }
    with pytest.raises(hl.ParseError) as err:
        hl.parse_order_status(body)
    assert err.value.field == "order.status"


def test_parse_user_funding_rest_and_ws_shapes() -> None:
    rest = [
        {
            "time": 1681222254710,
            "hash": "0x" + "0" * 64,
            "delta": {
                "type": "funding",
                "coin": "ETH",
                "usdc": "-3.625312",
                "szi": "49.1477",
                "fundingRate": "0.0000417",
                "nSamples": None,
            },
        }
    ]
    ws = [
        {
            "time": 1681222254710,
            "coin": "ETH",
            "usdc": "-3.625312",
            "szi": "49.1477",
            "fundingRate": "0.0000417",
        }
    ]
    (a,) = hl.parse_user_funding(rest)
    (b,) = hl.parse_user_funding(ws)
    assert (a.coin, a.usdc, a.szi, a.funding_rate, a.time_ms) == (
        b.coin,
        b.usdc,
        b.szi,
        b.funding_rate,
        b.time_ms,
    )
    assert a.usdc == -3.625312 and a.hash is not None and b.hash is None


def test_parse_fill_with_newer_optional_fields() -> None:
    raw = {
        "coin": "BTC",
        "px": "65000.0",
        "sz": "0.001",
        "side": "B",
        "time": 1,
        "startPosition": "0.0",
        "dir": "Open Long",
        "closedPnl": "0.0",
        "hash": "0xabc",
        "oid": 7,
        "crossed": True,
        "fee": "0.0234",
        "tid": 987654321,
        "feeToken": "USDC",
        "cloid": "0x" + "1f" * 16,
        "builderFee": "0.001",
    }
    fill = hl.parse_fill(raw)
    assert fill.tid == 987654321 and fill.fee_token == "USDC" and fill.cloid == "0x" + "1f" * 16


def test_parse_exchange_reply_order_statuses() -> None:
    body = {
        "status": "ok",
        "response": {
            "type": "order",
            "data": {
                "statuses": [
                    {"resting": {"oid": 77, "cloid": "0x" + "00" * 15 + "01"}},
                    {"filled": {"totalSz": "0.02", "avgPx": "1891.4", "oid": 78}},
                    {"error": "Order must have minimum value of $10."},
                ]
            },
        },
    }
    ack = hl.parse_exchange_reply(body)
    assert isinstance(ack, hl.ExchangeAck) and not ack.all_ok
    resting, filled, error = ack.statuses
    assert resting == hl.RestingStatus(77, "0x" + "00" * 15 + "01")
    assert filled == hl.FilledStatus(78, 0.02, 1891.4, None)
    assert error == hl.ErrorStatus("Order must have minimum value of $10.")


def test_parse_exchange_reply_cancel_default_and_err() -> None:
    cancel = hl.parse_exchange_reply(
        {
            "status": "ok",
            "response": {
                "type": "cancel",
                "data": {
                    "statuses": [
                        "success",
                        {"error": "Order was never placed, already canceled, or filled. asset=0"},
                    ]
                },
            },
        }
    )
    assert isinstance(cancel, hl.ExchangeAck) and cancel.statuses[0] == hl.TextStatus("success")
    default = hl.parse_exchange_reply({"status": "ok", "response": {"type": "default"}})
    assert isinstance(default, hl.ExchangeAck) and default.all_ok and default.statuses == ()
    err = hl.parse_exchange_reply({"status": "err", "response": "User or API Wallet 0x12 does not exist."})
    assert err == hl.ExchangeErr("User or API Wallet 0x12 does not exist.")


# --- rejections at the edge ------------------------------------------------------------------

_FILL = {
    "coin": "BTC",
    "px": "65000.0",
    "sz": "0.5",
    "side": "B",
    "time": 1,
    "startPosition": "0.0",
    "dir": "Open Long",
    "closedPnl": "0.0",
    "hash": "0xabc",
    "oid": 7,
    "crossed": False,
    "fee": "0.1",
}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("px", "NaN", "decimal"),
        ("px", "inf", "decimal"),
        ("px", float("nan"), "finite"),
        ("px", "1e400", "finite"),
        ("sz", "-0.5", "positive"),
        ("sz", "0", "positive"),
        ("px", "1_000", "decimal"),
        ("side", "X", "unknown value"),
        ("oid", "7", "integer"),
        ("oid", True, "boolean"),
        ("crossed", "yes", "boolean"),
        ("time", 1.5, "integer"),
        ("cloid", "0x123", "cloid"),
        ("px", None, "number"),
        ("hash", "", "empty"),
    ],
)
def test_parse_fill_bad_field_raises_parse_error_naming_it(field: str, value: Any, reason: str) -> None:
    raw = dict(_FILL, **{field: value})
    with pytest.raises(hl.ParseError, match=reason) as err:
        hl.parse_user_fills([_FILL, raw])
    assert err.value.field == f"[1].{field}" and err.value.request == "userFills"


def test_parse_missing_field_is_named() -> None:
    raw = {k: v for k, v in _FILL.items() if k != "startPosition"}
    with pytest.raises(hl.ParseError, match="missing") as err:
        hl.parse_fill(raw)
    assert err.value.field == "startPosition"


def test_parse_error_is_a_value_error_and_a_venue_error() -> None:
    with pytest.raises(ValueError):
        hl.parse_all_mids([])
    assert issubclass(hl.ParseError, hl.VenueError)


# --- fuzz --------------------------------------------------------------------------------------

_PARSERS = [
    hl.parse_meta,
    hl.parse_meta_and_asset_ctxs,
    hl.parse_all_mids,
    hl.parse_candle_snapshot,
    hl.parse_l2_book,
    hl.parse_user_state,
    hl.parse_open_orders,
    hl.parse_frontend_open_orders,
    hl.parse_user_fills,
    hl.parse_order_status,
    hl.parse_funding_history,
    hl.parse_user_funding,
    hl.parse_exchange_reply,
    hl.parse_order_updates,
]


def _shrink(body: Any) -> Any:
    """Keep fuzz cases small: long lists are cut to their first three items."""
    if isinstance(body, list):
        return [_shrink(x) for x in body[:3]]
    if isinstance(body, dict):
        return {k: _shrink(v) for k, v in body.items()}
    return body


_SEEDS: list[tuple[Any, Any]] = [(_shrink(b), None) for _n, _r, b in RECORDED] + [
    (META_AND_CTXS, None),
    (
        [
            {
                "order": dict(
                    coin="A",
                    side="A",
                    limitPx="2",
                    sz="0",
                    oid=3,
                    timestamp=4,
                    origSz="1",
                    cloid="0x" + "ab" * 16,
                ),
                "status": "filled",
                "statusTimestamp": 5,
            }
        ],
        None,
    ),
    (
        {
            "status": "order",
            "order": {
                "status": "open",
                "statusTimestamp": 1,
                "order": dict(coin="A", side="B", limitPx="1", sz="1", oid=1, timestamp=1),
            },
        },
        None,
    ),
    (
        {
            "status": "ok",
            "response": {
                "type": "order",
                "data": {
                    "statuses": [
                        {"resting": {"oid": 1}},
                        {"filled": {"totalSz": "1", "avgPx": "2", "oid": 2}},
                        {"error": "x"},
                    ]
                },
            },
        },
        None,
    ),
    (
        [
            {
                "time": 1,
                "hash": "0x0",
                "delta": {"type": "funding", "coin": "E", "usdc": "1", "szi": "1", "fundingRate": "0.1"},
            }
        ],
        None,
    ),
]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e999",
            "-1",
            "0",
            "-0.0",
            "1_0",
            " 1",
            "0x",
            "B",
            "A",
            "cross",
            "isolated",
            "open",
            "order",
            "ok",
            "err",
            "unknownOid",
            "funding",
            "0x" + "a" * 32,
        ]
    ),
    st.text(max_size=8),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _mutate(body: Any, data: st.DataObject) -> Any:
    """Walk a random path into the body and replace, delete or corrupt what is there."""
    if isinstance(body, dict | list) and body and data.draw(st.booleans()):
        keys = list(body.keys()) if isinstance(body, dict) else list(range(len(body)))
        key = data.draw(st.sampled_from(keys))
        action = data.draw(st.sampled_from(["descend", "descend", "delete"]))
        if action == "delete":
            if isinstance(body, dict):
                del body[key]
            else:
                body.pop(key)
            return body
        body[key] = _mutate(body[key], data)
        return body
    return data.draw(_json)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_bodies_raise_only_parse_error(data: st.DataObject) -> None:
    seed, _ = data.draw(st.sampled_from(_SEEDS))
    body = copy.deepcopy(seed)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        body = _mutate(body, data)
    parser = data.draw(st.sampled_from(_PARSERS))
    try:
        parsed = parser(body)
    except hl.ParseError:
        return
    _assert_finite(parsed)


def _assert_finite(value: Any) -> None:
    """Whatever parsed must be free of NaN/inf all the way down."""
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, tuple | list):
        for item in value:
            _assert_finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            _assert_finite(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _assert_finite(getattr(value, name))
