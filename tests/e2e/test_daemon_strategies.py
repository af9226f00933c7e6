"""The paper daemon trading SDK strategies chosen in the YAML's `strategies:` block (issue 11), with a
shadow variant trading its own paper book from the shards' variant records.

The user strategy is the README's example (`tests/data/user_strategy/my_strategies/ema_cross.py`,
outside the package, on PYTHONPATH as a user would put it). One symbol's primary is a strategy
that raises in every decision: that symbol is marked errored in the decision log and alerted
once, everything else trades. Bad strategy configuration exits 2 naming strategy, symbol, field.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.enums import LedgerKind
from tests.e2e.test_daemon_paper import (
    ROOT,
    assert_cash_identity_and_events,
    daemon_env,
    daemons,  # noqa: F401  (fixture)
    db_rows,
    kind_count,
)

USER_DIR = ROOT / "tests" / "data" / "user_strategy"
USER = "my_strategies.ema_cross:EmaCross"
YAML = f"""
global:
  engine: {{interval: 5m}}
  trade: {{entry_min_confidence: low}}
strategies:
  primary: {USER}
  params:
    {USER}: {{fast: 5, slow: 13}}
  symbols:
    ETH:
      primary: my_strategies.broken:Faulty
  shadows:
    - {{name: dc, strategy: donchian_breakout, params: {{channel_bars: 5, min_volume_ratio: 0}}}}
"""


def _env(tmp: Path, yaml_text: str, **extra: str) -> dict[str, str]:
    path = tmp / "strategy.yaml"
    path.write_text(yaml_text)
    path.chmod(0o600)
    env = daemon_env(tmp, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(USER_DIR)) if p)
    return env


@pytest.mark.parametrize(
    ("strategies", "needle"),
    [
        ("  primary: no_such_strategy\n", "unknown strategy 'no_such_strategy'"),
        ("  symbols:\n    LTC: {primary: 'my_strategies.not_importable:X'}\n",
         "strategies.symbols.LTC: cannot load strategy 'my_strategies.not_importable:X'"),
        (f"  symbols:\n    LTC:\n      primary: {USER}\n      params: {{'{USER}': {{fast: 1}}}}\n",
         "strategies.symbols.LTC: strategy 'ema_cross', symbol LTC: parameter 'fast': 1 is below"),
    ],
)  # fmt: skip
def test_bad_strategy_config_exits_2_naming_strategy_symbol_and_field(tmp_path, strategies, needle):
    env = _env(tmp_path, "global:\n  engine: {interval: 5m}\nstrategies:\n" + strategies)
    done = subprocess.run([sys.executable, "-m", "engine.daemon"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert not (tmp_path / "state" / "trading_paper.db").exists()


def _fault_rows(db: Path) -> list[tuple]:
    return db_rows(db, "SELECT symbol, context_json FROM decision_events WHERE reason_code=?",
                   ("strategy_fault:exception",))


def _shadow_opens(db: Path) -> list[tuple]:
    return db_rows(db, "SELECT variant FROM shadow_trades WHERE kind=?", (LedgerKind.OPEN.value,))


def _sdk_opens(db: Path) -> list[tuple]:
    return db_rows(db, "SELECT symbol, reason FROM trades WHERE kind=?", (LedgerKind.OPEN.value,))


@pytest.mark.timeout(180)
def test_paper_daemon_trades_a_user_strategy_and_survives_a_broken_one(tmp_path, daemons):  # noqa: F811
    env = _env(tmp_path, YAML)
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "sdk")
    daemon.wait_for(lambda: len(_fault_rows(db)) >= 2 and len(_sdk_opens(db)) >= 2 and _shadow_opens(db),
                    timeout=150, label="two user-strategy entries, two fault events, a shadow entry")
    assert daemon.proc.poll() is None  # still running
    assert daemon.terminate() == 0
    opens = _sdk_opens(db)
    assert {s for s, _ in opens} and "ETH" not in {s for s, _ in opens}
    assert {r for _, r in opens} == {"none"}  # an SDK primary's entries carry no mei entry kind
    faults = _fault_rows(db)
    assert {s for s, _ in faults} == {"ETH"}
    assert "ZeroDivisionError: user bug" in faults[0][1]
    # the shadow variant traded its own paper book from the shards' variant records, never `trades`
    shadow = db_rows(db, "SELECT DISTINCT variant FROM shadow_trades WHERE kind=?", (LedgerKind.OPEN.value,))
    assert shadow == [("dc",)]
    text = daemon.text()
    assert text.count("strategy fault strategy=my_strategies.broken:Faulty symbol=ETH") == 1  # alerted once
    assert_cash_identity_and_events(db).close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_paper_daemon_with_ray_shards_trades_the_user_strategy(tmp_path, daemons):  # noqa: F811
    env = _env(tmp_path, YAML, AI_QUANT_EXECUTOR="ray", AI_QUANT_SHARDS="2")
    db = tmp_path / "state" / "trading_paper.db"
    daemon = daemons(env, "sdk-ray")
    daemon.wait_log(r"engine started mode=paper .* executor=ray", timeout=120)
    daemon.wait_for(lambda: len(_sdk_opens(db)) >= 2 and _fault_rows(db) and _shadow_opens(db), timeout=150,
                    label="user-strategy entries, a fault event and a shadow entry through Ray")
    assert daemon.terminate() == 0
    assert kind_count(db, LedgerKind.OPEN) >= 2 and "ETH" not in {s for s, _ in _sdk_opens(db)}
    assert_cash_identity_and_events(db).close()
