"""SDK strategies inside a shard: one symbol's SDK primary and shadow variants, with their indicator states.

`SdkRows.build(plan, symbol, cfg)` builds, for one symbol, the SDK primary (when the YAML's
`strategies:` block gives the symbol a primary other than mei_alpha_v1) and every shadow variant
configured for it. Rows whose strategies declare the same indicators share one `IndicatorState`
(a grid over exit or threshold parameters costs one indicator update per candle, not one per
variant). `update` advances every state by one closed candle; `decide` evaluates each strategy
through the SDK's fence (`strategies.sdk.strategy.evaluate`) and returns `VariantDecision`
records: a strategy that raises or returns something unusable on this bar becomes a record with
`fault` set (NEUTRAL, no exit flags), never an exception, so the symbol's other strategies and
every other symbol go on.

Checkpoints: `to_state()` is a list of the states' own JSON checkpoints (bit-exact),
`restore(states)` puts them back or returns False (other declarations: rebuild from the store).

Columnar (issue 12): `attach(book, symbol)` moves every state whose declarations have columnar
twins into a row of the shard's `cluster.columnar_book.ColumnBook` (the per-row state is loaded
there exactly); from then on `stage` queues candles for the book's vectorised flush. When every
state made it into the book, the symbol's strategy rows are enrolled in the book's decisions
(`cluster.book_decide`, `enrolled`), which decide them in arrays; `decide` then takes the book's
result as it is. Checkpoints export the rows back to the same per-row format; `copy()` (the
open-mode peek) is a detached per-row copy. `detach()` gives the rows back.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cluster.book_decide import PRIMARY, Handle
from cluster.columnar_book import ColumnBook, Slot
from cluster.records import VariantDecision
from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.columnar import supports_columnar
from strategies.sdk.enums import FaultKind
from strategies.sdk.exits import entry_atr
from strategies.sdk.indicator_set import IndicatorSet, IndicatorState
from strategies.sdk.strategy import DecisionContext, Row, Strategy, StrategyFault, evaluate

if TYPE_CHECKING:
    from strategies.config import StrategyConfig
    from strategies.sdk.plan import StrategyPlan


class _Row:
    """One strategy on the symbol: its name (variant or primary ref), ref, object and state group."""

    __slots__ = ("group", "name", "ref", "strategy")

    def __init__(self, name: str, ref: str, strategy: Strategy[Any], group: int) -> None:
        self.name, self.ref, self.strategy, self.group = name, ref, strategy, group


def _exit_flag(strategy: Strategy[Any], side: PositionSide, rows: Sequence[Row]) -> bool:
    reason = strategy.indicator_exit(side, rows)
    if reason is not None and not isinstance(reason, ExitReason):
        raise TypeError(f"indicator_exit returned {reason!r}, not an ExitReason or None")
    return reason is not None


def _faulted(row: _Row, close: float, atr: float, kind: str, detail: str) -> VariantDecision:
    return VariantDecision(row.name, row.ref, Signal.NEUTRAL, Confidence.LOW, 0.0, close, atr, False, False,
                           kind, detail[:300])


def run_row(row: _Row, rows: Sequence[Row], ctx: DecisionContext) -> VariantDecision:
    """Evaluate one strategy on the symbol's newest rows (fenced; see the module docstring)."""
    strategy = row.strategy
    last = rows[-1] if rows else {}
    close = float(last.get("Close", math.nan))
    atr = entry_atr(strategy.rules, last) or math.nan
    result = evaluate(strategy, rows, ctx)
    if isinstance(result, StrategyFault):
        return _faulted(row, close, atr, result.kind.value, result.detail)
    exit_long = exit_short = False
    if ctx.bars >= strategy.warmup and rows:
        window = rows[-strategy.LOOKBACK_ROWS:]
        try:
            exit_long = _exit_flag(strategy, PositionSide.LONG, window)
            exit_short = _exit_flag(strategy, PositionSide.SHORT, window)
        except TypeError as e:
            return _faulted(row, close, atr, FaultKind.BAD_OUTPUT.value, str(e))
        except Exception as e:  # the fence: a user's indicator exit that raises costs this row only
            return _faulted(row, close, atr, FaultKind.EXCEPTION.value, f"{type(e).__name__}: {e}")
    return VariantDecision(row.name, row.ref, result.signal, result.confidence, float(result.score), close,
                           atr, exit_long, exit_short, None, result.reason)


class SdkRows:
    """The SDK strategies of one symbol and their (shared) indicator states."""

    __slots__ = ("_book", "_handles", "_primary", "_sets", "_shadows", "_slots", "_states", "_symbol",
                 "fingerprint")

    def __init__(self, primary: tuple[str, Strategy[Any]] | None,
                 shadows: Sequence[tuple[str, str, Strategy[Any]]]) -> None:
        """`primary` = (ref, strategy) or None; `shadows` = (variant name, ref, strategy) each."""
        groups: dict[tuple[Any, ...], int] = {}
        sets: list[IndicatorSet] = []
        keep: list[int] = []

        def group_of(strategy: Strategy[Any]) -> int:
            specs = strategy.indicator_set.specs
            if specs not in groups:
                groups[specs] = len(sets)
                sets.append(strategy.indicator_set)
                keep.append(0)
            index = groups[specs]
            keep[index] = max(keep[index], strategy.LOOKBACK_ROWS)
            return index

        self._primary = None if primary is None else _Row(primary[0], primary[0], primary[1],
                                                          group_of(primary[1]))
        self._shadows = tuple(_Row(name, ref, s, group_of(s)) for name, ref, s in shadows)
        self._sets = tuple(zip(sets, keep, strict=True))
        self._states: list[IndicatorState] = [s.incremental(k) for s, k in self._sets]
        self._book: ColumnBook | None = None
        self._symbol = ""
        self._handles: list[Handle] = []  # the book's enrolment of these rows (empty: decided per row)
        self._slots: list[Slot | None] = [None] * len(self._sets)
        described = repr([(s.specs, k) for s, k in self._sets])
        self.fingerprint = hashlib.blake2b(described.encode(), digest_size=8).hexdigest()

    @classmethod
    def build(cls, plan: StrategyPlan, symbol: str, cfg: StrategyConfig) -> SdkRows | None:
        """The symbol's SDK rows per the plan; None when mei_alpha_v1 trades it and no shadow runs.

        Raises the SDK's StrategyConfigError when a strategy cannot be built (the plan was
        validated at load, so this means a config the loader never saw).
        """
        primary = plan.build_primary(symbol, cfg)
        shadows = [(spec.name, spec.variant.strategy, plan.build_shadow(spec, symbol, cfg))
                   for spec in plan.shadows_for(symbol)]
        if primary is None and not shadows:
            return None
        return cls(None if primary is None else (plan.primary_ref(symbol), primary), shadows)

    @property
    def has_primary(self) -> bool:
        return self._primary is not None

    @property
    def bars(self) -> int:
        if not self._sets:
            return 0
        slot = self._slots[0]
        return int(slot[0].bars[slot[1]]) if slot is not None else self._states[0].bars

    @property
    def enrolled(self) -> bool:
        """True when the book decides every row of this symbol (`ColumnBook.decisions`)."""
        return bool(self._handles)

    def attach(self, book: ColumnBook, symbol: str) -> None:
        """Move the states with columnar twins into rows of `book` (exact; see the module docstring)."""
        self.detach()
        self._book, self._symbol = book, symbol
        for g, (iset, keep) in enumerate(self._sets):
            if supports_columnar(iset):
                slot = book.slot(iset, keep)
                try:
                    slot[0].load(slot[1], self._states[g])
                except ValueError:  # stays per row (a state the columns cannot hold)
                    book.release(slot)
                    continue
                self._slots[g] = slot
        if all(slot is not None for slot in self._slots):
            rows = [] if self._primary is None else [(PRIMARY, self._primary)]
            rows += list(enumerate(self._shadows))
            members = [(pos, row, self._slots[row.group]) for pos, row in rows]
            self._handles = book.decisions.enrol(symbol, members)  # type: ignore[arg-type]

    def detach(self) -> None:
        """Export the book's rows back to per-row states and give the rows back."""
        if self._book is not None and self._handles:
            self._book.decisions.unenrol(self._handles)
        self._handles = []
        for g, slot in enumerate(self._slots):
            if slot is not None:
                self._states[g] = slot[0].export(slot[1])
                ColumnBook.release(slot)
                self._slots[g] = None
        self._book = None

    def stage(self, candles: Sequence[Any]) -> None:
        """Apply closed candles: queued in the book for columnar rows, at once for per-row states."""
        for g, slot in enumerate(self._slots):
            if slot is not None and self._book is not None:
                self._book.stage(slot, candles)
            else:
                state = self._states[g]
                for c in candles:
                    state.update(c.t, c.o, c.h, c.l, c.c, c.v)

    def slots(self) -> list[Slot]:
        """The columnar rows this symbol holds in the book."""
        return [slot for slot in self._slots if slot is not None]

    def update(self, t: int, o: float, h: float, low: float, c: float, v: float) -> None:
        """Apply one closed candle to every state (detached per-row states only: the open-mode peek)."""
        for state in self._states:
            state.update(t, o, h, low, c, v)

    def _state(self, g: int) -> IndicatorState:
        slot = self._slots[g]
        return slot[0].export(slot[1]) if slot is not None else self._states[g]

    def to_state(self) -> list[dict[str, Any]]:
        """Each declaration set's checkpoint (a columnar row's straight from the arrays)."""
        return [slot[0].state_of(slot[1]) if slot is not None else self._states[g].to_state()
                for g, slot in enumerate(self._slots)]

    def restore(self, states: Any) -> bool:
        """Put checkpointed states back; False (nothing changed) when they do not fit these declarations."""
        if not isinstance(states, list) or len(states) != len(self._sets):
            return False
        try:
            restored = [s.restore(st, k) for (s, k), st in zip(self._sets, states, strict=True)]
        except (KeyError, TypeError, ValueError):
            return False
        book = self._book
        self.detach()
        self._states = restored
        if book is not None:
            self.attach(book, self._symbol)
        return True

    def copy(self) -> SdkRows:
        """A copy with its own indicator states (same strategy objects): the open-mode peek."""
        twin = object.__new__(SdkRows)
        twin._primary, twin._shadows, twin._sets, twin.fingerprint = (
            self._primary, self._shadows, self._sets, self.fingerprint)
        twin._book, twin._slots = None, [None] * len(self._sets)
        twin._symbol, twin._handles = self._symbol, []
        twin._states = [s.restore(self._state(g).to_state(), k) for g, (s, k) in enumerate(self._sets)]
        return twin

    def decide(self, symbol: str, btc_bullish: bool | None,
               ready: tuple[VariantDecision | None, Sequence[VariantDecision]] | None = None,
               ) -> tuple[VariantDecision | None, Sequence[VariantDecision]]:
        """Return (the primary's record or None, one record per shadow) on the newest candle.

        `ready` is what the book already decided for this symbol this tick (`cluster.book_decide`);
        without it every row is evaluated here, per row.
        """
        if ready is not None:
            return ready
        ctx = DecisionContext(symbol=symbol, bars=self.bars, btc_bullish=btc_bullish)

        def one(row: _Row) -> VariantDecision:
            slot = self._slots[row.group]
            rows = slot[0].rows(slot[1]) if slot is not None else self._states[row.group].rows()
            return run_row(row, rows, ctx)

        primary = None if self._primary is None else one(self._primary)
        return primary, tuple(one(row) for row in self._shadows)
