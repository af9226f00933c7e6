"""Daemon settings: reference defaults, per-mode DB and lock paths, and ConfigError naming bad variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.env import ConfigError
from engine.config.settings import DaemonSettings, lock_file_name
from engine.enums import FeeMode, Mode
from strategies.enums import StrategyMode


def test_settings_defaults_match_reference():
    s = DaemonSettings.from_env({})
    assert s.mode is Mode.PAPER and s.interval == "1h" and s.interval_ms == 3_600_000
    assert s.lookback_bars == 200 and s.signal_on_candle_close is True
    assert s.candle_close_grace_ms == 2_000 and s.loop_target_secs == 5.0 and s.heartbeat_secs == 30.0
    assert s.strategy_yaml == Path("config/strategy_overrides.yaml") and s.strategy_mode is None
    assert s.paper.seed_balance_usd == 10_000.0 and s.paper.slippage_bps == 10.0
    assert s.paper.fee_mode is FeeMode.TAKER and s.paper.fees.taker_rate == 0.00045
    assert s.live_defaults.max_open_positions == 1 and s.live_defaults.max_notional_usd_per_order == 15.0
    assert s.top_n == 50 and s.symbols == () and s.entry_max_delay_ms == 0


@pytest.mark.parametrize("mode", list(Mode))
def test_settings_each_mode_gets_its_own_db_and_live_family_shares_lock(mode):
    s = DaemonSettings.from_env({"AI_QUANT_MODE": mode.value.upper(), "AI_QUANT_STATE_DIR": "/tmp/aq"})
    assert s.mode is mode
    assert s.db_path == Path(f"/tmp/aq/trading_{mode.value}.db")
    assert s.lock_path == Path("/tmp/aq") / lock_file_name(mode)
    assert s.is_live_family is (mode is not Mode.PAPER)
    expected = "ai_quant_paper.lock" if mode is Mode.PAPER else "ai_quant_live.lock"
    assert s.lock_path.name == expected


def test_settings_explicit_paths_win():
    s = DaemonSettings.from_env({"AI_QUANT_DB_PATH": "/x/t.db", "AI_QUANT_LOCK_PATH": "/x/l.lock"})
    assert s.db_path == Path("/x/t.db") and s.lock_path == Path("/x/l.lock")


def test_settings_parse_values():
    s = DaemonSettings.from_env(
        {
            "AI_QUANT_INTERVAL": "5m",
            "AI_QUANT_SYMBOLS": "btc, eth,BTC,,sol",
            "AI_QUANT_STRATEGY_MODE": "m3",
            "HL_FEE_MODE": "MAKER",
            "HL_REFERRAL_DISCOUNT_PCT": "4",
            "AI_QUANT_ENTRY_MAX_DELAY_S": "2.5",
            "AI_QUANT_SIGNAL_ON_CANDLE_CLOSE": "off",
        }
    )
    assert s.interval_ms == 300_000 and s.symbols == ("BTC", "ETH", "SOL")
    assert s.strategy_mode is StrategyMode.CONSERVATIVE and s.paper.fee_mode is FeeMode.MAKER
    assert s.paper.fill_params().fee_rate == pytest.approx(0.00015 * 0.96)
    assert s.entry_max_delay_ms == 2_500 and s.signal_on_candle_close is False


def test_settings_entry_delay_ms_wins_over_seconds():
    env = {"AI_QUANT_ENTRY_MAX_DELAY_MS": "1500", "AI_QUANT_ENTRY_MAX_DELAY_S": "9"}
    assert DaemonSettings.from_env(env).entry_max_delay_ms == 1_500


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AI_QUANT_MODE", "paperish"),
        ("AI_QUANT_INTERVAL", "7m"),
        ("AI_QUANT_LOOKBACK_BARS", "10"),
        ("AI_QUANT_LOOKBACK_BARS", "lots"),
        ("AI_QUANT_SIGNAL_ON_CANDLE_CLOSE", "maybe"),
        ("AI_QUANT_LOOP_TARGET_SECS", "nan"),
        ("AI_QUANT_STRATEGY_MODE", "yolo"),
        ("AI_QUANT_PAPER_BALANCE", "0"),
        ("AI_QUANT_PAPER_BALANCE", "-5"),
        ("HL_FEE_MODE", "free"),
        ("HL_REFERRAL_DISCOUNT_PCT", "150"),
        ("HL_SLIPPAGE_BPS", "-1"),
        ("AI_QUANT_ENTRY_MAX_DELAY_MS", "99999999"),
        ("AI_QUANT_TOP_N", "0"),
        ("AI_QUANT_LIVE_MAX_OPEN_POSITIONS", "500"),
    ],
)
def test_settings_invalid_value_raises_config_error_naming_variable(name, value):
    with pytest.raises(ConfigError) as info:
        DaemonSettings.from_env({name: value})
    assert name in str(info.value)


def test_settings_invalid_mode_lists_valid_values():
    with pytest.raises(ConfigError) as info:
        DaemonSettings.from_env({"AI_QUANT_MODE": "prod"})
    assert all(mode.value in str(info.value) for mode in Mode)


@pytest.mark.parametrize("value", ["all", "ALL", " All "])
def test_top_n_all_watches_every_listed_market(value):
    """AI_QUANT_TOP_N=all: the whole universe of the selected dexes (past one IP's WS budget the
    sidecar splits connections and falls back to REST), and the ranking keeps every coin."""
    from engine.sidecar.settings import top_symbols_by_volume

    assert DaemonSettings.from_env({"AI_QUANT_TOP_N": value}).top_n is None
    listed = [(f"c{i}", float(i)) for i in range(1207)]
    assert len(top_symbols_by_volume(listed, None)) == 1207
    assert DaemonSettings.from_env({"AI_QUANT_TOP_N": "1207"}).top_n == 1207


@pytest.mark.parametrize("value", ["0", "10001", "many", "-3"])
def test_top_n_bad_value_names_the_variable_and_the_all_spelling(value):
    with pytest.raises(ConfigError) as info:
        DaemonSettings.from_env({"AI_QUANT_TOP_N": value})
    assert "AI_QUANT_TOP_N" in str(info.value) and "'all'" in str(info.value)
