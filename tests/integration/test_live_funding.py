"""Live funding against the simulator over real HTTP (issue 16 item 3): the venue's hourly
`userFunding` payments land in the funding ledger once each (natural key, persisted cursor that
survives a restart and never moves on a failed read), the reconciler runs the sync, and the
trades table gets one FUNDING row per payment, so live PnL in `trades` = the venue's. The
simulator runs with --speed 0: an hour passes when the test advances its clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.enums import LedgerKind, Mode
from engine.execution.oms_trades import export_funding
from engine.execution.trade_store import TradeStore
from engine.oms.funding import REST_CURSOR, FundingLedger, FundingSync
from engine.oms.reconciler import OmsReconciler, ReconcileEventKind, ReconcilerConfig
from strategies.enums import TradeAction
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator
from tests.integration.test_live_broker import Rig, _rig

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = start_simulator(
        ["--speed", "0", "--seed", "17", "--rate-limit-per-min", "0"], tmp_path_factory.mktemp("funding-sim")
    )
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def live(shared_sim: SimulatorProcess, tmp_path: Path) -> Iterator[Rig]:
    rig = _rig(shared_sim, tmp_path, Mode.LIVE)
    yield rig
    shared_sim.set_faults(reset=True)
    rig.parts.info.close()
    if rig.parts.transport is not None:
        rig.parts.transport.close()
    rig.oms.close()


def venue_funding(rig: Rig) -> list[tuple[str, int, float]]:
    body = rig.sim.info({"type": "userFunding", "user": rig.user, "startTime": 0}).json()
    return sorted((e["delta"]["coin"], e["time"], float(e["delta"]["usdc"])) for e in body)


def recorded(ledger: FundingLedger) -> list[tuple[str, int, float]]:
    return sorted((p.coin, p.time_ms, p.usdc) for p in ledger.payments())


def sync_for(rig: Rig, ledger: FundingLedger) -> FundingSync:
    return FundingSync(
        ledger=ledger, info=rig.parts.info, user=rig.user, initial_lookback_ms=2 * HOUR_MS,
        overlap_ms=5 * 60_000, clock_ms=rig.clock,
    )  # fmt: skip


def test_funding_hours_recorded_once_cursor_survives_restart_and_failed_reads(
    live: Rig, tmp_path: Path
) -> None:
    assert live.broker.execute(live.intent(TradeAction.OPEN), 0).filled
    live.sim.advance(ms=3 * HOUR_MS)
    venue = venue_funding(live)
    assert len(venue) >= 3 and all(usdc != 0 for *_, usdc in venue)

    db = tmp_path / "funding.db"
    ledger = FundingLedger(db)
    first = sync_for(live, ledger).run()
    assert first.failure is None and first.inserted == len(venue)
    assert recorded(ledger) == venue
    assert first.cursor_ms == max(t for _, t, _ in venue)
    again = sync_for(live, ledger).run()
    assert again.inserted == 0 and recorded(ledger) == venue  # re-read window: deduplicated
    ledger.close()

    # A failed read changes nothing; a restart on the same file resumes from the persisted cursor.
    live.sim.advance(ms=2 * HOUR_MS)
    ledger = FundingLedger(db)
    cursor = ledger.cursor(REST_CURSOR)
    live.sim.set_faults(rest_error_rate=1.0, rest_error_status=502)
    failed = sync_for(live, ledger).run()
    live.sim.set_faults(reset=True)
    assert failed.failure == "user_funding:TemporaryVenueError" and failed.inserted == 0
    assert ledger.cursor(REST_CURSOR) == cursor
    resumed = sync_for(live, ledger).run()
    venue = venue_funding(live)
    assert resumed.inserted == 2 and recorded(ledger) == venue
    assert ledger.cursor(REST_CURSOR) == max(t for _, t, _ in venue) > cursor  # type: ignore[operator]
    ledger.close()


def test_reconciler_syncs_funding_and_trades_get_one_funding_row_per_payment(live: Rig) -> None:
    assert live.broker.execute(live.intent(TradeAction.OPEN), 0).filled
    live.sim.advance(ms=2 * HOUR_MS)
    ledger = FundingLedger(live.oms.path)  # the daemon's layout: same DB file as the OMS, own tables
    reconciler = OmsReconciler(
        oms=live.oms, info=live.parts.info, config=ReconcilerConfig(user=live.user), clock_ms=live.clock,
        funding=sync_for(live, ledger),
    )  # fmt: skip
    report = reconciler.run()
    venue = venue_funding(live)
    assert report.clean and report.funding_failure is None and report.funding_inserted == len(venue) >= 2
    assert recorded(ledger) == venue

    store = TradeStore.open(live.oms.path, Mode.LIVE)
    try:
        stats = export_funding(ledger, store, account_value_usd=1000.0)
        assert stats.exported == len(venue)
        assert export_funding(ledger, store, account_value_usd=1000.0).exported == 0  # cursor moved
        rows = [f for f in store.fills() if f.kind is LedgerKind.FUNDING]
        assert sorted((f.symbol, f.event_ms, f.funding_usd) for f in rows) == venue
        assert all(f.cash_delta_usd == f.funding_usd and f.fee_usd == 0 == f.realised_pnl_usd for f in rows)
        szi = live.venue_szi()
        assert all(f.size_coins == pytest.approx(abs(szi)) and f.price > 0 for f in rows)
        assert store.totals().funding_usd == pytest.approx(sum(usdc for *_, usdc in venue))
    finally:
        store.close()
        ledger.close()


def test_reconnect_reconciles_unless_a_run_started_after_the_session(live: Rig) -> None:
    before = live.sim.state()["info_by_type"].get("userFillsByTime", 0)
    session_ms = live.clock() - 1  # the session began before the run below starts
    report = live.reconciler.on_reconnect(session_ms)
    assert report is not None and report.clean
    assert live.sim.state()["info_by_type"]["userFillsByTime"] == before + 1
    events = live.oms.reconcile_events(ReconcileEventKind.RECONNECT)
    assert [d["session_started_ms"] for _k, _s, d in events] == [session_ms]
    # The same session again (the marker is still the newest): the run above already covered it.
    assert live.reconciler.on_reconnect(session_ms) is None
    assert live.sim.state()["info_by_type"]["userFillsByTime"] == before + 1
    live.clock.offset_ms += 1_000  # a later session: reconcile again
    assert live.reconciler.on_reconnect(live.clock()) is not None
    assert live.sim.state()["info_by_type"]["userFillsByTime"] == before + 2
