"""engine.sidecar.candles: close detection, gap fills and the no-missing/no-duplicate invariant."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sidecar.candles import CandleTracker, SyncRequest, TrackerOutput
from strategies.candle import Candle

IV = 60_000


def bar(i: int, c: float = 10.0) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, 10.0, max(10.0, c) + 1, min(10.0, c) - 1, c, 1.0, 1)


def tracker(lookback: int = 5) -> CandleTracker:
    return CandleTracker(IV, grace_ms=2000, lookback_bars=lookback)


def seed_settled(tr: CandleTracker, symbol: str, last_closed_t: int) -> None:
    """Seed, and answer the re-read of the seeded bars (suspect until then) with what the cache has."""
    tr.seed(symbol, last_closed_t)
    request = tr.repair_request(symbol)
    assert request is not None and request.end_t == last_closed_t + IV
    tr.on_repair_result(request, [])


def test_first_message_requests_lookback_backfill_and_sync_publishes_it() -> None:
    tr = tracker(lookback=5)
    out = tr.on_candle("BTC", bar(100))
    assert out.syncs == [SyncRequest("BTC", 95 * IV, 100 * IV)] and out.publish == {}
    result = tr.on_sync_result(out.syncs[0], [bar(i) for i in range(90, 101)])
    assert [c.t // IV for c in result.publish["BTC"]] == [95, 96, 97, 98, 99]
    assert tr.last_closed_t("BTC") == 99 * IV


def test_next_bar_closes_forming_and_timer_closes_quiet_symbol() -> None:
    tr = tracker()
    seed_settled(tr, "BTC", 99 * IV)
    seed_settled(tr, "ETH", 99 * IV)
    assert tr.on_candle("BTC", bar(100)).syncs == []
    tr.on_candle("ETH", bar(100))
    out = tr.on_candle("BTC", bar(101))
    assert out.publish == {"BTC": [bar(100)]}
    assert tr.due_closes(101 * IV + 1000).publish == {}  # ETH bar 100 closes at 101*IV-1; grace 2 s
    late = tr.due_closes(101 * IV + 1999)
    assert late.publish == {"ETH": [bar(100)]}
    assert tr.on_candle("ETH", bar(100, c=11)).publish == {}  # late update of a closed bar: ignored


def test_gap_buffers_close_until_sync_fills_it() -> None:
    tr = tracker()
    seed_settled(tr, "BTC", 99 * IV)
    tr.on_candle("BTC", bar(100))
    tr.on_candle("BTC", bar(101))
    out = tr.on_candle("BTC", bar(104))  # 102, 103 never seen on WS
    assert out.publish == {"BTC": [bar(101)]} and out.syncs == [SyncRequest("BTC", 102 * IV, 104 * IV)]
    assert tr.is_syncing("BTC")
    assert tr.on_candle("BTC", bar(105)).publish == {}  # bar 104 waits behind the sync
    done = tr.on_sync_result(out.syncs[0], [bar(101), bar(102), bar(103), bar(104)])
    assert [c.t // IV for c in done.publish["BTC"]] == [102, 103, 104]
    assert tr.last_closed_t("BTC") == 104 * IV


def test_reconnect_forgets_forming_and_fills_missed_bars() -> None:
    tr = tracker()
    seed_settled(tr, "BTC", 99 * IV)
    tr.on_candle("BTC", bar(100, c=10.5))
    tr.on_reconnect()
    out = tr.on_candle("BTC", bar(103))
    assert out.publish == {} and out.syncs == [SyncRequest("BTC", 100 * IV, 103 * IV)]
    done = tr.on_sync_result(out.syncs[0], [bar(100, c=12), bar(101), bar(102)])
    assert done.publish["BTC"][0] == bar(100, c=12)  # the REST value, not the partial WS bar


def test_rest_confirms_empty_gap_so_close_is_not_refetched_forever() -> None:
    tr = tracker()
    seed_settled(tr, "ILLQ", 99 * IV)
    out = tr.on_candle("ILLQ", bar(105))
    done = tr.on_sync_result(out.syncs[0], [])  # venue has no bars 100..104 (no trades)
    assert done.publish == {} and done.syncs == []
    closed = tr.on_candle("ILLQ", bar(106))
    assert closed.publish == {"ILLQ": [bar(105)]} and closed.syncs == []


def test_quiet_symbol_is_synced_when_its_bars_should_have_closed() -> None:
    tr = tracker()
    seed_settled(tr, "QUIET", 99 * IV)
    assert tr.lagging_syncs(100 * IV + 1000).syncs == []  # bar 99 is the last one; 100 still open
    out = tr.lagging_syncs(103 * IV + 2500)
    assert out.syncs == [SyncRequest("QUIET", 100 * IV, 103 * IV)]
    tr.on_sync_result(out.syncs[0], [])
    assert tr.lagging_syncs(103 * IV + 9000).syncs == []  # confirmed empty, not refetched


def test_cross_check_reports_differing_closed_bars_once() -> None:
    tr = tracker()
    seed_settled(tr, "BTC", 99 * IV)
    tr.on_candle("BTC", bar(100, c=10.2))
    tr.on_candle("BTC", bar(101))
    venue_now = 102 * IV
    assert tr.cross_check("BTC", [bar(100, c=10.3), bar(101)], venue_now) == [bar(100, c=10.3)]
    assert tr.cross_check("BTC", [bar(100, c=10.3)], venue_now) == []


def _drain(tr: CandleTracker, out: TrackerOutput, truth: dict[int, Candle], published: list[Candle]) -> None:
    pending = list(out.syncs)
    published.extend(c for cs in out.publish.values() for c in cs)
    while pending:
        req = pending.pop(0)
        res = tr.on_sync_result(req, [truth[t] for t in sorted(truth) if req.start_t <= t < req.end_t])
        published.extend(c for cs in res.publish.values() for c in cs)
        pending.extend(res.syncs)


@settings(max_examples=150, deadline=None)
@given(
    drops=st.lists(st.booleans(), min_size=30, max_size=30),
    reconnects=st.lists(st.booleans(), min_size=30, max_size=30),
    empty=st.sets(st.integers(3, 27), max_size=4),
)
def test_any_drop_pattern_publishes_every_bar_once_in_order(
    drops: list[bool], reconnects: list[bool], empty: set[int]
) -> None:
    truth = {i * IV: bar(i, c=10 + i / 100) for i in range(30) if i not in empty}
    tr = tracker(lookback=3)
    seed_settled(tr, "X", 2 * IV)
    published: list[Candle] = []
    for i in range(3, 30):
        if reconnects[i]:
            tr.on_reconnect()
        if i * IV in truth and not drops[i]:
            _drain(tr, tr.on_candle("X", truth[i * IV]), truth, published)
        _drain(tr, tr.due_closes(i * IV + 500), truth, published)
    _drain(tr, tr.due_closes(31 * IV), truth, published)
    _drain(tr, tr.lagging_syncs(31 * IV), truth, published)
    expected = [truth[t] for t in sorted(truth) if 3 * IV <= t]
    assert [c.t for c in published] == [c.t for c in expected]
    assert published == expected


def test_venue_clock_follows_venue_events_and_advances_at_wall_speed() -> None:
    from engine.sidecar.candles import VenueClock

    wall = [1_000]
    clock = VenueClock(lambda: wall[0])
    assert clock.now() is None and clock.now_or(5) == 5
    clock.observe(50_000)  # a replaying venue far from wall time
    wall[0] += 300
    assert clock.now() == 50_300
    clock.observe(50_100)  # older than the estimate: ignored
    assert clock.now() == 50_300
    clock.observe(90_000)  # a fast venue runs ahead of wall speed
    assert clock.now() == 90_000


def test_venue_clock_on_wall_time_never_reads_behind_the_wall_clock() -> None:
    from engine.sidecar.candles import VenueClock

    wall = [10_000_000]
    clock = VenueClock(lambda: wall[0], live_tolerance_ms=120_000)
    clock.observe(wall[0] - 100_000)  # start-up: the current bar opened 100 s ago
    assert clock.live and clock.now() == wall[0]
    replay = VenueClock(lambda: wall[0], live_tolerance_ms=120_000)
    replay.observe(wall[0] - 3_600_000)  # a replay an hour behind keeps its own time
    assert not replay.live and replay.now() == wall[0] - 3_600_000


def test_final_update_after_the_clock_closed_the_bar_is_a_correction() -> None:
    """A loaded host: the clock closed the bar in its opening state before its final update came."""
    tr = tracker()
    seed_settled(tr, "DASH", 99 * IV)
    opening = Candle(100 * IV, 101 * IV - 1, 10.0, 10.0, 10.0, 10.0, 0.0, 0)
    tr.on_candle("DASH", opening)
    assert tr.due_closes(101 * IV + 2000).publish == {"DASH": [opening]}
    final = bar(100, c=11)
    out = tr.on_candle("DASH", final)
    assert out.publish == {} and out.corrections == {"DASH": [final]}
    assert tr.on_candle("DASH", final).corrections == {}  # reported once
    assert tr.on_candle("DASH", opening).corrections == {}  # an older state of the bar is never taken
    assert tr.cross_check("DASH", [final], 102 * IV + 5000) == []  # REST agrees: nothing more


def test_an_older_state_of_the_forming_bar_never_replaces_a_newer_one() -> None:
    """Two streams of one market (connections re-planning, or two sidecars for a moment): the bar
    closes with its latest state, whatever order the streams' updates interleave in."""
    from dataclasses import replace

    tr = tracker()
    seed_settled(tr, "BTC", 99 * IV)
    early, late = replace(bar(100), v=1.0, n=2), replace(bar(100, c=12.0), v=9.0, n=19)
    tr.on_candle("BTC", early)
    tr.on_candle("BTC", late)
    assert tr.on_candle("BTC", early).forming == {}  # the other stream, behind: ignored
    assert tr.forming("BTC") == late
    assert tr.on_candle("BTC", bar(101)).publish == {"BTC": [late]}


def test_reconnect_of_some_symbols_and_forget() -> None:
    tr = tracker()
    for sym in ("A", "B"):
        seed_settled(tr, sym, 99 * IV)
        tr.on_candle(sym, bar(100))
    tr.on_reconnect(["A", "unknown"])
    assert tr.forming("A") is None and tr.forming("B") == bar(100)
    tr.forget("B")
    assert tr.symbols() == ["A"] and tr.due_closes(200 * IV).publish == {}
