"""engine.sidecar.progress: the clock closes a WS bar only once its socket showed the venue past the close."""

from __future__ import annotations

from engine.sidecar.candles import CandleTracker
from engine.sidecar.progress import SocketProgress
from strategies.candle import Candle

IV = 60_000
SLOTS = {"A": 0, "B": 0, "C": 1}


def bar(i: int, n: int = 1) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, 10.0, 11.0, 9.0, 10.0, float(n), n)


def setup() -> tuple[CandleTracker, SocketProgress]:
    tr = CandleTracker(IV, grace_ms=2000, lookback_bars=5)
    progress = SocketProgress(SLOTS.get, grace_ms=2000, hold_ms=8000)
    for sym in SLOTS:
        tr.seed(sym, 99 * IV)
        tr.on_repair_result(tr.repair_request(sym), [])  # type: ignore[arg-type]
        tr.on_candle(sym, bar(100))
        progress.seen(sym, 100 * IV)
    return tr, progress


def test_due_bar_waits_until_its_socket_delivers_something_newer() -> None:
    tr, progress = setup()
    now = 101 * IV + 3000  # past close + grace
    assert tr.due_closes(now, (), progress.held(now)).publish == {}  # A's final may be queued behind
    tr.on_candle("C", bar(101))
    progress.seen("C", 101 * IV)  # the other socket moved on: that says nothing of A's
    assert tr.due_closes(now, (), progress.held(now)).publish == {}
    tr.on_candle("B", bar(101))  # B's newer bar on A's socket: A had no update since
    progress.seen("B", 101 * IV)
    assert set(tr.due_closes(now, (), progress.held(now)).publish) == {"A"}


def test_a_silent_socket_is_waited_for_a_bounded_time() -> None:
    tr, progress = setup()
    now = 101 * IV + 2000 + 8000
    closed = tr.due_closes(now, (), progress.held(now)).publish
    assert set(closed) == {"A", "B", "C"} and tr.unconfirmed("A") == [100 * IV]  # repaired if the socket dies
