"""LiveOms ledger: intents committed before send, OPEN dedupe across restarts, outcome recording,
UNKNOWN settled by cloid lookups, fill dedupe (with and without tid), fill matching order, orphans,
cursor rules, file mode. SQLite on tmp_path, a fake clock, no network."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from engine.enums import (
    AmbiguousReason,
    BrokerReject,
    ExchangeActionType,
    NotSentReason,
    RiskReason,
    VenueOrderStatus,
    VenueRejectReason,
)
from engine.oms.ledger import FillSource, LiveOms, OmsConfig, dedupe_key_for_open, fill_natural_key
from engine.oms.records import SCHEMA_VERSION, OmsSchemaError, parse_deny_code
from engine.oms.states import OmsEvent, OrderState
from engine.venue import types as hl
from engine.venue.exchange_client import (
    ExchangeAccepted,
    ExchangeAmbiguous,
    ExchangeNotSent,
    ExchangeRejected,
    cloid_for,
    is_valid_cloid,
)

T0 = 1_700_000_000_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _open(path: Path, clock: Clock) -> LiveOms:
    return LiveOms(path, mode="live", config=OmsConfig(synchronous_full=False), clock_ms=clock)


@pytest.fixture
def oms(tmp_path: Path, clock: Clock) -> LiveOms:
    ledger = _open(tmp_path / "oms.db", clock)
    yield ledger
    ledger.close()


def _intent(
    oms: LiveOms,
    *,
    symbol: str = "BTC",
    is_buy: bool = True,
    size: float = 1.0,
    dedupe: bool = False,
    candle: int = T0,
) -> Any:
    key = dedupe_key_for_open(symbol, "LONG" if is_buy else "SHORT", candle) if dedupe else None
    return oms.create_intent(
        symbol=symbol,
        action="OPEN",
        position_side="LONG" if is_buy else "SHORT",
        is_buy=is_buy,
        size_coins=size,
        limit_px=101.0,
        reduce_only=False,
        reference_price=100.0,
        leverage=2.0,
        reason="entry",
        event_ms=candle,
        dedupe_key=key,
    )


def _fill(
    *,
    oid: int,
    sz: float = 1.0,
    time_ms: int = T0,
    coin: str = "BTC",
    side: str = "B",
    tid: int | None = 1,
    cloid: str | None = None,
    hash_: str = "0xabc",
    start: float = 0.0,
) -> hl.Fill:
    body: dict[str, Any] = {
        "coin": coin,
        "px": "100.5",
        "sz": str(sz),
        "side": side,
        "time": time_ms,
        "startPosition": str(start),
        "dir": "Open Long",
        "closedPnl": "0",
        "hash": hash_,
        "oid": oid,
        "crossed": True,
        "fee": "0.05",
        "feeToken": "USDC",
    }
    if tid is not None:
        body["tid"] = tid
    if cloid is not None:
        body["cloid"] = cloid
    return hl.parse_fill(body)


def _accepted(status: hl.ActionStatus) -> ExchangeAccepted:
    return ExchangeAccepted(ExchangeActionType.ORDER, 1, hl.ExchangeAck("order", (status,)))


# --- intents ----------------------------------------------------------------------------------


def test_create_intent_commits_valid_cloid_before_returning(oms: LiveOms, tmp_path: Path) -> None:
    created = _intent(oms)
    assert is_valid_cloid(created.intent.cloid)
    assert created.intent.cloid == cloid_for(created.intent.intent_id)
    other = sqlite3.connect(tmp_path / "oms.db")  # a second reader sees it: it is committed
    row = other.execute("SELECT cloid FROM intents WHERE intent_id=?", (created.intent.intent_id,)).fetchone()
    other.close()
    assert row == (created.intent.cloid,)
    assert oms.order(created.intent.intent_id).state is OrderState.NEW


@pytest.mark.parametrize("reason", [*RiskReason, BrokerReject.LEVERAGE_UPDATE_FAILED])
def test_deny_row_stores_reason_code_and_structured_details(oms: LiveOms, reason: RiskReason) -> None:
    denied, other = _intent(oms).intent, _intent(oms, symbol="ETH").intent
    other_reason = RiskReason.HARD_KILL if reason is not RiskReason.HARD_KILL else RiskReason.LEVERAGE
    oms.apply(denied.intent_id, OmsEvent.DENY, reason=reason, detail={"open": 8, "limit": 8})
    oms.apply(other.intent_id, OmsEvent.DENY, reason=other_reason)
    [row] = oms.denials(denied.intent_id)
    assert row.reason is reason and row.details == {"open": 8, "limit": 8}
    assert [d.reason for d in oms.denials()] == [reason, other_reason]
    assert oms.order(denied.intent_id).state is OrderState.DENIED
    # queryable by code with plain SQL, not a flattened string
    with sqlite3.connect(oms.path) as conn:
        rows = conn.execute(
            "SELECT intent_id, json_extract(detail_json, '$.limit') FROM order_events WHERE reason_code=?",
            (reason.value,),
        ).fetchall()
    assert rows == [(denied.intent_id, 8)]


def test_unknown_stored_deny_code_is_refused_naming_the_column() -> None:
    assert parse_deny_code(None) is None and parse_deny_code("max_positions") is RiskReason.MAX_POSITIONS
    with pytest.raises(ValueError, match=r"order_events\.reason_code"):
        parse_deny_code("risk says no")


def test_schema_1_db_is_migrated_and_keeps_its_rows(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "old.db"
    ledger = _open(path, clock)
    created = _intent(ledger).intent
    ledger.close()
    with sqlite3.connect(path) as conn:  # make it the schema-1 layout (no reason_code, no liquidation_json)
        conn.execute("ALTER TABLE order_events DROP COLUMN reason_code")
        conn.execute("ALTER TABLE fills DROP COLUMN liquidation_json")
        conn.execute("UPDATE oms_meta SET value='1' WHERE key='schema_version'")
    ledger = _open(path, clock)
    try:
        assert ledger.intent(created.intent_id) == created
        ledger.apply(created.intent_id, OmsEvent.DENY, reason=RiskReason.DRAWDOWN, detail={"dd_pct": 9.0})
        assert [d.reason for d in ledger.denials()] == [RiskReason.DRAWDOWN]
    finally:
        ledger.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM oms_meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )


def test_newer_schema_is_refused(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "new.db"
    _open(path, clock).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE oms_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(OmsSchemaError, match=f"schema version {SCHEMA_VERSION + 1}"):
        _open(path, clock)


def test_db_files_are_private(oms: LiveOms, tmp_path: Path) -> None:
    _intent(oms)
    for name in ("oms.db", "oms.db-wal"):
        path = tmp_path / name
        if path.exists():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("final", [OrderState.REJECTED, OrderState.NEW, OrderState.FILLED])
def test_open_dedupe_survives_restart_whatever_the_state(
    tmp_path: Path, clock: Clock, final: OrderState
) -> None:
    first = _open(tmp_path / "oms.db", clock)
    created = _intent(first, dedupe=True)
    outcome = {
        OrderState.REJECTED: ExchangeRejected(
            ExchangeActionType.ORDER, 1, VenueRejectReason.VENUE_ERROR, "x"
        ),
        OrderState.FILLED: _accepted(hl.FilledStatus(oid=5, total_sz=1.0, avg_px=100.0)),
    }.get(final)
    if outcome is not None:
        first.record_outcome(created.intent.intent_id, outcome)
    first.close()
    second = _open(tmp_path / "oms.db", clock)
    again = _intent(second, dedupe=True)
    assert again.duplicate and again.intent.intent_id == created.intent.intent_id and again.state is final
    assert len(second.intents()) == 1
    assert not _intent(second, dedupe=True, candle=T0 + 300_000).duplicate  # next candle: new entry
    assert not _intent(second, dedupe=True, is_buy=False).duplicate  # other side
    assert not _intent(second).duplicate  # no key (an exit): not deduped
    second.close()


# --- outcomes and settlement ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "state", "oid"),
    [
        (_accepted(hl.FilledStatus(oid=7, total_sz=1.0, avg_px=100.0)), OrderState.FILLED, 7),
        (_accepted(hl.RestingStatus(oid=8)), OrderState.ACCEPTED, 8),
        (_accepted(hl.ErrorStatus("Order must have minimum value of $10.")), OrderState.REJECTED, None),
        (
            ExchangeRejected(ExchangeActionType.ORDER, 1, VenueRejectReason.RATE_LIMITED, "429"),
            OrderState.REJECTED,
            None,
        ),
        (
            ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.TIMEOUT, "t"),
            OrderState.UNKNOWN,
            None,
        ),
        (
            ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.SERVER_ERROR, "502"),
            OrderState.UNKNOWN,
            None,
        ),
        (
            ExchangeNotSent(ExchangeActionType.ORDER, 1, NotSentReason.RATE_BUDGET, "b"),
            OrderState.NOT_SENT,
            None,
        ),
    ],
)
def test_record_outcome_maps_every_kind(
    oms: LiveOms, outcome: Any, state: OrderState, oid: int | None
) -> None:
    intent_id = _intent(oms).intent.intent_id
    assert oms.record_outcome(intent_id, outcome) is state
    assert oms.order(intent_id).oid == oid


def _status(status: VenueOrderStatus | None, oid: int = 9) -> hl.OrderStatusInfo:
    if status is None:
        return hl.OrderStatusInfo(order=None, status=None, status_timestamp_ms=None)
    order = hl.OpenOrder(coin="BTC", side=hl.VenueSide.BUY, limit_px=101.0, sz=0.0, oid=oid, timestamp_ms=T0)
    return hl.OrderStatusInfo(order=order, status=status, status_timestamp_ms=T0)


def test_unknown_stays_unknown_on_not_found_until_grace_then_abandoned(oms: LiveOms, clock: Clock) -> None:
    intent_id = _intent(oms).intent.intent_id
    oms.record_outcome(
        intent_id, ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.TIMEOUT, "t")
    )
    assert oms.apply_order_status(intent_id, _status(None)) is OrderState.UNKNOWN
    clock.now += oms.config.not_found_grace_ms
    assert oms.apply_order_status(intent_id, _status(None)) is OrderState.ABANDONED


def test_unknown_settles_by_cloid_lookup_to_filled_with_oid(oms: LiveOms) -> None:
    intent_id = _intent(oms).intent.intent_id
    oms.record_outcome(
        intent_id, ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.TIMEOUT, "t")
    )
    assert oms.apply_order_status(intent_id, _status(VenueOrderStatus.FILLED, oid=42)) is OrderState.FILLED
    assert oms.order(intent_id).oid == 42


def test_order_updates_settle_ours_and_ignore_others(oms: LiveOms) -> None:
    created = _intent(oms).intent
    oms.record_outcome(created.intent_id, _accepted(hl.RestingStatus(oid=11)))
    mine = hl.OrderUpdate(
        order=hl.OpenOrder(coin="BTC", side=hl.VenueSide.BUY, limit_px=1.0, sz=1.0, oid=11, timestamp_ms=T0),
        status=VenueOrderStatus.CANCELED,
        status_timestamp_ms=T0,
    )
    foreign = hl.OrderUpdate(
        order=hl.OpenOrder(coin="ETH", side=hl.VenueSide.BUY, limit_px=1.0, sz=1.0, oid=99, timestamp_ms=T0),
        status=VenueOrderStatus.FILLED,
        status_timestamp_ms=T0,
    )
    assert oms.apply_order_updates([mine, foreign]) == 1
    assert oms.order(created.intent_id).state is OrderState.CANCELLED


# --- fills ------------------------------------------------------------------------------------


def test_fill_dedupe_same_fill_from_ws_and_rest(oms: LiveOms) -> None:
    intent_id = _intent(oms).intent.intent_id
    oms.record_outcome(intent_id, _accepted(hl.RestingStatus(oid=5)))
    first = oms.ingest_fills([_fill(oid=5, sz=0.4), _fill(oid=5, sz=0.4)], source=FillSource.WS)
    assert (first.inserted, first.duplicates, first.matched) == (1, 1, 1)
    again = oms.ingest_fills([_fill(oid=5, sz=0.4)], source=FillSource.REST)
    assert (again.inserted, again.duplicates) == (0, 1)
    assert oms.order(intent_id).filled_sz == pytest.approx(0.4)
    assert oms.order(intent_id).state is OrderState.PARTIAL


def test_fill_without_tid_is_deduped_on_its_natural_key(oms: LiveOms) -> None:
    a = _fill(oid=5, tid=None, sz=0.5, start=0.0)
    b = _fill(oid=5, tid=None, sz=0.5, start=0.5)  # second fill of the same order and tx
    stats = oms.ingest_fills([a, b, a], source=FillSource.REST)
    assert (stats.inserted, stats.duplicates) == (2, 1)
    assert fill_natural_key(a) != fill_natural_key(b)


def test_same_hash_and_tid_is_one_fill_even_if_other_fields_differ(oms: LiveOms) -> None:
    stats = oms.ingest_fills([_fill(oid=5, tid=3), _fill(oid=5, tid=3, time_ms=T0 + 1)], source=FillSource.WS)
    assert (stats.inserted, stats.duplicates) == (1, 1)


def test_fill_matching_prefers_oid_then_cloid_then_time(oms: LiveOms, clock: Clock) -> None:
    by_oid = _intent(oms).intent
    oms.record_outcome(by_oid.intent_id, _accepted(hl.RestingStatus(oid=100)))
    by_cloid = _intent(oms).intent
    oms.record_outcome(by_cloid.intent_id, _accepted(hl.RestingStatus(oid=200)))
    clock.now = T0 + 1000
    by_time = _intent(oms).intent
    oms.record_outcome(
        by_time.intent_id, ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.TIMEOUT, "")
    )
    fills = [
        _fill(oid=100, tid=1, hash_="0x1"),
        _fill(oid=201, tid=2, hash_="0x2", cloid=by_cloid.cloid),  # oid unknown to us, cloid known
        _fill(oid=300, tid=3, hash_="0x3", time_ms=T0 + 1000 + 9 * 60_000),
    ]
    stats = oms.ingest_fills(fills, source=FillSource.WS)
    assert stats.matched == 3 and stats.orphans == 0
    got = oms.fill_links()
    assert got[fill_natural_key(fills[0])] == (by_oid.intent_id, "oid")
    assert got[fill_natural_key(fills[1])] == (by_cloid.intent_id, "cloid")
    assert got[fill_natural_key(fills[2])] == (by_time.intent_id, "time_proximity")
    assert oms.order(by_time.intent_id).oid == 300
    assert oms.order(by_time.intent_id).state is OrderState.FILLED


def test_fill_outside_window_or_wrong_side_is_an_orphan_kept_in_the_ledger(oms: LiveOms) -> None:
    created = _intent(oms).intent
    oms.record_outcome(
        created.intent_id, ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.TIMEOUT, "")
    )
    far = _fill(oid=1, tid=1, hash_="0x1", time_ms=T0 + 10 * 60_000 + 1)
    sell = _fill(oid=2, tid=2, hash_="0x2", side="A")
    other = _fill(oid=3, tid=3, hash_="0x3", coin="ETH")
    stats = oms.ingest_fills([far, sell, other], source=FillSource.REST)
    assert (stats.inserted, stats.orphans, stats.matched) == (3, 3, 0)
    assert {f.oid for f in oms.orphan_fills()} == {1, 2, 3}
    assert oms.order(created.intent_id).state is OrderState.UNKNOWN
    assert oms.ledger_positions(explained_only=False) == {"ETH": pytest.approx(1.0)}  # BTC nets to flat
    assert oms.ledger_positions() == {}  # orphans explain nothing


def test_orphan_is_linked_once_its_order_becomes_known(oms: LiveOms) -> None:
    oms.ingest_fills([_fill(oid=77, time_ms=T0 + 20 * 60_000)], source=FillSource.WS)
    created = _intent(oms).intent
    oms.record_outcome(created.intent_id, _accepted(hl.RestingStatus(oid=77)))
    assert oms.link_orphans() == 1
    assert oms.orphan_fills() == []
    assert oms.order(created.intent_id).state is OrderState.FILLED
    assert oms.link_orphans() == 0


def test_fill_on_rejected_order_is_kept_and_flagged_not_applied(oms: LiveOms) -> None:
    created = _intent(oms).intent
    oms.record_outcome(created.intent_id, _accepted(hl.ErrorStatus("no")))
    stats = oms.ingest_fills([_fill(oid=1, cloid=created.cloid)], source=FillSource.WS)
    assert stats.anomalies == 1 and stats.inserted == 1
    assert oms.order(created.intent_id).state is OrderState.REJECTED
    assert oms.reconcile_events("fill_on_terminal_order")


def test_ingest_batch_is_atomic(oms: LiveOms) -> None:
    def batch() -> Any:
        yield _fill(oid=1, tid=1, hash_="0x1")
        raise RuntimeError("feed broke mid-batch")

    with pytest.raises(RuntimeError):
        oms.ingest_fills(batch(), source=FillSource.WS)
    assert oms.fills() == []


def test_ledger_positions_net_buys_and_sells(oms: LiveOms) -> None:
    oms.ingest_fills(
        [
            _fill(oid=1, tid=1, sz=2.0),
            _fill(oid=2, tid=2, sz=0.5, side="A", start=2.0),
            _fill(oid=3, tid=3, coin="ETH", sz=1.0, side="A"),
        ],
        source=FillSource.WS,
    )
    assert oms.ledger_positions(explained_only=False) == {
        "BTC": pytest.approx(1.5),
        "ETH": pytest.approx(-1.0),
    }


# --- cursors ----------------------------------------------------------------------------------


def test_cursor_only_moves_forward_and_persists(tmp_path: Path, clock: Clock) -> None:
    first = _open(tmp_path / "oms.db", clock)
    assert first.cursor("rest_fills") is None
    assert first.advance_cursor("rest_fills", 1000) == 1000
    assert first.advance_cursor("rest_fills", 500) == 1000
    assert first.advance_cursor("rest_fills", 2000) == 2000
    first.close()
    second = _open(tmp_path / "oms.db", clock)
    assert second.cursor("rest_fills") == 2000
    second.close()


@pytest.mark.parametrize(
    ("direction", "start", "sz", "side", "expected"),
    [
        ("Open Long", 0.0, 1.0, "B", ("OPEN", "LONG")),
        ("Open Long", 1.0, 1.0, "B", ("ADD", "LONG")),
        ("Close Long", 2.0, 2.0, "A", ("CLOSE", "LONG")),
        ("Close Long", 2.0, 1.0, "A", ("REDUCE", "LONG")),
        ("Open Short", 0.0, 1.0, "A", ("OPEN", "SHORT")),
        ("Close Short", -1.0, 1.0, "B", ("CLOSE", "SHORT")),
        ("Long > Short", 1.0, 2.0, "A", None),
        ("Liquidated Isolated", 1.0, 1.0, "A", None),
    ],
)
def test_trade_export_classifies_venue_dir(
    oms: LiveOms, direction: str, start: float, sz: float, side: str, expected: tuple[str, str] | None
) -> None:
    from engine.execution.oms_trades import classify

    body = {
        "coin": "BTC",
        "px": "100",
        "sz": str(sz),
        "side": side,
        "time": T0,
        "startPosition": str(start),
        "dir": direction,
        "closedPnl": "0",
        "hash": "0x9",
        "oid": 1,
        "crossed": True,
        "fee": "0",
        "tid": 5,
    }
    oms.ingest_fills([hl.parse_fill(body)], source=FillSource.WS)
    (fill,) = oms.fills()
    got = classify(fill)
    assert (None if got is None else (got[0].value, got[1].value)) == expected


def test_configs_from_env_read_reference_names_and_refuse_bad_values() -> None:
    from engine.config.env import ConfigError
    from engine.execution.live_broker import LiveBrokerConfig
    from engine.oms.reconciler import ReconcilerConfig

    env = {
        "AI_QUANT_OMS_MATCH_TTL_MS": "120000",
        "AI_QUANT_OMS_RECONCILE_SECS": "5",
        "AI_QUANT_OMS_STALE_ORDER_MS": "60000",
        "HL_LIVE_MARKET_SLIPPAGE_PCT": "0.02",
    }
    assert OmsConfig.from_env(env).match_window_ms == 120_000
    rec = ReconcilerConfig.from_env("0x" + "1" * 40, "live", env)
    assert (rec.period_secs, rec.stale_order_ms, rec.cancel_stale) == (5.0, 60_000, True)
    assert not ReconcilerConfig.from_env("0x" + "1" * 40, "dry_live", env).cancel_stale
    assert LiveBrokerConfig.from_env("0x" + "1" * 40, env).slippage == 0.02
    with pytest.raises(ConfigError):
        LiveBrokerConfig.from_env("0x" + "1" * 40, {"HL_LIVE_MARKET_SLIPPAGE_PCT": "0.5"})
