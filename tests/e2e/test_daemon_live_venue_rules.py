"""`python -m engine.daemon` in live mode against a strict simulator enforcing the venue's rules
(issue 13 acceptance, engine side), with the harness of tests/e2e/test_daemon_live.py:

* a small account runs out of its per-address request budget while it holds a position: entries
  are shed, the exit still goes out (through the venue's one-request-per-10-s window), the daemon
  never crashes, one alert;
* the venue liquidates the account: the ledger equals the venue afterwards and the trading state
  is what AI_QUANT_LIQUIDATION_RISK_STATE says;
* a secrets file naming an agent wallet as the account fails at start with the venue's reason.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import eth_account
import pytest
from hyperliquid.exchange import Exchange

from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE
from engine.oms.ledger import LiveOms, OmsConfig
from tests.e2e import test_daemon_live as live_harness
from tests.e2e.test_daemon_live import (
    SIM_ARGS,
    assert_ledger_equals_venue,
    assert_secret_nowhere,
    order_states,
    start_daemon,
    venue_positions,
)
from tests.e2e.test_daemon_paper import Daemon, db_rows
from tests.fixtures.sim_fixtures import SimulatorProcess

wallet = live_harness.wallet  # the live harness's fixtures: a fresh key in a 0600 secrets file
daemons = live_harness.daemons  # every daemon started is killed at the end

GATES = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
STRICT = list(SIM_ARGS)  # speed 1200, seed 7, no per-IP limit; funding named per test (strict venue)
BUDGET_LOW = re.compile(r"alert dry-run .*risk: address request budget low")
BUDGET_BACK = re.compile(r"alert dry-run .*risk: address request budget recovered")
LIQUIDATED = re.compile(r"alert dry-run .*risk: venue liquidated the account")


def _spend_address_budget(sim: SimulatorProcess, key: eth_account.signers.local.LocalAccount) -> int:
    """Spend the wallet's address requests from outside the daemon, fast (one batch of cancels
    counts one request per item), then one action through the venue's one-per-10-s window, then
    one the venue refuses; return the venue's market time when done."""
    exchange = Exchange(key, sim.base_url)
    limit = exchange.info.user_rate_limit(key.address)
    left = int(limit["nRequestsCap"]) - int(limit["nRequestsUsed"])
    coin = exchange.info.meta()["universe"][-1]["name"]  # a coin the daemon does not trade
    exchange.bulk_cancel([{"coin": coin, "oid": 1 + i} for i in range(left + 1)])  # cancels: a larger cap
    assert exchange.update_leverage(1, coin)["status"] == "ok"  # over the cap: the throttled pass
    refused = exchange.update_leverage(1, coin)
    assert refused["response"].startswith("Too many cumulative requests sent"), refused
    return int(sim.state()["now_ms"])


def _deny_reasons(db: Path) -> list[str]:
    return [r[0] for r in db_rows(db, "SELECT reason_code FROM order_events WHERE event='DENY'")]


def _risk_changes(db: Path) -> list[tuple[str, str]]:
    return [(e, s) for e, s in db_rows(db, "SELECT event, to_state FROM risk_state_changes ORDER BY seq")]


def test_small_account_out_of_address_budget_keeps_exits_and_alerts_once(
    tmp_path: Path, wallet: tuple[str, str, Path], daemons: list[Daemon],
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:  # fmt: skip
    user, key_hex, secrets = wallet
    sim = simulator_factory(*STRICT, "--fund", f"{user}=1000", "--address-request-buffer", "40")
    # No venue-side stop (engine.execution.protection): the exit under test is the daemon's own, sent
    # while the budget is spent; a resting trigger would close the position on the venue instead.
    budget = {"AI_QUANT_ADDRESS_BUDGET_RESERVE": "20", "AI_QUANT_ADDRESS_BUDGET_POLL_SECS": "1",
              "AI_QUANT_PROTECT": "0"}
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **GATES, **budget)
    db = tmp_path / "state" / "trading_live.db"
    held = daemon.wait_for(lambda: venue_positions(sim, user), timeout=90, label="an open venue position")
    assert isinstance(held, dict)
    (coin, szi), = held.items()
    spent_ms = _spend_address_budget(sim, eth_account.Account.from_key("0x" + key_hex))
    assert coin in venue_positions(sim, user), "the position closed before the budget was spent: rerun"
    sim.shock(coin, -20.0 if szi > 0 else 20.0)  # the price goes through the position's stop
    daemon.wait_log(BUDGET_LOW.pattern, timeout=30)
    # the exit still reaches the venue (once its one-request-per-10-s window lets it through)
    daemon.wait_for(lambda: coin not in venue_positions(sim, user), timeout=90, label="the exit filled")
    daemon.wait_for(lambda: "address_budget" in _deny_reasons(db), timeout=60, label="an entry shed")
    assert daemon.terminate() == 0  # never crashed on "Too many cumulative requests"
    text = daemon.text()
    assert "daemon failed" not in text and "shutdown reconcile verdict=clean" in text
    assert len(BUDGET_LOW.findall(text)) == 1 and not BUDGET_BACK.search(text)
    venue_fills, positions = assert_ledger_equals_venue(db, sim, user)
    assert coin not in positions
    later = [f for f in venue_fills if f["time"] >= spent_ms]
    exits = [f for f in later if f["coin"] == coin and f["dir"].startswith("Close")]
    assert exits, venue_fills  # the exit went out after the venue's budget was spent
    assert [f for f in later if f["dir"].startswith("Open")] == []  # every entry after that was shed
    assert order_states(db).get("FILLED", 0) >= 2
    assert_secret_nowhere(daemon, tmp_path / "state", key_hex)


@pytest.mark.parametrize(
    ("policy", "event", "state"),
    [("halted", "liquidation_halt", "HALTED"), ("reducing", "liquidation_close_only", "REDUCING")],
)
def test_liquidation_leaves_ledger_equal_to_venue_and_risk_state_as_configured(
    tmp_path: Path, wallet: tuple[str, str, Path], daemons: list[Daemon],
    simulator_factory: Callable[..., SimulatorProcess], policy: str, event: str, state: str,
) -> None:  # fmt: skip
    user, key_hex, secrets = wallet
    sim = simulator_factory(*STRICT, "--fund", f"{user}=12")  # a $15 position on $12 of equity
    # An unprotected position (AI_QUANT_PROTECT=0): a venue stop would close it before the liquidation.
    configured = {"AI_QUANT_LIQUIDATION_RISK_STATE": policy, "AI_QUANT_PROTECT": "0"}
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **GATES, **configured)
    db = tmp_path / "state" / "trading_live.db"
    held = daemon.wait_for(lambda: venue_positions(sim, user), timeout=90, label="an open venue position")
    assert isinstance(held, dict)
    (coin, szi), = held.items()
    sim.shock(coin, -90.0 if szi > 0 else 150.0)  # the whole equity and more: the venue liquidates
    daemon.wait_for(lambda: not venue_positions(sim, user), timeout=30, label="the venue's liquidation")
    daemon.wait_for(lambda: (event, state) in _risk_changes(db), timeout=60,
                    label=f"risk {state} after the liquidation")  # fmt: skip
    daemon.wait_log(LIQUIDATED.pattern, timeout=30)
    daemon.wait_log(r"tick=\d+ ", timeout=30)
    assert daemon.terminate() == 0
    assert "shutdown reconcile verdict=clean" in daemon.text()
    venue_fills = sim.info({"type": "userFills", "user": user}).json()
    liquidations = [f for f in venue_fills if "liquidation" in f]
    assert liquidations, venue_fills
    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    try:
        ledger_fills, ledger_positions = oms.fills(), oms.ledger_positions()
        orphans = oms.orphan_fills()
    finally:
        oms.close()
    assert sorted((f.hash, f.tid) for f in ledger_fills) == sorted((f["hash"], f["tid"]) for f in venue_fills)
    assert sorted(f.tid for f in ledger_fills if f.liquidation) == sorted(f["tid"] for f in liquidations)
    assert ledger_positions == venue_positions(sim, user) == {} and orphans == []
    trades = db_rows(db, "SELECT kind, reason FROM trades WHERE mode='live' AND kind != 'FUNDING'")
    flagged = [kind for kind, reason in trades if reason.startswith("LIQUIDATION")]
    assert len(flagged) == len(liquidations) and flagged[-1] == "CLOSE"  # one flagged row per fill
    assert _risk_changes(db) == [(event, state)]  # nothing else moved it (no mismatch on the way)
    assert len(LIQUIDATED.findall(daemon.text())) == 1
    assert_secret_nowhere(daemon, tmp_path / "state", key_hex)


def test_unified_account_sizes_and_books_from_its_spot_balance(
    tmp_path: Path, wallet: tuple[str, str, Path], daemons: list[Daemon],
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:  # fmt: skip
    """In unified mode the perp accountValue is about 0 (the USDC is in the spot balance): the
    daemon must still see about 1,000 USD of equity (entries need positive equity; the trades
    table's balance is the equity at export)."""
    user, key_hex, secrets = wallet
    sim = simulator_factory(*STRICT, "--fund", f"{user}=1000", "--unified", user)
    # No venue stops: one firing after the SIGTERM would be a fill the ledger cannot have seen.
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **GATES, AI_QUANT_PROTECT="0")
    db = tmp_path / "state" / "trading_live.db"
    daemon.wait_for(lambda: db_rows(db, "SELECT 1 FROM trades WHERE mode='live' AND kind='OPEN'"), timeout=90,
                    label="an entry filled")  # fmt: skip
    assert daemon.terminate() == 0
    perp = sim.info({"type": "clearinghouseState", "user": user}).json()["marginSummary"]["accountValue"]
    assert abs(float(perp)) < 50.0  # the venue's perp side does not hold the collateral
    balances = [b for (b,) in db_rows(db, "SELECT balance_usd FROM trades WHERE mode='live'")]
    assert balances and all(900.0 < b < 1_100.0 for b in balances), balances
    assert_ledger_equals_venue(db, sim, user)
    assert_secret_nowhere(daemon, tmp_path / "state", key_hex)


def test_agent_wallet_as_the_account_fails_at_start_with_the_venues_reason(
    tmp_path: Path, daemons: list[Daemon], simulator_factory: Callable[..., SimulatorProcess],
) -> None:  # fmt: skip
    master = eth_account.Account.create()
    sim = simulator_factory(*STRICT, "--fund", f"{master.address}=1000")
    approved, agent_key = Exchange(master, sim.base_url).approve_agent("bot")
    assert approved["status"] == "ok"
    agent = eth_account.Account.from_key(agent_key)
    secrets = tmp_path / "secrets.json"
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:  # the mistake: the agent's address and key as the account's
        json.dump({"secret_key": agent_key, "main_address": agent.address}, out)
    posts = sim.state()["exchange_posts"]
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **GATES)
    assert daemon.proc.wait(timeout=90) == 2
    text = daemon.text()
    assert (
        f"account address {agent.address.lower()} is an agent (API) wallet of {master.address.lower()} "
        "on the venue (userRole=agent)"
    ) in text
    assert "tick=" not in text and "start-up reconcile" not in text
    assert sim.state()["exchange_posts"] == posts  # nothing signed by the daemon reached the venue
    assert_secret_nowhere(daemon, tmp_path / "state", agent_key.removeprefix("0x"))
