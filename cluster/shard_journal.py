"""The shard's journal path: steady symbols advance from the closed-bar journal, with no candle read.

Why: even the bulk fast path (`cluster.shard_fast`) re-read each symbol's recently applied candles
to prove none was rewritten: a per-key call inside Redis' read script, ~10 us of Redis CPU per
symbol per tick on a box where Redis shares the cores with the shards. Every candle write also
appends one entry to the interval's journal (`cluster.bar_journal`, written by `RedisLayout`); a
shard reads what was written since its cursor in ONE ``XRANGE`` and, for a symbol with exactly
one new record there, knows the store holds exactly the candles it applied plus that one.

`JournalCursor` keeps the cursor (the last entry consumed) and the CLEAN symbols: those whose
state the general read (or the bulk fast path) brought up to everything stored, by a read taken
after the cursor was. A symbol advances from the journal (close mode only) when all of these hold:
- the journal is intact since the cursor (its entry is still there: nothing trimmed), readable;
- the symbol is clean (with this very state object: a rebuilt or restored state is not), is a
  mei_alpha_v1 row of the shard's columns without SDK strategies, has a full applied tail, and is
  not the anchor symbol (traded, it takes the read; its trend follows the rule below);
- the entries since the cursor hold exactly one record of it, newer than its last applied candle
  and within the tick's key (`through`).
The anchor (`cluster.anchor.AnchorTrend`, which the general read advances without any tail check)
follows the same rule: once a read taken after the cursor brought it up to everything stored
(`mark_anchor`), its one journal record of a tick, newer than its last candle and within the
tick's newest key, advances it (`advance_anchor`) without the anchor read; anything else about it
(several records, a record not newer or beyond the key, a journal not intact) clears it, and the
general read takes over. Any other write of a clean symbol (a rewrite of an applied candle, several
candles, a trim, a candle beyond the key, or one written while the symbol was not being read) makes
it unclean: it takes the general read, which re-checks its tail and rebuilds as it always did, and
is clean again once that read's candles are all applied. A store without `read_journal`, a failed read or
a trimmed journal: every symbol takes the general read this tick (fail closed).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from operator import attrgetter
from typing import Any

import numpy as np

from cluster.applied_tail import TAIL_BYTES
from cluster.bar_journal import JournalRead
from cluster.candle_codec import RECORD_BYTES
from cluster.mei_rows import MeiRow
from cluster.shard_fast import FastAdvance, apply_new

log = logging.getLogger(__name__)


class JournalCursor:
    """One shard's position in the closed-bar journal and its clean symbols (module docstring)."""

    __slots__ = ("_anchor_bar", "anchor", "anchor_applied", "applied", "clean", "cursor", "live")

    def __init__(self) -> None:
        self.cursor: str | None = None  # id of the last entry consumed
        self.clean: dict[str, Any] = {}  # symbol -> the state object that is clean
        self.anchor: Any = None  # the AnchorTrend object that is clean (None: read it)
        self._anchor_bar: Any = None  # this tick's one journal record of the anchor (None: none)
        self.live = False  # this tick's reads were taken after a valid cursor
        self.applied = 0  # candles applied from the journal (stats, tests)
        self.anchor_applied = 0  # anchor candles applied from the journal (stats, tests)

    def advance(self, states: Mapping[str, Any], store: Any, reads: Mapping[str, int | None],
                keys: Mapping[str, int], anchor: str) -> FastAdvance:
        """Read the journal (before any candle read of the tick) and apply what qualifies of `reads`
        (close mode: `keys` are the candle keys, the newest open time each symbol may apply)."""
        journal = self._read(store)
        done = FastAdvance()
        self._anchor_bar = None
        if journal is not None:
            row = journal.one.get(anchor)
            if row is not None:
                self._anchor_bar = journal.bars[row]
            elif anchor in journal.other:
                self.anchor = None
            try:
                done = advance_journal(states, journal, reads, self.clean, keys, anchor)
            except Exception:  # raised before applying anything: everything is read the general way
                log.exception("journal path failed; reading every symbol the general way")
            touched = journal.one.keys() | journal.other
            for symbol in (touched & self.clean.keys()).difference(done.applied):
                del self.clean[symbol]
        self.applied += len(done.applied)
        return done

    def advance_anchor(self, trend: Any, newest: int | None) -> bool:
        """Apply this tick's one journal record of the anchor to `trend` (an `AnchorTrend`) when the
        trend is clean and the record is its next candle within `newest` (the tick's newest open
        time); whether it did (else the general read advances the anchor, as without a journal)."""
        bar, self._anchor_bar = self._anchor_bar, None
        if bar is None or newest is None:
            return False
        t = int(bar["t"])
        if self.anchor is not trend or trend.last_t is None or not trend.last_t < t <= newest:
            self.anchor = None
            return False
        trend.update(t, int(bar["close_ms"]), float(bar["c"]))
        self.anchor_applied += 1
        return True

    def mark_anchor(self, trend: Any, fresh: Any) -> None:
        """After the general read of the anchor (taken after the cursor): `trend` is clean when it
        applied every candle of the read (`fresh`, ascending)."""
        done = self.live and trend.last_t is not None and (not fresh or fresh[-1].t <= trend.last_t)
        self.anchor = trend if done else None

    def _read(self, store: Any) -> JournalRead | None:
        """The journal since the cursor, or None (every symbol takes the general read); the cursor moves."""
        self.live = False
        reader = getattr(store, "read_journal", None)
        if reader is None:
            return None
        try:
            journal = reader(self.cursor)
        except Exception as exc:  # unreadable: no symbol can be trusted; the cursor stays
            log.warning("closed-bar journal unreadable (%s); reading every symbol the general way", exc)
            self.clean.clear()
            self.anchor = None
            return None
        if journal.problem is not None:
            log.warning("closed-bar journal: %s; reading every symbol the general way", journal.problem)
        if not journal.intact:
            self.clean.clear()
            self.anchor = None
        self.cursor = journal.last_id
        self.live = journal.last_id is not None
        return journal if journal.intact else None

    def mark(self, states: Mapping[str, Any], views: Mapping[str, Any]) -> None:
        """Symbols whose read (taken after the cursor) is now applied in full are clean."""
        if not self.live:
            return
        clean = self.clean
        for symbol, (fresh, _) in views.items():
            state = states.get(symbol)
            if state is not None and state.last_t is not None and (not fresh or fresh[-1].t <= state.last_t):
                clean[symbol] = state
        if len(clean) > 2 * len(states) + 64:  # symbols moved away or rebuilt: drop their old states
            self.clean = {s: st for s, st in clean.items() if states.get(s) is st}


def _eligible(states: Mapping[str, Any], journal: JournalRead, reads: Collection[str],
              clean: Mapping[str, Any], keys: Mapping[str, int], anchor: str,
              ) -> tuple[list[str], list[list[Any]]]:
    """Symbols of `reads` with one journal record whose state qualifies, and per symbol its row in
    `journal.bars`, last applied open time, key and applied tail (this runs per symbol per tick:
    the steady tick, where every symbol qualifies, is checked at C speed, `_all_eligible`)."""
    steady = _all_eligible(states, journal, reads, clean, keys, anchor)
    if steady is not None:
        return steady
    picked: list[str] = []
    got: list[list[Any]] = [[], [], [], []]
    rows, last, limit, raws = got
    one = journal.one
    for symbol in reads:
        row = one.get(symbol)
        if row is None or symbol == anchor:
            continue
        state = states.get(symbol)
        if (state is None or clean.get(symbol) is not state or state.sdk is not None
                or type(state.ind) is not MeiRow or len(raw := state.recent.raw) != TAIL_BYTES):
            continue
        picked.append(symbol)
        rows.append(row)
        last.append(state.last_t)
        limit.append(keys[symbol])
        raws.append(raw)
    return picked, got


_SDK, _IND, _RECENT, _RAW, _LAST_T = (attrgetter(a) for a in ("sdk", "ind", "recent", "raw", "last_t"))


def _all_eligible(states: Mapping[str, Any], journal: JournalRead, reads: Collection[str],
                  clean: Mapping[str, Any], keys: Mapping[str, int], anchor: str,
                  ) -> tuple[list[str], list[list[Any]]] | None:
    """`_eligible` when EVERY symbol of `reads` qualifies (each test of its loop, over whole lists
    with `map`, no Python per symbol), else None (the loop decides symbol by symbol)."""
    names = list(reads)
    n = len(names)
    if not n or anchor in reads:
        return None
    held = list(map(states.get, names))
    if list(map(clean.get, names)) != held or None in held:  # each clean with this very state
        return None
    rows = list(map(journal.one.get, names))
    if None in rows or list(map(_SDK, held)).count(None) != n:
        return None
    raws = list(map(_RAW, map(_RECENT, held)))
    if list(map(type, map(_IND, held))).count(MeiRow) != n or list(map(len, raws)).count(TAIL_BYTES) != n:
        return None
    return names, [rows, list(map(_LAST_T, held)), list(map(keys.__getitem__, names)), raws]


def advance_journal(states: Mapping[str, Any], journal: JournalRead, reads: Collection[str],
                    clean: Mapping[str, Any], keys: Mapping[str, int], anchor: str) -> FastAdvance:
    """Apply each qualifying symbol's one journal record (module docstring); `keys[symbol]` is the
    newest open time it may apply (close mode: its candle key). Pure: no I/O."""
    picked, (rows, last, limit, raws) = _eligible(states, journal, reads, clean, keys, anchor)
    if not picked:
        return FastAdvance()
    new = journal.bars[np.asarray(rows, dtype=np.int64)]
    ok = (new["t"] > np.asarray(last, dtype=np.int64)) & (new["t"] <= np.asarray(limit, dtype=np.int64))
    if not ok.any():
        return FastAdvance()
    keep = np.flatnonzero(ok)
    new = new[keep]
    # each kept tail loses its oldest record and gains the new one, as whole records (bytes)
    old = np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(len(picked), TAIL_BYTES)[keep]
    added = new.view(np.uint8).reshape(len(keep), RECORD_BYTES)
    tails = np.concatenate([old[:, RECORD_BYTES:], added], axis=1)
    return apply_new(states, [picked[i] for i in keep.tolist()], new, tails.tobytes())
