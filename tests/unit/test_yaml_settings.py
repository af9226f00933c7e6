"""Every YAML setting either works or is refused: the engine.* fold into AI_QUANT_*, the cadence
refusals, the regime gates, watchlist_exclude, the heartbeat, the inert keys, and a check that the
shipped YAML (and the whole schema) holds nothing the code does not read."""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path

import pytest
import yaml

from engine.config.env import ConfigError
from engine.config.settings import DaemonSettings
from engine.enums import Mode
from engine.marketdata.hub import HubSettings
from engine.sidecar.settings import SidecarSettings
from engine.tick.engine_knobs import _ENV_OF, engine_env_updates
from engine.tick.heartbeat import Heartbeat, HeartbeatFacts, heartbeat_line
from engine.tick.regime import (
    BreadthReason,
    RegimeInputs,
    RegimeReason,
    RegimeTracker,
    auto_reverse_active,
    breadth_filter,
    regime_gate,
)
from engine.tick.strategy_manager import StrategyManager
from engine.tick.watchlist import apply_watchlist_exclude
from strategies.config import (
    INERT_TRADE_KEYS,
    EngineConfig,
    MarketRegimeConfig,
    StrategyConfig,
    StrategyConfigError,
    load_yaml_text,
    parse_overrides,
)
from strategies.enums import Signal

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "strategy_overrides.yaml"


# ------------------------------------------------------------------ engine.* -> AI_QUANT_*
def test_engine_yaml_signal_on_candle_close_false_reaches_the_hub() -> None:
    cfg = EngineConfig(signal_on_candle_close=False)
    env = engine_env_updates(cfg, {}, interval="1h", source="s.yaml")
    assert env == {"AI_QUANT_SIGNAL_ON_CANDLE_CLOSE": "0"}
    assert HubSettings.from_env(env).signal_on_candle_close is False
    assert DaemonSettings.from_env(env).signal_on_candle_close is False


def test_engine_yaml_grace_heartbeat_loop_reach_their_consumers() -> None:
    cfg = EngineConfig(candle_close_grace_ms=750, heartbeat_every_s=12.5, loop_target_s=2.0)
    env = engine_env_updates(cfg, {}, interval="1h", source="s.yaml")
    assert SidecarSettings.from_env({**env, "AI_QUANT_SYMBOLS": "ETH"}).close_grace_ms == 750
    settings = DaemonSettings.from_env(env)
    assert (settings.heartbeat_secs, settings.loop_target_secs) == (12.5, 2.0)


def test_engine_yaml_unset_leaves_env_alone() -> None:
    env = {"AI_QUANT_HEARTBEAT_SECS": "9"}
    assert engine_env_updates(EngineConfig(), env, interval="1h", source="s") == {}


def test_engine_yaml_same_value_as_env_is_accepted() -> None:
    env = {"AI_QUANT_SIGNAL_ON_CANDLE_CLOSE": "true", "AI_QUANT_CANDLE_CLOSE_GRACE_MS": "2000"}
    cfg = EngineConfig(signal_on_candle_close=True, candle_close_grace_ms=2000)
    assert engine_env_updates(cfg, env, interval="1h", source="s")["AI_QUANT_CANDLE_CLOSE_GRACE_MS"] == "2000"


@pytest.mark.parametrize(
    ("cfg", "env", "named"),
    [
        (EngineConfig(signal_on_candle_close=True), {"AI_QUANT_SIGNAL_ON_CANDLE_CLOSE": "0"},
         "AI_QUANT_SIGNAL_ON_CANDLE_CLOSE"),
        (EngineConfig(heartbeat_every_s=30), {"AI_QUANT_HEARTBEAT_SECS": "60"}, "AI_QUANT_HEARTBEAT_SECS"),
        (EngineConfig(loop_target_s=0.0), {}, "engine.loop_target_s"),
        (EngineConfig(candle_close_grace_ms=-1), {}, "engine.candle_close_grace_ms"),
        (EngineConfig(entry_interval="3m"), {}, "engine.entry_interval"),
        (EngineConfig(entry_interval="soon"), {}, "engine.entry_interval"),
        (EngineConfig(exit_interval="1m"), {}, "engine.exit_interval"),
    ],
)  # fmt: skip
def test_engine_yaml_conflict_or_unsupported_value_refused_naming_it(cfg, env, named) -> None:
    with pytest.raises(ConfigError) as err:
        engine_env_updates(cfg, env, interval="1h", source="my.yaml")
    assert named in str(err.value) and "my.yaml" in str(err.value)


def test_engine_yaml_cadence_matching_the_engine_accepted() -> None:
    cfg = EngineConfig(entry_interval="1h", exit_interval="MID")
    assert engine_env_updates(cfg, {}, interval="1h", source="s") == {}


# ------------------------------------------------------------------ market_regime
BAND = MarketRegimeConfig(enable_regime_gate=True)


@pytest.mark.parametrize(
    ("inputs", "on", "reason"),
    [
        (RegimeInputs(None, 30.0, 0.01), False, RegimeReason.BREADTH_MISSING),
        (RegimeInputs(50.0, 30.0, 0.01), False, RegimeReason.BREADTH_CHOP),
        (RegimeInputs(90.0, None, 0.01), False, RegimeReason.BTC_METRICS_MISSING),
        (RegimeInputs(90.0, 15.0, 0.01), False, RegimeReason.BTC_ADX_LOW),
        (RegimeInputs(10.0, 30.0, 0.001), False, RegimeReason.BTC_ATR_LOW),
        (RegimeInputs(90.0, 30.0, 0.01), True, RegimeReason.TREND_OK),
        (RegimeInputs(5.0, 30.0, 0.01), True, RegimeReason.TREND_OK),
    ],
)
def test_regime_gate_each_reason(inputs, on, reason) -> None:
    assert regime_gate(BAND, inputs) == (on, reason)


def test_regime_gate_disabled_and_fail_open() -> None:
    assert regime_gate(MarketRegimeConfig(), RegimeInputs()) == (True, RegimeReason.DISABLED)
    fail_open = MarketRegimeConfig(enable_regime_gate=True, regime_gate_fail_open=True)
    assert regime_gate(fail_open, RegimeInputs()) == (True, RegimeReason.BREADTH_MISSING)
    assert regime_gate(fail_open, RegimeInputs(95.0)) == (True, RegimeReason.BTC_METRICS_MISSING)


def test_breadth_filter_blocks_against_the_market_only() -> None:
    on = MarketRegimeConfig(enable_regime_filter=True)
    assert breadth_filter(on, Signal.SELL, 95.0) == (False, BreadthReason.SHORT_BLOCKED)
    assert breadth_filter(on, Signal.BUY, 95.0) == (True, BreadthReason.OK)
    assert breadth_filter(on, Signal.BUY, 5.0) == (False, BreadthReason.LONG_BLOCKED)
    assert breadth_filter(on, Signal.SELL, 5.0) == (True, BreadthReason.OK)
    assert breadth_filter(on, Signal.BUY, None) == (False, BreadthReason.BREADTH_MISSING)
    assert breadth_filter(MarketRegimeConfig(), Signal.BUY, 5.0) == (True, BreadthReason.DISABLED)


def test_auto_reverse_band() -> None:
    cfg = MarketRegimeConfig(
        enable_auto_reverse=True, auto_reverse_breadth_low=30, auto_reverse_breadth_high=70
    )
    assert [auto_reverse_active(cfg, b) for b in (None, 20.0, 30.0, 50.0, 70.0, 80.0)] == [
        False, False, True, True, True, False,
    ]  # fmt: skip
    assert auto_reverse_active(MarketRegimeConfig(), 50.0) is False


def test_regime_tracker_breadth_over_the_watchlist_and_btc_metrics() -> None:
    tracker = RegimeTracker()
    tracker.observe("ETH", {"EMA_fast": 11.0, "EMA_slow": 10.0})
    tracker.observe("SOL", {"EMA_fast": 9.0, "EMA_slow": 10.0})
    tracker.observe("DOGE", {"EMA_fast": 2.0, "EMA_slow": 1.0})
    tracker.observe("BTC", {"EMA_fast": 101.0, "EMA_slow": 100.0, "ADX": 30.0, "ATR": 1.0, "Close": 100.0})
    tracker.observe("XRP", {})  # no snapshot: unknown, not counted
    view = tracker.view(BAND, ["ETH", "SOL", "BTC", "XRP"])
    assert view.inputs == RegimeInputs(200.0 / 3.0, 30.0, 0.01)
    assert (view.gate_on, view.gate_reason) == (False, RegimeReason.BREADTH_CHOP)  # 66.7% is inside 20..80


# ------------------------------------------------------------------ watchlist_exclude, heartbeat
def test_watchlist_exclude_any_case_keeps_order() -> None:
    assert apply_watchlist_exclude(["btc", "ETH", "doge", "SOL", "eth"], ["DOGE", " sol "]) == ("BTC", "ETH")


def test_heartbeat_due_once_per_period() -> None:
    beat = Heartbeat(30.0)
    due = [t for t in range(0, 100_001, 5_000) if beat.due(t)]
    assert due == [0, 30_000, 60_000, 90_000]
    assert not any(Heartbeat(0.0).due(t) for t in (0, 10**9))


def test_heartbeat_line_tokens() -> None:
    view = RegimeTracker().view(BAND, ["ETH"])
    line = heartbeat_line(HeartbeatFacts(ticks=3, errors=1, symbols=2, open_positions=1, equity_usd=10.0,
                                         loop_ms=1500.0, regime=view, config_id="abc"))  # fmt: skip
    assert line.startswith("engine ok.")
    tokens = dict(t.split("=", 1) for t in line.split() if "=" in t)
    assert tokens["regime_gate"] == "off" and tokens["regime_reason"] == "breadth_missing"
    assert (tokens["loops"], tokens["errors"], tokens["open_pos"]) == ("3", "1", "1")
    assert tokens["breadth"] == "n/a" and tokens["auto_rev"] == "OFF"


# ------------------------------------------------------------------ loader: refusals
@pytest.mark.parametrize("key", ["market_regime", "watchlist_exclude", "engine", "risk"])
def test_global_only_keys_refused_in_a_symbol_layer(key) -> None:
    value = [] if key == "watchlist_exclude" else {}
    with pytest.raises(StrategyConfigError, match=rf"unknown key symbols\.ETH\.{key}"):
        parse_overrides({"symbols": {"ETH": {key: value}}}, "f.yaml")


@pytest.mark.parametrize("key", sorted(INERT_TRADE_KEYS))
def test_inert_trade_key_refused_unless_default(key) -> None:
    default = getattr(StrategyConfig().trade, key)
    parse_overrides({"global": {"trade": {key: default}}})
    with pytest.raises(StrategyConfigError, match=rf"global\.trade\.{key}"):
        parse_overrides({"global": {"trade": {key: default + 1.0}}})


def test_unknown_key_in_user_yaml_refused_naming_key_and_file(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("global:\n  trade:\n    use_bbo_for_fill: false\n")
    os.chmod(path, 0o600)
    with pytest.raises(StrategyConfigError) as err:
        StrategyManager(path, run_mode=Mode.PAPER)
    assert str(path) in str(err.value) and "global.trade.use_bbo_for_fill" in str(err.value)


# ------------------------------------------------------------------ nothing read and ignored
_SOURCES = ("engine", "cluster", "strategies")
_SCHEMA_FILES = {REPO / "strategies" / "config.py", REPO / "strategies" / "config_convert.py"}


def _code() -> str:
    files = [p for d in _SOURCES for p in (REPO / d).rglob("*.py") if p not in _SCHEMA_FILES]
    return "\n".join(p.read_text() for p in files)


def _consumed(path: tuple[str, ...], code: str) -> bool:
    """Read as an attribute somewhere outside the schema, or folded into AI_QUANT_* by engine_knobs,
    or refused unless at its default (INERT_TRADE_KEYS)."""
    leaf = path[-1]
    if path[0] == "engine" and leaf in _ENV_OF:
        return True
    if path[0] == "trade" and leaf in INERT_TRADE_KEYS:
        return True
    return re.search(rf"\.{re.escape(leaf)}\b", code) is not None


def _schema_paths(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, ...]] = []
    for f in dataclasses.fields(cls):
        if f.name in ("symbol", "strategy_mode"):
            continue  # set by the resolver, not YAML keys
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _schema_paths(tp, (*prefix, f.name))  # type: ignore[arg-type]
        else:
            out.append((*prefix, f.name))
    return out


def _leaf_paths(doc: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(doc, dict) and doc:
        return [p for k, v in doc.items() for p in _leaf_paths(v, (*prefix, str(k)))]
    return [prefix]


def _section_paths(doc: dict) -> list[tuple[str, ...]]:
    """Every key path of a section tree, from each layer of the overrides document."""
    layers: list[dict] = [doc.get("global") or {}, *(doc.get("symbols") or {}).values()]
    for block in [doc.get("live") or {}, *(doc.get("modes") or {}).values()]:
        block = block or {}
        if set(block) <= {"global", "symbols"}:
            layers += [block.get("global") or {}, *(block.get("symbols") or {}).values()]
        else:
            layers.append(block)
    return [p for layer in layers for p in _leaf_paths(layer) if p]


def test_shipped_yaml_every_key_is_consumed() -> None:
    doc = yaml.safe_load(SHIPPED.read_text())
    load_yaml_text(SHIPPED.read_text(), str(SHIPPED))  # and it is valid
    code = _code()
    paths = _section_paths(doc)
    assert ("engine", "interval") in paths and ("trade", "entry_min_confidence") in paths
    unread = [".".join(p) for p in paths if p[0] != "risk" and not _consumed(p, code)]
    assert unread == []


def test_every_schema_field_is_consumed() -> None:
    """A new field added to the schema without code that reads it (or a refusal) fails here."""
    code = _code()
    unread = [".".join(p) for p in _schema_paths(StrategyConfig) if not _consumed(p, code)]
    assert unread == []
