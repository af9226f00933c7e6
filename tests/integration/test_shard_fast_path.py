"""The shard's steady-state fast paths (cluster.shard_journal, cluster.shard_fast) decide exactly like
the general path.

Two `ShardCore`s read the same candles from one real redis-server, each under its own key prefix:
the shard as it runs (`RedisShardStore`, bulk read, fast path) and a twin whose store hides
`read_batch`, so every symbol takes the general path (`ShardCore._view` / `_catch_up`). Between
steady ticks the run interleaves what the fast path must hand over to the general one: a symbol
skipping a tick then catching up two candles, a stale candle rewritten after it was applied (the
sidecar's correction), candles stored beyond the key (early, or after a bar the venue never had),
retention trimming a symbol's history past its state (history gap), the anchor traded as a
symbol, a restart from checkpoints written by the fast path, and what the closed-bar journal path
must hand over: a stale applied candle corrected between ticks while its symbol's key stood still
(consumed from the journal but not in the tick's request), a journal trimmed past the shard's
cursor hiding a rewrite, a malformed journal entry, and several candles written at once (the
skipped symbol's gap fill). Every tick both shards' records
must be identical, field for field, and equal the batch strategy over the true history
(tests.unit.test_shard_core.oracle) wherever that history is intact, and their whole indicator
states (checkpoints, packed doubles) bit for bit the same; the fast path must actually have
carried most candles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import redis

from bench.universe import INTERVAL
from cluster.records import ShardStatus
from cluster.redis_layout import RedisLayout
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import RedisShardStore
from strategies.candle import Candle
from tests.unit.test_shard_core import WARM, Universe, assert_matches, oracle

TICKS = 40
SETTINGS = ShardSettings(interval=INTERVAL, checkpoint_every=5)
SKIP_AT, RESTART_AT, STALE_AT, CORRECT_AT, AHEAD_AT, HOLE_AT, TRIM_AT = 4, 6, 14, 16, 20, 24, 30
REWRITE_AT, JUNK_AT, JTRIM_AT, RACE_AT = 10, 26, 34, 37  # the journal path's hand-overs (symbols 6-8)


class GeneralOnly:
    """The same Redis store without `read_batch`: the core reads every symbol the general way."""

    def __init__(self, inner: RedisShardStore) -> None:
        self._inner = inner

    def read_since(self, resume: Any) -> Any:
        return self._inner.read_since(resume)

    def load_checkpoints(self, names: Any) -> Any:
        return self._inner.load_checkpoints(names)

    def save_checkpoints(self, states: Any) -> None:
        self._inner.save_checkpoints(states)

    def read_forming(self, symbols: Any) -> Any:
        return self._inner.read_forming(symbols)


class RacingStore(RedisShardStore):
    """The fast shard's store; `after_journal` (once) runs right after its journal read, as a write
    landing between the shard's journal read and its candle read would."""

    after_journal: Callable[[], None] | None = None

    def read_journal(self, cursor: str | None) -> Any:
        got = super().read_journal(cursor)
        hook, self.after_journal = self.after_journal, None
        if hook is not None:
            hook()
        return got


class Twins:
    """The candles written once per prefix (as the sidecar writes them) and the two shards."""

    def __init__(self, client: redis.Redis, u: Universe) -> None:
        self.client, self.u = client, u
        self.layouts = [RedisLayout(p, keep_bars=WARM + TICKS + 10) for p in ("t-fast", "t-general")]
        self.racing = RacingStore(client, self.layouts[0], INTERVAL)
        self.stores = [self.racing,
                       GeneralOnly(RedisShardStore(client, self.layouts[1], INTERVAL))]
        self.cores: list[ShardCore] = []

    def start(self) -> None:
        self.cores = [ShardCore(0, store, SETTINGS, ConfigSource(), symbols=self.u.symbols)
                      for store in self.stores]

    def write(self, candles: dict[str, list[Candle]], *, publish: bool = True) -> None:
        pipe = self.client.pipeline(transaction=True)
        for layout in self.layouts:
            layout.write_closed_many(pipe, INTERVAL, candles, publish=publish)
        pipe.execute()

    def trim(self, symbol: str, keep: int) -> None:
        pipe = self.client.pipeline(transaction=True)
        for layout in self.layouts:
            layout.trim_closed(pipe, symbol, INTERVAL, keep)
        pipe.execute()

    def journal(self, fields: dict[str, Any] | None = None) -> None:
        """Append a malformed entry to both journals, or (None) trim both to their newest entry."""
        for layout in self.layouts:
            key = layout.journal_key(INTERVAL)
            if fields is None:
                self.client.xtrim(key, maxlen=1, approximate=False)
            else:
                self.client.xadd(key, fields)

    def evaluate(self, batch: dict[str, int]) -> list[list[Any]]:
        return [core.evaluate(batch, want_snapshot=self.u.symbols[:2]) for core in self.cores]


def _states(core: ShardCore) -> dict[str, Any]:
    """Every symbol's checkpoint (indicator state as packed doubles: bit for bit) and applied tail."""
    return {s: (state.to_state(), state.recent.raw) for s, state in core._states.items()}


def _stale(candle: Candle, prev: Candle) -> Candle:
    return dataclasses.replace(candle, o=prev.c, h=prev.c, l=prev.c, c=prev.c, v=0.0, n=0)


def _fresh(u: Universe, k: int, bar: int) -> dict[str, list[Candle]]:
    """The candles the sidecar publishes at tick k: bar `bar` of every series, irregular at some ticks."""
    skipped, stale = u.symbols[1], u.symbols[2]
    fresh = {s: c[bar: bar + 1] for s, c in u.hist.items()}
    if k == SKIP_AT:
        del fresh[skipped]  # no candle for it this tick: its key stays where it was
    if k == SKIP_AT + 1:
        fresh[skipped] = u.hist[skipped][bar - 1: bar + 1]  # two at once
    if k == STALE_AT:
        fresh[stale] = [_stale(u.hist[stale][bar], u.hist[stale][bar - 1])]
    if k == AHEAD_AT + 1:
        fresh.pop(u.symbols[3])  # stored a tick early (below)
    if k == REWRITE_AT:
        fresh[u.symbols[6]] = [_stale(u.hist[u.symbols[6]][bar], u.hist[u.symbols[6]][bar - 1])]
    if k in (RACE_AT, RACE_AT + 1):
        del fresh[u.symbols[8]]  # written during the shard's read (RACE_AT), not at all (RACE_AT + 1)
    if k == RACE_AT + 2:
        fresh[u.symbols[8]] = u.hist[u.symbols[8]][bar - 1: bar + 1]
    return fresh


def _journal_events(t: Twins, k: int, bar: int, *, before: bool) -> None:
    """The journal path's hand-overs written before (`before`) or after the tick's fresh candles."""
    u = t.u
    rewritten, hidden, raced = u.symbols[6], u.symbols[7], u.symbols[8]
    if before and k == REWRITE_AT + 1:  # between ticks: the stale applied bar corrected; its key stands
        t.write({rewritten: [u.hist[rewritten][bar - 1]]}, publish=False)
    if before and k == JTRIM_AT:  # an applied bar rewritten (stale from now on; its key stands), then
        u.hist[hidden][bar - 1] = _stale(u.hist[hidden][bar - 1], u.hist[hidden][bar - 2])
        t.write({hidden: [u.hist[hidden][bar - 1]]}, publish=False)
    if not before and k == JTRIM_AT:
        t.journal(None)  # the journal trimmed: the shard's cursor entry and the rewrite's entry are gone
    if not before and k == RACE_AT:  # journaled after the fast shard's cursor, seen by its candle read
        t.racing.after_journal = lambda: t.write({raced: u.hist[raced][bar: bar + 1]})
    if not before and k == JUNK_AT:
        t.journal({"s": "not json"})


def _tick(t: Twins, k: int, keys: dict[str, int]) -> None:
    """Write bar WARM + k of every series, with this tick's irregularity; move `keys` along."""
    u, bar = t.u, WARM + k
    stale, ahead, holed = u.symbols[2], u.symbols[3], u.symbols[5]
    missing = u.hist[holed].pop(bar) if k == HOLE_AT else None  # a bar the venue never had
    _journal_events(t, k, bar, before=True)
    fresh = _fresh(u, k, bar)
    t.write(fresh)
    _journal_events(t, k, bar, before=False)
    if k == CORRECT_AT:
        t.write({stale: [u.hist[stale][WARM + STALE_AT]]}, publish=False)  # the sidecar's correction
    if k == AHEAD_AT:
        t.write({ahead: u.hist[ahead][bar + 1: bar + 2]}, publish=False)  # stored beyond its key
    keys.update({s: c[-1].close_ms for s, c in fresh.items() if s in keys})
    keys[ahead] = u.hist[ahead][bar].close_ms
    if missing is not None:  # the next candle is stored, the key is the missing one's
        keys[holed] = missing.close_ms
    held = {REWRITE_AT + 1: u.symbols[6], JTRIM_AT: u.symbols[7]}.get(k)
    if held is not None:  # its new bar is stored, the driver's key has not moved yet
        keys[held] = u.hist[held][bar - 1].close_ms
    if k in (RACE_AT, RACE_AT + 1):  # at RACE_AT + 1 ahead of the store (its one journal record is old)
        keys[u.symbols[8]] = u.hist[u.symbols[8]][bar].close_ms


def _oracle_applies(u: Universe, symbol: str, k: int) -> bool:
    """False where a stale input, a lost history or another history leaves the oracle nothing to say."""
    stale, trimmed, holed, rewritten, hidden = (u.symbols[i] for i in (2, 4, 5, 6, 7))
    return not ((symbol == stale and STALE_AT <= k < CORRECT_AT) or (symbol == trimmed and k >= TRIM_AT)
                or (symbol == holed and k >= HOLE_AT) or (symbol == hidden and k >= JTRIM_AT)
                or (symbol == rewritten and REWRITE_AT <= k <= REWRITE_AT + 1)
                or (symbol == u.symbols[8] and k == RACE_AT + 1))


def test_fast_path_decides_like_the_general_path_through_irregular_ticks(redis_client: redis.Redis) -> None:
    u = Universe(9, WARM + TICKS + 2, trade_btc=True)
    t = Twins(redis_client, u)
    t.write({s: c[:WARM] for s, c in u.hist.items()})
    t.start()
    keys = {s: u.hist[s][WARM - 1].close_ms for s in u.symbols}
    t.evaluate(keys)
    expected = {s: oracle(s, u.hist[s], u.hist["BTC"]) for s in u.symbols}
    trimmed = u.symbols[4]
    checked = 0
    journaled: list[int] = []  # candles the fast shard applied from the journal, per tick
    anchored: list[int] = []  # anchor candles it applied from the journal (no anchor read), per tick
    for k in range(TICKS):
        if k == RESTART_AT:
            t.start()  # both restored from the checkpoints they wrote (the fast one's packed in bulk)
            assert all(core.rehydrated["checkpoint"] == len(u.symbols) for core in t.cores)
        if k == TRIM_AT:
            t.trim(trimmed, 0)  # retention took every candle the state knows (its last one included)
        _tick(t, k, keys)
        before, anchor_before = t.cores[0].journal.applied, t.cores[0].journal.anchor_applied
        fast, general = t.evaluate(keys)
        journaled.append(t.cores[0].journal.applied - before)
        anchored.append(t.cores[0].journal.anchor_applied - anchor_before)
        assert [repr(r) for r in fast] == [repr(r) for r in general], k
        assert t.cores[0]._anchor.to_state() == t.cores[1]._anchor.to_state(), k  # the BTC trend, exactly
        assert _states(t.cores[0]) == _states(t.cores[1]), k  # the whole indicator state, bit for bit
        for record in fast:
            s = record.symbol
            if not _oracle_applies(u, s, k):
                continue  # the shards agree (above), the oracle cannot say
            assert record.candle_key == keys[s]
            bar = next(i for i, c in enumerate(u.hist[s]) if c.close_ms == keys[s])
            assert_matches(record, expected[s][bar])
            checked += 1
        if k >= TRIM_AT:
            assert next(r for r in fast if r.symbol == trimmed).history_gap
        if k in (HOLE_AT, RACE_AT + 1):  # the stored candle opens after the key / none: not applied
            holed = u.symbols[5] if k == HOLE_AT else u.symbols[8]
            assert next(r for r in fast if r.symbol == holed).status is ShardStatus.MISSING_CANDLE
    fast_core, general_core = t.cores
    assert checked > 200
    assert fast_core.rehydrated == general_core.rehydrated
    assert fast_core.rehydrated["corrected"] == 3 and fast_core.rehydrated["gap"] == 1
    # a trimmed or unreadable journal: every symbol read that tick; the journal path resumes next tick
    assert journaled[JTRIM_AT] == journaled[JUNK_AT] == 0
    assert journaled[JTRIM_AT + 1] > 0 and journaled[JUNK_AT + 1] > 0
    # the anchor likewise: read on those ticks and on the first after the restart (not yet clean), else
    # its one new candle came from the journal
    assert [k for k, n in enumerate(anchored) if n != 1] == [RESTART_AT, JUNK_AT, JTRIM_AT], anchored
    assert general_core.journal.anchor_applied == 0
    assert sum(journaled[RESTART_AT + 2:]) > 0.5 * (TICKS - RESTART_AT - 2) * len(u.symbols)
    assert general_core.fast_applied == 0
    # most ticks' candles since the restart went the fast way; the irregular ones and rebuilds did not
    assert fast_core.fast_applied > 0.6 * (TICKS - RESTART_AT) * len(u.symbols)
    assert fast_core.fast_applied < (TICKS - RESTART_AT) * len(u.symbols) < fast_core.candles_applied
