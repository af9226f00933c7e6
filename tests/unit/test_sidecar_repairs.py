"""engine.sidecar.candles: clock-closed bars whose final update may have been lost are repaired.

The fault behind issue 14's failed acceptance: a WebSocket session dies after a bar's last update
reached the sidecar only partly (or the bar's final update sat in the dead socket); the clock
then closes the forming bar as it stands, and nothing later re-reads it. These tests pin the
rules that close that hole: a session end forgets its forming bars and turns unconfirmed
clock-closed bars into repairs, a newer message on a live session confirms, a repair corrects.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sidecar.candles import CandleTracker, SyncRequest, TrackerOutput
from strategies.candle import Candle

IV = 60_000


def bar(i: int, c: float = 10.0, n: int = 1) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, 10.0, max(10.0, c) + 1, min(10.0, c) - 1, c, float(n), n)


def tracker() -> CandleTracker:
    return CandleTracker(IV, grace_ms=2000, lookback_bars=5)


def streaming(tr: CandleTracker, sym: str, upto: int) -> None:
    """`sym` seeded at bar 99 and streamed through bar `upto` (closed by the next bar's message)."""
    tr.seed(sym, 99 * IV)
    out = tr.on_candle(sym, bar(100))  # the re-read of the seeded bars
    tr.on_sync_result(out.syncs[0], [bar(i) for i in range(96, 100)])
    for i in range(101, upto + 1):
        tr.on_candle(sym, bar(i))


def test_session_end_forgets_forming_so_the_clock_cannot_close_a_partial_bar() -> None:
    tr = tracker()
    streaming(tr, "BTC", 101)
    tr.on_candle("BTC", bar(101, c=11, n=2))  # bar 101 so far; its final update never comes
    assert tr.on_disconnect(["BTC"]).repairs == []  # nothing was clock-closed
    assert tr.due_closes(102 * IV + 5000).publish == {}  # the partial bar 101 is not published
    # the next session's first message fills 101 from REST
    out = tr.on_candle("BTC", bar(103))
    assert out.syncs == [SyncRequest("BTC", 101 * IV, 103 * IV)]


def test_clock_closed_bar_of_a_dead_session_is_repaired_and_corrected() -> None:
    tr = tracker()
    streaming(tr, "BTC", 101)
    partial = bar(101, c=11, n=2)
    tr.on_candle("BTC", partial)
    assert tr.due_closes(102 * IV + 2000).publish == {"BTC": [partial]}
    assert tr.unconfirmed("BTC") == [101 * IV]
    out = tr.on_disconnect(["BTC"])  # the socket died before the next bar's message
    assert out.repairs == [SyncRequest("BTC", 101 * IV, 102 * IV)]
    assert tr.needs_repair("BTC")
    final = bar(101, c=12, n=5)
    fixed = tr.on_repair_result(out.repairs[0], [final])
    assert fixed.corrections == {"BTC": [final]} and not tr.needs_repair("BTC")
    assert tr.published_tail("BTC")[-1] == final


def test_newer_message_on_the_same_session_confirms_a_clock_closed_bar() -> None:
    tr = tracker()
    streaming(tr, "BTC", 101)
    tr.due_closes(102 * IV + 2000)
    tr.on_candle("BTC", bar(102))  # in order: bar 101's last update came before this
    assert tr.unconfirmed("BTC") == []
    assert tr.on_disconnect(["BTC"]).repairs == []


def test_late_final_update_is_a_correction_and_a_repair_that_agrees_changes_nothing() -> None:
    tr = tracker()
    streaming(tr, "BTC", 101)
    tr.due_closes(102 * IV + 2000)
    final = bar(101, c=12, n=5)
    assert tr.on_candle("BTC", final).corrections == {"BTC": [final]}
    out = tr.on_disconnect(["BTC"])  # no newer bar seen: still unproven
    assert tr.on_repair_result(out.repairs[0], [final]).corrections == {}
    assert not tr.needs_repair("BTC")


def test_seeded_bars_are_suspect_and_the_first_fill_reaches_back_over_them() -> None:
    tr = tracker()
    tr.seed("BTC", 99 * IV)  # written by a sidecar that died: maybe clock-closed partials
    assert tr.on_disconnect(["BTC"]).repairs == []  # not a repair (that would hold the heartbeat)
    out = tr.on_candle("BTC", bar(103))
    assert out.syncs == [SyncRequest("BTC", 96 * IV, 103 * IV)]
    done = tr.on_sync_result(out.syncs[0], [bar(i) for i in range(96, 103)])
    assert [c.t // IV for c in done.corrections["BTC"]] == [96, 97, 98, 99]
    assert [c.t // IV for c in done.publish["BTC"]] == [100, 101, 102]
    assert not tr.needs_repair("BTC")


def test_seeded_bars_without_a_gap_get_a_fill_of_just_them() -> None:
    tr = tracker()
    tr.seed("BTC", 99 * IV)
    out = tr.on_candle("BTC", bar(100))
    assert out.syncs == [SyncRequest("BTC", 96 * IV, 100 * IV)] and out.repairs == []
    assert tr.on_candle("BTC", bar(101)).publish == {}  # bar 100 waits behind the fill
    fixed = tr.on_sync_result(out.syncs[0], [bar(98), bar(99, c=13)])
    assert fixed.corrections == {"BTC": [bar(98), bar(99, c=13)]} and fixed.publish == {"BTC": [bar(100)]}
    assert not tr.needs_repair("BTC")


def test_bar_suspect_after_the_repair_left_is_asked_for_again() -> None:
    tr = tracker()
    streaming(tr, "BTC", 101)
    tr.due_closes(102 * IV + 2000)
    first = tr.on_disconnect(["BTC"]).repairs[0]
    tr.on_candle("BTC", bar(102))  # a new session; 102 closes by the clock and that session dies too
    tr.due_closes(103 * IV + 2000)
    tr.on_disconnect(["BTC"])
    tr.on_repair_result(first, [bar(101, c=12, n=5)])
    assert tr.repair_request("BTC") == SyncRequest("BTC", 102 * IV, 103 * IV)


class _Cache:
    """What the sidecar wrote for one symbol, and the fills and repairs it was asked for."""

    def __init__(self, tr: CandleTracker, finals: dict[int, Candle]) -> None:
        self.tr, self.finals = tr, finals
        self.bars: dict[int, Candle] = {}
        self.syncs: list[SyncRequest] = []
        self.repairs: list[SyncRequest] = []

    def take(self, out: TrackerOutput) -> None:
        for c in [*out.publish.get("X", []), *out.corrections.get("X", [])]:
            self.bars[c.t] = c
        self.repairs.extend(out.repairs)
        self.syncs.extend(out.syncs)

    def answer_all(self) -> None:
        """Answer every fill and repair with the venue's final bars (also those they lead to)."""
        for _ in range(100):
            if self.syncs:
                req = self.syncs.pop(0)
                self.take(self.tr.on_sync_result(req, self._venue(req)))
            elif self.repairs:
                req = self.repairs.pop(0)
                self.take(self.tr.on_repair_result(req, self._venue(req)))

    def _venue(self, req: SyncRequest) -> list[Candle]:
        return [self.finals[t // IV] for t in range(req.start_t, req.end_t, IV)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["msg", "final", "clock", "drop"]), st.integers(0, 3)),
                max_size=40))  # fmt: skip
def test_after_repairs_every_published_bar_is_the_final_one(steps: list[tuple[str, int]]) -> None:
    """Random messages (in order, as one session delivers them), clock closes and drops: once
    every repair and fill is answered with the venue's final bars, the published bars are final."""
    finals = {i: bar(i, c=20 + i, n=9) for i in range(90, 200)}
    tr = tracker()
    tr.seed("X", 99 * IV)
    cache = _Cache(tr, finals)
    i, now = 100, 101 * IV
    cache.take(tr.on_candle("X", bar(i, c=10, n=0)))
    for kind, k in steps:
        if kind == "msg":  # bar i so far; when the bar moves on, the venue sent its final first
            if k >= 2:
                cache.take(tr.on_candle("X", finals[i]))
                i += k // 2
            cache.take(tr.on_candle("X", bar(i, c=10 + k, n=k)))
        elif kind == "final":
            cache.take(tr.on_candle("X", finals[i]))
        elif kind == "clock":
            now = max(now, (i + 1) * IV + 2000 + k * IV)
            cache.take(tr.due_closes(now))
        else:
            cache.take(tr.on_disconnect(["X"]))
            i += k
    cache.take(tr.on_disconnect(["X"]))
    cache.take(tr.on_candle("X", finals[i + 5]))
    cache.answer_all()
    assert not tr.needs_repair("X")
    assert {t // IV for t, c in cache.bars.items() if c != finals[t // IV]} == set()
