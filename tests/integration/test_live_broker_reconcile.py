"""OmsReconciler and AccountEventPump against the simulator (and a real redis-server): a position
the ledger does not explain is a MISMATCH that calls the owner's hook; our stale resting orders
are cancelled one by one by oid while foreign orders are left alone; WS fills and order updates
forwarded through the account-events stream land in the ledger once and are acknowledged after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cluster.redis_layout import AccountEvent, AccountEventKind, RedisLayout
from engine.enums import Mode, RoundDirection, Tif
from engine.oms.ledger import FillSource
from engine.oms.reconciler import (
    AccountEventPump,
    OmsReconciler,
    ReconcileEventKind,
    ReconcilerConfig,
    ReconcileReport,
    ReconcileVerdict,
)
from engine.oms.states import OmsEvent, OrderState
from engine.venue.exchange_client import ExchangeAccepted, OrderSpec, cloid_for, round_price, round_size
from strategies.enums import TradeAction
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator
from tests.integration.test_live_broker import Rig, _rig


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = start_simulator(
        ["--speed", "0", "--seed", "13", "--rate-limit-per-min", "0"],
        tmp_path_factory.mktemp("reconcile-sim"),
    )
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def live(shared_sim: SimulatorProcess, tmp_path: Path) -> Iterator[Rig]:
    rig = _rig(shared_sim, tmp_path, Mode.LIVE)
    yield rig
    rig.parts.info.close()
    if rig.parts.transport is not None:
        rig.parts.transport.close()
    rig.oms.close()


def _place(rig: Rig, *, px_factor: float, tif: Tif, cloid: str) -> ExchangeAccepted:
    asset = rig.parts.info.meta().asset(rig.coin)
    assert asset is not None
    mid = rig.parts.info.all_mids()[rig.coin]
    px = round_price(mid * px_factor, asset.sz_decimals)
    size = round_size(30.0 / px, asset.sz_decimals, RoundDirection.UP)
    spec = OrderSpec(asset=asset.asset_id, is_buy=True, limit_px=px, sz=size, tif=tif, cloid=cloid)
    assert rig.parts.transport is not None
    outcome = rig.parts.transport.post(rig.broker.signer.sign_orders([spec]))
    assert isinstance(outcome, ExchangeAccepted) and outcome.ack.all_ok, outcome
    return outcome


def test_unexplained_position_is_a_mismatch_and_calls_the_hook(live: Rig) -> None:
    _place(live, px_factor=1.02, tif=Tif.IOC, cloid=cloid_for("manual-trade"))  # not through the OMS
    seen: list[ReconcileReport] = []
    reconciler = OmsReconciler(
        oms=live.oms, info=live.parts.info, config=ReconcilerConfig(user=live.user), on_mismatch=seen.append
    )
    report = reconciler.run()
    assert report.verdict is ReconcileVerdict.MISMATCH
    ledger, venue = report.mismatches[live.coin]
    assert ledger == 0.0 and venue == pytest.approx(live.venue_szi()) and venue > 0
    assert seen == [report]
    assert live.oms.reconcile_events(ReconcileEventKind.POSITION_MISMATCH)
    assert len(live.oms.orphan_fills()) == 1  # the fill is recorded, not dropped


def test_failed_position_query_is_unknown_never_flat(live: Rig) -> None:
    live.broker.execute(live.intent(TradeAction.OPEN), 0)
    live.sim.set_faults(rest_error_rate=1.0)
    try:
        report = live.reconciler.run()
    finally:
        live.sim.set_faults(reset=True)
    assert report.verdict is ReconcileVerdict.UNKNOWN and not report.mismatches
    assert any(f.startswith("clearinghouse_state") for f in report.failures)


def test_stale_own_order_cancelled_by_oid_foreign_order_left(live: Rig) -> None:
    created = live.oms.create_intent(
        symbol=live.coin, action="OPEN", position_side="LONG", is_buy=True, size_coins=1.0, limit_px=1.0,
        reduce_only=False, reference_price=1.0, leverage=1.0, reason="resting", event_ms=1,
    )  # fmt: skip
    mine = _place(live, px_factor=0.8, tif=Tif.GTC, cloid=created.intent.cloid)
    live.oms.record_outcome(created.intent.intent_id, mine)
    _place(live, px_factor=0.8, tif=Tif.GTC, cloid=cloid_for("someone-else"))
    reconciler = OmsReconciler(
        oms=live.oms, info=live.parts.info, config=ReconcilerConfig(user=live.user, stale_order_ms=0),
        canceller=live.broker.cancel,
    )  # fmt: skip
    reconciler.run()
    assert live.oms.reconcile_events(ReconcileEventKind.CANCEL_STALE)
    assert live.oms.reconcile_events(ReconcileEventKind.FOREIGN_OPEN_ORDER)
    report = reconciler.run()  # the next run settles the cancel from orderStatus
    assert live.oms.order(created.intent.intent_id).state is OrderState.CANCELLED
    left = live.parts.info.open_orders(live.user)
    assert [o.cloid for o in left] == [cloid_for("someone-else")]
    assert report.cancels == 0
    events = [e for e, _, _ in live.oms.order_events(created.intent.intent_id)]
    assert events == [OmsEvent.ACK_RESTING, OmsEvent.CANCEL_REQUESTED, OmsEvent.VENUE_CANCELED]


def test_account_event_pump_ingests_ws_fills_once_and_acks(live: Rig, redis_client: redis.Redis) -> None:
    result = live.broker.execute(live.intent(TradeAction.OPEN), 0)
    assert result.filled
    fills = live.sim_fills()
    layout = RedisLayout("pumptest")
    pump = AccountEventPump(
        oms=live.oms, layout=layout, client=redis_client, user=live.user, group="driver", consumer="c1"
    )
    event = AccountEvent(AccountEventKind.USER_FILLS, {"user": live.user.lower(), "fills": fills}, False, 1)
    for _ in range(2):  # the sidecar may forward the same fills twice (snapshot + live)
        pipe = redis_client.pipeline(transaction=True)
        layout.append_account_event(pipe, live.user.lower(), event)
        pipe.execute()
    assert pump.drain() == len(fills)
    assert pump.drain() == 0
    assert redis_client.xlen(layout.account_stream_key(live.user.lower())) == 0  # acked and deleted
    assert [f.source for f in live.oms.fills()] == [FillSource.WS] * len(fills)
    assert live.oms.orphan_fills() == []


def test_account_event_pump_records_a_malformed_event_and_moves_on(
    live: Rig, redis_client: redis.Redis
) -> None:
    layout = RedisLayout("pumpbad")
    user = live.user.lower()
    pump = AccountEventPump(
        oms=live.oms, layout=layout, client=redis_client, user=user, group="g", consumer="c"
    )
    pipe = redis_client.pipeline(transaction=True)
    layout.append_account_event(
        pipe, user, AccountEvent(AccountEventKind.USER_FILLS, {"fills": [{"coin": 1}]}, False, 1)
    )
    pipe.execute()
    assert pump.drain() == 0
    assert live.oms.reconcile_events(ReconcileEventKind.MALFORMED_ACCOUNT_EVENT)
    assert redis_client.xlen(layout.account_stream_key(user)) == 0


def test_fills_missed_during_a_ws_drop_are_recovered_once_on_reconnect(
    live: Rig, redis_client: redis.Redis
) -> None:
    assert live.broker.execute(live.intent(TradeAction.OPEN, candle=1), 0).filled
    assert live.broker.execute(live.intent(TradeAction.ADD, candle=2), 0).filled
    first, second = sorted(live.sim_fills(), key=lambda f: f["tid"])
    layout, user = RedisLayout("wsdrop"), live.user.lower()
    pump = AccountEventPump(
        oms=live.oms, layout=layout, client=redis_client, user=user, group="g", consumer="c"
    )

    def forward(fills: list[dict]) -> None:
        pipe = redis_client.pipeline(transaction=True)
        layout.append_account_event(
            pipe, user, AccountEvent(AccountEventKind.USER_FILLS, {"fills": fills}, False, 1)
        )
        pipe.execute()

    forward([first])  # the connection dropped before the second fill was pushed
    assert pump.drain() == 1
    report = live.reconciler.on_reconnect()
    assert report.clean and report.fills_inserted == 1
    forward([first, second])  # the resubscribe snapshot repeats both
    assert pump.drain() == 0
    assert sorted(f.tid for f in live.oms.fills()) == [first["tid"], second["tid"]]
    assert live.oms.ledger_positions()[live.coin] == pytest.approx(live.venue_szi())
