"""The pure protection planner (engine/execution/protection.py), the protective risk check and the
dead man's switch policy (engine/execution/dead_man.py)."""

from __future__ import annotations

import pytest
from eth_account import Account

from engine.enums import (
    ExchangeActionType,
    ProtectionKind,
    ProtectionStep,
    RiskReason,
    TradingState,
    VenueRejectReason,
)
from engine.execution.dead_man import (
    BeatStep,
    DeadManSwitch,
    SwitchConfig,
    SwitchState,
    SwitchStatus,
    after_refusal,
    plan_beat,
)
from engine.execution.protection import (
    DesiredProtection,
    LiveProtection,
    ProtectedPosition,
    ProtectionParams,
    desired_for,
    params_from_config,
    plan,
)
from engine.execution.verdicts import Allow, Deny
from engine.oms.states import OrderState
from engine.risk.check import RiskSnapshot, check_protective
from engine.venue import types as hl
from engine.venue.exchange_client import (
    ActionSigner,
    ExchangeAccepted,
    ExchangeRejected,
    OrderSpec,
    SigningKey,
    TriggerSpec,
)
from strategies.config import StrategyConfig
from strategies.enums import PositionSide

SL = ProtectionKind.STOP_LOSS
TP = ProtectionKind.TAKE_PROFIT
PARAMS = ProtectionParams(sl_atr_mult=2.0, tp_atr_mult=4.0, take_profit=True)


def _pos(side: PositionSide = PositionSide.LONG, **kw: object) -> ProtectedPosition:
    base = {"symbol": "ETH", "side": side, "size_coins": 1.5, "entry_price": 100.0, "entry_atr": 2.0}
    return ProtectedPosition(**{**base, **kw})  # type: ignore[arg-type]


def _live(kind: ProtectionKind = SL, state: OrderState = OrderState.ACCEPTED, **kw: object) -> LiveProtection:
    base = {"intent_id": "i1", "cloid": "0x" + "1" * 32, "symbol": "ETH", "kind": kind, "is_buy": False,
            "size_coins": 1.5, "trigger_px": 96.0, "state": state, "oid": 7}  # fmt: skip
    return LiveProtection(**{**base, **kw})  # type: ignore[arg-type]


def test_desired_for_long_stop_below_and_take_profit_above_entry_closing_side_whole_size():
    stop, tp = desired_for(_pos(), PARAMS, sz_decimals=2)
    assert (stop.kind, stop.is_buy, stop.size_coins, stop.trigger_px) == (SL, False, 1.5, 96.0)
    assert (tp.kind, tp.is_buy, tp.size_coins, tp.trigger_px) == (TP, False, 1.5, 108.0)


def test_desired_for_short_mirrors_and_buys_to_close():
    stop, tp = desired_for(_pos(PositionSide.SHORT), PARAMS, sz_decimals=2)
    assert (stop.is_buy, stop.trigger_px, tp.is_buy, tp.trigger_px) == (True, 104.0, True, 92.0)


def test_desired_for_trailing_stop_replaces_the_atr_stop_and_rounds_to_the_tick():
    (stop,) = desired_for(_pos(trailing_sl=101.234567), ProtectionParams(sl_atr_mult=2.0), sz_decimals=2)
    assert stop.trigger_px == 101.23  # 5 significant figures, <= 4 decimals for szDecimals 2


def test_desired_for_without_entry_atr_uses_the_half_percent_fallback():
    (stop,) = desired_for(_pos(entry_atr=None), ProtectionParams(sl_atr_mult=2.0), sz_decimals=2)
    assert stop.trigger_px == 99.0  # 100 - 2 x (100 x 0.5 %)


@pytest.mark.parametrize("size", [0.0, float("nan")])
def test_desired_for_empty_position_needs_nothing(size):
    assert desired_for(_pos(size_coins=size), PARAMS, sz_decimals=2) == ()


def test_desired_for_stop_that_is_not_a_positive_price_is_left_out():
    (tp,) = desired_for(_pos(entry_atr=60.0), PARAMS, sz_decimals=2)  # 100 - 120 < 0
    assert tp.kind is TP


def test_params_from_config_take_profit_only_without_a_partial_ladder():
    cfg = StrategyConfig()
    params = params_from_config(cfg)
    assert params.sl_atr_mult == cfg.trade.sl_atr_mult
    assert params.take_profit == (cfg.trade.tp_atr_mult > 0 and not cfg.trade.enable_partial_tp)


def _want(kind: ProtectionKind = SL, **kw: object) -> DesiredProtection:
    base = {"symbol": "ETH", "kind": kind, "is_buy": False, "size_coins": 1.5, "trigger_px": 96.0}
    return DesiredProtection(**{**base, **kw})  # type: ignore[arg-type]


def test_plan_missing_stop_is_placed():
    (action,) = plan([_want()], [])
    assert (action.step, action.kind, action.desired) == (ProtectionStep.PLACE, SL, _want())


def test_plan_order_in_step_needs_nothing():
    assert plan([_want()], [_live()]) == []


@pytest.mark.parametrize(
    "change", [{"size_coins": 2.0}, {"trigger_px": 97.0}, {"is_buy": True}], ids=["size", "trigger", "side"]
)
def test_plan_order_out_of_step_is_modified(change):
    (action,) = plan([_want(**change)], [_live()])
    assert action.step is ProtectionStep.MODIFY and action.existing == _live()


def test_plan_small_trigger_move_waits_under_the_reprice_threshold():
    assert plan([_want(trigger_px=96.04)], [_live()], min_reprice_fraction=0.001) == []
    (action,) = plan([_want(trigger_px=96.2)], [_live()], min_reprice_fraction=0.001)
    assert action.step is ProtectionStep.MODIFY


def test_plan_no_position_cancels_resting_protection():
    (action,) = plan([], [_live()])
    assert (action.step, action.existing) == (ProtectionStep.CANCEL, _live())


@pytest.mark.parametrize("state", [OrderState.NEW, OrderState.UNKNOWN])
def test_plan_order_in_flight_blocks_every_step_of_its_symbol_and_kind(state):
    assert plan([_want(trigger_px=90.0)], [_live(state=state)]) == []
    assert plan([], [_live(state=state)]) == []


def test_plan_order_being_cancelled_is_ignored_and_a_new_one_placed():
    (action,) = plan([_want()], [_live(state=OrderState.PENDING_CANCEL)])
    assert action.step is ProtectionStep.PLACE


def test_plan_duplicate_keeps_the_one_in_step_and_cancels_the_other():
    good, stale = _live(intent_id="a", oid=1), _live(intent_id="b", oid=2, trigger_px=90.0)
    (action,) = plan([_want()], [stale, good])
    assert (action.step, action.existing) == (ProtectionStep.CANCEL, stale)


def test_plan_resting_order_without_oid_is_waited_for_not_doubled():
    assert plan([_want(trigger_px=90.0)], [_live(oid=None)]) == []


def test_plan_dry_live_record_is_re_recorded_only_when_the_level_changes():
    recorded = _live(state=OrderState.WOULD_SEND, oid=None)
    assert plan([_want()], [recorded]) == []
    (action,) = plan([_want(trigger_px=97.0)], [recorded])
    assert action.step is ProtectionStep.PLACE
    assert plan([], [recorded]) == []  # nothing on the venue to cancel


def test_plan_covers_each_symbol_and_kind_on_its_own():
    actions = plan([_want(), _want(TP, trigger_px=108.0), _want(symbol="BTC")], [_live()])
    assert [(a.step, a.symbol, a.kind) for a in actions] == [
        (ProtectionStep.PLACE, "BTC", SL), (ProtectionStep.PLACE, "ETH", TP),
    ]  # fmt: skip


@pytest.mark.parametrize("state", list(TradingState))
def test_check_protective_blocked_only_by_halted_never_by_reducing(state):
    verdict = check_protective(RiskSnapshot(trading_state=state), "place")
    if state is TradingState.HALTED:
        assert isinstance(verdict, Deny) and verdict.reason is RiskReason.TRADING_HALTED
    else:
        assert isinstance(verdict, Allow)


def test_check_protective_hard_kill_denies():
    verdict = check_protective(RiskSnapshot(hard_kill=True), "modify")
    assert isinstance(verdict, Deny) and verdict.reason is RiskReason.HARD_KILL


CFG = SwitchConfig(window_secs=120.0)


def test_switch_flat_account_is_armed_then_re_armed_when_half_the_window_is_left():
    step, when = plan_beat(SwitchStatus(), now_ms=1_000, protected=False, config=CFG)
    assert (step, when) == (BeatStep.ARM, 121_000)
    armed = SwitchStatus(state=SwitchState.ARMED, armed_until_ms=when)
    assert plan_beat(armed, now_ms=50_000, protected=False, config=CFG)[0] is BeatStep.NONE
    assert plan_beat(armed, now_ms=62_000, protected=False, config=CFG) == (BeatStep.ARM, 182_000)


@pytest.mark.parametrize("state", [SwitchState.ARMED, SwitchState.UNKNOWN])
def test_switch_is_cleared_while_protective_orders_rest(state):
    status = SwitchStatus(state=state, armed_until_ms=100_000)
    assert plan_beat(status, now_ms=1_000, protected=True, config=CFG)[0] is BeatStep.CLEAR
    cleared = SwitchStatus(state=SwitchState.CLEARED)
    assert plan_beat(cleared, now_ms=1_000, protected=True, config=CFG)[0] is BeatStep.NONE


def test_switch_refused_is_left_alone_until_its_retry_time():
    refused = after_refusal("Cannot set scheduled cancel time until enough volume traded.", 1_000, CFG)
    assert refused.retry_at_ms == 1_000 + 3_600_000
    assert plan_beat(refused, now_ms=5_000, protected=False, config=CFG)[0] is BeatStep.NONE
    assert plan_beat(refused, now_ms=3_700_000, protected=False, config=CFG)[0] is BeatStep.ARM


def test_switch_daily_cap_refusal_waits_for_the_next_utc_day():
    refused = after_refusal("too many scheduled cancels today (daily limit)", 86_400_000 + 5, CFG)
    assert refused.retry_at_ms == 2 * 86_400_000


def test_switch_window_zero_never_arms():
    assert plan_beat(SwitchStatus(), now_ms=0, protected=False, config=SwitchConfig(window_secs=0))[0] is (
        BeatStep.NONE)


# --- the wire of protective orders and the switch's shell ---------------------------------------


def _signer() -> ActionSigner:
    return ActionSigner(SigningKey(Account.create()), is_mainnet=False)


def test_trigger_order_wire_is_a_reduce_only_market_stop_with_its_cloid():
    spec = OrderSpec(asset=3, is_buy=False, limit_px=85.5, sz=1.25, reduce_only=True, cloid="0x" + "a" * 32,
                     trigger=TriggerSpec(trigger_px=95.0, tpsl="sl"))  # fmt: skip
    (order,) = _signer().sign_orders([spec]).payload()["action"]["orders"]
    trigger = {"trigger": {"isMarket": True, "triggerPx": "95", "tpsl": "sl"}}
    cloid = "0x" + "a" * 32
    assert order == {"a": 3, "b": False, "p": "85.5", "s": "1.25", "r": True, "t": trigger, "c": cloid}


def test_batch_modify_names_the_old_oid_and_carries_the_new_order():
    spec = OrderSpec(asset=1, is_buy=True, limit_px=110.0, sz=2.0, reduce_only=True, cloid="0x" + "b" * 32,
                     trigger=TriggerSpec(trigger_px=104.0, tpsl="sl"))  # fmt: skip
    signed = _signer().sign_batch_modify([(77, spec)])
    action = signed.payload()["action"]
    assert action["type"] == "batchModify" and signed.action_type is ExchangeActionType.BATCH_MODIFY
    assert action["modifies"][0]["oid"] == 77 and action["modifies"][0]["order"]["c"] == "0x" + "b" * 32
    assert signed.cloids == ("0x" + "b" * 32,)


@pytest.mark.parametrize("bad", [{"tpsl": "stop"}, {"trigger_px": 0.0}, {"trigger_px": float("inf")}])
def test_trigger_spec_rejects_what_the_venue_cannot_take(bad):
    with pytest.raises(ValueError):
        TriggerSpec(**{"trigger_px": 95.0, "tpsl": "sl", **bad})


class _Alerts:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, kind: object, message: str, extra: object = None) -> bool:
        self.sent.append(message)
        return True


def _answer(kind: str, message: str = "") -> object:
    if kind == "ok":
        return ExchangeAccepted(ExchangeActionType.SCHEDULE_CANCEL, 1, hl.ExchangeAck("default", ()))
    return ExchangeRejected(ExchangeActionType.SCHEDULE_CANCEL, 1, VenueRejectReason.VENUE_ERROR, message)


def test_switch_refusal_is_alerted_once_and_not_retried_every_beat():
    sent: list[int | None] = []
    clock = [1_000]
    alerts = _Alerts()

    def send(when: int | None) -> object:
        sent.append(when)
        return _answer("err", "Cannot set scheduled cancel time until enough volume traded.")

    switch = DeadManSwitch(schedule_cancel=send, alerter=alerts, clock_ms=lambda: clock[0])  # type: ignore[arg-type]
    assert switch.beat(protected=False) is BeatStep.ARM
    for _ in range(5):
        clock[0] += 10_000
        assert switch.beat(protected=False) is BeatStep.NONE
    clock[0] += 3_600_000  # the retry time: asked again, refused again, still one alert
    assert switch.beat(protected=False) is BeatStep.ARM
    assert len(sent) == 2
    assert alerts.sent == ["scheduleCancel refused by the venue: relying on protective orders"]


def test_switch_armed_while_flat_is_cleared_once_a_position_is_held():
    sent: list[int | None] = []
    clock = [1_000]

    def send(when: int | None) -> object:
        sent.append(when)
        return _answer("ok")

    switch = DeadManSwitch(schedule_cancel=send, clock_ms=lambda: clock[0])  # type: ignore[arg-type]
    switch.beat(protected=False)
    clock[0] += 1_000
    switch.beat(protected=False)  # not due: the window is far from over
    switch.beat(protected=True)
    switch.beat(protected=True)  # already cleared
    assert sent == [121_000, None] and switch.status.state is SwitchState.CLEARED


def test_switch_without_a_transport_sends_nothing():
    assert DeadManSwitch(schedule_cancel=None).beat(protected=False) is BeatStep.NONE


def test_desired_for_buffer_rests_the_orders_beyond_the_software_levels():
    params = ProtectionParams(sl_atr_mult=2.0, tp_atr_mult=4.0, take_profit=True, buffer_atr=0.5)
    long_stop, long_tp = desired_for(_pos(), params, sz_decimals=2)
    short_stop, short_tp = desired_for(_pos(PositionSide.SHORT, trailing_sl=101.0), params, sz_decimals=2)
    assert (long_stop.trigger_px, long_tp.trigger_px) == (95.0, 109.0)
    assert (short_stop.trigger_px, short_tp.trigger_px) == (102.0, 91.0)  # trailing 101 + 0.5 x 2


def test_plan_resting_order_without_oid_is_not_cancelled_blindly():
    assert plan([], [_live(oid=None)]) == []
