"""The strategy registry: built-ins, user modules outside the package, entry points, typed errors.

User strategies are real modules written to a temporary directory on sys.path, written only
against the documented interface (`strategies.sdk`), the way a trader would ship one.
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strategies.__main__ import main
from strategies.sdk.builtin import BUILTINS
from strategies.sdk.builtin.breakout import DonchianBreakout
from strategies.sdk.enums import StrategyOrigin
from strategies.sdk.errors import (
    StrategyConfigError,
    StrategyLoadError,
    StrategyNotFoundError,
    StrategyParamError,
)
from strategies.sdk.parity import strategy_parity
from strategies.sdk.registry import StrategyRegistry
from tests.unit.sdk_data import CANDLE_FILES, load_candles

USER_STRATEGY = '''
from dataclasses import dataclass

from strategies.enums import Confidence, Signal
from strategies.sdk import (DecisionContext, Ema, ExitRules, Atr, Strategy, StrategyDecision,
                            StrategyParams, NEUTRAL, param)


@dataclass(frozen=True, kw_only=True, slots=True)
class CrossParams(StrategyParams):
    fast: int = param(9, lo=2, hi=200, doc="fast EMA, bars")
    slow: int = param(21, lo=3, hi=500, doc="slow EMA, bars")


class EmaCross(Strategy[CrossParams]):
    NAME = "ema_cross"
    PARAMS = CrossParams
    LOOKBACK_ROWS = 2

    def indicators(self):
        return (Ema(name="fast", window=self.params.fast), Ema(name="slow", window=self.params.slow),
                Atr(name="atr"))

    def warmup_bars(self):
        return self.params.slow + 1

    def decide(self, rows, ctx: DecisionContext):
        prev, cur = rows[-2], rows[-1]
        if prev["fast"] <= prev["slow"] and cur["fast"] > cur["slow"]:
            return StrategyDecision(Signal.BUY, Confidence.MEDIUM, 1.0, "cross_up")
        if prev["fast"] >= prev["slow"] and cur["fast"] < cur["slow"]:
            return StrategyDecision(Signal.SELL, Confidence.MEDIUM, 1.0, "cross_down")
        return NEUTRAL

    def exit_rules(self):
        return ExitRules(atr_column="atr", stop_loss_atr=2.0)


class NotAStrategy:
    pass


class BadDefaults(EmaCross):
    def exit_rules(self):
        return ExitRules(atr_column="nope", stop_loss_atr=2.0)
'''


FRAGILE = """
from {package}.cross import EmaCross


class Fragile(EmaCross):
    def warmup_bars(self):
        if self.params.fast == 7:
            raise ZeroDivisionError("seven")
        return super().warmup_bars()
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Write a user strategy package outside the project and put it on sys.path; yield its module name."""
    name = f"user_strats_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "cross.py").write_text(textwrap.dedent(USER_STRATEGY))
    (tmp_path / name / "broken.py").write_text("import numpy\nraise RuntimeError('half-written strategy')\n")
    (tmp_path / name / "typo.py").write_text("def oops(:\n")
    (tmp_path / name / "fragile.py").write_text(FRAGILE.format(package=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for mod in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[mod]


class FakeEntryPoint:
    """What importlib.metadata gives for an `ai_quant.strategies` entry point."""

    def __init__(self, name: str, value: str, target: Any = None, error: Exception | None = None) -> None:
        self.name, self.value, self._target, self._error = name, value, target, error

    def load(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._target


def test_registry_resolves_builtins_by_name() -> None:
    registry = StrategyRegistry(BUILTINS)
    assert registry.names() == ("donchian_breakout", "mei_alpha_v1", "rsi_bollinger_reversion")
    assert registry.resolve("donchian_breakout") is DonchianBreakout
    assert registry.resolve(" donchian_breakout ") is DonchianBreakout


@pytest.mark.parametrize("ref", ["mei_alpha_v2", "", "   "])
def test_registry_unknown_name_is_a_config_error_listing_names(ref: str) -> None:
    with pytest.raises(StrategyNotFoundError) as info:
        StrategyRegistry(BUILTINS).resolve(ref)
    assert info.value.exit_code == 2
    assert "donchian_breakout" in str(info.value) and "module:ClassName" in str(info.value)


def test_registry_loads_a_user_strategy_by_module_path(user_module: str) -> None:
    registry = StrategyRegistry(BUILTINS)
    cls = registry.resolve(f"{user_module}.cross:EmaCross")
    assert cls.NAME == "ema_cross"
    strategy = registry.configure(f"{user_module}.cross:EmaCross", [{"fast": 5}, {"slow": 30}], symbol="ETH")
    assert (strategy.params.fast, strategy.params.slow) == (5, 30)
    report = strategy_parity(strategy, load_candles(CANDLE_FILES[0]), "ADA")
    assert report.ok and report.signals > 10 and report.column_mismatches == 0


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{m}.broken:Anything", "import failed: RuntimeError: half-written strategy"),
        ("{m}.typo:Anything", "import failed: SyntaxError"),
        ("{m}.missing:Anything", "import failed: ModuleNotFoundError"),
        ("{m}.cross:Nope", "has no attribute 'Nope'"),
        ("{m}.cross:NotAStrategy", "not a Strategy subclass"),
        ("{m}.cross:BadDefaults", "default parameters do not validate"),
        (":{m}", "expected 'package.module:ClassName'"),
        ("{m}.cross:", "expected 'package.module:ClassName'"),
    ],
)
def test_registry_user_module_failures_say_why(user_module: str, template: str, reason: str) -> None:
    with pytest.raises(StrategyLoadError) as info:
        StrategyRegistry(BUILTINS).resolve(template.format(m=user_module))
    assert reason in str(info.value) and info.value.exit_code == 2


def test_registry_bad_user_param_names_strategy_symbol_field(user_module: str) -> None:
    with pytest.raises(StrategyParamError) as info:
        StrategyRegistry(BUILTINS).configure(f"{user_module}.cross:EmaCross", [{"fast": 1}], symbol="SOL")
    assert (info.value.strategy, info.value.symbol, info.value.field) == ("ema_cross", "SOL", "fast")


def test_registry_entry_points_are_listed_and_loaded(user_module: str) -> None:
    __import__(f"{user_module}.cross")
    cls = sys.modules[f"{user_module}.cross"].EmaCross
    eps = [FakeEntryPoint("ema_cross", f"{user_module}.cross:EmaCross", cls),
           FakeEntryPoint("broken", "x.y:Z", error=ImportError("no module x")),
           FakeEntryPoint("misnamed", "x.y:Z", cls)]
    registry = StrategyRegistry(BUILTINS, eps)
    assert [(e.name, e.origin) for e in registry.entries()][len(BUILTINS):] == [
        ("broken", StrategyOrigin.ENTRY_POINT), ("ema_cross", StrategyOrigin.ENTRY_POINT),
        ("misnamed", StrategyOrigin.ENTRY_POINT)]
    assert registry.resolve("ema_cross") is cls
    with pytest.raises(StrategyLoadError, match="failed to load: ImportError: no module x"):
        registry.resolve("broken")
    with pytest.raises(StrategyLoadError, match="differs from the class NAME"):
        registry.resolve("misnamed")


def test_registry_entry_point_shadowing_a_builtin_is_refused() -> None:
    with pytest.raises(StrategyConfigError, match="shadows"):
        StrategyRegistry(BUILTINS, [FakeEntryPoint("donchian_breakout", "x:Y")])


def test_registry_builtin_key_must_match_name() -> None:
    with pytest.raises(StrategyConfigError, match="differs from its NAME"):
        StrategyRegistry({"breakout": DonchianBreakout})


def test_cli_list_json_prints_the_registered_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["strategies"]
    names = [s["name"] for s in listed]
    assert {"donchian_breakout", "mei_alpha_v1", "rsi_bollinger_reversion"} <= set(names)
    assert listed[0] == {"name": "donchian_breakout", "origin": "builtin",
                         "ref": "strategies.sdk.builtin.breakout:DonchianBreakout"}
    assert main(["list"]) == 0
    assert capsys.readouterr().out.split() == names


def test_builtin_strategies_build_with_defaults() -> None:
    for name, cls in BUILTINS.items():
        strategy = cls.configure()
        assert strategy.NAME == name and strategy.SUMMARY


def test_registry_configure_wraps_a_user_crash_while_building(user_module: str) -> None:
    registry = StrategyRegistry(BUILTINS)
    assert registry.configure(f"{user_module}.fragile:Fragile", [{"fast": 8}]).warmup == 22
    with pytest.raises(StrategyLoadError, match="building it for ETH raised ZeroDivisionError: seven"):
        registry.configure(f"{user_module}.fragile:Fragile", [{"fast": 7}], symbol="ETH")


def test_cli_describe_prints_schema_indicators_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "donchian_breakout"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "donchian_breakout" and info["array_form"] is True
    assert info["params"][0] == {"name": "channel_bars", "type": "int", "default": 20, "lo": 2, "hi": 1000,
                                 "choices": [], "doc": "entry channel length (bars before the breakout bar)"}
    assert info["columns"] == ["dc_high", "dc_low", "dc_exit_high", "dc_exit_low", "atr", "vol_sma"]
    assert (info["lookback_rows"], info["warmup_bars"]) == (2, 21)
    assert info["exit_rules"]["stop_loss_atr"] == 2.0


def test_cli_describe_a_user_module_path(user_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", f"{user_module}.cross:EmaCross"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "ema_cross" and info["array_form"] is False and info["warmup_bars"] == 22


@pytest.mark.parametrize("ref", ["nope", "no_such_pkg.mod:Cls"])
def test_cli_describe_bad_reference_exits_2_with_the_reason(
    ref: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["describe", ref]) == 2
    err = capsys.readouterr().err
    assert err.startswith("strategies: ") and ref in err
