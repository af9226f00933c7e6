"""The driver's configuration: parsed once, never written back, and one merge for driver and shards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config.env import ConfigError
from engine.config.settings import DaemonSettings
from engine.daemon.config import DriverConfig
from engine.enums import Mode
from engine.marketdata.hub import HubSettings
from engine.sidecar.settings import SidecarSettings
from engine.tick.strategy_manager import StrategyManager
from strategies.config import LiveDefaults, parse_strategy_mode

YAML = """
global:
  engine: {interval: 15m}
  trade: {entry_min_confidence: low, leverage: 3}
symbols:
  ETH: {trade: {leverage: 5}}
live:
  global: {trade: {leverage: 2}}
  symbols:
    SOL: {trade: {leverage: 1}}
modes:
  conservative:
    global: {trade: {entry_min_confidence: high}}
"""


def _yaml(tmp_path: Path) -> Path:
    path = tmp_path / "strategy.yaml"
    path.write_text(YAML)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("mode", [Mode.PAPER, Mode.DRY_LIVE, Mode.LIVE])
@pytest.mark.parametrize("strategy_mode", [None, "conservative"])
def test_driver_and_shard_side_configs_are_the_same_merge(tmp_path, mode, strategy_mode):
    defaults = LiveDefaults(max_open_positions=3, max_notional_usd_per_order=40.0, min_margin_usd=9.0)
    manager = StrategyManager(
        _yaml(tmp_path), run_mode=mode, strategy_mode=parse_strategy_mode(strategy_mode),
        live_defaults=defaults,
    )  # fmt: skip
    source = manager.config_source()  # what the shards get (pickled to Ray workers)
    for symbol in (None, "BTC", "ETH", "SOL"):
        assert source.resolve(symbol) == manager.config(symbol), (mode, symbol)
    if mode is not Mode.PAPER:  # the live defaults reach the shard side too
        assert source.resolve("BTC").trade.max_open_positions == 3
        assert source.resolve("SOL").trade.leverage == 1


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"AI_QUANT_STATE_DIR": str(tmp_path / "state"), "AI_QUANT_STRATEGY_YAML": str(_yaml(tmp_path))}
    env.update(extra)
    return env


def test_a_named_missing_strategy_yaml_is_refused_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"AI_QUANT_STRATEGY_YAML='/missing.yaml': no such file"):
        DriverConfig.from_env(_env(tmp_path, AI_QUANT_STRATEGY_YAML="/missing.yaml"))
    unnamed = _env(tmp_path)
    del unnamed["AI_QUANT_STRATEGY_YAML"]
    assert DriverConfig.from_env(unnamed).mode is Mode.PAPER  # the default path may be absent


def test_config_never_writes_the_environment_and_children_get_to_env(tmp_path):
    env = _env(tmp_path, AI_QUANT_VENUE="simulator", HL_WS_URL="wss://elsewhere/ws")
    before, os_before = dict(env), dict(os.environ)
    config = DriverConfig.from_env(env)
    child = config.to_env(
        interval="15m", symbols=("BTC", "ETH"), venue_url="http://127.0.0.1:9999", redis_url="redis://x:1/0",
        redis_prefix="aiq",
    )  # fmt: skip
    assert env == before and dict(os.environ) == os_before
    assert dict(config.env) != child and "AI_QUANT_SYMBOLS" not in config.env
    with pytest.raises(TypeError):
        config.env["AI_QUANT_MODE"] = "live"  # type: ignore[index]
    assert child["AI_QUANT_INTERVAL"] == "15m" and child["AI_QUANT_SYMBOLS"] == "BTC,ETH"
    assert child["AI_QUANT_HL_BASE_URL"] == "http://127.0.0.1:9999" and "HL_WS_URL" not in child
    assert child["AI_QUANT_REDIS_URL"] == "redis://x:1/0"
    assert child["AI_QUANT_STATE_DIR"] == env["AI_QUANT_STATE_DIR"]
    assert "AI_QUANT_ACCOUNT_ADDRESS" not in child  # paper has no wallet
    sidecar = SidecarSettings.from_env(child)  # the child parses what it was given
    assert sidecar.interval == "15m" and sidecar.symbols == ("BTC", "ETH")


@pytest.mark.parametrize(("name", "value"), [("AI_QUANT_INTERVAL", "7x"), ("AI_QUANT_LOOKBACK_BARS", "10")])
def test_shared_variables_have_one_bound_in_every_reader(name, value):
    for parse in (DaemonSettings.from_env, HubSettings.from_env, SidecarSettings.from_env):
        if name == "AI_QUANT_LOOKBACK_BARS" and parse == HubSettings.from_env:
            continue  # the hub does not read the lookback
        with pytest.raises(ConfigError, match=name):
            parse({name: value})
    for parse in (DaemonSettings.from_env, SidecarSettings.from_env):
        assert parse({"AI_QUANT_LOOKBACK_BARS": "50"}).lookback_bars == 50


# Every variable has one parser now (engine/config/shared.py holds the shared ones).
SHARED_ELSEWHERE: set[str] = set()


def test_each_variable_is_parsed_in_one_module():
    """A variable parsed by two modules can get two defaults or two bounds (as AI_QUANT_LOOKBACK_BARS
    had: 50 in the driver, 1 in the sidecar); shared ones go through engine/config/shared.py."""
    import ast

    root = Path(__file__).resolve().parents[2]
    readers: dict[str, set[str]] = {}
    for package in ("engine", "cluster"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id.startswith("env_") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("AI_QUANT_")
                ):  # fmt: skip
                    readers.setdefault(node.args[0].value, set()).add(str(path.relative_to(root)))
    twice = {name: sorted(files) for name, files in readers.items() if len(files) > 1}
    assert set(twice) <= SHARED_ELSEWHERE, twice
    assert readers["AI_QUANT_INTERVAL"] == {"engine/config/shared.py"}


@pytest.mark.parametrize(
    ("name", "value"),
    [("AI_QUANT_TOP_N", "10001"), ("AI_QUANT_TOP_N", "every"), ("AI_QUANT_CANDLE_CLOSE_GRACE_MS", "-1"),
     ("AI_QUANT_MODE", "x")],
)
def test_driver_and_sidecar_refuse_the_same_values(name, value):
    for parse in (DaemonSettings.from_env, SidecarSettings.from_env):
        with pytest.raises(ConfigError, match=name):
            parse({name: value})


def _is_environ(node: object) -> bool:
    import ast

    return (
        isinstance(node, ast.Attribute) and node.attr == "environ"
        and isinstance(node.value, ast.Name) and node.value.id == "os"
    )  # fmt: skip


def test_nothing_writes_our_variables_into_the_environment():
    """Values are handed on through DriverConfig.to_env(), never by writing os.environ or the env
    mapping the config was parsed from (only Ray's own RAY_* switches are set for Ray)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    writes: list[str] = []
    for package in ("engine", "cluster"):
        for path in (root / package).rglob("*.py"):
            where = str(path.relative_to(root))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                targets = node.targets if isinstance(node, ast.Assign) else []
                for target in targets:
                    if isinstance(target, ast.Subscript) and (
                        _is_environ(target.value)
                        or (where.startswith("engine/daemon/") and "env" in (
                            getattr(target.value, "id", ""), getattr(target.value, "attr", "")
                        ))
                    ):
                        writes.append(f"{where}:{node.lineno}")
                if (
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and _is_environ(node.func.value) and node.func.attr in {"update", "pop", "setdefault"}
                    and not (node.args and str(getattr(node.args[0], "value", "")).startswith("RAY_"))
                ):  # fmt: skip
                    writes.append(f"{where}:{node.lineno}")
    assert writes == []
