"""engine.shadow_report on a hand-built trading DB (numbers computed by hand in the comments), run as
`python -m engine.shadow_report` the documented way, and promoting a variant through the
promoted-config path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from engine.enums import Mode
from engine.execution.trade_store import TradeStore
from engine.tick.promoted_config import apply_promoted_config, find_promoted_config, promote_variant
from engine.tick.shadow_store import ShadowStore
from strategies.enums import StrategyMode

REPO = Path(__file__).resolve().parents[2]


def _trade(conn, mode: str, kind: str, t: int, *, notional=0.0, fee=0.0, pnl=0.0, funding=0.0) -> None:
    conn.execute(
        "INSERT INTO trades (mode, kind, symbol, size_coins, price, notional_usd, fee_usd, fee_rate, "
        "realised_pnl_usd, funding_usd, cash_delta_usd, balance_usd, leverage, margin_used_usd, reason, "
        "event_ms, recorded_ms) VALUES (?, ?, 'ETH', 1, 100, ?, ?, 0, ?, ?, 0, 0, 1, 0, 'x', ?, ?)",
        (mode, kind, notional, fee, pnl, funding, t, t),
    )


def _shadow(conn, variant: str, kind: str, t: int, *, notional=0.0, fee=0.0, pnl=0.0, funding=0.0,
            mode: str = "paper") -> None:  # fmt: skip
    conn.execute(
        "INSERT INTO shadow_trades (mode, variant, strategy, kind, symbol, position_side, size_coins, price, "
        "notional_usd, fee_usd, realised_pnl_usd, funding_usd, reason, event_ms, recorded_ms) "
        "VALUES (?, ?, 'breakout', ?, 'ETH', 'LONG', 1, 100, ?, ?, ?, ?, 'x', ?, ?)",
        (mode, variant, kind, notional, fee, pnl, funding, t, t),
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    store = TradeStore.open(tmp_path / "trading_paper.db", Mode.PAPER)
    ShadowStore(store.connection, Mode.PAPER)
    c = store.connection
    c.execute("BEGIN")
    _trade(c, "paper", "SEED", 0, pnl=0.0)  # cash seed: not trading PnL
    _trade(c, "paper", "OPEN", 1000, notional=1000, fee=0.45)
    _trade(c, "paper", "CLOSE", 2000, fee=0.46, pnl=20.0)
    _trade(c, "paper", "FUNDING", 2500, funding=-0.5)
    _trade(c, "paper", "OPEN", 3000, notional=500, fee=0.2)
    _trade(c, "paper", "CLOSE", 4000, fee=0.2, pnl=-10.0)
    _trade(c, "live", "CLOSE", 4000, fee=1.0, pnl=999.0)  # another mode: ignored
    _shadow(c, "A", "OPEN", 1000, notional=1000, fee=0.45)
    _shadow(c, "A", "CLOSE", 1500, fee=0.44, pnl=-5.0)
    _shadow(c, "A", "OPEN", 2000, notional=1000, fee=0.45)
    _shadow(c, "A", "CLOSE", 3000, fee=0.47, pnl=30.0)
    _shadow(c, "B", "OPEN", 1000, notional=1000, fee=0.45)
    _shadow(c, "B", "FUNDING", 2000, funding=1.0)
    _shadow(c, "B", "CLOSE", 5000, fee=0.45, pnl=2.0)
    _shadow(c, "C", "CLOSE", 5000, fee=0.45, pnl=500.0, mode="live")  # another mode: ignored
    c.execute("COMMIT")
    store.close()
    return tmp_path


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine.shadow_report", *args], cwd=REPO, env=full,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def _stats(doc: dict, name: str) -> dict:
    return doc["primary"] if name == "primary" else next(v for v in doc["variants"] if v["name"] == name)


def test_whole_history_ranks_variants_against_the_primary(state: Path) -> None:
    done = _run("--state-dir", str(state), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [(v["rank"], v["name"]) for v in doc["variants"]] == [(1, "A"), (2, "B")]
    p = _stats(doc, "primary")
    # pnl: -0.45 + (20 - 0.46) - 0.5 - 0.2 + (-10 - 0.2) = 8.19; curve -0.45, 19.09, 18.59, 18.39, 8.19
    assert p["pnl_usd"] == pytest.approx(8.19)
    assert p["max_drawdown_usd"] == pytest.approx(19.09 - 8.19)
    assert (p["trades"], p["wins"], p["win_rate"]) == (2, 1, 0.5)
    assert p["fees_usd"] == pytest.approx(1.31) and p["funding_usd"] == pytest.approx(-0.5)
    assert p["return_pct"] == pytest.approx(8.19 / 1500 * 100)
    a = _stats(doc, "A")
    # -0.45, -5.89, -6.34, 23.19: drawdown 6.34 from the starting 0
    assert a["pnl_usd"] == pytest.approx(23.19) and a["max_drawdown_usd"] == pytest.approx(6.34)
    assert (a["trades"], a["win_rate"], a["strategy"]) == (2, 0.5, "breakout")
    assert a["fees_usd"] == pytest.approx(1.81)
    assert a["pnl_vs_primary_usd"] == pytest.approx(23.19 - 8.19)
    b = _stats(doc, "B")
    assert b["pnl_usd"] == pytest.approx(2.10) and b["max_drawdown_usd"] == pytest.approx(0.45)
    assert (b["trades"], b["win_rate"]) == (1, 1.0) and b["funding_usd"] == pytest.approx(1.0)


def test_a_window_counts_only_its_rows(state: Path) -> None:
    doc = json.loads(_run("--state-dir", str(state), "--since", "1500", "--until", "3500", "--json").stdout)
    p = _stats(doc, "primary")
    # close 2000 (+19.54), funding 2500 (-0.5), open 3000 (-0.2): 18.84, drawdown 0.7
    assert p["pnl_usd"] == pytest.approx(18.84) and p["max_drawdown_usd"] == pytest.approx(0.7)
    assert (p["trades"], p["win_rate"]) == (1, 1.0) and p["fees_usd"] == pytest.approx(0.66)
    a, b = _stats(doc, "A"), _stats(doc, "B")
    # A: -5.44, -5.89, 23.64; B: funding only, no trade, nothing opened
    assert a["pnl_usd"] == pytest.approx(23.64) and a["max_drawdown_usd"] == pytest.approx(5.89)
    assert (b["pnl_usd"], b["trades"], b["win_rate"], b["return_pct"]) == (pytest.approx(1.0), 0, None, None)


def test_iso_times_and_the_text_table(state: Path) -> None:
    since = datetime.fromtimestamp(1.5, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    done = _run("--db", str(state / "trading_paper.db"), "--since", since)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[:3] == ["-", "primary", "8.64"]  # 19.54 - 0.5 - 0.2 - 10.2 from 1500 on
    assert [line.split()[1] for line in lines[2:]] == ["A", "B"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state-dir", "/nonexistent-dir"], "not found"),
        (["--since", "yesterday-ish"], "--since"),
        (["--since", "2000", "--until", "1000"], "--until"),
    ],
)
def test_bad_input_exits_2(state: Path, args: list[str], message: str) -> None:
    full = args if "--state-dir" in args else ["--state-dir", str(state), *args]
    done = _run(*full)
    assert done.returncode == 2 and message in done.stderr


BASE = """
strategies:
  primary: mei_alpha_v1
  params:
    breakout: {channel_bars: 20, stop_loss_atr: 2.0}
  shadows:
    - name: bo
      strategy: breakout
      params: {take_profit_atr: 4.0}
      grid:
        channel_bars: [10, 55]
        stop_loss_atr: {from: 1.5, to: 2.5, step: 0.5}
    - name: plain
      strategy: mean_reversion
"""


def test_promote_a_grid_variant_through_the_promoted_config_path(tmp_path: Path) -> None:
    base = tmp_path / "strategy_overrides.yaml"
    base.write_text(BASE)
    artifacts = tmp_path / "artifacts"
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    done = promote_variant(base, "bo[channel_bars=55,stop_loss_atr=2.5]", artifacts, now=now)
    assert find_promoted_config(artifacts, StrategyMode.PRIMARY) == done.path
    assert done.path.stat().st_mode & 0o777 == 0o600
    env = {"AI_QUANT_STRATEGY_YAML": str(base), "AI_QUANT_PROMOTED_ROLE": "primary",
           "AI_QUANT_ARTIFACTS_DIR": str(artifacts)}  # fmt: skip
    applied = apply_promoted_config(env)
    assert not applied.fell_back and applied.source == done.path
    merged = yaml.safe_load(applied.strategy_yaml.read_text())["strategies"]
    assert merged["primary"] == "breakout"
    # the variant's layers: the base's global params for the ref, then its overrides
    assert merged["params"]["breakout"] == {"channel_bars": 55, "stop_loss_atr": 2.5, "take_profit_atr": 4.0}
    assert len(merged["shadows"]) == 2  # the shadows keep running


def test_promote_cli_and_an_unknown_variant(tmp_path: Path) -> None:
    base = tmp_path / "s.yaml"
    base.write_text(BASE)
    args = ("--strategy-yaml", str(base), "--artifacts-dir", str(tmp_path / "a"), "--json")
    done = _run("--promote", "plain", *args)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["strategy"], doc["params"], doc["role"]) == ("mean_reversion", {}, "primary")
    assert yaml.safe_load(Path(doc["path"]).read_text()) == {
        "strategies": {"primary": "mean_reversion", "params": {"mean_reversion": {}}}
    }
    bad = _run("--promote", "bo[channel_bars=99,stop_loss_atr=2.5]", *args)
    assert bad.returncode == 2 and "no shadow variant" in bad.stderr and "bo[channel_bars=10" in bad.stderr
