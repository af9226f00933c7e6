"""One symbol's state inside a shard (`cluster.shard_core`): mei_alpha_v1's incremental indicators
and/or its SDK rows, plus what idempotency and checkpoints need. Split out of shard_core to keep
that module readable; no behaviour of its own beyond what ShardCore drives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from operator import attrgetter
from typing import Any

import numpy as np

from cluster.applied_tail import TAIL_BARS, AppliedTail
from cluster.mei_rows import MeiRow
from cluster.shard_sdk import SdkRows
from strategies.candle import Candle
from strategies.config import StrategyConfig
from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import IndicatorParams

CHECKPOINT_VERSION = 1


def _params_fingerprint(params: Any) -> str:
    return hashlib.blake2b(repr(params).encode(), digest_size=8).hexdigest()


def checkpoint_is_due(bars: int, ckpt_bars: int, phase: int, every: int) -> bool:
    """True when bars (ckpt_bars, bars] include one that is -phase modulo `every`.

    Why not `(bars + phase) % every == 0`: a call that applies several candles (a driver behind
    by k bars) steps `bars` by k, so that test only ever fires for the rows whose phase matches
    the step; every other row then waited until it was far behind, and all of them fell due in
    the same call (a checkpoint burst instead of a spread). Crossing a boundary cannot be
    skipped: each row is due exactly once per `every` bars, on its own phase, at any step size.
    """
    return (bars + phase) // every > (ckpt_bars + phase) // every


def checkpoints_due(states: Mapping[str, _SymbolState], symbols: Iterable[str], every: int) -> list[str]:
    """The symbols (held in `states`) whose `checkpoint_due(every)` is True, in order: the same test
    (`checkpoint_is_due`) on arrays when every symbol is held (this runs for every symbol of every
    tick; numpy's integer floor division is Python's), else symbol by symbol."""
    names = list(symbols)
    held = list(map(states.get, names))
    if names and None not in held:
        bars = np.array(list(map(_BARS, held)), dtype=np.int64)
        ckpt = np.array(list(map(_CKPT_BARS, held)), dtype=np.int64)
        phase = np.array(list(map(_PHASE, held)), dtype=np.int64)
        due = (bars + phase) // every > (ckpt + phase) // every
        return [names[i] for i in np.flatnonzero(due).tolist()]
    return [s for s, st in zip(names, held, strict=True)
            if st is not None and checkpoint_is_due(st.bars, st.ckpt_bars, st.phase, every)]


_BARS, _CKPT_BARS, _PHASE = attrgetter("bars"), attrgetter("ckpt_bars"), attrgetter("phase")


class _SymbolState:
    """Incremental indicators of one symbol plus what idempotency and checkpoints need.

    `ind` holds mei_alpha_v1's indicators (None when an SDK primary trades the symbol): an
    `IncrementalIndicators`, or a `MeiRow` of the shard's columns once `attach`ed; `sdk` the
    symbol's SDK primary and shadow variants with their states (None when there are none).
    """

    __slots__ = ("cfg", "ckpt_bars", "fingerprint", "history_gap", "ind", "last_close_ms", "last_t", "phase",
                 "recent", "sdk")

    def __init__(self, cfg: StrategyConfig, phase: int, sdk: SdkRows | None = None, *,
                 params: IndicatorParams | None = None, fresh: bool = True) -> None:
        """`fresh=False` (restore only) leaves `ind` None for the caller to load from a
        checkpoint: building fresh indicators just to replace them was a quarter of a restore."""
        self.cfg = cfg
        params = cfg.indicator_params() if params is None else params
        self.sdk = sdk
        mei = sdk is None or not sdk.has_primary
        self.ind: IncrementalIndicators | MeiRow | None = (
            IncrementalIndicators(params) if mei and fresh else None)
        mei_fp = _params_fingerprint(params) if mei else "-"
        self.fingerprint = mei_fp if sdk is None else f"{mei_fp}+{sdk.fingerprint}"
        self.last_t: int | None = None
        self.last_close_ms: int | None = None
        self.history_gap = False
        self.phase = phase  # spreads checkpoints of one-candle-per-tick symbols evenly over ticks
        self.ckpt_bars = 0  # bars covered by the newest checkpoint in the store
        self.recent = AppliedTail()  # the last applied candles, to spot ones the store rewrote

    @property
    def bars(self) -> int:
        return self.ind.bars if self.ind is not None else self.sdk.bars if self.sdk is not None else 0

    def apply(self, candle: Candle) -> None:
        self.apply_many([candle])

    def apply_many(self, candles: list[Candle]) -> None:
        """Apply closed candles (ascending); columnar SDK rows are only staged (the book flushes them)."""
        if not candles:
            return
        ind = self.ind
        if type(ind) is MeiRow:
            ind.stage(candles)
        elif ind is not None:
            advance = ind.advance
            for c in candles:
                advance(c.t, c.o, c.h, c.l, c.c, c.v)
        if self.sdk is not None:
            self.sdk.stage(candles)
        self.last_t, self.last_close_ms = candles[-1].t, candles[-1].close_ms
        self.recent.extend(candles[-TAIL_BARS:])

    def attach(self, book: Any, symbol: str) -> None:
        """Move the indicator states into rows of the shard's `ColumnBook` (exact; else kept per row)."""
        if self.sdk is not None:
            self.sdk.attach(book, symbol)
        if type(self.ind) is IncrementalIndicators:
            try:
                self.ind = MeiRow(book, self.ind)
            except ValueError:  # stays per row
                pass

    def slots(self) -> list[Any]:
        """The book rows this symbol holds (a flush that refuses one of them fails the symbol)."""
        slots = self.sdk.slots() if self.sdk is not None else []
        return [*slots, self.ind.slot] if type(self.ind) is MeiRow else slots

    def release(self) -> None:
        """Give the symbol's columnar rows back to the book (the state is being replaced or dropped)."""
        if self.sdk is not None:
            self.sdk.detach()
        if type(self.ind) is MeiRow:
            self.ind = self.ind.detach()

    def checkpoint_due(self, every: int) -> bool:
        """True once the bars applied since the last checkpoint crossed a multiple of `every`
        (offset by the symbol's phase): `checkpoint_is_due`."""
        return checkpoint_is_due(self.bars, self.ckpt_bars, self.phase, every)

    def to_state(self, ind: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint; `ind` is `self.ind.to_state()` when the caller made it already (in bulk)."""
        out = {
            "v": CHECKPOINT_VERSION, "fp": self.fingerprint,
            "ind": ind if ind is not None else None if self.ind is None else self.ind.to_state(),
            "last_t": self.last_t, "last_close_ms": self.last_close_ms, "gap": self.history_gap,
        }
        if self.sdk is not None:  # one entry per (symbol, declaration set) of its SDK strategies
            out["sdk"] = self.sdk.to_state()
        return out

    def peek(self) -> _SymbolState:
        """A copy with its own indicator states (same config and strategies), for the open-mode bar."""
        twin = object.__new__(_SymbolState)
        for slot in _SymbolState.__slots__:
            setattr(twin, slot, getattr(self, slot))
        twin.recent = self.recent.copy()
        if self.ind is not None:
            twin.ind = IncrementalIndicators.from_state(self.ind.to_state(), self.cfg.indicator_params())
        if self.sdk is not None:
            twin.sdk = self.sdk.copy()
        return twin

    @classmethod
    def restore(cls, cfg: StrategyConfig, state: Mapping[str, Any], sdk: SdkRows | None = None,
                ) -> _SymbolState | None:
        """Return the restored state, or None if the checkpoint is for another version/params/strategies."""
        params = cfg.indicator_params()
        sym = cls(cfg, 0, sdk, params=params, fresh=False)
        if state.get("v") != CHECKPOINT_VERSION or state.get("fp") != sym.fingerprint:
            return None
        try:
            if sdk is None or not sdk.has_primary:  # the mei_alpha_v1 indicators trade the symbol
                sym.ind = IncrementalIndicators.from_state(state["ind"], params)
            if sdk is not None and not sdk.restore(state.get("sdk")):
                return None
            sym.last_t, sym.last_close_ms = state["last_t"], state["last_close_ms"]
            sym.history_gap = bool(state["gap"])
        except (KeyError, TypeError, ValueError):  # another indicator version or a damaged state
            return None
        return sym
