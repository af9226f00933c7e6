"""The project's clients against the loopback simulator over real HTTP.

The info client must parse every simulator answer through the same code as the recorded real
answers, and the signer + transport must place, fill, cancel and manage orders that the simulator
(which verifies signatures exactly as the venue does) accepts. Venue refusals and lost answers
must come back as the right outcome kinds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account

from engine.enums import AmbiguousReason, RoundDirection, Tif, VenueOrderStatus, VenueRejectReason, VenueSide
from engine.venue import types as hl
from engine.venue.exchange_client import (
    ActionSigner,
    ExchangeAccepted,
    ExchangeAmbiguous,
    ExchangeRejected,
    ExchangeTransport,
    OrderSpec,
    SigningKey,
    cloid_for,
    round_price,
    round_size,
)
from engine.venue.info_client import HyperliquidInfoClient, RetryPolicy
from engine.venue.rate_budget import RateBudget
from strategies.candle import interval_ms
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator


@dataclass
class Venue:
    sim: SimulatorProcess
    info: HyperliquidInfoClient
    signer: ActionSigner
    transport: ExchangeTransport
    user: str
    meta: hl.Meta

    def asset(self) -> hl.AssetMeta:
        return self.meta.universe[0]

    def order(
        self,
        *,
        is_buy: bool,
        px_factor: float,
        notional_usd: float = 20.0,
        tif: Tif = Tif.GTC,
        reduce_only: bool = False,
        key: str,
        sz: float | None = None,
    ) -> tuple[str, ExchangeAccepted]:
        asset = self.asset()
        mid = self.info.all_mids()[asset.name]
        px = round_price(mid * px_factor, asset.sz_decimals)
        size = sz if sz is not None else round_size(notional_usd / px, asset.sz_decimals, RoundDirection.UP)
        cloid = cloid_for(key)
        spec = OrderSpec(
            asset=asset.asset_id,
            is_buy=is_buy,
            limit_px=px,
            sz=size,
            tif=tif,
            reduce_only=reduce_only,
            cloid=cloid,
        )
        outcome = self.transport.post(self.signer.sign_orders([spec]))
        assert isinstance(outcome, ExchangeAccepted), outcome
        return cloid, outcome


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """One simulator for the module (each test trades from its own fresh account)."""
    sim = start_simulator(["--speed", "0", "--seed", "7"], tmp_path_factory.mktemp("clients-sim"))
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def venue(shared_sim: SimulatorProcess) -> Iterator[Venue]:
    sim = shared_sim
    sim.set_faults(reset=True)
    budget = RateBudget(1200)
    info = HyperliquidInfoClient(
        sim.base_url,
        timeout_secs=5.0,
        budget=budget,
        retry=RetryPolicy(max_attempts=3, backoff_base_secs=0.05, total_deadline_secs=10),
    )
    account = Account.create()
    signer = ActionSigner.for_base_url(SigningKey(account), sim.base_url)
    transport = ExchangeTransport(sim.base_url, timeout_secs=5.0, budget=budget)
    info.clearinghouse_state(account.address)  # the simulator funds an address when it first sees it
    try:
        yield Venue(sim, info, signer, transport, account.address, info.meta())
    finally:
        sim.set_faults(reset=True)
        info.close()
        transport.close()


def test_info_client_parses_every_simulator_answer(venue: Venue) -> None:
    info, coin = venue.info, venue.asset().name
    venue.order(is_buy=True, px_factor=1.05, tif=Tif.IOC, key="fill-1")
    venue.order(is_buy=True, px_factor=0.9, key="rest-1")
    venue.sim.advance(ms=3 * 3_600_000)  # funding accrues hourly
    now = venue.sim.state()["now_ms"]

    meta_ctxs = info.meta_and_asset_ctxs()
    assert [c.coin for c in meta_ctxs.ctxs] == [a.name for a in venue.meta.universe]
    assert set(info.all_mids()) >= {a.name for a in venue.meta.universe}
    candles = info.candle_snapshot(coin, "5m", now - 6 * 3_600_000, now)
    assert candles and all(c.close_ms == c.t + interval_ms("5m") - 1 for c in candles)
    book = info.l2_book(coin)
    assert book.coin == coin and book.bids[0].px < book.asks[0].px
    state = info.clearinghouse_state(venue.user)
    assert state.position(coin) is not None
    assert len(info.open_orders(venue.user)) == 1 and len(info.frontend_open_orders(venue.user)) == 1
    fills = info.user_fills(venue.user)
    assert len(fills) == 1 and info.user_fills_by_time(venue.user, 0, now) == fills
    assert info.order_status(venue.user, cloid_for("rest-1")).status is VenueOrderStatus.OPEN
    assert info.funding_history(coin, now - 86_400_000, now)
    assert all(f.coin == coin for f in info.user_funding(venue.user, 0, now))


def test_resting_order_is_listed_queried_and_canceled_by_cloid(venue: Venue) -> None:
    cloid, placed = venue.order(is_buy=True, px_factor=0.9, key="rest-2")
    (resting,) = placed.ack.statuses
    assert isinstance(resting, hl.RestingStatus) and resting.cloid == cloid
    (listed,) = venue.info.open_orders(venue.user)
    assert (listed.oid, listed.cloid, listed.side) == (resting.oid, cloid, VenueSide.BUY)
    canceled = venue.transport.post(venue.signer.sign_cancels_by_cloid([(venue.asset().asset_id, cloid)]))
    assert isinstance(canceled, ExchangeAccepted) and canceled.ack.statuses == (hl.TextStatus("success"),)
    assert venue.info.open_orders(venue.user) == ()
    assert venue.info.order_status(venue.user, resting.oid).status is VenueOrderStatus.CANCELED


def test_cancel_by_oid_and_unknown_oid(venue: Venue) -> None:
    _cloid, placed = venue.order(is_buy=False, px_factor=1.1, key="rest-3")
    (resting,) = placed.ack.statuses
    asset_id = venue.asset().asset_id
    assert isinstance(resting, hl.RestingStatus)
    outcome = venue.transport.post(
        venue.signer.sign_cancels([(asset_id, resting.oid), (asset_id, 987654321)])
    )
    assert isinstance(outcome, ExchangeAccepted)
    ok, missing = outcome.ack.statuses
    assert ok == hl.TextStatus("success") and isinstance(missing, hl.ErrorStatus)
    assert not venue.info.order_status(venue.user, 987654321).known


def test_ioc_open_then_reduce_only_close_round_trip(venue: Venue) -> None:
    coin = venue.asset().name
    cloid, opened = venue.order(is_buy=True, px_factor=1.05, tif=Tif.IOC, key="open-1")
    (filled,) = opened.ack.statuses
    assert isinstance(filled, hl.FilledStatus) and filled.cloid == cloid and filled.total_sz > 0
    position = venue.info.clearinghouse_state(venue.user).position(coin)
    assert position is not None and position.szi == pytest.approx(filled.total_sz)
    _c, closed = venue.order(
        is_buy=False, px_factor=0.95, tif=Tif.IOC, reduce_only=True, key="close-1", sz=filled.total_sz
    )
    assert isinstance(closed.ack.statuses[0], hl.FilledStatus)
    assert venue.info.clearinghouse_state(venue.user).position(coin) is None
    fills = venue.info.user_fills(venue.user)
    assert {f.dir for f in fills} == {"Open Long", "Close Long"}
    assert {f.cloid for f in fills} == {cloid, cloid_for("close-1")} and all(f.tid is not None for f in fills)


def test_batch_statuses_line_up_with_cloids_and_per_item_errors(venue: Venue) -> None:
    asset = venue.asset()
    mid = venue.info.all_mids()[asset.name]
    px = round_price(mid * 0.9, asset.sz_decimals)
    good = OrderSpec(
        asset=asset.asset_id,
        is_buy=True,
        limit_px=px,
        sz=round_size(20 / px, asset.sz_decimals, RoundDirection.UP),
        cloid=cloid_for("batch-ok"),
    )
    tiny = OrderSpec(
        asset=asset.asset_id,
        is_buy=True,
        limit_px=px,
        sz=round_size(1 / px, asset.sz_decimals, RoundDirection.UP) or 10**-asset.sz_decimals,
        cloid=cloid_for("batch-tiny"),
    )
    signed = venue.signer.sign_orders([good, tiny])
    outcome = venue.transport.post(signed)
    assert isinstance(outcome, ExchangeAccepted) and not outcome.ack.all_ok
    first, second = outcome.ack.statuses
    assert isinstance(first, hl.RestingStatus) and first.cloid == signed.cloids[0]
    assert isinstance(second, hl.ErrorStatus) and "minimum value" in second.message


def test_leverage_and_schedule_cancel_are_accepted(venue: Venue) -> None:
    asset_id = venue.asset().asset_id
    lev = venue.transport.post(venue.signer.sign_update_leverage(asset_id, 3, is_cross=True))
    assert isinstance(lev, ExchangeAccepted) and lev.ack.response_type == "default"
    venue.order(is_buy=True, px_factor=1.05, tif=Tif.IOC, key="lev-open")
    position = venue.info.clearinghouse_state(venue.user).position(venue.asset().name)
    assert position is not None and position.leverage == 3
    clear = venue.transport.post(venue.signer.sign_schedule_cancel(None))
    assert isinstance(clear, ExchangeAccepted)


def test_replayed_and_tampered_bodies_are_rejected(venue: Venue) -> None:
    _cloid, _placed = venue.order(is_buy=True, px_factor=0.9, key="replay-1")
    asset = venue.asset()
    signed = venue.signer.sign_update_leverage(asset.asset_id, 2)
    assert isinstance(venue.transport.post(signed), ExchangeAccepted)
    replay = venue.transport.post(signed)  # same nonce again: the venue must refuse it
    assert isinstance(replay, ExchangeRejected) and replay.reason is VenueRejectReason.VENUE_ERROR
    fresh = venue.signer.sign_update_leverage(asset.asset_id, 4)
    payload = fresh.payload()
    payload["action"]["leverage"] = 40
    tampered = type(fresh)(
        fresh.action_type,
        fresh.nonce,
        fresh.batch_len,
        fresh.cloids,
        fresh.signer_address,
        json.dumps(payload).encode(),
    )
    outcome = venue.transport.post(tampered)
    assert isinstance(outcome, ExchangeRejected) and outcome.reason is VenueRejectReason.VENUE_ERROR


def test_lost_ack_is_ambiguous_and_settled_by_cloid_lookup(venue: Venue) -> None:
    venue.sim.set_faults(lost_ack_next=1)
    asset = venue.asset()
    mid = venue.info.all_mids()[asset.name]
    px = round_price(mid * 0.9, asset.sz_decimals)
    cloid = cloid_for("lost-ack-1")
    spec = OrderSpec(
        asset=asset.asset_id,
        is_buy=True,
        limit_px=px,
        sz=round_size(20 / px, asset.sz_decimals, RoundDirection.UP),
        cloid=cloid,
    )
    outcome = venue.transport.post(venue.signer.sign_orders([spec]))
    assert isinstance(outcome, ExchangeAmbiguous)
    assert outcome.reason in (AmbiguousReason.CONNECTION_LOST, AmbiguousReason.TIMEOUT)
    status = venue.info.order_status(venue.user, cloid)
    assert status.known and status.status is VenueOrderStatus.OPEN and status.order is not None
    assert status.order.cloid == cloid


def test_info_client_retries_through_injected_5xx_and_gives_up_typed(venue: Venue) -> None:
    venue.sim.set_faults(rest_error_rate=1.0, rest_error_status=503)
    before = venue.sim.state()["faulted_errors"]
    with pytest.raises(hl.TemporaryVenueError) as err:
        venue.info.all_mids()
    assert err.value.attempts == 3 and "503" in err.value.detail
    assert venue.sim.state()["faulted_errors"] - before == 3
    venue.sim.set_faults(reset=True)
    assert venue.info.all_mids()
