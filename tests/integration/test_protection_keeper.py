"""ProtectionKeeper and the trigger-aware reconciler against the simulator over real HTTP with real
signatures: a stop goes on the venue after an entry fill and follows adds, the trailing stop and
the close; the venue fires it on a price shock and the reconcile records that fill; a protective
order the ledger had given up is matched from frontendOpenOrders and never stale-cancelled; a
refused stop is alerted once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.enums import ExecutionStatus, Mode, ProtectionKind, RiskReason
from engine.execution.broker import ExitState
from engine.execution.gates import live_gate
from engine.execution.protection import PROTECT_ACTION, ProtectionParams
from engine.execution.protection_keeper import ProtectionConfig, ProtectionKeeper, RiskPort
from engine.execution.verdicts import ALLOW, Deny, RiskVerdict
from engine.oms.reconciler import ReconcileEventKind
from engine.oms.states import OmsEvent, OrderState
from engine.venue.exchange_client import OrderSpec, TriggerSpec, cloid_for, round_price
from strategies.enums import TradeAction
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator
from tests.integration.test_live_broker import Rig, _rig

PARAMS = ProtectionParams(sl_atr_mult=2.0, tp_atr_mult=4.0, take_profit=False)


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = start_simulator(
        ["--speed", "0", "--seed", "17", "--rate-limit-per-min", "0"], tmp_path_factory.mktemp("protect-sim")
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


@dataclass
class FakeRisk:
    verdict: RiskVerdict = ALLOW
    cancels: list[int] = field(default_factory=list)

    def port(self) -> RiskPort:
        return RiskPort(check_protective=lambda _now, _action: self.verdict, check_cancel=lambda _now: ALLOW,
                        note_cancel_sent=self.cancels.append)  # fmt: skip


@dataclass
class FakeAlerter:
    sent: list[tuple[Any, str, Any]] = field(default_factory=list)

    def send(self, kind: Any, message: str, extra: Any = None) -> bool:
        self.sent.append((kind, message, extra))
        return True


def _keeper(rig: Rig, risk: FakeRisk | None = None, alerter: FakeAlerter | None = None,
            params: ProtectionParams = PARAMS, *, can_send: bool = True) -> ProtectionKeeper:  # fmt: skip
    broker, transport = rig.broker, rig.parts.transport
    assert transport is not None
    post = (lambda signed: transport.post(signed)) if can_send else None
    return ProtectionKeeper(
        oms=rig.oms, info=rig.parts.info, signer=broker.signer, positions=broker.positions,
        refresh=broker.refresh, params_for=lambda _s: params, risk=(risk or FakeRisk()).port(),
        gate=lambda: live_gate(Mode.LIVE, rig.env), post=post, user=rig.user,
        alerter=alerter, config=ProtectionConfig(min_reprice_fraction=0.0), clock_ms=rig.clock,  # type: ignore[arg-type]
    )  # fmt: skip


def _venue_triggers(rig: Rig) -> list[dict]:
    orders = rig.sim.info({"type": "frontendOpenOrders", "user": rig.user}).json()
    return [o for o in orders if o["isTrigger"]]


def _protective(rig: Rig) -> list[Any]:
    return [i for i in rig.oms.intents() if i.action == PROTECT_ACTION]


def _open(rig: Rig, action: TradeAction = TradeAction.OPEN, candle: int = 1) -> None:
    result = rig.broker.execute(rig.intent(action, candle=candle), rig.clock())
    assert result.status is ExecutionStatus.FILLED, result


def test_stop_follows_entry_add_trailing_stop_and_close(live: Rig) -> None:
    keeper = _keeper(live)
    _open(live)
    assert keeper.sync().placed == 1
    (trigger,) = _venue_triggers(live)
    position = live.broker.positions()[live.coin]
    assert trigger["reduceOnly"] and trigger["side"] == "A" and trigger["orderType"] == "Stop Market"
    assert float(trigger["sz"]) == pytest.approx(position.size_coins)
    atr = position.entry_price * 0.005  # no entry ATR in the intent: the fallback
    assert float(trigger["triggerPx"]) == pytest.approx(position.entry_price - 2 * atr, rel=1e-4)
    (intent,) = _protective(live)
    assert intent.reason == ProtectionKind.STOP_LOSS and trigger["cloid"] == intent.cloid
    assert live.oms.order(intent.intent_id).state is OrderState.ACCEPTED  # type: ignore[union-attr]
    assert keeper.sync().placed == 0  # in step: nothing sent

    _open(live, TradeAction.ADD, candle=2)
    assert keeper.sync().modified == 1
    (trigger,) = _venue_triggers(live)
    assert float(trigger["sz"]) == pytest.approx(live.venue_szi())
    live.reconciler.run()  # the replaced order's cancel is confirmed by the venue
    assert live.oms.order(intent.intent_id).state is OrderState.CANCELLED  # type: ignore[union-attr]

    trailing = round_price(live.broker.positions()[live.coin].entry_price * 0.999, 2)
    live.broker.update_exit_state(live.coin, ExitState(trailing_sl=trailing, tp1_taken=False), live.clock())
    assert keeper.sync().modified == 1
    (trigger,) = _venue_triggers(live)
    assert float(trigger["triggerPx"]) == pytest.approx(trailing, rel=1e-4)

    _open(live, TradeAction.CLOSE, candle=3)
    assert keeper.sync().cancelled == 1
    assert _venue_triggers(live) == []
    report = live.reconciler.run()
    assert report.clean, report
    assert {live.oms.order(i.intent_id).state for i in _protective(live)} == {OrderState.CANCELLED}  # type: ignore[union-attr]


def test_venue_fires_the_stop_on_a_shock_and_the_reconcile_records_the_fill(live: Rig) -> None:
    keeper = _keeper(live, params=ProtectionParams(sl_atr_mult=2.0, tp_atr_mult=4.0, take_profit=True))
    _open(live)
    assert keeper.sync().placed == 2
    assert sorted(o["orderType"] for o in _venue_triggers(live)) == ["Stop Market", "Take Profit Market"]
    stop = next(i for i in _protective(live) if i.reason == ProtectionKind.STOP_LOSS)
    live.sim.shock(live.coin, -10.0)
    assert live.venue_szi() == 0.0  # the venue closed it on its own
    assert [o["orderType"] for o in _venue_triggers(live)] == ["Take Profit Market"]  # not a sibling
    report = live.reconciler.run()  # what a restart does: fills since the cursor, orders by cloid
    assert report.clean, report
    assert live.oms.order(stop.intent_id).state is OrderState.FILLED  # type: ignore[union-attr]
    assert live.oms.ledger_positions() == {}
    links = live.oms.fill_links()
    closing = [f for f in live.oms.fills() if f.dir.startswith("Close")]
    assert len(closing) >= 1 and all(links[f.fill_key][0] == stop.intent_id for f in closing)
    live.broker.refresh()
    sync = keeper.sync()  # the take-profit of a closed position is cancelled, nothing placed
    assert (sync.placed, sync.cancelled) == (0, 1) and _venue_triggers(live) == []


def test_reconciler_matches_a_given_up_protective_order_and_never_stale_cancels_it(live: Rig) -> None:
    _open(live)
    asset = live.parts.info.meta().asset(live.coin)
    assert asset is not None and live.parts.transport is not None
    mid = live.parts.info.all_mids()[live.coin]
    trigger_px = round_price(mid * 0.9, asset.sz_decimals)
    limit_px = round_price(trigger_px * 0.9, asset.sz_decimals)
    size = live.venue_szi()
    created = live.oms.create_intent(
        symbol=live.coin, action=PROTECT_ACTION, position_side="LONG", is_buy=False, size_coins=size,
        limit_px=limit_px, reduce_only=True, reference_price=trigger_px, leverage=1.0,
        reason=ProtectionKind.STOP_LOSS.value, event_ms=1, meta={"trigger_px": trigger_px, "tpsl": "sl"},
    ).intent  # fmt: skip
    spec = OrderSpec(asset=asset.asset_id, is_buy=False, limit_px=limit_px, sz=size, reduce_only=True,
                     cloid=created.cloid, trigger=TriggerSpec(trigger_px=trigger_px, tpsl="sl"))  # fmt: skip
    live.parts.transport.post(live.broker.signer.sign_orders([spec]))  # sent, its answer "lost"
    live.oms.apply(created.intent_id, OmsEvent.NOT_FOUND_CONFIRMED)  # the ledger gave up on it
    far = round_price(mid * 0.5, asset.sz_decimals)
    foreign = OrderSpec(asset=asset.asset_id, is_buy=False, limit_px=far, sz=size, reduce_only=True,
                        cloid=cloid_for("not-ours"), trigger=TriggerSpec(trigger_px=far, tpsl="sl"))
    live.parts.transport.post(live.broker.signer.sign_orders([foreign]))
    live.clock.offset_ms += 10 * 60_000  # far past the stale-order TTL
    report = live.reconciler.run()
    assert report.clean and report.protective_open == 1 and report.cancels == 0, report
    order = live.oms.order(created.intent_id)
    assert order is not None and order.state is OrderState.ACCEPTED and order.oid is not None
    assert live.oms.reconcile_events(ReconcileEventKind.PROTECTIVE_FOUND)
    (_kind, _sym, detail), *_ = live.oms.reconcile_events(ReconcileEventKind.FOREIGN_OPEN_ORDER)
    assert detail["trigger"] is True
    assert len(_venue_triggers(live)) == 2  # neither was cancelled
    keeper = _keeper(live)
    actions, _held = keeper.plan_now()
    # the matched stop protects the position (a modify to the strategy's level, not a second stop)
    assert [a.step.value for a in actions] in (["modify"], [])


def test_refused_stop_is_recorded_denied_and_alerted_once(live: Rig) -> None:
    risk, alerter = FakeRisk(verdict=Deny(RiskReason.TRADING_HALTED, {})), FakeAlerter()
    keeper = _keeper(live, risk, alerter)
    _open(live)
    first = keeper.sync()
    again = keeper.sync()  # within the retry wait: no second intent
    assert first.refused == 1 and first.unprotected == (live.coin,) and again.refused == 0
    assert _venue_triggers(live) == []
    (denied,) = _protective(live)
    assert live.oms.order(denied.intent_id).state is OrderState.DENIED  # type: ignore[union-attr]
    assert [m for _k, m, _e in alerter.sent] == ["position has no stop on the venue"]
    risk.verdict = ALLOW
    live.clock.offset_ms += 31_000  # past the retry wait
    assert keeper.sync().placed == 1 and keeper.sync().unprotected == ()


def test_without_a_transport_the_stop_is_recorded_would_send_once_per_level(live: Rig) -> None:
    """dry_live (and a closed gate): nothing reaches the venue; one WOULD_SEND per level, not per loop."""
    _open(live)
    keeper = _keeper(live, can_send=False)  # what live_stack builds for dry_live (no transport)
    posts = live.sim.state()["exchange_posts"]
    assert keeper.sync().placed == 1 and keeper.sync().placed == 0
    trailing = round_price(live.broker.positions()[live.coin].entry_price * 0.999, 2)
    live.broker.update_exit_state(live.coin, ExitState(trailing_sl=trailing, tp1_taken=False), live.clock())
    assert keeper.sync().placed == 1
    assert live.sim.state()["exchange_posts"] == posts and _venue_triggers(live) == []
    states = [live.oms.order(i.intent_id).state for i in _protective(live)]  # type: ignore[union-attr]
    assert states == [OrderState.WOULD_SEND, OrderState.WOULD_SEND]
