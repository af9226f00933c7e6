"""What shards return to the driver and what the pool reports about shards. Small and picklable.

A `ShardDecision` crosses the Ray boundary once per symbol per tick, so it holds plain values
and small frozen records only (no frames, no numpy, no dicts read back by key). The status says
whether the signal is a real decision for the expected candle or a fail-closed "no signal"; the
pool fills in the shard-level statuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter

from strategies.enums import Confidence, EntryKind, Signal
from strategies.signals import SignalFeatures


class ShardStatus(StrEnum):
    """Why a record carries (or does not carry) a real decision."""

    OK = "ok"  # decision on the candle the driver asked for
    MISSING_CANDLE = "missing_candle"  # the candle with that key is not in Redis (yet)
    KEY_BEHIND = "key_behind"  # the shard's state is already past the key: driver is stale
    NO_HISTORY = "no_history"  # no candle of the symbol in Redis at all
    STRATEGY_ERROR = "strategy_error"  # the strategy raised for this symbol (caught per symbol)
    STORE_UNAVAILABLE = "store_unavailable"  # Redis could not be read this tick (retried next tick)
    SHARD_LATE = "shard_late"  # the shard missed the tick deadline (set by the pool)
    SHARD_DEAD = "shard_dead"  # the shard's actor died during the call (set by the pool)
    SHARD_BUSY = "shard_busy"  # the shard is still on an earlier late call (set by the pool)


class ShardFault(StrEnum):
    """Alert and metric codes the pool raises about a shard."""

    LATE = "shard_late"
    DEAD = "shard_dead"
    BUSY = "shard_busy"
    KILLED_HUNG = "shard_killed_hung"  # a call outstanding past hung_after_secs: killed, Ray restarts it
    HISTORY_GAP = "shard_history_gap"  # a symbol's checkpoint was older than Redis retention


@dataclass(frozen=True, slots=True)
class VariantDecision:
    """One SDK strategy's decision on the closed candle of one symbol (a shadow variant or the SDK primary).

    Carries everything the driver needs to open, rank and exit without indicator rows: the
    decided bar's close, the entry ATR (`strategies.sdk.exits.entry_atr(rules, row)`, NaN when
    the row has none) and whether the strategy's indicator exit fires for a LONG / SHORT on this
    bar. `fault` is the `FaultKind` value when the strategy failed on this symbol/bar (then the
    signal is NEUTRAL and the exit flags False).
    """

    variant: str  # the shadow's name from the YAML (expanded grid names included); the ref for a primary
    strategy: str  # registry ref, e.g. "donchian_breakout" or "pkg.mod:Cls"
    signal: Signal  # NEUTRAL when faulted
    confidence: Confidence
    score: float
    close: float  # the decided bar's close
    entry_atr: float  # strategies.sdk.exits.entry_atr(rules, row) of the decided bar (NaN if none)
    exit_long: bool  # strategy.indicator_exit(LONG, rows) is not None on this bar
    exit_short: bool  # same for SHORT
    fault: str | None = None  # StrategyFault kind when the strategy failed on this symbol/bar
    detail: str = ""  # the fault's detail (or the decision's reason code), for the decision log


@dataclass(frozen=True, slots=True)
class ShardDecision:
    """One symbol's result for one tick.

    `t` is the open time of the newest candle applied to the symbol's state (None before any);
    `entry_kind` which entry path produced a BUY/SELL (the entry's reason code); `features` the
    typed indicator values exits and sizing need (only for BUY/SELL and requested symbols);
    `history_gap` is True when the state could not be restored exactly (checkpoint older than
    Redis retention) and was rebuilt from the candles still available: decisions may differ
    from an uninterrupted run until the operator accepts that history. `primary` is set when an
    SDK strategy (not mei_alpha_v1) trades the symbol: signal/confidence/score are then its
    decision (NEUTRAL when it faulted; the fault is on the record) and `features` is None;
    `variants` carries the symbol's shadow variants, evaluated on the same candle.
    """

    symbol: str
    candle_key: int
    status: ShardStatus
    signal: Signal = Signal.NEUTRAL
    confidence: Confidence = Confidence.LOW
    score: float = 0.0
    t: int | None = None
    btc_bullish: bool | None = None
    history_gap: bool = False
    shard: int = -1
    entry_kind: EntryKind = EntryKind.NONE
    features: SignalFeatures | None = None
    variants: tuple[VariantDecision, ...] = ()  # one per shadow variant configured for the symbol
    primary: VariantDecision | None = None  # the SDK primary's record; None when mei_alpha_v1 decides

    @property
    def actionable(self) -> bool:
        """True when this is a real BUY/SELL decision on the requested candle."""
        return self.status is ShardStatus.OK and self.signal is not Signal.NEUTRAL


PackedDecision = tuple  # (symbol, key, status, signal, confidence, score, t, btc, gap, shard, kind, features,
#                          variants, primary)
_STATUS = {m.value: m for m in ShardStatus}
_SIGNAL = {m.value: m for m in Signal}
_CONFIDENCE = {m.value: m for m in Confidence}
_KIND = {m.value: m for m in EntryKind}
_STATUS_VALUE = {m: m.value for m in ShardStatus}
_SIGNAL_VALUE = {m: m.value for m in Signal}
_CONFIDENCE_VALUE = {m: m.value for m in Confidence}
_KIND_VALUE = {m: m.value for m in EntryKind}
_FEATURE_VALUES = attrgetter(*(f.name for f in fields(SignalFeatures)))  # features -> tuple, field order


def _pack_features(features: SignalFeatures | None) -> tuple[float | bool, ...] | None:
    return None if features is None else _FEATURE_VALUES(features)


def _unpack_features(values: tuple[float | bool, ...] | None) -> SignalFeatures | None:
    return None if values is None else SignalFeatures(*values)


_VARIANT_VALUES = attrgetter(*(f.name for f in fields(VariantDecision)))


def _pack_variant(v: VariantDecision | None) -> tuple[object, ...] | None:
    if v is None:
        return None
    values = _VARIANT_VALUES(v)
    return (*values[:2], _SIGNAL_VALUE[v.signal], _CONFIDENCE_VALUE[v.confidence], *values[4:])


def _unpack_variant(values: tuple[object, ...] | None) -> VariantDecision | None:
    if values is None:
        return None
    name, ref, signal, confidence, *rest = values
    return VariantDecision(name, ref, _SIGNAL[signal], _CONFIDENCE[confidence], *rest)  # type: ignore[arg-type]


def pack_decisions(records: Iterable[ShardDecision]) -> list[PackedDecision]:
    """Return records as tuples of plain values: ~3x cheaper to pickle across the Ray boundary.

    Pickling 5,000 dataclass records costs ~17 ms each way (enum members and dataclass state are
    pickled per object); tuples of str/float/int cost ~5 ms to pack+pickle, ~10 ms to unpack.
    """
    # Enum.value is slow: map through plain dicts
    status, signal, confidence, kind = _STATUS_VALUE, _SIGNAL_VALUE, _CONFIDENCE_VALUE, _KIND_VALUE
    return [
        (r.symbol, r.candle_key, status[r.status], signal[r.signal], confidence[r.confidence], r.score, r.t,
         r.btc_bullish, r.history_gap, r.shard, kind[r.entry_kind], _pack_features(r.features),
         tuple(map(_pack_variant, r.variants)), _pack_variant(r.primary))
        for r in records
    ]


def unpack_decisions(rows: Iterable[PackedDecision]) -> list[ShardDecision]:
    """Inverse of pack_decisions; raises KeyError on an unknown status/signal/confidence/kind value."""
    return [
        make_decision(symbol, key, _STATUS[status], _SIGNAL[signal], _CONFIDENCE[confidence], score, t,
                      btc, gap, shard, _KIND[kind], _unpack_features(features),
                      tuple(map(_unpack_variant, variants)), _unpack_variant(primary))
        for (symbol, key, status, signal, confidence, score, t, btc, gap, shard, kind, features, variants,
             primary) in rows
    ]


# ShardDecision's field setters in declaration order. A frozen dataclass's __init__ assigns each
# field through object.__setattr__ (~1.9 us for 11 fields); calling the slot descriptors directly
# does the same assignments in ~0.65 us, which matters at 10,000 records per tick on each side.
_FIELDS = tuple(f.name for f in fields(ShardDecision))
(_SET_SYMBOL, _SET_KEY, _SET_STATUS, _SET_SIGNAL, _SET_CONFIDENCE, _SET_SCORE, _SET_T, _SET_BTC, _SET_GAP,
 _SET_SHARD, _SET_KIND, _SET_FEATURES, _SET_VARIANTS, _SET_PRIMARY) = (
    getattr(ShardDecision, name).__set__ for name in _FIELDS)
if _FIELDS != ("symbol", "candle_key", "status", "signal", "confidence", "score", "t", "btc_bullish",
               "history_gap", "shard", "entry_kind", "features", "variants", "primary"):
    raise RuntimeError(f"make_decision is out of date with ShardDecision's fields {_FIELDS}")
_new = object.__new__


def make_decision(
    symbol: str,
    candle_key: int,
    status: ShardStatus,
    signal: Signal,
    confidence: Confidence,
    score: float,
    t: int | None,
    btc_bullish: bool | None,
    history_gap: bool,
    shard: int,
    entry_kind: EntryKind,
    features: SignalFeatures | None,
    variants: tuple[VariantDecision, ...] = (),
    primary: VariantDecision | None = None,
) -> ShardDecision:
    """Return `ShardDecision(...)` with every field given, ~3x cheaper than its frozen __init__."""
    obj = _new(ShardDecision)
    _SET_SYMBOL(obj, symbol)
    _SET_KEY(obj, candle_key)
    _SET_STATUS(obj, status)
    _SET_SIGNAL(obj, signal)
    _SET_CONFIDENCE(obj, confidence)
    _SET_SCORE(obj, score)
    _SET_T(obj, t)
    _SET_BTC(obj, btc_bullish)
    _SET_GAP(obj, history_gap)
    _SET_SHARD(obj, shard)
    _SET_KIND(obj, entry_kind)
    _SET_FEATURES(obj, features)
    _SET_VARIANTS(obj, variants)
    _SET_PRIMARY(obj, primary)
    return obj


def no_signal(symbol: str, candle_key: int, status: ShardStatus, shard: int = -1) -> ShardDecision:
    """Return the fail-closed record for a symbol whose shard gave no decision."""
    return ShardDecision(symbol=symbol, candle_key=candle_key, status=status, shard=shard)


@dataclass(frozen=True, slots=True)
class ShardAlert:
    """A fault of one shard in one tick, for the driver's alerting and metrics."""

    shard: int
    fault: ShardFault
    symbols: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TickResult:
    """Every requested symbol's record (real or fail-closed), plus the faults of the tick."""

    decisions: Mapping[str, ShardDecision]
    alerts: tuple[ShardAlert, ...]
    elapsed_ms: float

    def ranked(self) -> list[ShardDecision]:
        """Return the actionable decisions, best score first (ties by symbol for determinism)."""
        return rank_decisions(self.decisions.values())


def rank_decisions(decisions: Iterable[ShardDecision]) -> list[ShardDecision]:
    """Return actionable decisions sorted by score descending, then symbol."""
    ok, neutral = ShardStatus.OK, Signal.NEUTRAL  # `actionable` inlined: 10,000 property calls a tick
    return sorted((d for d in decisions if d.status is ok and d.signal is not neutral),
                  key=lambda d: (-d.score, d.symbol))
