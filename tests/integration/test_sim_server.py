"""The simulator over real HTTP: market-data /info shapes vs recorded venue answers, candleSnapshot
windows and cap, determinism across processes, rate limit, REST faults, lost ack, clean shutdown."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import eth_account
import pytest
import requests
import yaml
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from websockets.sync.client import connect

from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
START_MS = 1_700_000_000_000
IV = 300_000
Factory = Callable[..., SimulatorProcess]


def recorded(name: str, request_type: str) -> Any:
    """The recorded venue answer to the request of ``request_type`` in ``name``.yaml."""
    doc = yaml.safe_load((RECORDED / f"{name}.yaml").read_text())
    for it in doc["interactions"]:
        if json.loads(it["request"]["body"])["type"] == request_type:
            return json.loads(it["response"]["body"]["string"])
    raise AssertionError(f"{name} has no {request_type}")


def kinds(obj: dict[str, Any]) -> dict[str, str]:
    """Key → JSON type name (None counts as the type it stands for elsewhere, so it is skipped)."""
    return {k: type(v).__name__ for k, v in obj.items() if v is not None}


def manual(factory: Factory, *extra: str) -> SimulatorProcess:
    return factory("--speed", "0", "--start-ms", str(START_MS), "--seed", "7", *extra)


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """One simulator for the read-only shape tests (no rate limit, so they cannot starve each other)."""
    sim = start_simulator(["--rate-limit-per-min", "0"], tmp_path_factory.mktemp("shared-sim"))
    yield sim
    sim.stop()


def ok(sim: SimulatorProcess, body: dict[str, Any]) -> Any:
    resp = sim.info(body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_info_meta_and_all_mids_match_recorded_shapes(shared_sim: SimulatorProcess) -> None:
    simulator = shared_sim
    meta = ok(simulator, {"type": "meta", "dex": ""})
    rec_asset = recorded("info_info", "meta")["universe"][0]
    assert meta["universe"], "universe must not be empty"
    for asset in meta["universe"]:
        assert kinds(rec_asset).items() <= kinds(asset).items()
        table_ids = [t[0] for t in meta["marginTables"]]
        assert asset["marginTableId"] in table_ids
    mids = ok(simulator, {"type": "allMids"})
    assert list(mids) == [a["name"] for a in meta["universe"]]
    rec_mids = recorded("info_all_mids", "allMids")
    assert {type(v) for v in rec_mids.values()} == {type(v) for v in mids.values()} == {str}
    assert all(float(v) > 0 for v in mids.values())
    assert ok(simulator, {"type": "spotMeta"}) == {"universe": [], "tokens": []}


def test_info_candles_l2_funding_match_recorded_shapes(shared_sim: SimulatorProcess) -> None:
    simulator = shared_sim
    candles = ok(simulator, {"type": "candleSnapshot",
                             "req": {"coin": "ETH", "interval": "5m", "startTime": 0, "endTime": 2**62}})
    rec_candle = recorded("info_candles_snapshot", "candleSnapshot")[0]
    assert len(candles) > 300
    assert all(kinds(c) == kinds(rec_candle) for c in candles)
    assert all(c["T"] == c["t"] + IV - 1 and c["s"] == "ETH" and c["i"] == "5m" for c in candles)
    book = ok(simulator, {"type": "l2Book", "coin": "ETH"})
    rec_book = recorded("info_l2_snapshot", "l2Book")
    assert kinds(book) == kinds(rec_book)
    rec_level = rec_book["levels"][0][0]
    assert all(kinds(lv) == kinds(rec_level) for side in book["levels"] for lv in side)
    bids, asks = book["levels"]
    assert float(bids[0]["px"]) < float(asks[0]["px"])
    funding = ok(simulator, {"type": "fundingHistory", "coin": "ETH", "startTime": 0})
    rec_funding = recorded("info_funding_history", "fundingHistory")[0]
    assert funding and all(kinds(f) == kinds(rec_funding) for f in funding)
    assert all(f["time"] % 3_600_000 == 0 for f in funding)


def test_info_meta_and_asset_ctxs_shape(shared_sim: SimulatorProcess) -> None:
    simulator = shared_sim
    meta, ctxs = ok(simulator, {"type": "metaAndAssetCtxs"})
    assert len(ctxs) == len(meta["universe"])
    string_fields = {"funding", "openInterest", "prevDayPx", "dayNtlVlm", "premium", "oraclePx", "markPx",
                     "midPx", "dayBaseVlm"}
    for ctx in ctxs:
        assert set(ctx) == string_fields | {"impactPxs"}
        assert all(isinstance(ctx[k], str) and float(ctx[k]) == float(ctx[k]) for k in string_fields)
        assert len(ctx["impactPxs"]) == 2 and float(ctx["impactPxs"][0]) < float(ctx["impactPxs"][1])


def test_info_unknown_type_and_bad_body_answer_422_plain_text(shared_sim: SimulatorProcess) -> None:
    simulator = shared_sim
    resp = simulator.info({"type": "noSuchThing"})
    assert resp.status_code == 422 and "noSuchThing" in resp.text
    resp = simulator.session.post(simulator.base_url + "/info", data=b"{not json", timeout=5)
    assert resp.status_code == 422
    bad_interval = {"coin": "ETH", "interval": "7m", "startTime": 0}
    resp = simulator.info({"type": "candleSnapshot", "req": bad_interval})
    assert resp.status_code == 422


def test_info_candle_snapshot_windows_and_5000_cap(simulator_factory: Factory) -> None:
    sim = manual(simulator_factory, "--synthetic", "2", "--history-bars", "6000")
    now = sim.state()["now_ms"]
    every = ok(sim, {"type": "candleSnapshot",
                     "req": {"coin": "SYN0001", "interval": "5m", "startTime": 0, "endTime": now}})
    assert len(every) == 5000
    assert every[-1]["t"] == now // IV * IV
    t100 = every[100]["t"]
    window = ok(sim, {"type": "candleSnapshot", "req": {"coin": "SYN0001", "interval": "5m",
                                                         "startTime": t100 + 1, "endTime": t100 + 10 * IV}})
    assert [c["t"] for c in window] == [t100 + k * IV for k in range(11)]
    no_end = ok(sim, {"type": "candleSnapshot", "req": {"coin": "SYN0001", "interval": "1h",
                                                         "startTime": now - 5 * 3_600_000}})
    assert 5 <= len(no_end) <= 6 and all(c["t"] % 3_600_000 == 0 for c in no_end)
    unknown = {"coin": "NOPE", "interval": "5m", "startTime": 0}
    assert ok(sim, {"type": "candleSnapshot", "req": unknown}) == []


def test_same_seed_two_processes_serve_identical_bytes(simulator_factory: Factory) -> None:
    a, b = manual(simulator_factory), manual(simulator_factory)
    bodies = [{"type": "allMids"}, {"type": "l2Book", "coin": "XMR"}, {"type": "metaAndAssetCtxs"},
              {"type": "candleSnapshot", "req": {"coin": "ADA", "interval": "15m", "startTime": 0}}]
    for step in ({"ms": 0}, {"ms": 61_234}, {"bars": 7}):
        assert a.advance(**step) == b.advance(**step)
        for body in bodies:
            ra, rb = a.info(body), b.info(body)
            assert ra.status_code == rb.status_code == 200
            assert ra.content == rb.content


def test_rate_limit_answers_429_once_weight_budget_is_spent(simulator: SimulatorProcess) -> None:
    answers = [simulator.info({"type": "meta"}) for _ in range(75)]
    statuses = [r.status_code for r in answers]
    first_429 = statuses.index(429)
    assert first_429 >= 60  # 1,200 weight per minute / 20 per meta call
    assert set(statuses[:first_429]) == {200}
    assert int(answers[first_429].headers["Retry-After"]) >= 1
    assert simulator.state()["rate_limited"] == statuses.count(429)


def test_fault_rest_errors_switch_on_and_off(simulator: SimulatorProcess) -> None:
    simulator.set_faults(rest_error_rate=1.0, rest_error_status=503)
    assert simulator.info({"type": "allMids"}).status_code == 503
    resp = simulator.session.post(simulator.base_url + "/exchange", json={"action": {"type": "noop"}},
                                  timeout=5)
    assert resp.status_code == 503
    simulator.set_faults(reset=True)
    assert simulator.info({"type": "allMids"}).status_code == 200
    assert simulator.state()["faulted_errors"] == 2


def test_fault_rest_delay_outlasts_client_timeout(simulator: SimulatorProcess) -> None:
    simulator.set_faults(rest_delay_rate=1.0, rest_delay_secs=5.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        simulator.info({"type": "allMids"}, timeout=0.5)
    simulator.set_faults(reset=True)
    assert simulator.info({"type": "allMids"}, timeout=5).status_code == 200


def test_fault_lost_ack_processes_order_but_drops_answer(simulator: SimulatorProcess) -> None:
    wallet = eth_account.Account.create()
    info = Info(simulator.base_url, skip_ws=True)
    exchange = Exchange(wallet, simulator.base_url)
    info.user_state(wallet.address)  # an address exists once it has been seen
    px = round(float(info.all_mids()["ETH"]) * 0.95, 3)
    simulator.set_faults(lost_ack_next=1)
    before = simulator.state()["exchange_posts"]
    with pytest.raises(requests.exceptions.ConnectionError):
        exchange.order("ETH", True, 5.0, px, {"limit": {"tif": "Gtc"}})
    state = simulator.state()
    assert state["lost_acks"] == 1 and state["exchange_posts"] == before + 1
    assert [o["limitPx"] for o in info.open_orders(wallet.address)] == [str(px)]
    answer = exchange.order("ETH", True, 5.0, px, {"limit": {"tif": "Gtc"}})  # next one is answered
    assert answer["status"] == "ok"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_simulator_exits_zero_on_sigterm_and_sigint(simulator_factory: Factory, sig: signal.Signals) -> None:
    sim = simulator_factory()
    assert sim.info({"type": "allMids"}).status_code == 200
    with connect(sim.ws_url, open_timeout=10) as ws:  # an open WS connection must not hold the exit
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}}))
        ws.recv(timeout=10)
        sim.proc.send_signal(sig)
        assert sim.proc.wait(timeout=10) == 0
