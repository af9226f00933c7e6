"""Phase 2 of the tick, the pure part: rank entry candidates and run the engine's entry gates.

Everything here takes values (the candidate, the account, counters, `now_ms`, the strategy
config) and returns values: a ranked list, or the gate checks with the first failing reason code.
No I/O, so the same rules run in the daemon and in replay, and every gate is testable alone.

Gate order (reference §1.4 and engine §3.7, one deliberate change noted): flat mode, the
market-regime gate and breadth filter (`engine.tick.regime`, only when enabled), candle age
(AI_QUANT_ENTRY_MAX_DELAY_MS), per-candle dedupe, stale account marks, then the strategy's own
gates (min confidence, PESC re-entry cooldown, SSF, REEF via `strategies.sizing`), max open
positions, per-symbol entry cooldown, per-tick entry budget. Sizing (margin cap, minimum
notional) follows in the caller once a price is known. The change: max open positions is checked
after the strategy gates instead of between confidence and PESC; the first failing code may
differ, the allow/deny result does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from engine.enums import GateCode
from engine.tick.decision_log import GateCheck
from engine.tick.regime import RegimeView, breadth_filter
from strategies.config import StrategyConfig
from strategies.enums import Confidence, Signal, SizingBlock
from strategies.sizing import LastClose, check_entry_gates

_SIZING_TO_GATE = {
    SizingBlock.MIN_CONFIDENCE: GateCode.LOW_CONFIDENCE,
    SizingBlock.REENTRY_COOLDOWN: GateCode.REENTRY_COOLDOWN,
    SizingBlock.SSF: GateCode.SSF,
    SizingBlock.REEF: GateCode.REEF,
    SizingBlock.MARGIN_CAP: GateCode.MARGIN_CAP,
    SizingBlock.BELOW_MIN_NOTIONAL: GateCode.MIN_NOTIONAL,
    SizingBlock.BAD_INPUT: GateCode.DATA_STALE,
}


STRATEGY_GATES = "strategy_entry_gates"
"""Gate name recorded when the strategy's own entry gates (confidence, PESC, SSF, REEF) all pass."""


def gate_for_block(block: SizingBlock) -> str:
    """Return the reason code recorded for a strategy sizing block (entry gates map to GateCode)."""
    gate = _SIZING_TO_GATE.get(block)
    return block.value if gate is None else gate.value


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A BUY/SELL decision from a shard for one symbol and candle."""

    symbol: str
    signal: Signal
    confidence: Confidence
    score: float
    candle_key: int
    snapshot: Mapping[str, object] = field(default_factory=dict)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Best score first; ties broken by symbol so the order never depends on arrival order."""
    return sorted(candidates, key=lambda c: (-c.score, c.symbol))


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryContext:
    """What the gates need to know about the engine's state at this candidate."""

    now_ms: int
    open_positions: int
    marks_stale: bool
    last_entry_key: int | None
    open_positions_at_last_entry: int | None
    last_entry_attempt_ms: int | None
    entries_this_tick: int
    last_close: LastClose | None
    entry_max_delay_ms: int = 0
    retry_on_capacity: bool = False
    regime: RegimeView = field(default_factory=RegimeView)


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """The checks run (in order) and the first failing code, or None when every gate passed."""

    checks: tuple[GateCheck, ...]
    blocked_by: str | None

    @property
    def passed(self) -> bool:
        return self.blocked_by is None


def _dedupe(candidate: Candidate, ctx: EntryContext) -> GateCheck:
    same_key = ctx.last_entry_key is not None and ctx.last_entry_key == candidate.candle_key
    if same_key and ctx.retry_on_capacity and ctx.open_positions_at_last_entry is not None:
        same_key = ctx.open_positions >= ctx.open_positions_at_last_entry
    return GateCheck(
        gate=GateCode.CANDLE_DEDUPE, passed=not same_key, details={"candle_key": candidate.candle_key}
    )


def _age(candidate: Candidate, ctx: EntryContext) -> GateCheck:
    age_ms = ctx.now_ms - candidate.candle_key
    too_old = ctx.entry_max_delay_ms > 0 and 0 <= age_ms and age_ms > ctx.entry_max_delay_ms
    return GateCheck(
        gate=GateCode.STALE_CANDLE,
        passed=not too_old,
        details={"age_ms": age_ms, "max_ms": ctx.entry_max_delay_ms},
    )


def _cooldown(cfg: StrategyConfig, ctx: EntryContext) -> GateCheck:
    cooldown_ms = int(cfg.trade.entry_cooldown_s * 1000)
    last = ctx.last_entry_attempt_ms
    waiting = last is not None and cooldown_ms > 0 and ctx.now_ms - last < cooldown_ms
    return GateCheck(gate=GateCode.ENTRY_COOLDOWN, passed=not waiting, details={"cooldown_ms": cooldown_ms})


def _budget(cfg: StrategyConfig, ctx: EntryContext) -> GateCheck:
    limit = cfg.trade.max_entry_orders_per_loop
    spent = limit > 0 and ctx.entries_this_tick >= limit
    return GateCheck(
        gate=GateCode.ENTRY_BUDGET, passed=not spent, details={"used": ctx.entries_this_tick, "limit": limit}
    )


def _first_failure(checks: Iterator[GateCheck]) -> GateOutcome:
    # Checks are produced lazily, so a gate after the first failure is never evaluated.
    done: list[GateCheck] = []
    for check in checks:
        done.append(check)
        if not check.passed:
            return GateOutcome(tuple(done), str(check.gate))
    return GateOutcome(tuple(done), None)


def _regime(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> Iterator[GateCheck]:
    rc, view = cfg.market_regime, ctx.regime
    breadth = view.inputs.breadth_pct
    if rc.enable_regime_gate:
        details = {"reason": view.gate_reason.value, "breadth_pct": breadth}
        yield GateCheck(gate=GateCode.REGIME_GATE, passed=view.gate_on, details=details)
    if rc.enable_regime_filter:
        allowed, reason = breadth_filter(rc, candidate.signal, breadth)
        details = {"reason": reason.value, "breadth_pct": breadth}
        yield GateCheck(gate=GateCode.BREADTH_FILTER, passed=allowed, details=details)


def _common(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> Iterator[GateCheck]:
    yield GateCheck(gate=GateCode.FLAT_MODE, passed=cfg.entries_enabled)
    yield from _regime(candidate, ctx, cfg)
    yield _age(candidate, ctx)
    yield _dedupe(candidate, ctx)
    yield GateCheck(gate=GateCode.DATA_STALE, passed=not ctx.marks_stale)


def _open_checks(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> Iterator[GateCheck]:
    yield from _common(candidate, ctx, cfg)
    yield _strategy_gates(candidate, ctx, cfg)
    limit = cfg.trade.max_open_positions
    yield GateCheck(
        gate=GateCode.MAX_OPEN_POSITIONS,
        passed=ctx.open_positions < limit,
        details={"open": ctx.open_positions, "limit": limit},
    )
    yield _cooldown(cfg, ctx)
    yield _budget(cfg, ctx)


def _add_checks(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> Iterator[GateCheck]:
    yield from _common(candidate, ctx, cfg)
    yield _cooldown(cfg, ctx)
    yield _budget(cfg, ctx)


def check_open_gates(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> GateOutcome:
    """Run the entry gates for a new position; stop at the first failure."""
    return _first_failure(_open_checks(candidate, ctx, cfg))


def check_add_gates(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> GateOutcome:
    """Engine gates for a pyramid ADD (the strategy's add rules run in the caller with the price)."""
    return _first_failure(_add_checks(candidate, ctx, cfg))


def _strategy_gates(candidate: Candidate, ctx: EntryContext, cfg: StrategyConfig) -> GateCheck:
    result = check_entry_gates(
        candidate.signal,
        candidate.confidence,
        candidate.snapshot,
        cfg,
        now_ms=ctx.now_ms,
        last_close=ctx.last_close,
    )
    if result.ok:
        return GateCheck(gate=STRATEGY_GATES, passed=True)
    assert result.block is not None
    return GateCheck(gate=gate_for_block(result.block), passed=False, details=dict(result.details))
