"""The YAML's `strategies:` block (strategies.sdk.plan): defaults, per-symbol primaries, parameter
layers, shadows and grids, exit rules for the engine, and every refusal naming path/strategy/symbol/field."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from engine.enums import AlertKind, ReloadOutcome
from strategies.config import StrategyConfigError, load_yaml_text
from strategies.sdk.plan import MEI, StrategyPlan
from tests.unit.test_strategy_manager import Alerts, _manager, _write

USER_DIR = Path(__file__).resolve().parents[1] / "data" / "user_strategy"
USER = "my_strategies.ema_cross:EmaCross"

FULL = f"""
global:
  trade: {{sl_atr_mult: 3.0}}
strategies:
  primary: donchian_breakout
  params:
    donchian_breakout: {{channel_bars: 30, stop_loss_atr: 1.5}}
  symbols:
    ETH:
      primary: {USER}
      params: {{"{USER}": {{fast: 5}}, donchian_breakout: {{channel_bars: 40}}}}
    BTC: {{primary: mei_alpha_v1}}
  shadows:
    - {{name: dc_fast, strategy: donchian_breakout, params: {{channel_bars: 10}}, symbols: [eth, sol]}}
    - name: rr
      strategy: rsi_bollinger_reversion
      params: {{rsi_oversold: 25}}
      grid: {{stop_loss_atr: {{from: 1.0, to: 2.0, step: 0.5}}}}
    - {{name: mei_twin, strategy: mei_alpha_v1}}
"""


@pytest.fixture(autouse=True)
def _user_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(USER_DIR))


def test_no_block_is_mei_everywhere_and_the_legacy_fast_path() -> None:
    plan = load_yaml_text("global: {trade: {leverage: 2.0}}").plan
    assert plan == StrategyPlan() and plan.is_default
    assert plan.primary_ref("ETH") == MEI and plan.build_primary("ETH") is None
    assert plan.shadows_for("ETH") == () and plan.primary_rules("ETH") is None


def test_primaries_layers_shadows_and_rules() -> None:
    plan = load_yaml_text(FULL).plan
    assert not plan.is_default
    assert (plan.primary_ref("ETH"), plan.primary_ref("BTC"), plan.primary_ref("SOL")) == (
        USER, MEI, "donchian_breakout")
    eth, sol = plan.build_primary("ETH"), plan.build_primary("SOL")
    assert eth is not None and eth.params.fast == 5 and eth.params.slow == 21
    assert sol is not None and sol.params.channel_bars == 30
    assert plan.primary_rules("SOL").stop_loss_atr == 1.5  # type: ignore[union-attr]
    names = [s.name for s in plan.shadows_for("ETH")]
    assert names == ["dc_fast", "rr[stop_loss_atr=1.0]", "rr[stop_loss_atr=1.5]", "rr[stop_loss_atr=2.0]",
                     "mei_twin"]
    assert next(s.name for s in plan.shadows_for("BTC")) == "rr[stop_loss_atr=1.0]"  # dc_fast: ETH/SOL only
    # a shadow on ETH layers global params < ETH's params < its own overrides
    assert plan.build_shadow(plan.shadow("dc_fast"), "ETH").params.channel_bars == 10
    assert plan.rules_for("rr[stop_loss_atr=1.5]").stop_loss_atr == 1.5
    assert plan.build_shadow(plan.shadow("rr[stop_loss_atr=2.0]"), "SOL").params.rsi_oversold == 25
    # mei as a shadow is built from the symbol's nested config (the YAML's trade section)
    cfg = load_yaml_text(FULL).resolve("ETH")
    assert plan.rules_for("mei_twin", "ETH", cfg).stop_loss_atr == 3.0
    assert pickle.loads(pickle.dumps(plan)) == plan  # shipped to Ray shards


@pytest.mark.parametrize(
    ("block", "needle"),
    [
        ("  primary: nope\n", "strategies.primary: unknown strategy 'nope'"),
        ("  symbols:\n    ETH: {primary: 'my_strategies.not_importable:X'}\n",
         "strategies.symbols.ETH: cannot load strategy 'my_strategies.not_importable:X': import failed"),
        ("  params:\n    donchian_breakout: {channel_bars: 1}\n  primary: donchian_breakout\n",
         "strategy 'donchian_breakout', symbol *: parameter 'channel_bars': 1 is below the minimum 2"),
        ("  symbols:\n    SOL: {primary: donchian_breakout, params: {donchian_breakout: {bogus: 1}}}\n",
         "strategies.symbols.SOL: strategy 'donchian_breakout', symbol SOL: parameter 'bogus'"),
        ("  shadows:\n    - {name: x, strategy: donchian_breakout, grid: {channel_bars: [1, 5]}}\n",
         "strategies.shadows[x[channel_bars=1]]: strategy 'donchian_breakout', symbol *: parameter"),
        ("  shadows:\n    - {name: x, strategy: donchian_breakout}\n"
         "    - {name: x, strategy: mei_alpha_v1}\n",
         "duplicate variant name 'x'"),
        ("  shadows:\n    - {name: m, strategy: mei_alpha_v1, params: {sl_atr_mult: 2}}\n",
         "parameter 'sl_atr_mult': unknown parameter"),
        ("  symbols:\n    ETH: {primary: donchian_breakout, stops: 1}\n",
         "unknown key strategies.symbols.ETH.stops"),
        ("  shadows: {name: x}\n", "strategies.shadows: expected a list"),
        ("  shadows:\n    - {strategy: donchian_breakout}\n", "strategies.shadows[0].name"),
        ("  primarry: donchian_breakout\n", "unknown key strategies.primarry"),
    ],
)  # fmt: skip
def test_bad_blocks_are_refused_naming_the_problem(block: str, needle: str) -> None:
    with pytest.raises(StrategyConfigError, match=r"strategy_overrides\.yaml") as err:
        load_yaml_text("strategies:\n" + block)
    assert needle in str(err.value)


def test_hot_reload_to_an_unimportable_strategy_keeps_the_last_good_plan_and_alerts(tmp_path: Path) -> None:
    path = tmp_path / "strategy.yaml"
    _write(path, f"strategies:\n  primary: {USER}\n")
    alerts = Alerts()
    manager = _manager(path, alerts=alerts)
    _write(path, "strategies:\n  primary: 'my_strategies.not_importable:Nope'\n")
    assert manager.maybe_reload() is ReloadOutcome.KEPT_LAST_GOOD
    assert manager.overrides.plan.primary_ref("ETH") == USER
    assert [k for k, _, _ in alerts.sent] == [AlertKind.CONFIG]
    assert "No module named 'this_module_does_not_exist'" in alerts.sent[0][2]["error"]
    _write(path, "strategies:\n  primary: donchian_breakout\n")
    assert manager.maybe_reload() is ReloadOutcome.RELOADED
    assert manager.config_source().plan.primary_ref("ETH") == "donchian_breakout"
