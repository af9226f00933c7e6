"""engine.risk.limits: defaults, YAML `global.risk`, non-empty env overrides, loud refusal of bad keys."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from engine.config.env import ConfigError
from engine.risk.limits import ENV_NAMES, RiskLimits


def test_limits_defaults_match_issue() -> None:
    limits = RiskLimits.from_sources({}, {})
    assert limits == RiskLimits()
    assert limits.max_entry_orders_per_min == 30
    assert limits.max_exit_orders_per_min == 120
    assert limits.max_entry_orders_per_min_per_symbol == 6
    assert limits.max_cancels_per_min == 120
    assert limits.max_drawdown_pct == 0.0 and limits.slippage_guard_enabled is False


def test_limits_yaml_then_env_override() -> None:
    risk = {
        "max_drawdown_pct": 5,
        "max_daily_loss_usd": 250.5,
        "slippage_guard": {"enabled": True, "window_fills": 10, "max_median_bps": 8},
        "max_open_positions": 4,
    }
    env = {"AI_QUANT_RISK_MAX_DRAWDOWN_PCT": "7.5", "AI_QUANT_RISK_MAX_OPEN_POSITIONS": "  "}
    limits = RiskLimits.from_sources(risk, env)
    assert limits.max_drawdown_pct == 7.5  # env wins
    assert limits.max_open_positions == 4  # empty env ignored
    assert limits.max_daily_loss_usd == 250.5
    assert (limits.slippage_guard_enabled, limits.slippage_guard_window_fills) == (True, 10)
    assert limits.slippage_guard_max_median_bps == 8.0


def test_limits_env_sets_rate_limits_and_bools() -> None:
    env = {
        "AI_QUANT_RISK_MAX_ENTRY_ORDERS_PER_MIN": "10",
        "AI_QUANT_RISK_MAX_CANCELS_PER_MIN": "50",
        "AI_QUANT_RISK_SLIPPAGE_GUARD_ENABLED": "yes",
    }
    limits = RiskLimits.from_sources(None, env)
    assert limits.max_entry_orders_per_min == 10
    assert limits.max_cancels_per_min == 50
    assert limits.slippage_guard_enabled is True


@pytest.mark.parametrize(
    ("risk", "needle"),
    [
        ({"max_drawdwn_pct": 5}, "risk.max_drawdwn_pct"),
        ({"heat": {"enabled": True}}, "risk.heat.enabled"),
        ({"slippage_guard": {"enabld": True}}, "risk.slippage_guard.enabld"),
        ({"max_drawdown_pct": "5"}, "risk.max_drawdown_pct"),
        ({"max_drawdown_pct": True}, "risk.max_drawdown_pct"),
        ({"max_drawdown_pct": 150}, "risk.max_drawdown_pct"),
        ({"max_daily_loss_usd": -1}, "risk.max_daily_loss_usd"),
        ({"max_daily_loss_usd": float("nan")}, "risk.max_daily_loss_usd"),
        ({"max_entry_orders_per_min": 0}, "risk.max_entry_orders_per_min"),
        ({"max_open_positions": 2.5}, "risk.max_open_positions"),
        ({"slippage_guard": {"enabled": 1}}, "risk.slippage_guard.enabled"),
    ],
)
def test_limits_bad_yaml_names_the_key(risk: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        RiskLimits.from_sources(risk, {})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AI_QUANT_RISK_MAX_ENTRY_ORDERS_PER_MIN", "many"),
        ("AI_QUANT_RISK_MAX_ENTRY_ORDERS_PER_MIN", "0"),
        ("AI_QUANT_RISK_MAX_DRAWDOWN_PCT", "inf"),
        ("AI_QUANT_RISK_SLIPPAGE_GUARD_ENABLED", "perhaps"),
    ],
)
def test_limits_bad_env_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        RiskLimits.from_sources({}, {name: value})


@pytest.mark.parametrize("field_name", [f.name for f in fields(RiskLimits)])
def test_limits_every_field_has_an_env_variable_listed_in_env_example(field_name: str) -> None:
    env_name = next(name for name in ENV_NAMES if name.endswith(field_name.upper()))
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    assert env_name in example
