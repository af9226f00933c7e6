"""Strategy manager: merge order per mode, hot reload by polling, last good on bad files, interval restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.enums import AlertKind, Mode, ReloadOutcome
from engine.tick.strategy_manager import StrategyManager
from strategies.config import StrategyConfigError
from strategies.enums import StrategyMode

BASE = """
global:
  engine: {interval: 5m}
  trade: {leverage: 2.0, max_open_positions: 8}
symbols:
  ETH:
    trade: {leverage: 4.0}
live:
  trade: {leverage: 1.5}
modes:
  conservative:
    global:
      trade: {allocation_pct: 0.01}
    symbols:
      ETH: {trade: {leverage: 1.0}}
  flat:
    trade: {allocation_pct: 0.0}
"""


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[AlertKind, str, dict]] = []

    def send(self, kind, message, extra=None) -> bool:
        self.sent.append((kind, message, dict(extra or {})))
        return True


_bump = [0]


def _write(path: Path, text: str) -> None:
    """Write and give the file a distinct mtime (as an editor saving later would)."""
    path.write_text(text)
    os.chmod(path, 0o600)
    _bump[0] += 1
    stamp = 1_700_000_000 + _bump[0]
    os.utime(path, (stamp, stamp))


@pytest.fixture
def yaml_path(tmp_path: Path) -> Path:
    path = tmp_path / "strategy_overrides.yaml"
    _write(path, BASE)
    return path


def _manager(path: Path, mode: Mode = Mode.PAPER, strategy_mode=None, alerts=None) -> StrategyManager:
    return StrategyManager(path, run_mode=mode, strategy_mode=strategy_mode, alerts=alerts, interval="1h")


def test_strategy_manager_merges_global_symbol_and_ignores_live_in_paper(yaml_path):
    manager = _manager(yaml_path)
    assert manager.config(None).trade.leverage == 2.0
    assert manager.config("eth").trade.leverage == 4.0
    assert manager.config("BTC").trade.leverage == 2.0
    assert manager.interval == "5m"  # YAML engine.interval wins over the env value


@pytest.mark.parametrize("mode", [Mode.DRY_LIVE, Mode.LIVE])
def test_strategy_manager_live_family_merges_live_overlay(yaml_path, mode):
    manager = _manager(yaml_path, mode)
    assert manager.config("ETH").trade.leverage == 1.5
    assert manager.config("BTC").trade.max_open_positions == 8


def test_strategy_manager_strategy_mode_overlay_applies_last(yaml_path):
    manager = _manager(yaml_path, Mode.LIVE, StrategyMode.CONSERVATIVE)
    assert manager.config("ETH").trade.leverage == 1.0
    assert manager.config("BTC").trade.allocation_pct == 0.01
    manager.set_strategy_mode(StrategyMode.FLAT)
    assert manager.config("BTC").entries_enabled is False


def test_strategy_manager_missing_file_uses_code_defaults(tmp_path):
    manager = _manager(tmp_path / "absent.yaml")
    assert manager.config("BTC").trade.leverage == 3.0 and manager.interval == "1h"
    assert manager.maybe_reload() is ReloadOutcome.UNCHANGED


def test_strategy_manager_bad_file_at_startup_raises(tmp_path):
    path = tmp_path / "s.yaml"
    _write(path, "global: {trade: {leverage: [}")
    with pytest.raises(StrategyConfigError):
        _manager(path)
    _write(path, "global: {trade: {no_such_knob: 1}}")
    with pytest.raises(StrategyConfigError, match="no_such_knob"):
        _manager(path)


def test_strategy_manager_hot_reload_applies_from_next_poll(yaml_path):
    manager = _manager(yaml_path)
    before = manager.snapshot().config_id
    assert manager.maybe_reload() is ReloadOutcome.UNCHANGED
    _write(yaml_path, BASE.replace("leverage: 2.0", "leverage: 2.5"))
    assert manager.config("BTC").trade.leverage == 2.0  # not before the poll
    assert manager.maybe_reload() is ReloadOutcome.RELOADED
    assert manager.config("BTC").trade.leverage == 2.5
    assert manager.snapshot().config_id != before


def test_strategy_manager_touch_without_change_is_unchanged(yaml_path):
    manager = _manager(yaml_path)
    _write(yaml_path, BASE + "\n# a comment\n")
    assert manager.maybe_reload() is ReloadOutcome.UNCHANGED


@pytest.mark.parametrize(
    "broken",
    [
        "global: {trade: {leverage: [}",  # YAML syntax
        "global: {trade: {leverage: lots}}",  # wrong type
        "global: {trade: {no_such_knob: 1}}",  # unknown key
        "modes: {yolo: {trade: {}}}",  # unknown mode
        "- just\n- a list\n",  # root not a mapping
    ],
)
def test_strategy_manager_broken_file_keeps_last_good_and_alerts_once(yaml_path, broken):
    alerts = Alerts()
    manager = _manager(yaml_path, alerts=alerts)
    _write(yaml_path, broken)
    assert manager.maybe_reload() is ReloadOutcome.KEPT_LAST_GOOD
    assert manager.maybe_reload() is ReloadOutcome.KEPT_LAST_GOOD
    assert manager.config("ETH").trade.leverage == 4.0
    assert [kind for kind, _, _ in alerts.sent] == [AlertKind.CONFIG]
    assert manager.last_error is not None
    _write(yaml_path, BASE.replace("leverage: 4.0", "leverage: 4.5"))
    assert manager.maybe_reload() is ReloadOutcome.RELOADED
    assert manager.config("ETH").trade.leverage == 4.5 and manager.last_error is None


def test_strategy_manager_world_writable_file_is_refused(yaml_path):
    alerts = Alerts()
    manager = _manager(yaml_path, alerts=alerts)
    _write(yaml_path, BASE.replace("leverage: 2.0", "leverage: 9.0"))
    os.chmod(yaml_path, 0o666)
    assert manager.maybe_reload() is ReloadOutcome.KEPT_LAST_GOOD
    assert manager.config("BTC").trade.leverage == 2.0
    os.chmod(yaml_path, 0o600)
    assert manager.maybe_reload() is ReloadOutcome.RELOADED
    assert manager.config("BTC").trade.leverage == 9.0


def test_strategy_manager_symlink_is_refused(tmp_path, yaml_path):
    link = tmp_path / "link.yaml"
    link.symlink_to(yaml_path)
    with pytest.raises(StrategyConfigError, match="symlink"):
        _manager(link)


def test_strategy_manager_vanished_file_keeps_last_good(yaml_path):
    alerts = Alerts()
    manager = _manager(yaml_path, alerts=alerts)
    yaml_path.unlink()
    assert manager.maybe_reload() is ReloadOutcome.KEPT_LAST_GOOD
    assert manager.maybe_reload() is ReloadOutcome.KEPT_LAST_GOOD
    assert manager.config("ETH").trade.leverage == 4.0 and len(alerts.sent) == 1


def test_strategy_manager_interval_change_requires_restart(yaml_path):
    alerts = Alerts()
    manager = _manager(yaml_path, alerts=alerts)
    _write(yaml_path, BASE.replace("interval: 5m", "interval: 15m").replace("leverage: 2.0", "leverage: 2.2"))
    assert manager.maybe_reload() is ReloadOutcome.RESTART_REQUIRED
    assert manager.interval == "5m" and manager.restart_required
    assert manager.config("BTC").trade.leverage == 2.2  # the rest still applies
    assert alerts.sent[0][2] == {"running": "5m", "configured": "15m"}


def test_strategy_manager_engine_knob_change_requires_restart(yaml_path):
    """engine.* other than interval is applied at start (engine.tick.engine_knobs): a reload that
    changes it says restart required instead of pretending it applied."""
    alerts = Alerts()
    manager = _manager(yaml_path, alerts=alerts)
    _write(yaml_path, BASE.replace("interval: 5m", "interval: 5m, heartbeat_every_s: 60"))
    assert manager.maybe_reload() is ReloadOutcome.RESTART_REQUIRED
    assert manager.restart_required and alerts.sent[0][0] is AlertKind.CONFIG
    assert manager.config(None).engine.heartbeat_every_s == 60.0
