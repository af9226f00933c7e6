"""The journal path's eligibility (`cluster.shard_journal._eligible`): the steady tick's whole-list
check (`_all_eligible`, every symbol qualifies) must pick exactly what the per-symbol loop picks,
and hand over to that loop as soon as one symbol does not qualify (not clean, a short applied
tail, no journal record, the anchor among the reads).
"""

from __future__ import annotations

from typing import Any

import pytest

from cluster import shard_journal
from cluster.bar_journal import JournalRead
from cluster.shard_core import ConfigSource, ShardCore
from tests.unit.test_shard_core import SETTINGS, WARM, Universe


@pytest.fixture()
def steady() -> tuple[ShardCore, list[str], JournalRead]:
    u = Universe(6, WARM + 1)
    keys = u.publish(WARM)
    core = ShardCore(0, u.store, SETTINGS, ConfigSource(), symbols=u.symbols)
    core.evaluate(keys)
    journal = JournalRead("9-0", True, one={s: i for i, s in enumerate(reversed(u.symbols))})
    return core, u.symbols, journal


def _by_loop(*args: Any) -> Any:
    saved = shard_journal._all_eligible
    shard_journal._all_eligible = lambda *_a: None
    try:
        return shard_journal._eligible(*args)
    finally:
        shard_journal._all_eligible = saved


def test_the_steady_check_picks_what_the_loop_picks_and_hands_over_on_any_exception(steady) -> None:
    core, symbols, journal = steady
    states = core._states
    keys = {s: 10**13 + i for i, s in enumerate(symbols)}
    clean = dict(states)
    args = (states, journal, dict(states), clean, keys, "BTC")
    every = shard_journal._all_eligible(*args)
    assert every is not None and every == _by_loop(*args) == shard_journal._eligible(*args)
    assert every[0] == symbols and every[1][0] == [journal.one[s] for s in symbols]
    assert every[1][1] == [states[s].last_t for s in symbols] and every[1][2] == [keys[s] for s in symbols]

    odd = symbols[2]

    def check(name: str, cl: dict[str, Any], jr: JournalRead) -> None:
        got = (states, jr, dict(states), cl, keys, "BTC")
        assert shard_journal._all_eligible(*got) is None, name
        picked = shard_journal._eligible(*got)
        assert picked == _by_loop(*got) and picked[0] == [s for s in symbols if s != odd], name

    check("not clean", {**clean, odd: None}, journal)
    check("no record", clean, JournalRead("9-0", True, one={s: i for i, s in enumerate(symbols) if s != odd}))
    saved, states[odd].recent = states[odd].recent, type(states[odd].recent)()  # an empty applied tail
    check("short tail", clean, journal)
    states[odd].recent = saved
    with_anchor = (states, journal, {**states, "BTC": states[symbols[0]]}, clean, keys, "BTC")
    assert shard_journal._all_eligible(*with_anchor) is None
