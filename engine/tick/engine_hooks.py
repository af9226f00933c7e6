"""The tick's market-wide YAML settings, kept out of the loop: watchlist_exclude, market_regime, heartbeat.

`UnifiedEngine` calls one method per step; each reads the global strategy config of this tick, so
`watchlist_exclude` and `market_regime` are hot-reloadable, while the heartbeat period
(`engine.heartbeat_every_s` / AI_QUANT_HEARTBEAT_SECS) is fixed at start.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

from cluster.records import ShardDecision
from engine.tick.heartbeat import Heartbeat, HeartbeatFacts, heartbeat_line
from engine.tick.regime import ANCHOR_SYMBOL, RegimeTracker, RegimeView, apply_auto_reverse, wants_snapshots
from engine.tick.types import TickReport
from engine.tick.watchlist import apply_watchlist_exclude
from strategies.config import StrategyConfig

log = logging.getLogger("engine.tick.engine")


class EngineHooks:
    """Watchlist filter, regime view and heartbeat for one engine (in-memory state only)."""

    def __init__(self, heartbeat_secs: float) -> None:
        self._tracker = RegimeTracker()
        self._heartbeat = Heartbeat(heartbeat_secs)
        self._gate_on: bool | None = None
        self._view = RegimeView()
        self._ticks = 0
        self._errors = 0

    def watch(self, watchlist: Iterable[str], glob: StrategyConfig) -> set[str]:
        """The symbols entries may open this tick: the watchlist minus `watchlist_exclude`."""
        return set(apply_watchlist_exclude(watchlist, glob.watchlist_exclude))

    def context_symbols(self, glob: StrategyConfig) -> set[str]:
        """Symbols evaluated for context only: the BTC anchor when the regime gate needs its ADX/ATR
        (never entered unless it is also on the watchlist)."""
        return {ANCHOR_SYMBOL} if glob.market_regime.enable_regime_gate else set()

    def wants_snapshots(self, glob: StrategyConfig) -> bool:
        """True when the regime features need every evaluated symbol's indicators."""
        return wants_snapshots(glob.market_regime)

    def regime(
        self, decisions: Mapping[str, ShardDecision], glob: StrategyConfig, watch: Iterable[str]
    ) -> tuple[dict[str, ShardDecision], RegimeView]:
        """Update breadth and BTC metrics, return the decisions (auto-reversed if active) and the view."""
        self._tracker.observe_decisions(decisions)
        view = self._view = self._tracker.view(glob.market_regime, watch)
        if glob.market_regime.enable_regime_gate and view.gate_on != self._gate_on:
            log.info(
                "regime gate %s reason=%s breadth=%s",
                "ON" if view.gate_on else "OFF", view.gate_reason.value, view.inputs.breadth_pct,
            )  # fmt: skip
            self._gate_on = view.gate_on
        return apply_auto_reverse(decisions, view), view

    def heartbeat(self, report: TickReport, config_id: str, now_ms: int) -> TickReport:
        """Count the tick; when a heartbeat is due, log it and return the report carrying it."""
        self._ticks += 1
        self._errors += report.errors
        if not self._heartbeat.due(now_ms):
            return report
        line = heartbeat_line(
            HeartbeatFacts(
                ticks=self._ticks, errors=self._errors, symbols=report.symbols,
                open_positions=report.open_positions, equity_usd=report.equity_usd,
                loop_ms=report.timing.total_ms, regime=self._view, config_id=config_id,
            )
        )  # fmt: skip
        log.info("%s", line)
        return dataclasses.replace(report, heartbeat=line)
