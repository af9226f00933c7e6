"""`python -m engine.daemon` in dry_live and live against a loopback simulator, with a fresh test
wallet in a 0600 secrets file (issue 6 acceptance 1 and the dry_live "never POSTs" proof).

The simulator is started by the test (not by the daemon) so that it outlives the daemon: after
SIGTERM the venue's view of the wallet (`clearinghouseState`, `userFills`) is compared with the
daemon's ledger (OMS fills and the exported trades table). Every test also greps the daemon's
output and every file in its state dir for the secret key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from engine.enums import ExecutionStatus, Mode, RoundDirection
from engine.execution.broker import OrderIntent
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE, live_gate
from engine.execution.live_broker import LiveBrokerConfig, build_venue_broker
from engine.execution.verdicts import ALLOW
from engine.oms.funding import FundingLedger
from engine.oms.ledger import LiveOms, OmsConfig
from engine.risk.check import utc_day
from engine.venue.exchange_client import SigningKey, round_size
from strategies.enums import EntryKind, PositionSide, TradeAction
from tests.e2e.test_daemon_paper import Daemon, db_rows
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator

YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low}
"""
# 5m candles, one every 0.25 s of wall time; enough history for the sidecar's backfill.
SIM_ARGS = ["--speed", "1200", "--seed", "7", "--history-bars", "300", "--rate-limit-per-min", "0"]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    process = start_simulator(SIM_ARGS, tmp_path / "sim")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def wallet(tmp_path: Path) -> tuple[str, str, Path]:
    """(address, key hex without 0x, secrets path): a fresh key in a 0600 file."""
    account = Account.create()
    key_hex = account.key.hex().removeprefix("0x").lower()
    path = tmp_path / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"secret_key": "0x" + key_hex, "main_address": account.address}, out)
    return account.address, key_hex, path


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.cleanup()


def start_daemon(
    started: list[Daemon],
    tmp: Path,
    sim: SimulatorProcess,
    secrets: Path,
    mode: str,
    name: str = "",
    **extra: str,
) -> Daemon:
    yaml_path = tmp / "strategy.yaml"
    yaml_path.write_text(YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_", "RAY_ADDRESS"))}
    env.update(
        AI_QUANT_MODE=mode,
        AI_QUANT_HL_BASE_URL=sim.base_url,
        AI_QUANT_SECRETS_PATH=str(secrets),
        AI_QUANT_STATE_DIR=str(tmp / "state"),
        AI_QUANT_STRATEGY_YAML=str(yaml_path),
        AI_QUANT_INTERVAL="5m",
        AI_QUANT_TOP_N="4",
        AI_QUANT_LOOP_TARGET_SECS="0.5",
        AI_QUANT_EXECUTOR="inprocess",
        AI_QUANT_SHARDS="1",
        AI_QUANT_ALERT_TARGETS="discord:#alerts",
        AI_QUANT_ALERT_DRY_RUN="1",
        AI_QUANT_WEB_PORT="0",  # daemons of parallel tests never fight over the web page's port
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    daemon = Daemon(env, tmp / f"daemon-{mode}{name and '-' + name}.log")
    started.append(daemon)
    return daemon


def venue_positions(sim: SimulatorProcess, user: str, dexes: tuple[str, ...] = ("",)) -> dict[str, float]:
    """The venue's open positions of `user` on each perp dex in `dexes` ("" = the original dex)."""
    sizes: dict[str, float] = {}
    for dex in dexes:
        state = sim.info({"type": "clearinghouseState", "user": user, "dex": dex}).json()
        sizes.update({p["position"]["coin"]: float(p["position"]["szi"]) for p in state["assetPositions"]})
    return {coin: szi for coin, szi in sizes.items() if szi != 0}


def order_states(db: Path) -> dict[str, int]:
    return dict(db_rows(db, "SELECT state, COUNT(*) FROM orders GROUP BY state"))  # type: ignore[arg-type]


def trade_kinds(db: Path) -> dict[str, int]:
    return dict(db_rows(db, "SELECT kind, COUNT(*) FROM trades GROUP BY kind"))  # type: ignore[arg-type]


def assert_secret_nowhere(daemon: Daemon, state_dir: Path, key_hex: str) -> int:
    """The key (any case, with or without 0x) is in no output and no file; return files scanned."""
    needles = (key_hex.lower().encode(), key_hex.upper().encode())
    assert not any(n in daemon.log_path.read_bytes() for n in needles), "secret key in daemon output"
    scanned = 0
    for path in state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), f"secret key in {path}"
            scanned += 1
    return scanned


def test_dry_live_signs_and_records_would_send_but_never_posts(tmp_path, sim, wallet, daemons):
    user, key_hex, secrets = wallet
    daemon = start_daemon(
        daemons,
        tmp_path,
        sim,
        secrets,
        "dry_live",
        **{ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE},
    )
    db = tmp_path / "state" / "trading_dry_live.db"
    daemon.wait_log(r"start-up reconcile verdict=clean", timeout=30)
    daemon.wait_for(
        lambda: order_states(db).get("WOULD_SEND", 0) >= 1, timeout=45, label="a WOULD_SEND order"
    )
    assert sim.state()["exchange_posts"] == 0
    assert daemon.terminate() == 0

    states = order_states(db)
    assert set(states) == {"WOULD_SEND"}, states  # every order signed and recorded, none sent
    assert sim.state()["exchange_posts"] == 0
    assert sim.info({"type": "userFills", "user": user}).json() == []
    assert trade_kinds(db) == {}
    assert assert_secret_nowhere(daemon, tmp_path / "state", key_hex) > 0


def assert_ledger_equals_venue(
    db: Path, sim: SimulatorProcess, user: str, dexes: tuple[str, ...] = ("",)
) -> tuple[list[dict], dict]:
    """The OMS ledger and the trades table hold exactly the venue's fills for `user` and net to the
    venue's positions (on every perp dex in `dexes`); return (venue fills, venue positions)."""
    venue_fills = sim.info({"type": "userFills", "user": user}).json()
    positions = venue_positions(sim, user, dexes)
    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    try:
        ledger = oms.ledger_positions()
        ledger_fills = oms.fills()
    finally:
        oms.close()
    # Every venue fill is in the ledger once, each linked to one of our signed orders (cloid).
    assert sorted((f["hash"], f["tid"]) for f in venue_fills) == sorted((f.hash, f.tid) for f in ledger_fills)
    assert len(db_rows(db, "SELECT * FROM fill_links")) == len(venue_fills)
    assert ledger.keys() == positions.keys()
    for coin, szi in positions.items():
        assert ledger[coin] == pytest.approx(szi, abs=1e-9)
    # The trades table (reports, the re-entry cooldown) holds the same fills and nets the same.
    fills_sql = "SELECT kind, symbol, position_side, size_coins FROM trades WHERE mode='live' AND kind != ?"
    rows = db_rows(db, fills_sql, ("FUNDING",))
    assert len(rows) == len(venue_fills)
    net: dict[str, float] = {}
    for kind, symbol, side, size in rows:
        sign = (1 if kind in ("OPEN", "ADD") else -1) * (1 if side == "LONG" else -1)
        net[symbol] = net.get(symbol, 0.0) + sign * size
    assert {c: round(s, 9) for c, s in net.items() if abs(s) > 1e-12} == {
        c: round(s, 9) for c, s in positions.items()
    }
    assert order_states(db).get("FILLED", 0) == len({f["oid"] for f in venue_fills})
    assert_funding_equals_venue(db, sim, user, venue_fills)
    return venue_fills, positions


def assert_funding_equals_venue(db: Path, sim: SimulatorProcess, user: str, venue_fills: list[dict]) -> None:
    """The funding ledger holds the venue's `userFunding` payments up to its newest one (the
    venue keeps charging after the daemon stopped), once each; the trades table has one FUNDING
    row per payment; and live PnL in `trades` (realised - fees + funding) equals the venue's."""
    ledger = FundingLedger(db)
    try:
        payments = [(p.coin, p.time_ms, p.usdc) for p in ledger.payments()]
    finally:
        ledger.close()
    # Only up to the newest recorded payment can be compared (callers that need funding wait
    # for a FUNDING row first); with none recorded, the trades table must have none either.
    synced_to = max((t for _, t, _ in payments), default=-1)
    body = sim.info({"type": "userFunding", "user": user, "startTime": 0}).json()
    venue = sorted((e["delta"]["coin"], e["time"], float(e["delta"]["usdc"])) for e in body)
    assert sorted(payments) == [v for v in venue if v[1] <= synced_to]
    live = "FROM trades WHERE mode='live'"
    rows = db_rows(db, f"SELECT symbol, event_ms, funding_usd {live} AND kind=?", ("FUNDING",))
    assert sorted(rows) == sorted(payments)  # type: ignore[arg-type]
    ((pnl,),) = db_rows(db, f"SELECT COALESCE(SUM(realised_pnl_usd - fee_usd + funding_usd), 0) {live}")
    venue_realised = sum(float(f["closedPnl"]) - float(f["fee"]) for f in venue_fills)
    assert pnl == pytest.approx(venue_realised + sum(u for *_, u in payments), abs=1e-6)


def test_live_gates_open_fills_entries_and_exits_and_ledger_equals_venue(tmp_path, sim, wallet, daemons):
    user, key_hex, secrets = wallet
    # No venue-side stops (AI_QUANT_PROTECT=0): at --speed 1200 even one resting 10 ATR away fired
    # after the SIGTERM, between the shutdown reconcile and the comparisons below (CI). Protective
    # orders have their own e2e (test_daemon_live_protect).
    gates = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE, "AI_QUANT_PROTECT": "0"}
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **gates)
    db = tmp_path / "state" / "trading_live.db"
    daemon.wait_log(r"venue broker ready mode=live .* gate=open may_send=True", timeout=30)
    daemon.wait_for(
        lambda: trade_kinds(db).get("CLOSE", 0) >= 1, timeout=50, label="an entry and an exit filled"
    )  # fmt: skip
    # 5m candles at --speed 1200: a market hour is 3 s, the venue charges funding on every one.
    daemon.wait_for(lambda: trade_kinds(db).get("FUNDING", 0) >= 1, timeout=60, label="a funding payment")
    # Stop while the venue holds a position, so "equal on both sides" compares something.
    daemon.wait_for(lambda: venue_positions(sim, user), timeout=40, label="an open venue position")
    assert daemon.terminate() == 0
    assert "shutdown reconcile verdict=clean" in daemon.text()

    venue_fills, _positions = assert_ledger_equals_venue(db, sim, user)
    assert sim.state()["exchange_posts"] >= len(venue_fills) >= 2
    assert {"OPEN", "CLOSE"} <= set(trade_kinds(db))
    # The risk manager saw every fill: exits in the daily PnL, entries in the slippage window.
    counters = json.loads(db_rows(db, "SELECT counters_json FROM risk_counters WHERE id=1")[0][0])
    exits = [f for f in venue_fills if f["dir"].startswith("Close")]
    entries = [f for f in venue_fills if f["dir"].startswith("Open")]
    # At --speed 1200 a venue day is 72 s, so a run may cross UTC midnight: the daily sums hold the
    # exits of the newest day with an exit (the counters roll over on the first exit of a new day).
    assert exits and counters["pnl_day"] == max(utc_day(f["time"]) for f in exits)
    today = [f for f in exits if utc_day(f["time"]) == counters["pnl_day"]]
    assert counters["daily_realised_pnl_usd"] == pytest.approx(sum(float(f["closedPnl"]) for f in today))
    assert counters["daily_fees_usd"] == pytest.approx(sum(float(f["fee"]) for f in today))
    assert len(counters["slippage_bps"]) == len(entries)
    assert assert_secret_nowhere(daemon, tmp_path / "state", key_hex) > 0

    # Restart on the same ledger: the start-up reconcile is clean (nothing re-ingested twice), the
    # engine ticks again, and after a second SIGTERM both sides still agree.
    again = start_daemon(daemons, tmp_path, sim, secrets, "live", name="restart", **gates)
    again.wait_log(r"start-up reconcile verdict=clean fills=0 ", timeout=30)
    again.wait_log(r"tick=3 ", timeout=30)
    assert again.terminate() == 0
    assert "shutdown reconcile verdict=clean" in again.text()
    assert_ledger_equals_venue(db, sim, user)
    assert assert_secret_nowhere(again, tmp_path / "state", key_hex) > 0


def test_live_with_gates_closed_sends_nothing(tmp_path, sim, wallet, daemons):
    user, key_hex, secrets = wallet
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **{ENV_LIVE_ENABLE: "1"})  # no confirm
    db = tmp_path / "state" / "trading_live.db"
    daemon.wait_log(r"venue broker ready mode=live .* gate=confirm_missing may_send=False", timeout=30)
    daemon.wait_for(lambda: order_states(db).get("WOULD_SEND", 0) >= 1, timeout=45, label="a gated order")
    assert daemon.terminate() == 0
    assert set(order_states(db)) == {"WOULD_SEND"}
    assert sim.state()["exchange_posts"] == 0
    assert sim.info({"type": "userFills", "user": user}).json() == []
    assert assert_secret_nowhere(daemon, tmp_path / "state", key_hex) > 0


def test_world_readable_secrets_file_refused_before_anything_starts(tmp_path, sim, wallet, daemons):
    _user, key_hex, secrets = wallet
    secrets.chmod(0o644)
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live")
    assert daemon.proc.wait(timeout=60) == 2
    assert "chmod 600" in daemon.text()
    assert not (tmp_path / "state" / "trading_live.db").exists()
    assert sim.state()["exchange_posts"] == 0
    assert_secret_nowhere(daemon, tmp_path / "state", key_hex)


def test_account_address_other_than_the_wallet_refused(tmp_path, sim, wallet, daemons):
    """The sidecar forwards fills for AI_QUANT_ACCOUNT_ADDRESS: it must be the wallet we sign for."""
    _user, key_hex, secrets = wallet
    other = Account.create().address
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "dry_live", AI_QUANT_ACCOUNT_ADDRESS=other)
    assert daemon.proc.wait(timeout=60) == 2
    assert f"AI_QUANT_ACCOUNT_ADDRESS={other} is not the secrets file's main_address" in daemon.text()
    assert not (tmp_path / "state" / "trading_dry_live.db").exists()
    assert_secret_nowhere(daemon, tmp_path / "state", key_hex)


def open_foreign_position(tmp: Path, sim: SimulatorProcess, key_hex: str, user: str) -> str:
    """Open a small long for the wallet outside the daemon (another ledger): a position the
    daemon's ledger cannot explain. Return its coin."""
    oms = LiveOms(tmp / "other.db", mode="live", config=OmsConfig(synchronous_full=False))
    gates = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
    parts = build_venue_broker(
        mode=Mode.LIVE, base_url=sim.base_url, key=SigningKey.from_hex(key_hex), oms=oms,
        config=LiveBrokerConfig(user=user), pre_send_check=lambda *_: ALLOW,
        gate=lambda: live_gate(Mode.LIVE, gates),
    )  # fmt: skip
    try:
        parts.broker.refresh()  # the simulator funds a wallet the first time it is queried
        coin = parts.info.meta().universe[0].name
        mid = parts.info.all_mids()[coin]
        intent = OrderIntent(
            symbol=coin, action=TradeAction.OPEN, side=PositionSide.LONG, reference_price=mid, event_ms=1,
            reason=EntryKind.STANDARD, size_coins=round_size(20.0 / mid, 4, RoundDirection.UP), leverage=2.0,
        )  # fmt: skip
        assert parts.broker.execute(intent, 1).status is ExecutionStatus.FILLED
    finally:
        parts.info.close()
        if parts.transport is not None:
            parts.transport.close()
        oms.close()
    return coin


def test_position_the_ledger_cannot_explain_stops_trading_before_any_send(tmp_path, sim, wallet, daemons):
    user, key_hex, secrets = wallet
    coin = open_foreign_position(tmp_path, sim, key_hex, user)
    posts_before = sim.state()["exchange_posts"]
    gates = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **gates)
    daemon.wait_log(rf"start-up reconcile verdict=mismatch .*mismatches=\['{coin}'\]", timeout=30)
    daemon.wait_for(
        lambda: daemon.text().count("not trading: waiting for a clean reconcile") >= 4, timeout=30,
        label="loop iterations without trading",
    )  # fmt: skip
    assert daemon.terminate() == 0
    db = tmp_path / "state" / "trading_live.db"
    assert sim.state()["exchange_posts"] == posts_before  # nothing sent, not even leverage
    assert order_states(db) == {}
    assert "tick=" not in daemon.text()
    changes = db_rows(db, "SELECT event, to_state FROM risk_state_changes")
    assert ("reconcile_mismatch", "REDUCING") in changes
    assert venue_positions(sim, user).keys() == {coin}  # left alone for the operator
    assert_secret_nowhere(daemon, tmp_path / "state", key_hex)


def test_user_stream_reconnect_makes_the_daemon_reconcile(tmp_path, sim, wallet, daemons):
    """The venue drops the sidecar's WebSocket: the sidecar's new session reaches the daemon
    through the account stream and the daemon reconciles at once (the periodic reconcile is an
    hour away here, so only the reconnect wiring can make the venue see a fills query)."""
    _user, _key_hex, secrets = wallet
    gates = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
    hourly = {"AI_QUANT_OMS_RECONCILE_SECS": "3600"}
    daemon = start_daemon(daemons, tmp_path, sim, secrets, "live", **hourly, **gates)
    db = tmp_path / "state" / "trading_live.db"
    daemon.wait_log(r"tick=3 ", timeout=60)
    # Act only once the sidecar's WebSocket is up and the daemon has drained that first session
    # (its marker is queued before the subscription; the daemon drains every tick): a drop before
    # it would hit no user stream, and a first session seen late would pass for the reconnect.
    daemon.wait_for(lambda: sim.state()["ws_connections"] >= 1, timeout=60, label="the sidecar's WebSocket")
    seen_tick = max(int(t) for t in re.findall(r" tick=(\d+) ", daemon.text()))
    daemon.wait_log(rf" tick={seen_tick + 2} ", timeout=60)

    def fill_queries() -> int:
        return int(sim.state()["info_by_type"].get("userFillsByTime", 0))

    def reconnect_events() -> int:
        return len(db_rows(db, "SELECT id FROM reconcile_events WHERE kind=?", ("reconnect",)))

    queries, events = fill_queries(), reconnect_events()
    assert sim.drop_ws() >= 1
    daemon.wait_for(
        lambda: reconnect_events() > events and fill_queries() > queries, timeout=60,
        label="a reconcile after the user stream reconnected",
    )  # fmt: skip
    assert daemon.terminate() == 0
    assert "shutdown reconcile verdict=clean" in daemon.text()
