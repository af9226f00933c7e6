"""Sidecar settings from the environment, the watchlist ranking, and venue payload parsing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.redis_layout import AccountEventKind
from engine.config.env import ConfigError
from engine.enums import Mode
from engine.sidecar.parse import (
    AccountUpdate,
    BboUpdate,
    CandleUpdate,
    MidsUpdate,
    parse_candle_list,
    parse_frame,
)
from engine.sidecar.settings import SidecarSettings, candles_db_path, default_ws_url, top_symbols_by_volume

ADDR = "0x" + "Ab" * 20


def test_defaults_point_at_mainnet_ws_and_reference_names() -> None:
    s = SidecarSettings.from_env({})
    assert s.ws_url == "wss://api.hyperliquid.xyz/ws" and s.interval == "1h" and s.lookback_bars == 200
    assert s.enable_bbo and s.mode is Mode.PAPER and s.account_address is None and s.ping_secs < 60
    assert s.subscription_count(50) == 101


def test_simulator_base_url_gives_loopback_ws_and_env_overrides() -> None:
    env = {
        "AI_QUANT_HL_BASE_URL": "http://127.0.0.1:8123",
        "AI_QUANT_WS_ENABLE_BBO": "0",
        "AI_QUANT_SYMBOLS": "BTC,kPEPE,BTC",
        "AI_QUANT_INTERVAL": "1m",
        "AI_QUANT_STATE_DIR": "/tmp/x",
    }
    s = SidecarSettings.from_env(env)
    assert s.ws_url == "ws://127.0.0.1:8123/ws" and s.symbols == ("BTC", "kPEPE") and not s.enable_bbo
    assert str(s.candles_db_path) == "/tmp/x/candles_dbs/candles_1m.db"


@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRY_LIVE])
def test_live_modes_require_account_address_and_subscribe_account_channels(mode: Mode) -> None:
    with pytest.raises(ConfigError, match="AI_QUANT_ACCOUNT_ADDRESS"):
        SidecarSettings.from_env({"AI_QUANT_MODE": mode.value})
    s = SidecarSettings.from_env({"AI_QUANT_MODE": mode.value, "AI_QUANT_ACCOUNT_ADDRESS": ADDR})
    assert s.account_address == ADDR.lower() and s.wants_account_events and s.subscription_count(1) == 5


@pytest.mark.parametrize(
    "name,value",
    [
        ("AI_QUANT_INTERVAL", "7m"),
        ("AI_QUANT_ACCOUNT_ADDRESS", "0x12"),
        ("HL_WS_PING_SECS", "90"),
        ("AI_QUANT_REDIS_URL", "http://x"),
        ("HL_WS_MAX_CONNECTIONS", "0"),
        ("HL_WS_MAX_SUBSCRIPTIONS", "lots"),
        ("HL_WS_MAX_MESSAGES_PER_MIN", "5"),
        ("HL_WS_MAX_NEW_CONNECTIONS_PER_MIN", "-1"),
        ("HL_WS_SUBS_PER_CONNECTION", "0"),
        ("AI_QUANT_SIDECAR_LOCAL_ADDR", "127.0.0.300"),
        ("AI_QUANT_SIDECAR_MEMBER_TTL_MS", "1500"),  # under twice the 1 s heartbeat
        ("AI_QUANT_CANDLE_REST_POLL", "maybe"),
        ("AI_QUANT_CANDLE_REST_POLL_SHARE", "1.5"),
    ],
)
def test_bad_values_are_config_errors(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        SidecarSettings.from_env({name: value})


def test_ws_budget_defaults_are_the_venue_limits_and_capacities_follow() -> None:
    s = SidecarSettings.from_env({})
    b = s.ws_budget
    limits = (b.max_connections, b.max_new_connections_per_min, b.max_subscriptions, b.max_messages_per_min)
    assert limits == (10, 30, 1000, 2000)
    assert s.ws_market_capacity == 499  # allMids + candle and bbo per market within 1,000
    assert s.rest_poll and s.rest_market_capacity == 1714  # 1h bars, half of 1,200 weight a minute
    assert s.local_addr is None and s.sidecar_id.endswith("/default") and s.member_ttl_ms == 5000
    env = {
        "AI_QUANT_WS_ENABLE_BBO": "0",
        "HL_WS_MAX_SUBSCRIPTIONS": "31",
        "AI_QUANT_SIDECAR_LOCAL_ADDR": "127.0.0.2",
        "AI_QUANT_SIDECAR_ID": "node-a",
        "AI_QUANT_CANDLE_REST_POLL": "0",
    }
    t = SidecarSettings.from_env(env)
    assert t.ws_market_capacity == 30 and t.rest_market_capacity == 0
    assert t.local_addr == "127.0.0.2" and t.sidecar_id == "node-a"


def test_sidecar_exits_2_on_a_bad_budget_value(tmp_path: Path) -> None:
    env = dict(os.environ, HL_WS_MAX_CONNECTIONS="zero", AI_QUANT_STATE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "engine.sidecar"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and "HL_WS_MAX_CONNECTIONS" in done.stderr


def test_helpers() -> None:
    assert default_ws_url("https://api.hyperliquid-testnet.xyz/") == "wss://api.hyperliquid-testnet.xyz/ws"
    assert candles_db_path(__import__("pathlib").Path("d"), "1H").name == "candles_1h.db"
    assert top_symbols_by_volume([("A", 1.0), ("B", 3.0), ("C", 3.0), ("D", 2.0)], 3) == ("B", "C", "D")


def test_parse_frame_shapes_of_every_channel() -> None:
    candle = {
        "t": 60_000,
        "T": 119_999,
        "s": "BTC",
        "i": "1m",
        "o": "1",
        "c": "2",
        "h": "3",
        "l": "0.5",
        "v": "9",
        "n": 4,
    }
    got = parse_frame(json.dumps({"channel": "candle", "data": candle}))
    assert isinstance(got, CandleUpdate) and got.candle.c == 2.0 and got.symbol == "BTC"
    mids = parse_frame(
        json.dumps({"channel": "allMids", "data": {"mids": {"BTC": "100", "X": "nan", "Y": "-1"}}})
    )
    assert isinstance(mids, MidsUpdate) and mids.mids == {"BTC": 100.0} and mids.rejected == 2
    bbo = {
        "coin": "BTC",
        "time": 5,
        "bbo": [{"px": "99", "sz": "1", "n": 1}, {"px": "101", "sz": "2", "n": 1}],
    }
    got_bbo = parse_frame(json.dumps({"channel": "bbo", "data": bbo}))
    assert isinstance(got_bbo, BboUpdate) and (got_bbo.bid_px, got_bbo.ask_sz, got_bbo.venue_ms) == (99, 2, 5)
    fills = {"user": ADDR, "isSnapshot": True, "fills": [{"time": 7, "tid": 1}, {"time": 9, "tid": 2}]}
    acct = parse_frame(json.dumps({"channel": "userFills", "data": fills}))
    assert isinstance(acct, AccountUpdate) and acct.kind is AccountEventKind.USER_FILLS
    assert acct.is_snapshot and acct.venue_ms == 9
    assert (
        parse_frame('{"channel":"pong"}') is None and parse_frame("Websocket connection established.") is None
    )


def test_parse_candle_list_drops_and_counts_bad_items() -> None:
    good = {
        "t": 0,
        "T": 59_999,
        "s": "BTC",
        "i": "1m",
        "o": "1",
        "c": "1",
        "h": "1",
        "l": "1",
        "v": "1",
        "n": 1,
    }
    body = [good, {**good, "t": 60_000, "T": 119_999, "h": "0"}, {**good, "s": "ETH"}, "x"]
    candles, rejected = parse_candle_list(body, "BTC", "1m")
    assert [c.t for c in candles] == [0] and rejected == 3


def test_build_watchlist_adds_listed_anchor_and_drops_unlisted() -> None:
    from engine.sidecar.settings import build_watchlist

    listed = [("BTC", 5.0), ("ETH", 9.0), ("SOL", 1.0), ("kPEPE", 3.0)]
    assert build_watchlist((), 2, "BTC", listed) == (("ETH", "BTC"), ())
    assert build_watchlist(("SOL", "NOPE", "kPEPE"), 50, "BTC", listed) == (
        ("BTC", "SOL", "kPEPE"),
        ("NOPE",),
    )
    assert build_watchlist(("X1",), 50, "BTC", None) == (("X1",), ())
    assert build_watchlist(("SOL",), 50, "ZZZ", listed) == (("SOL",), ())
    with pytest.raises(ConfigError):
        build_watchlist(("NOPE",), 50, "ZZZ", listed)
    with pytest.raises(ConfigError):
        build_watchlist((), 50, "BTC", None)
