"""The Strategy interface: declared indicators, a decision over the last K rows, declared exits.

A strategy is a pure object bound to its validated parameters:

    class MyStrategy(Strategy[MyParams]):
        NAME = "my_strategy"
        PARAMS = MyParams
        LOOKBACK_ROWS = 2                      # K: decide() sees at most the last 2 rows

        def indicators(self): ...              # library declarations, never loops over candles
        def warmup_bars(self): ...             # bars before a decision is meaningful
        def decide(self, rows, ctx): ...       # -> StrategyDecision (signal, confidence, score)
        def exit_rules(self): ...              # -> ExitRules (stop, take-profit, trailing in ATR)
        def indicator_exit(self, side, rows): ...   # optional: close on an indicator condition
        def decide_columns(self, window): ...  # optional: the same decision for n rows at once
        def indicator_exit_columns(self, side, window): ...  # optional: indicator_exit for n rows

Callers never call `decide` directly: `evaluate` applies the warm-up, fences the strategy's code
(an exception or an unusable output becomes a `StrategyFault` record for that strategy on that
symbol, never an exception in the caller) and validates the output. `evaluate_columns` does the
same for the array form, which a shard uses to decide for all its (symbol, variant) rows at once.

Rows are plain dicts (timestamp, Open..Volume and every declared column), oldest first, shared
with the indicator state: read-only for the strategy. Pure: no I/O.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.enums import FaultKind
from strategies.sdk.errors import StrategyConfigError, StrategyOutputError
from strategies.sdk.indicator_set import IndicatorSet
from strategies.sdk.library import Indicator
from strategies.sdk.params import StrategyParams

Row = Mapping[str, Any]
DetailValue = float | bool

SIGNAL_CODES: Mapping[Signal, int] = {Signal.BUY: 1, Signal.SELL: -1, Signal.NEUTRAL: 0}
CONFIDENCE_CODES: Mapping[Confidence, int] = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}
_SIGNAL_BY_CODE = {v: k for k, v in SIGNAL_CODES.items()}
_CONFIDENCE_BY_CODE = {v: k for k, v in CONFIDENCE_CODES.items()}


@dataclass(frozen=True, slots=True)
class StrategyDecision:
    """One bar's entry decision for one symbol.

    `score` ranks competing entries (higher = better; finite); `reason` is a short snake_case code
    the strategy chooses (decision log); `details` are the numbers behind it (logs, sizing).
    """

    signal: Signal
    confidence: Confidence
    score: float
    reason: str = ""
    details: Mapping[str, DetailValue] = field(default_factory=dict)

    @property
    def side(self) -> PositionSide | None:
        """LONG for BUY, SHORT for SELL, None for NEUTRAL."""
        if self.signal is Signal.BUY:
            return PositionSide.LONG
        if self.signal is Signal.SELL:
            return PositionSide.SHORT
        return None


NEUTRAL = StrategyDecision(Signal.NEUTRAL, Confidence.LOW, 0.0)
WARMUP = StrategyDecision(Signal.NEUTRAL, Confidence.LOW, 0.0, "warmup")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionContext:
    """What a decision may know besides the rows: the symbol, the history length, the BTC gate."""

    symbol: str
    bars: int
    btc_bullish: bool | None = None  # None: unknown


@dataclass(frozen=True, slots=True)
class StrategyFault:
    """A strategy that raised or returned something unusable on one symbol (decision-log record)."""

    strategy: str
    symbol: str
    kind: FaultKind
    detail: str


def _positive_or_none(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise StrategyConfigError(f"ExitRules.{name} must be a finite number {bound} or None, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitRules:
    """A strategy's price exits, in multiples of the position's entry ATR (`atr_column` at entry).

    The stop is mandatory (real money: no position without a stop); None disables the other
    rules. Trailing starts once the profit reaches `trailing_start_atr` and then follows the best
    price at `trailing_distance_atr`; it never loosens.
    """

    atr_column: str
    stop_loss_atr: float
    take_profit_atr: float | None = None
    trailing_start_atr: float | None = None
    trailing_distance_atr: float | None = None

    def __post_init__(self) -> None:
        if self.stop_loss_atr is None:
            raise StrategyConfigError("ExitRules.stop_loss_atr is required (a finite number > 0)")
        _positive_or_none("stop_loss_atr", self.stop_loss_atr)
        _positive_or_none("take_profit_atr", self.take_profit_atr)
        _positive_or_none("trailing_start_atr", self.trailing_start_atr, allow_zero=True)
        _positive_or_none("trailing_distance_atr", self.trailing_distance_atr)
        if self.trailing_start_atr is not None and self.trailing_distance_atr is None:
            raise StrategyConfigError("ExitRules.trailing_start_atr needs trailing_distance_atr")


P = TypeVar("P", bound=StrategyParams)


class Strategy(ABC, Generic[P]):
    """Base class of every strategy (see the module docstring for the contract)."""

    NAME: ClassVar[str]
    SUMMARY: ClassVar[str] = ""
    PARAMS: ClassVar[type[StrategyParams]]
    LOOKBACK_ROWS: ClassVar[int] = 2

    def __init__(self, params: P) -> None:
        """Bind validated params; validate the declarations, warm-up and exit rules once.

        Raises StrategyConfigError (exit 2) when any of them is inconsistent.
        """
        if type(params) is not self.PARAMS:
            raise StrategyConfigError(f"strategy {self.NAME!r} takes {self.PARAMS.__name__}, got {params!r}")
        self.params: P = params
        self.indicator_set = IndicatorSet(self.indicators())
        warmup = self.warmup_bars()
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise StrategyConfigError(
                f"strategy {self.NAME!r}: warmup_bars must be an int >= 1, got {warmup!r}")
        self.warmup: int = warmup
        self.rules: ExitRules = self.exit_rules()
        if not isinstance(self.rules, ExitRules):
            raise StrategyConfigError(
                f"strategy {self.NAME!r}: exit_rules must return ExitRules, got {self.rules!r}")
        if self.rules.atr_column not in self.indicator_set.columns:
            raise StrategyConfigError(
                f"strategy {self.NAME!r}: exit ATR column {self.rules.atr_column!r} is not declared")

    @classmethod
    def configure(cls, layers: Sequence[Mapping[str, Any]] = (), *, symbol: str | None = None) -> Self:
        """Merge parameter layers (defaults < global < symbol < variant) and build the strategy.

        Raises StrategyParamError naming strategy, symbol and field on a bad parameter.
        """
        return cls(cls.PARAMS.from_layers(layers, strategy=cls.NAME, symbol=symbol))  # type: ignore[arg-type]

    @abstractmethod
    def indicators(self) -> Sequence[Indicator]:
        """Declare the indicators this strategy reads (evaluated in this order)."""

    @abstractmethod
    def warmup_bars(self) -> int:
        """Return how many bars of history a decision needs; `evaluate` is NEUTRAL before that."""

    @abstractmethod
    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        """Decide from the last <= LOOKBACK_ROWS rows (oldest first; rows[-1] is the closed bar)."""

    @abstractmethod
    def exit_rules(self) -> ExitRules:
        """State the price exits (stop required; take-profit, trailing optional) in ATR multiples."""

    def indicator_exit(self, side: PositionSide, rows: Sequence[Row]) -> ExitReason | None:
        """Return a reason to close an open `side` position on an indicator condition, else None."""
        return None

    def decide_columns(self, window: ColumnWindow) -> ColumnDecisions | None:
        """Decide for n rows at once (array form); None when the strategy has no array form.

        Must equal `decide` row by row for signal, confidence and score, and for the reason code
        when it sets `reason`/`reasons` (tested per strategy). A shard groups rows by
        `column_key()` and calls this once per group, so the decision may depend only on what
        `column_key()` names and on the window.
        """
        return None

    def indicator_exit_columns(self, side: PositionSide, window: ColumnWindow) -> np.ndarray | None:
        """`indicator_exit(side, rows) is not None` for n rows at once (bool array); None = no array form."""
        return None

    def column_key(self) -> tuple[Any, ...]:
        """What the array forms depend on besides the window (rows with equal keys decide together)."""
        return (type(self), self.params)


def _check_details(details: object, name: str, symbol: str) -> None:
    if not isinstance(details, Mapping):
        raise StrategyOutputError(name, symbol, f"details must be a mapping, got {type(details).__name__}")
    for key, value in details.items():
        if not isinstance(key, str):
            raise StrategyOutputError(name, symbol, f"details key {key!r} is not a string")
        if isinstance(value, bool):
            continue
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise StrategyOutputError(name, symbol,
                                      f"details[{key!r}] must be a finite number, got {value!r}")


def validate_decision(decision: object, name: str, symbol: str) -> StrategyDecision:
    """Return `decision` if usable; raise StrategyOutputError naming the problem otherwise."""
    if not isinstance(decision, StrategyDecision):
        raise StrategyOutputError(name, symbol,
                                  f"decide returned {type(decision).__name__}, not StrategyDecision")
    if not isinstance(decision.signal, Signal) or not isinstance(decision.confidence, Confidence):
        raise StrategyOutputError(name, symbol, f"signal/confidence must be enums, got {decision!r}")
    score = decision.score
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise StrategyOutputError(name, symbol, f"score must be a finite number, got {score!r}")
    if decision.signal is Signal.NEUTRAL and (score != 0 or decision.confidence is not Confidence.LOW):
        raise StrategyOutputError(name, symbol,
                                  f"a NEUTRAL decision carries score 0 and low confidence: {decision!r}")
    if not isinstance(decision.reason, str):
        raise StrategyOutputError(name, symbol, f"reason must be a string, got {decision.reason!r}")
    _check_details(decision.details, name, symbol)
    return decision


def evaluate(
    strategy: Strategy[Any], rows: Sequence[Row], ctx: DecisionContext
) -> StrategyDecision | StrategyFault:
    """Run one strategy on one symbol's last rows, fenced: never raises for the strategy's faults.

    NEUTRAL ("warmup") before `strategy.warmup` bars; a StrategyFault when `decide` raises or
    returns something `validate_decision` refuses.
    """
    if ctx.bars < strategy.warmup or not rows:
        return WARMUP
    try:
        decision = strategy.decide(rows[-strategy.LOOKBACK_ROWS:], ctx)
    except Exception as e:  # the per-symbol fence: a user's bug must not stop the other symbols
        return StrategyFault(strategy.NAME, ctx.symbol, FaultKind.EXCEPTION, f"{type(e).__name__}: {e}")
    try:
        return validate_decision(decision, strategy.NAME, ctx.symbol)
    except StrategyOutputError as e:
        return StrategyFault(strategy.NAME, ctx.symbol, FaultKind.BAD_OUTPUT, e.problem)


# --- the array (columnar) form ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnWindow:
    """The last K rows of n (symbol, variant) rows, column by column.

    `columns[name]` has shape (n, K), newest in the last position; a row with fewer than K bars of
    history is NaN-padded at the front. `bars[i]` is row i's history length.
    """

    columns: Mapping[str, np.ndarray]
    bars: np.ndarray

    def col(self, name: str, back: int = 0) -> np.ndarray:
        """Return column `name` for every row, `back` bars before the newest (shape (n,))."""
        values = self.columns[name]
        return values[:, values.shape[1] - 1 - back]

    @classmethod
    def from_rows(cls, windows: Sequence[Sequence[Row]], bars: Sequence[int], names: Sequence[str],
                  k: int) -> ColumnWindow:
        """Build from per-row windows (each oldest first, <= k rows); reference for the shard's arrays."""
        n = len(windows)
        columns = {name: np.full((n, k), np.nan) for name in names}
        for i, rows in enumerate(windows):
            tail = rows[-k:] if rows else ()
            for j, row in enumerate(tail, start=k - len(tail)):
                for name in names:
                    columns[name][i, j] = row[name]
        return cls(columns, np.asarray(bars, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class ColumnDecisions:
    """n decisions as arrays: signal (+1 BUY, -1 SELL, 0 NEUTRAL), confidence (0..2), score.

    Optional reason codes: `reason[i]` indexes `reasons` (the per-row decision's `reason`); after
    `evaluate_columns`, -1 is a NEUTRAL's "" and -2 the warm-up's "warmup".
    """

    signal: np.ndarray
    confidence: np.ndarray
    score: np.ndarray
    reason: np.ndarray | None = None
    reasons: tuple[str, ...] = ()

    def reason_at(self, i: int) -> str:
        """Row i's reason code ("" when the array form gives none)."""
        if self.reason is None:
            return ""
        code = int(self.reason[i])
        return "warmup" if code == -2 else "" if code == -1 else self.reasons[code]

    def at(self, i: int) -> tuple[Signal, Confidence, float]:
        """Row i's decision as (signal, confidence, score)."""
        return (_SIGNAL_BY_CODE[int(self.signal[i])], _CONFIDENCE_BY_CODE[int(self.confidence[i])],
                float(self.score[i]))


def evaluate_columns(strategy: Strategy[Any], window: ColumnWindow) -> ColumnDecisions | None:
    """Run the array form with the warm-up applied; None when the strategy has none.

    Raises StrategyOutputError when the arrays have the wrong shape or a non-NEUTRAL row has a
    non-finite score (the caller then falls back to `evaluate` per row, which isolates the faulty one).
    """
    out = strategy.decide_columns(window)
    if out is None:
        return None
    n = len(window.bars)
    if not isinstance(out, ColumnDecisions) or any(
            np.shape(a) != (n,) for a in (out.signal, out.confidence, out.score)) or (
            out.reason is not None and np.shape(out.reason) != (n,)):
        raise StrategyOutputError(strategy.NAME, "*",
                                  f"decide_columns must return ColumnDecisions of {n} rows")
    warm = window.bars >= strategy.warmup
    signal = np.where(warm, out.signal, 0).astype(np.int8)
    active = signal != 0
    confidence = np.where(active, out.confidence, 0).astype(np.int8)
    score = np.where(active, out.score, 0.0).astype(np.float64)
    if not np.isfinite(score).all():
        raise StrategyOutputError(strategy.NAME, "*", "decide_columns gave a non-finite score")
    reason = None
    if out.reason is not None:
        reason = np.where(warm, np.where(active, out.reason, -1), -2).astype(np.int16)
    return ColumnDecisions(signal, confidence, score, reason, tuple(out.reasons))
