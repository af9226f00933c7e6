"""Promoted config: newest run per role, bounded then full scan, merge over base, clear fallbacks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from engine.config.env import ConfigError
from engine.enums import Mode
from engine.tick.promoted_config import apply_promoted_config, find_promoted_config, parse_role
from engine.tick.strategy_manager import StrategyManager
from strategies.enums import StrategyMode


def _promote(
    artifacts: Path, date: str, run: str, role: str, text: str = "global: {trade: {leverage: 7.0}}\n"
):
    path = artifacts / date / run / "promoted_configs" / f"{role}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_find_promoted_config_picks_newest_date_then_run(tmp_path):
    _promote(tmp_path, "2026-11-20", "run_010", "primary")
    _promote(tmp_path, "2026-11-24", "run_001", "primary")
    newest = _promote(tmp_path, "2026-11-24", "run_002", "primary")
    _promote(tmp_path, "2026-11-25", "run_001", "fallback")  # other role
    (tmp_path / "2026-11-26" / "run_001").mkdir(parents=True)  # run without promoted configs
    (tmp_path / "notes").mkdir()
    assert find_promoted_config(tmp_path, StrategyMode.PRIMARY) == newest


def test_find_promoted_config_full_scan_after_bounded_miss(tmp_path):
    old = _promote(tmp_path, "2026-01-01", "run_001", "conservative")
    for day in range(2, 6):
        (tmp_path / f"2026-01-0{day}" / "run_001").mkdir(parents=True)
    assert find_promoted_config(tmp_path, StrategyMode.CONSERVATIVE, max_date_dirs=2) == old
    assert find_promoted_config(tmp_path / "missing", StrategyMode.CONSERVATIVE) is None


@pytest.mark.parametrize(
    ("raw", "role"), [(None, None), ("Primary", StrategyMode.PRIMARY), ("fallback", StrategyMode.FALLBACK)]
)
def test_parse_role(raw, role):
    env = {} if raw is None else {"AI_QUANT_PROMOTED_ROLE": raw}
    assert parse_role(env) is role


@pytest.mark.parametrize("raw", ["flat", "best"])
def test_parse_role_invalid_is_config_error(raw):
    with pytest.raises(ConfigError, match="AI_QUANT_PROMOTED_ROLE"):
        parse_role({"AI_QUANT_PROMOTED_ROLE": raw})


def test_apply_promoted_config_merges_over_base_and_manager_loads_it(tmp_path):
    base = tmp_path / "config" / "strategy_overrides.yaml"
    base.parent.mkdir()
    base.write_text("global: {trade: {leverage: 2.0, allocation_pct: 0.05}}\nmodes: {flat: {trade: {}}}\n")
    os.chmod(base, 0o600)
    source = _promote(tmp_path / "artifacts", "2026-11-24", "run_001", "primary")
    env = {
        "AI_QUANT_STRATEGY_YAML": str(base),
        "AI_QUANT_PROMOTED_ROLE": "primary",
        "AI_QUANT_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    result = apply_promoted_config(env)
    assert not result.fell_back and result.source == source and result.role is StrategyMode.PRIMARY
    assert result.strategy_yaml == base.with_name("strategy_overrides._promoted_primary.yaml")
    text = result.strategy_yaml.read_text()
    assert text.startswith("# AUTO-GENERATED") and "Do not edit" in text
    assert yaml.safe_load(text) == {
        "global": {"trade": {"leverage": 7.0, "allocation_pct": 0.05}},
        "modes": {"flat": {"trade": {}}},
    }
    assert stat.S_IMODE(result.strategy_yaml.stat().st_mode) == 0o600
    manager = StrategyManager(result.strategy_yaml, run_mode=Mode.PAPER)
    assert manager.config("BTC").trade.leverage == 7.0


@pytest.mark.parametrize(
    ("promoted", "reason"),
    [(None, "no promoted file"), ("", "empty promoted file"), (": [", "unreadable promoted file")],
)
def test_apply_promoted_config_falls_back_to_base(tmp_path, promoted, reason):
    base = tmp_path / "strategy_overrides.yaml"
    if promoted is not None:
        _promote(tmp_path / "artifacts", "2026-11-24", "run_001", "fallback", promoted)
    env = {
        "AI_QUANT_STRATEGY_YAML": str(base),
        "AI_QUANT_PROMOTED_ROLE": "fallback",
        "AI_QUANT_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    result = apply_promoted_config(env)
    assert result.fell_back and result.strategy_yaml == base and result.reason == reason


def test_apply_promoted_config_without_role_uses_base():
    result = apply_promoted_config({})
    assert result.role is None and not result.fell_back
    assert result.strategy_yaml == Path("config/strategy_overrides.yaml")
