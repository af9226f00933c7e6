"""Strategy config: strict loading, merge order, modes, live defaults and the shipped YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strategies.config import (
    LiveDefaults,
    StrategyConfigError,
    config_to_dict,
    default_config,
    load_yaml_text,
    parse_overrides,
    parse_strategy_mode,
)
from strategies.enums import Confidence, MacdMode, Signal, StrategyMode
from strategies.indicator_params import IndicatorParams
from strategies.signals import decide
from tests.unit.test_strategy_signals import base_rows

REPO = Path(__file__).resolve().parents[2]


def test_config_defaults_are_the_reference_code_defaults() -> None:
    cfg = default_config()
    assert cfg.trade.entry_min_confidence is Confidence.HIGH
    assert (cfg.trade.sl_atr_mult, cfg.trade.tp_atr_mult, cfg.trade.allocation_pct) == (2.0, 4.0, 0.03)
    assert (cfg.trade.leverage_low, cfg.trade.leverage_medium, cfg.trade.leverage_high) == (1.0, 3.0, 5.0)
    assert cfg.thresholds.entry.min_adx == 22.0
    assert cfg.thresholds.entry.macd_hist_entry_mode is MacdMode.ACCEL
    assert cfg.filters.require_volume_confirmation is False
    assert cfg.trade.min_margin_usd is None and cfg.trade.max_notional_usd_per_order is None
    assert cfg.entries_enabled and cfg.strategy_mode is None


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"global": {"trade": {"levrage": 2}}}, "global.trade.levrage"),
        ({"symbols": {"ETH": {"thresholds": {"entry": {"min_adxx": 1}}}}},
         "symbols.ETH.thresholds.entry.min_adxx"),
        ({"symbols": {"ETH": {"engine": {"interval": "1h"}}}}, "symbols.ETH.engine"),
        ({"live": {"global": {"filters": {"nope": True}}}}, "live.global.filters.nope"),
        ({"live": {"trade": {"x": 1}}}, "live.trade.x"),
        ({"modes": {"flat": {"symbols": {"BTC": {"indicators": {"foo": 3}}}}}},
         "modes.flat.symbols.BTC.indicators.foo"),
        ({"globl": {}}, "globl"),
        ({"global": {"engine": {"intervall": "1h"}}}, "global.engine.intervall"),
    ],
)
def test_config_unknown_key_rejected_naming_its_path(doc: dict, path: str) -> None:
    with pytest.raises(StrategyConfigError) as err:
        parse_overrides(doc, source="test.yaml")
    assert f"unknown key {path}" in str(err.value)
    assert str(err.value).startswith("test.yaml:")


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"global": {"trade": {"leverage": True}}}, "global.trade.leverage"),
        ({"global": {"trade": {"leverage": "3"}}}, "global.trade.leverage"),
        ({"global": {"trade": {"leverage": float("nan")}}}, "global.trade.leverage"),
        ({"global": {"indicators": {"adx_window": 0}}}, "global.indicators.adx_window"),
        ({"global": {"indicators": {"adx_window": 2.5}}}, "global.indicators.adx_window"),
        ({"global": {"trade": {"entry_min_confidence": "huge"}}}, "global.trade.entry_min_confidence"),
        ({"global": {"filters": {"enable_ranging_filter": "yes"}}}, "global.filters.enable_ranging_filter"),
        ({"global": {"trade": 3}}, "global.trade"),
    ],
)
def test_config_bad_value_rejected_naming_its_path(doc: dict, path: str) -> None:
    with pytest.raises(StrategyConfigError, match=path.replace(".", r"\.")):
        parse_overrides(doc)


def test_config_unknown_mode_name_rejected() -> None:
    with pytest.raises(StrategyConfigError, match="unknown strategy mode"):
        parse_overrides({"modes": {"turbo": {}}})
    with pytest.raises(StrategyConfigError, match="unknown strategy mode"):
        parse_strategy_mode("turbo")


def test_config_yaml_syntax_error_is_a_config_error() -> None:
    with pytest.raises(StrategyConfigError, match="YAML syntax error"):
        load_yaml_text("global: [1")


LAYERED = {
    "global": {"trade": {"leverage": 2.0, "allocation_pct": 0.01, "sl_atr_mult": 1.5}},
    "symbols": {"eth": {"trade": {"leverage": 4.0, "allocation_pct": 0.02}}},
    "live": {"global": {"trade": {"leverage": 6.0}}, "symbols": {"ETH": {"trade": {"tp_atr_mult": 9.0}}}},
    "modes": {"conservative": {"global": {"trade": {"leverage": 1.5}},
                               "symbols": {"ETH": {"trade": {"allocation_pct": 0.005}}}}},
}


def test_config_merge_order_global_symbol_live_mode() -> None:
    ov = parse_overrides(LAYERED)
    assert ov.resolve(None).trade.leverage == 2.0
    eth = ov.resolve("ETH")
    assert (eth.trade.leverage, eth.trade.allocation_pct, eth.trade.sl_atr_mult) == (4.0, 0.02, 1.5)
    assert eth.symbol == "ETH"
    assert ov.resolve("BTC").trade.leverage == 2.0
    live = ov.resolve("ETH", live=True)
    assert (live.trade.leverage, live.trade.tp_atr_mult, live.trade.allocation_pct) == (6.0, 9.0, 0.02)
    moded = ov.resolve("ETH", live=True, strategy_mode="safe")  # alias of conservative
    assert (moded.trade.leverage, moded.trade.allocation_pct, moded.trade.tp_atr_mult) == (1.5, 0.005, 9.0)
    assert moded.strategy_mode is StrategyMode.CONSERVATIVE
    assert ov.resolve("ETH", strategy_mode="conservative").trade.tp_atr_mult == 4.0  # live layer skipped


def test_config_live_shorthand_applies_as_global() -> None:
    ov = parse_overrides({"live": {"trade": {"leverage": 7.0}},
                          "modes": {"m2": {"filters": {"use_stoch_rsi_filter": False}}}})
    assert ov.resolve("SOL", live=True).trade.leverage == 7.0
    assert ov.resolve("SOL", strategy_mode="fallback").filters.use_stoch_rsi_filter is False


def test_config_live_defaults_fill_only_unset_values() -> None:
    live = parse_overrides({}).resolve("ETH", live=True)
    t = live.trade
    assert (t.max_open_positions, t.max_notional_usd_per_order, t.min_margin_usd) == (1, 15.0, 6.0)
    custom = LiveDefaults(max_open_positions=2, max_notional_usd_per_order=50.0, min_margin_usd=7.0)
    ov = parse_overrides({"global": {"trade": {"max_open_positions": 4}}})
    cfg = ov.resolve("ETH", live=True, live_defaults=custom)
    assert (cfg.trade.max_open_positions, cfg.trade.max_notional_usd_per_order, cfg.trade.min_margin_usd) == (
        4, 50.0, 7.0)
    paper = ov.resolve("ETH")
    assert paper.trade.max_open_positions == 4 and paper.trade.max_notional_usd_per_order is None


@pytest.mark.parametrize("name", ["flat", "FLAT", "halt", "pause", "paused"])
def test_config_flat_mode_blocks_entries(name: str) -> None:
    cfg = parse_overrides({}).resolve("ETH", strategy_mode=name)
    assert cfg.strategy_mode is StrategyMode.FLAT and not cfg.entries_enabled
    assert decide(base_rows(), 300, parse_overrides({}).resolve("ETH"), None).signal is Signal.BUY
    flat = decide(base_rows(), 300, cfg, None)
    assert flat.signal is Signal.NEUTRAL and flat.gates["flat_mode"] is False


def test_config_ave_avg_atr_window_synced_into_entry_thresholds() -> None:
    cfg = parse_overrides({"global": {"indicators": {"ave_avg_atr_window": 3}}}).resolve("ETH")
    assert cfg.thresholds.entry.ave_avg_atr_window == 3
    assert cfg.indicator_params().effective_avg_atr_window == 5  # clamped 5..500


def test_config_indicator_params_follow_windows() -> None:
    cfg = parse_overrides({"global": {"indicators": {"ema_fast_window": 8, "adx_window": 10},
                                      "thresholds": {"entry": {"slow_drift_slope_window": 7}}}}).resolve(None)
    params = cfg.indicator_params()
    assert isinstance(params, IndicatorParams)
    assert (params.ema_fast_window, params.adx_window, params.slow_drift_slope_window) == (8, 10, 7)
    assert default_config().indicator_params() == IndicatorParams()


def test_config_risk_passthrough_is_read_only_and_json_able() -> None:
    cfg = parse_overrides({"global": {"risk": {"max_drawdown_pct": 5, "heat": {"enabled": True}},
                                      "watchlist_exclude": ["doge", "PEPE"]}}).resolve("ETH")
    assert cfg.risk["heat"]["enabled"] is True
    with pytest.raises(TypeError):
        cfg.risk["max_drawdown_pct"] = 6  # type: ignore[index]
    assert cfg.watchlist_exclude == ("DOGE", "PEPE")
    assert json.loads(json.dumps(config_to_dict(cfg)))["trade"]["entry_min_confidence"] == "high"


def test_config_shipped_yaml_loads_and_resolves_every_mode() -> None:
    ov = load_yaml_text((REPO / "config" / "strategy_overrides.yaml").read_text())
    for mode in StrategyMode:
        cfg = ov.resolve("ETH", live=True, strategy_mode=mode)
        assert cfg.entries_enabled is (mode is not StrategyMode.FLAT)
    assert ov.resolve(None).engine.interval == "1h"


def test_config_and_decision_pickle_round_trip() -> None:
    """Configs and decisions cross process boundaries (Ray actors): they must pickle."""
    import pickle

    doc = {"global": {"risk": {"heat": {"enabled": True}}}}
    cfg = parse_overrides(doc).resolve("ETH", strategy_mode="m3")
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and hash(again) == hash(cfg) and again.risk["heat"]["enabled"] is True
    decision = decide(base_rows(), 300, cfg, None)
    assert pickle.loads(pickle.dumps(decision)) == decision
