"""Checkpoint staggering when a call applies several candles per symbol (issue 12, bench.scale).

A driver that fell behind by k bars sends calls that each apply k candles. The old rule (a row is
due when `(bars + phase) % every == 0`) only fired for the rows whose phase matched the step; the
others waited until they were 2 x `every` behind and then all fell due in the same call (with
`--bars-per-call 4`, 409 of 500 symbols' checkpoints in one call). The rule now asks whether the
bars applied since the last checkpoint crossed the row's boundary, so each row is due once per
`every` bars at any step, and a shard's checkpoints spread over the calls.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from cluster.shard_core import ShardCore, ShardSettings, _stagger
from cluster.shard_state import checkpoint_is_due
from cluster.shard_store import MemoryShardStore
from strategies.config import default_config
from tests.unit.test_shard_core import INTERVAL, WARM, Universe


def _simulate(every: int, step: int, calls: int, start: int = WARM) -> list[list[int]]:
    """Rows with every phase 0..every-1, checkpointed at `start`, then `calls` calls of `step` bars:
    the phases due at each call (a due row is checkpointed, as ShardCore does)."""
    ckpt = dict.fromkeys(range(every), start)
    out = []
    for call in range(1, calls + 1):
        bars = start + call * step
        due = [p for p in range(every) if checkpoint_is_due(bars, ckpt[p], p, every)]
        for p in due:
            ckpt[p] = bars
        out.append(due)
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 8, 16])
def test_each_row_is_due_once_per_every_bars_and_the_rows_spread_over_the_calls(step: int) -> None:
    every = 16
    calls = 4 * every  # calls x step bars: each row crosses calls x step / every of its boundaries
    per_call = _simulate(every, step, calls)
    times = Counter(p for due in per_call for p in due)
    assert times == dict.fromkeys(range(every), calls * step // every)  # once per crossing (step <= every)
    # spread: a call holds the rows whose boundary fell inside its `step` bars, never more
    assert max(len(d) for d in per_call) == min(step, every)


def test_a_row_is_never_due_without_a_new_bar() -> None:
    assert not checkpoint_is_due(WARM, WARM, 3, 16)
    assert checkpoint_is_due(WARM + 16, WARM, 3, 16)  # a whole period behind: always due


def test_shard_checkpoints_spread_when_each_call_applies_four_candles() -> None:
    """Through ShardCore: 4 candles per call, checkpoint_every=8, 40 symbols. Each call writes about
    half the symbols (their boundary fell in its 4 bars); the old rule wrote a few, then 3/4 at once."""
    n, every, step, calls = 40, 8, 4, 8
    u = Universe(n, WARM + step * calls + 1)
    store = MemoryShardStore()
    u.store = store
    batch = u.publish(WARM)
    saved: list[set[str]] = []
    original = store.save_checkpoints

    def save(states: dict) -> None:
        saved.append(set(states) - {"BTC#anchor.0"})
        original(states)

    store.save_checkpoints = save  # type: ignore[method-assign]
    core = ShardCore(0, store, ShardSettings(interval=INTERVAL, checkpoint_every=every), default_config,
                     symbols=u.symbols)
    core.evaluate(batch)
    assert saved[-1] == set(u.symbols)  # the first catch-up checkpoints every symbol
    saved.clear()
    written: list[set[str]] = []
    for call in range(calls):
        first = WARM + call * step
        core.evaluate(u.publish(first + step, first))
        written.append(set().union(*saved) if saved else set())
        saved.clear()
    # every symbol is written once per every / step = 2 calls, on its own phase
    for s in u.symbols:
        hits = [i for i, w in enumerate(written) if s in w]
        assert len(hits) == calls // 2, (s, hits)
        assert all(b - a == 2 for a, b in pairwise(hits)), (s, hits)
    # so each call writes the symbols of half the phases (the hash spreads 40 symbols over 8)
    assert len({_stagger(s, every) for s in u.symbols}) == every
    assert all(0.25 * n < len(w) < 0.75 * n for w in written), [len(w) for w in written]

