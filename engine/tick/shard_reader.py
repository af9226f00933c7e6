"""The engine's side of the shard seam: ask the shards, read their typed records back.

`ShardReader` owns what the engine keeps from shard records between ticks (the candle key each
symbol was last evaluated on, the newest `SignalFeatures` per symbol) and raises the pool's shard
alerts. The functions below turn one record into what the tick needs (an entry `Candidate`, the
exit rules' snapshot); every value is read by attribute from
`cluster.records.ShardDecision` and `strategies.signals.SignalFeatures`, never by string key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from cluster.executor import ShardExecutor
from cluster.records import ShardDecision, ShardStatus
from engine.enums import AlertKind
from engine.tick.entry_gates import Candidate
from engine.tick.strategy_manager import AlertSink
from strategies.signals import SignalFeatures


class ShardReader:
    """Sends the symbols whose candle key changed to their shards; remembers what came back."""

    def __init__(
        self, executor: ShardExecutor, *, deadline_ms: float | None = None, alerts: AlertSink | None = None
    ) -> None:
        self._executor = executor
        self._deadline_ms = deadline_ms
        self._alerts = alerts
        self._evaluated_key: dict[str, int] = {}
        self._features: dict[str, SignalFeatures] = {}
        self.answers: Counter[ShardStatus] = Counter()  # this tick's statuses, for the blind watch

    def evaluate(
        self, keys: Mapping[str, int | None], open_symbols: set[str], *, every: bool = False
    ) -> dict[str, ShardDecision]:
        """Return the OK records of the symbols whose key changed (features asked for open positions,
        or for every changed symbol when `every`: the market-regime gates read them all).

        A symbol whose shard is ahead of the key (KEY_BEHIND) is not asked again for that key; any
        other non-OK status (missing candle, late/dead/busy shard, strategy error) is asked again
        next tick.
        """
        # Keys only move forward: an older one (Redis restored from an old copy) is never re-decided.
        changed = {s: k for s, k in keys.items() if k is not None and k > self._evaluated_key.get(s, -1)}
        self.answers = Counter()
        if not changed:
            return {}
        wanted = changed.keys() if every else open_symbols & changed.keys()
        result = self._executor.evaluate(
            changed, want_snapshot=sorted(wanted), deadline_ms=self._deadline_ms
        )
        self.answers = Counter(d.status for d in result.decisions.values())
        for alert in result.alerts:
            if self._alerts is not None:
                self._alerts.send(
                    AlertKind.SHARD, alert.fault.value, {"shard": alert.shard, "symbols": alert.symbols}
                )
        decisions: dict[str, ShardDecision] = {}
        for symbol, decision in result.decisions.items():
            if decision.status is ShardStatus.OK:
                self._evaluated_key[symbol] = decision.candle_key
                if decision.features is not None:
                    self._features[symbol] = decision.features
                decisions[symbol] = decision
            elif decision.status is ShardStatus.KEY_BEHIND:
                self._evaluated_key[symbol] = changed[symbol]
        return decisions

    def features(self, symbol: str) -> SignalFeatures | None:
        """Return the newest features the shards sent for `symbol` (None before any)."""
        return self._features.get(symbol)


def candidate_of(decision: ShardDecision) -> Candidate:
    """Return the entry candidate of an actionable record (its features as the gates' snapshot)."""
    features = decision.features
    return Candidate(
        symbol=decision.symbol,
        signal=decision.signal,
        confidence=decision.confidence,
        score=decision.score,
        candle_key=decision.candle_key,
        snapshot={} if features is None else features.as_snapshot(),
    )


def exit_snapshot(features: SignalFeatures | None, funding_rate: float) -> dict[str, object]:
    """Return the exit rules' snapshot: the features in row key names plus the hourly funding rate."""
    snapshot: dict[str, object] = {} if features is None else dict(features.as_snapshot())
    snapshot["funding_rate"] = funding_rate
    return snapshot
