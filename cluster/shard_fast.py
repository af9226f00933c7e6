"""The shard's steady-state fast path: every symbol one closed candle further, applied in bulk.

Why: on a steady tick each of a shard's hundreds of symbols gained exactly one closed candle. The
general path (`ShardCore._view` / `_catch_up`) builds `Candle` objects for every record read,
re-checks the re-read tail candle by candle and stages each symbol on its own; that per-symbol
Python was most of a tick. Here the whole read (`cluster.candle_codec.BarsBatch`, one array) is
checked and applied with a few array operations, and only symbols for which every check holds
take it; every other symbol (and every symbol of a store without `read_batch`) goes the general
way, unchanged. Fail closed: anything unusual is slow, never guessed.

A symbol takes the fast path only when all of these hold (else the general path decides):
- close mode (`ShardSettings.signal_on_candle_close`; open mode needs the read's candles later);
- its state is a mei_alpha_v1 row of the shard's columns (`cluster.mei_rows.MeiRow`) without SDK
  strategies, with a full applied tail (`cluster.applied_tail`), and the read was made from the
  tail's oldest candle (the anchor may have widened it);
- the read proves continuity and holds exactly the tail's RECHECK_BARS newer candles, byte for
  byte the records applied (a rewritten one is the general path's business: it rebuilds), plus
  one new candle after the last applied one whose open time is within the symbol's key.
Then the new candles go to the columns (`MeiColumns.update`, the same update the book's flush
makes), and the state's last times, tail and bar count move on. Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, attrgetter
from typing import Any

import numpy as np

from cluster.applied_tail import RECHECK_BARS, TAIL_BARS, TAIL_BYTES
from cluster.candle_codec import CANDLE_DTYPE, RECORD_BYTES, BarsBatch
from cluster.mei_rows import MeiRow

log = logging.getLogger(__name__)

_WORDS = RECORD_BYTES // 8  # a record as 64-bit words: compared bit for bit


@dataclass(slots=True)
class FastAdvance:
    """What `advance_fast` did: symbols advanced one candle, and symbols whose row refused it (or
    whose group failed half way): the caller drops those, they rehydrate from the store."""

    applied: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def advance_fast(states: Mapping[str, Any], read: BarsBatch, request: Mapping[str, int | None],
                 through: Callable[[str], int]) -> FastAdvance:
    """Apply the new candle of every symbol of `read` that qualifies (module docstring).

    `through(symbol)` is the newest open time the symbol may apply this tick. Symbols not in the
    result were not touched. Raises only on a bug; the caller then takes the general path for all.
    """
    picked, idx = _candidates(states, read, request)
    if not picked:
        return FastAdvance()
    ok, rows = _checked(states, read, picked, idx, through)
    if not ok.any():
        return FastAdvance()
    keep = np.flatnonzero(ok)
    symbols = [picked[i] for i in keep.tolist()]
    rows = rows[keep]
    return apply_new(states, symbols, read.bars[rows[:, -1]], read.bars[rows.reshape(-1)].tobytes())


def apply_new(states: Mapping[str, Any], symbols: list[str], new: np.ndarray, tails: bytes) -> FastAdvance:
    """Apply `new[j]` to `symbols[j]`'s row and make `tails[j]` (TAIL_BYTES each) its applied tail:
    one `MeiColumns.update` per column set; a group that fails half way is refused whole."""
    done = FastAdvance()
    held = [states[symbol] for symbol in symbols]
    sets = [id(state.ind.cols) for state in held]
    groups: dict[int, list[int]] = defaultdict(list)
    if sets and sets.count(sets[0]) == len(sets):  # the usual tick: one column set
        groups[sets[0]] = list(range(len(sets)))
    else:
        for j, cols in enumerate(sets):
            groups[cols].append(j)
    for members in groups.values():
        try:
            _apply_group(held, symbols, members, new, tails, done)
        except Exception:  # half applied: the whole group is dropped and rehydrates (fail closed)
            log.exception("fast path: applying %d symbols failed; they rehydrate", len(members))
            lost = {symbols[j] for j in members}
            done.applied = [s for s in done.applied if s not in lost]
            done.refused.extend(sorted(lost))
    return done


def _candidates(states: Mapping[str, Any], read: BarsBatch, request: Mapping[str, int | None],
                ) -> tuple[list[str], list[int]]:
    """Symbols whose state qualifies (cheap per-symbol checks), and their positions in `read`."""
    picked: list[str] = []
    idx: list[int] = []
    where = read.index
    for symbol, i in where.items():
        state = states.get(symbol)
        if state is None or state.sdk is not None or type(state.ind) is not MeiRow:
            continue
        raw = state.recent.raw
        if len(raw) != TAIL_BYTES or request.get(symbol) != state.recent.read_from(state.last_t):
            continue
        picked.append(symbol)
        idx.append(i)
    return picked, idx


def _checked(states: Mapping[str, Any], read: BarsBatch, picked: list[str], idx: list[int],
             through: Callable[[str], int]) -> tuple[np.ndarray, np.ndarray]:
    """(mask of `picked` passing the array checks, their records' rows in `read.bars`: n x TAIL_BARS)."""
    at = np.asarray(idx, dtype=np.int64)
    start, count = read.starts[at], read.ends[at] - read.starts[at]
    ok = read.found[at] & (count == TAIL_BARS)
    rows = np.where(ok, start, 0)[:, None] + np.arange(TAIL_BARS, dtype=np.int64)
    if not len(read.bars):
        return np.zeros(len(picked), dtype=bool), rows
    rows = np.minimum(rows, len(read.bars) - 1)
    raw = b"".join(states[s].recent.raw for s in picked)
    words = read.bars.view(np.uint64).reshape(-1, _WORDS)[rows]  # n x TAIL_BARS x words, bit patterns
    tails = np.frombuffer(raw, dtype=np.uint64).reshape(len(picked), TAIL_BARS, _WORDS)
    ok &= (words[:, :RECHECK_BARS] == tails[:, 1:]).all(axis=(1, 2))
    new_t = read.bars["t"][rows[:, -1]]
    last_t = np.frombuffer(raw, dtype=CANDLE_DTYPE)["t"][TAIL_BARS - 1:: TAIL_BARS]
    limit = np.fromiter((through(s) for s in picked), dtype=np.int64, count=len(picked))
    ok &= (new_t > last_t) & (new_t <= limit)
    return ok, rows


def _apply_group(held: list[Any], symbols: list[str], members: list[int], new: np.ndarray,
                 tails: bytes, done: FastAdvance) -> None:
    """One `MeiColumns.update` for the members sharing a column set; then their states move on."""
    rows = [held[j].ind for j in members]
    at = np.asarray(members, dtype=np.int64)
    bars = new[at]
    applied = rows[0].cols.update(np.fromiter(map(_R, rows), dtype=np.int64, count=len(rows)),
                                  bars["t"], bars["o"], bars["h"], bars["l"], bars["c"], bars["v"])
    if len(members) == len(held) and bool(applied.all()):  # the steady tick: all move on
        _move_on(held, rows, bars, tails)
        done.applied.extend(symbols)
        return
    for j, row, fine, t, close_ms in zip(members, rows, applied.tolist(), bars["t"].tolist(),
                                         bars["close_ms"].tolist(), strict=True):
        if not fine:
            done.refused.append(symbols[j])
            continue
        state = held[j]
        state.last_t, state.last_close_ms = t, close_ms
        state.recent.raw = tails[j * TAIL_BYTES: (j + 1) * TAIL_BYTES]
        row.bars += 1
        done.applied.append(symbols[j])


_RECENT, _BARS, _R = attrgetter("recent"), attrgetter("bars"), attrgetter("r")


def _move_on(held: list[Any], rows: list[Any], bars: np.ndarray, tails: bytes) -> None:
    """What `_apply_group`'s loop does to each state and row (all applied), as `map`s over whole lists:
    last times from the new records, the tails split TAIL_BYTES each, one more bar per row."""
    n = len(held)
    deque(map(setattr, held, repeat("last_t"), bars["t"].tolist()), maxlen=0)
    deque(map(setattr, held, repeat("last_close_ms"), bars["close_ms"].tolist()), maxlen=0)
    split = map(bytes, np.frombuffer(tails, dtype=np.uint8, count=n * TAIL_BYTES).reshape(n, TAIL_BYTES))
    deque(map(setattr, map(_RECENT, held), repeat("raw"), split), maxlen=0)
    deque(map(setattr, rows, repeat("bars"), map(add, map(_BARS, rows), repeat(1))), maxlen=0)
