"""A closed candle the sidecar corrects after a shard applied it reaches the shard's state.

The sidecar closes a forming candle when the venue clock passes its close; on a loaded host the
bar's final WS update can come after that, so it publishes a stale bar (the open state: flat,
no volume) and corrects it from REST a moment later. The shard had applied the stale bar; its
indicators must end up as if it had only ever seen the corrected one, or the daemon's decisions
differ from `engine.replay` over the same candles (the parity e2e failure under load).
The oracle is the batch strategy over the corrected history (tests.unit.test_shard_core).
"""

from __future__ import annotations

import dataclasses

import pytest

from cluster.applied_tail import RECHECK_BARS
from cluster.inprocess import InProcessExecutor
from strategies.candle import Candle
from tests.unit.test_shard_core import WARM, Universe, assert_matches, make_executor, oracle

BARS = 30
STALE_AT = WARM + 4  # the bar published stale


def _stale(candle: Candle, prev: Candle) -> Candle:
    """The bar as a late final WS update leaves it: the opening state, no trades."""
    return dataclasses.replace(candle, o=prev.c, h=prev.c, l=prev.c, c=prev.c, v=0.0, n=0)


def _run(u: Universe, ex: InProcessExecutor, corrected_after: int) -> None:
    """Publish bar by bar; STALE_AT stale, rewritten with the true bar `corrected_after` bars later.

    From the first tick after the correction on, every symbol's decision (features included)
    must equal the batch strategy's over the true history.
    """
    expected = {s: oracle(s, u.hist[s], u.hist["BTC"]) for s in u.symbols}
    for bar in range(WARM, WARM + BARS):
        batch = u.publish(bar + 1, bar)
        if bar == STALE_AT:
            for s in u.symbols:  # the anchor stays true: only traded symbols go stale here
                u.store.add_closed(s, [_stale(u.hist[s][bar], u.hist[s][bar - 1])])
        if bar == STALE_AT + corrected_after:
            for s in u.symbols:
                u.store.add_closed(s, [u.hist[s][STALE_AT]])
        result = ex.evaluate(batch, want_snapshot=u.symbols)
        if bar < STALE_AT or bar >= STALE_AT + corrected_after:
            for s, record in result.decisions.items():
                assert_matches(record, expected[s][bar])
                assert record.features is not None


@pytest.mark.parametrize("corrected_after", [1, 2, RECHECK_BARS])
def test_candle_corrected_after_it_was_applied_is_reapplied(corrected_after: int) -> None:
    u = Universe(3, WARM + BARS)
    u.publish(WARM)
    ex = make_executor(u, 1)
    _run(u, ex, corrected_after)
    core = ex.cores[0]
    assert core.rehydrated["corrected"] == len(u.symbols)
    assert all(core._states[s].ind.bars == WARM + BARS for s in u.symbols)


def test_stale_bar_really_changes_the_decision_inputs() -> None:
    """The test above has teeth: with the stale bar kept, the features differ from the oracle."""
    u = Universe(3, WARM + BARS)
    u.publish(WARM)
    ex = make_executor(u, 1)
    expected = {s: oracle(s, u.hist[s], u.hist["BTC"]) for s in u.symbols}
    for bar in range(WARM, STALE_AT + 2):
        batch = u.publish(bar + 1, bar)
        if bar == STALE_AT:
            for s in u.symbols:
                u.store.add_closed(s, [_stale(u.hist[s][bar], u.hist[s][bar - 1])])
        result = ex.evaluate(batch, want_snapshot=u.symbols)
    with pytest.raises(AssertionError):
        for s, record in result.decisions.items():
            assert_matches(record, expected[s][STALE_AT + 1])


def test_restart_after_correction_restores_the_corrected_state() -> None:
    """The rebuild is checkpointed at once: a restart does not bring the stale bar back."""
    u = Universe(3, WARM + BARS)
    u.publish(WARM)
    ex = make_executor(u, 1)
    expected = {s: oracle(s, u.hist[s], u.hist["BTC"]) for s in u.symbols}
    for bar in range(WARM, STALE_AT + 3):
        batch = u.publish(bar + 1, bar)
        if bar == STALE_AT:
            for s in u.symbols:
                u.store.add_closed(s, [_stale(u.hist[s][bar], u.hist[s][bar - 1])])
        if bar == STALE_AT + 1:
            for s in u.symbols:
                u.store.add_closed(s, [u.hist[s][STALE_AT]])
        ex.evaluate(batch, want_snapshot=u.symbols)
    restarted = ex.restart_shard(0)
    assert restarted.rehydrated["checkpoint"] == len(u.symbols)
    bar = STALE_AT + 3
    result = ex.evaluate(u.publish(bar + 1, bar), want_snapshot=u.symbols)
    for s, record in result.decisions.items():
        assert_matches(record, expected[s][bar])
