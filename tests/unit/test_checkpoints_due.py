"""`checkpoints_due` (one array test per tick) must name exactly the symbols whose
`_SymbolState.checkpoint_due` is True, in order, with or without symbols that hold no state."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from cluster.shard_state import _SymbolState, checkpoints_due


@pytest.mark.parametrize("every", [1, 3, 16])
def test_the_array_test_names_what_each_state_says(every: int) -> None:
    rng = random.Random(every)
    states = {}
    for i in range(400):
        bars = rng.choice([0, 1, 2 * every - 1, 2 * every, rng.randrange(10_000)])
        ckpt = max(0, bars - rng.choice([0, 1, every - 1, every, 2 * every, 2 * every + 1, 5 * every]))
        states[f"S{i}"] = SimpleNamespace(bars=bars, ckpt_bars=ckpt, phase=rng.randrange(every))
    want = [s for s, st in states.items() if _SymbolState.checkpoint_due(st, every)]  # type: ignore[arg-type]
    assert 0 < len(want) < len(states)
    assert checkpoints_due(states, list(states), every) == want  # type: ignore[arg-type]
    names = ["gone", *states, "away"]  # symbols without state: the per-symbol pass, same answer
    assert checkpoints_due(states, names, every) == want  # type: ignore[arg-type]
    assert checkpoints_due(states, [], every) == []  # type: ignore[arg-type]
