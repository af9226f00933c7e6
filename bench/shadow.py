"""Tick time of the engine with and without a shadow fleet, on the demo watchlist.

    python -m bench.shadow --variants 100 --ticks 300 --json

The demo watchlist is the simulator's 7 symbols (`simulator/data/*.csv`, 5m candles). Two runs
over the same bars, each on a fresh trading DB: "base" is the UnifiedEngine tick of the paper
daemon (the shard core in process, `cluster.inprocess.InProcessExecutor`, the primary
mei_alpha_v1, the paper broker behind the RiskManager), as `engine.replay` runs it; "shadow" is
the same plus `--variants` shadow variants per symbol: a `donchian_breakout` grid (channel_bars x
stop_loss_atr, half of them) and an `rsi_bollinger_reversion` grid (the other half), each variant
with its own incremental indicator state per symbol, evaluated on every bar through the SDK fence
(`strategies.sdk.evaluate`, `indicator_exit`, `entry_atr`) into `VariantDecision`s attached to the
shard records, and the `ShadowFleet` running their paper books in the trading DB. The variant
evaluation stands in for the shards' (in process here, one core; spread over the Ray shards in
the daemon) and is reported apart from the fleet's own time.

Bars before `--warm-bars` are history (untimed); each later bar close is one timed tick. Reports
p50/p90/max/mean tick time per run, the variant evaluation and fleet parts, the shadow fills, and
whether the primary's ledger is identical with and without the fleet (it must be: shadows never
touch it). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from bench.support import REPO_ROOT, percentile
from cluster.inprocess import InProcessExecutor
from cluster.records import ShardStatus, TickResult, VariantDecision
from cluster.shard_core import ShardSettings
from cluster.shard_store import MemoryShardStore
from engine.config.settings import DaemonSettings
from engine.daemon.paper import build_paper_stack
from engine.enums import Mode
from engine.execution.trade_store import TradeStore
from engine.risk.manager import RiskManager
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.shadow import ShadowFleet, ShadowSettings
from engine.tick.shadow_store import ShadowStore
from engine.tick.types import EngineOptions
from engine.tools.replay import ConstantFunding, ReplayMarket, load_csv_dir
from strategies.candle import Candle
from strategies.enums import Confidence, PositionSide, Signal
from strategies.sdk.exits import entry_atr
from strategies.sdk.registry import StrategyRegistry
from strategies.sdk.strategy import DecisionContext, Strategy, StrategyFault, evaluate
from strategies.sdk.variants import Variant, expand_grid

INTERVAL = "5m"
BAR_MS = 300_000
YAML = """
global:
  engine: {interval: 5m}
  trade: {entry_min_confidence: low, max_open_positions: 7, entry_cooldown_s: 0, reentry_cooldown_minutes: 0}
"""


def variant_grid(n: int) -> list[Variant]:
    """n variants: the first half a breakout grid, the rest a mean-reversion grid (names unique)."""
    half = n - n // 2
    breakout = expand_grid("bo", "donchian_breakout", {
        "channel_bars": list(range(5, 5 + 2 * max(1, math.ceil(half / 4)), 2)),
        "stop_loss_atr": [1.0, 1.5, 2.0, 3.0]}, base_overrides={"min_volume_ratio": 0.0})[:half]  # fmt: skip
    reversion = expand_grid("mr", "rsi_bollinger_reversion", {
        "bb_window": list(range(10, 10 + 2 * max(1, math.ceil((n // 2) / 4)), 2)),
        "rsi_oversold": [25.0, 30.0, 35.0, 40.0]}, base_overrides={"max_adx": 100.0})[: n // 2]  # fmt: skip
    return breakout + reversion


class VariantShards:
    """The shard executor plus shadow variants: each OK record gets one VariantDecision per variant."""

    def __init__(self, inner: InProcessExecutor, candles: Mapping[str, list[Candle]],
                 strategies: Mapping[str, tuple[str, Strategy[Any]]]) -> None:  # fmt: skip
        self._inner = inner
        self._candles = candles  # symbol -> its candles, ascending
        self._strategies = strategies  # variant -> (ref, strategy)
        self._states: dict[tuple[str, str], Any] = {}
        self._next: dict[str, int] = {}  # symbol -> index of the first candle not applied yet
        self.n_shards = inner.n_shards
        self.eval_ms: list[float] = []

    def shard_of(self, symbol: str) -> int:
        return self._inner.shard_of(symbol)

    def update_configs(self, configs: Any) -> None:
        self._inner.set_configs(configs)

    def checkpoint_all(self) -> int:
        return self._inner.checkpoint_all()

    def close(self) -> None:
        self._inner.close()

    def _apply(self, symbol: str, candle: Candle) -> None:
        for name, (_ref, strategy) in self._strategies.items():
            state = self._states.get((symbol, name))
            if state is None:
                state = strategy.indicator_set.incremental(strategy.LOOKBACK_ROWS)
                self._states[(symbol, name)] = state
            state.update(candle.t, candle.o, candle.h, candle.l, candle.c, candle.v)

    def _catch_up(self, symbol: str, key: int) -> None:
        """Apply every candle of `symbol` closed by `key` (the first tick: the whole history)."""
        series, i = self._candles[symbol], self._next.get(symbol, 0)
        while i < len(series) and series[i].close_ms <= key:
            self._apply(symbol, series[i])
            i += 1
        self._next[symbol] = i

    def _decide(self, symbol: str) -> tuple[VariantDecision, ...]:
        out = []
        for name, (ref, strategy) in self._strategies.items():
            state = self._states[(symbol, name)]
            rows = state.rows()
            decision = evaluate(strategy, rows, DecisionContext(symbol=symbol, bars=state.bars))
            row = rows[-1]
            if isinstance(decision, StrategyFault):
                out.append(VariantDecision(name, ref, Signal.NEUTRAL, Confidence.LOW, 0.0, row["Close"],
                                           math.nan, False, False, f"{decision.kind}: {decision.detail}"))
                continue
            tail = rows[-strategy.LOOKBACK_ROWS:]
            out.append(VariantDecision(
                name, ref, decision.signal, decision.confidence, decision.score, row["Close"],
                entry_atr(strategy.rules, row) or math.nan,
                strategy.indicator_exit(PositionSide.LONG, tail) is not None,
                strategy.indicator_exit(PositionSide.SHORT, tail) is not None,
            ))  # fmt: skip
        return tuple(out)

    def evaluate(self, batch: Mapping[str, int], *, want_snapshot: Collection[str] = (),
                 deadline_ms: float | None = None) -> TickResult:  # fmt: skip
        result = self._inner.evaluate(batch, want_snapshot=want_snapshot, deadline_ms=deadline_ms)
        started = time.perf_counter()
        decisions = dict(result.decisions)
        for symbol, record in result.decisions.items():
            if record.status is not ShardStatus.OK:
                continue
            self._catch_up(symbol, batch[symbol])
            decisions[symbol] = dataclasses.replace(record, variants=self._decide(symbol))
        self.eval_ms.append((time.perf_counter() - started) * 1000.0)
        return TickResult(decisions=decisions, alerts=result.alerts, elapsed_ms=result.elapsed_ms)


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p90": math.nan, "max": math.nan, "mean": math.nan}
    return {"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "max": max(values),
            "mean": statistics.fmean(values)}  # fmt: skip


def _ledger(store: TradeStore) -> list[tuple[Any, ...]]:
    return [(f.kind, f.symbol, f.size_coins, f.price, f.fee_usd, f.realised_pnl_usd, f.event_ms)
            for f in store.fills()]  # fmt: skip


def run_once(candles: dict[str, list[Candle]], args: argparse.Namespace, workdir: Path,
             variants: list[Variant]) -> dict[str, Any]:  # fmt: skip
    """One run over the bars; with `variants`, the shadow fleet and its variant evaluation."""
    from engine.tick.strategy_manager import StrategyManager

    label = "shadow" if variants else "base"
    workdir.mkdir(parents=True, exist_ok=True)
    yaml_path = workdir / "strategy.yaml"
    yaml_path.write_text(YAML)
    os.chmod(yaml_path, 0o600)
    env = {"AI_QUANT_STATE_DIR": str(workdir)}
    settings = DaemonSettings.from_env(env)
    strategy = StrategyManager(yaml_path, run_mode=Mode.PAPER, interval=INTERVAL)
    symbols = sorted(candles)
    shard_store, market = MemoryShardStore(), ReplayMarket()
    inner = InProcessExecutor(1, lambda _i: shard_store, ShardSettings(interval=INTERVAL),
                              strategy.config_source(), symbols=symbols)  # fmt: skip
    registry = StrategyRegistry.installed()
    built = {v.name: (v.strategy, registry.configure(v.strategy, [v.overrides])) for v in variants}
    by_close = {s: {c.close_ms: c for c in series} for s, series in candles.items()}
    executor = VariantShards(inner, candles, built)
    store = TradeStore.open(workdir / f"trading_{label}.db", Mode.PAPER)
    risk = RiskManager.from_config(store.connection, strategy.config().risk, env)
    fill = settings.paper.fill_params(use_bbo=False)
    stack = build_paper_stack(store, risk, fill, settings.paper.seed_balance_usd, clock_ms=lambda: market.now,
                              funding_enabled=True, recorded_ms=lambda: market.now)  # fmt: skip
    fleet = None
    if variants:
        shadow_store = ShadowStore(store.connection, Mode.PAPER)
        fleet = ShadowFleet(shadow_store, lambda name: built[name][1].rules,
                            ShadowSettings(fill=fill, funding_enabled=True), mids=market.get_mids,
                            recorded_ms=lambda: market.now)  # fmt: skip
    engine = UnifiedEngine(
        strategy=strategy, market=market, executor=executor, broker=stack.broker, trades=store,
        events=EventLogger(store.connection, Mode.PAPER, label), watchlist=lambda: symbols,
        options=EngineOptions(interval=INTERVAL, heartbeat_secs=0.0, funding_poll_ms=3_600_000),
        funding=ConstantFunding(symbols, 0.00001), recorded_ms=lambda: market.now, shadows=fleet,
    )  # fmt: skip
    times = sorted({c.t for series in candles.values() for c in series})[: args.warm_bars + args.ticks + 1]
    by_t = {t: {s: by_close[s][t + BAR_MS - 1] for s in symbols if t + BAR_MS - 1 in by_close[s]}
            for t in times}  # fmt: skip
    tick_ms: list[float] = []
    fleet_ms: list[float] = []
    for i, t in enumerate(times[:-1]):
        for symbol, candle in by_t[t].items():
            shard_store.add_closed(symbol, [candle])
            market.keys[symbol] = candle.close_ms
        if i < args.warm_bars - 1:
            continue
        market.mids = {s: c.o for s, c in by_t[times[i + 1]].items()}
        market.now = max(c.close_ms for c in by_t[t].values()) + 1
        started = time.perf_counter()
        report = engine.tick()
        elapsed = (time.perf_counter() - started) * 1000.0
        if i >= args.warm_bars:  # the first tick catches the shards up on the history: untimed
            tick_ms.append(elapsed)
            if fleet is not None and fleet.last_report is not None:
                fleet_ms.append(fleet.last_report.elapsed_ms)
        if report.errors:
            raise RuntimeError(f"{label}: tick {report.tick_id} had {report.errors} errors")
    sql = "SELECT kind, COUNT(*) FROM shadow_trades GROUP BY kind"
    shadow_rows = store.connection.execute(sql).fetchall() if variants else []
    out = {
        "tick_ms": _stats(tick_ms),
        "variant_eval_ms": _stats(executor.eval_ms[1:]) if variants else None,
        "fleet_ms": _stats(fleet_ms) if variants else None,
        "timed_ticks": len(tick_ms),
        "shadow_rows": dict(shadow_rows),
        "shadow_open_positions": 0 if fleet is None else len(fleet.positions),
        "ledger": _ledger(store),
    }
    executor.close()
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--warm-bars", type=int, default=300)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "simulator" / "data")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.variants < 1 or args.ticks < 1 or args.warm_bars < 2:
        print("need --variants >= 1, --ticks >= 1, --warm-bars >= 2", file=sys.stderr)
        return 2
    candles = load_csv_dir(args.data, INTERVAL)
    variants = variant_grid(args.variants)
    with tempfile.TemporaryDirectory(prefix="aiq-bench-shadow-") as tmp:
        base = run_once(candles, args, Path(tmp) / "base", [])
        shadow = run_once(candles, args, Path(tmp) / "shadow", variants)
    doc = {
        "symbols": len(candles),
        "variants": len(variants),
        "ticks": base["timed_ticks"],
        "base_tick_ms": base["tick_ms"],
        "shadow_tick_ms": shadow["tick_ms"],
        "overhead_p50_ms": shadow["tick_ms"]["p50"] - base["tick_ms"]["p50"],
        "variant_eval_ms": shadow["variant_eval_ms"],
        "fleet_ms": shadow["fleet_ms"],
        "shadow_rows": shadow["shadow_rows"],
        "shadow_open_positions": shadow["shadow_open_positions"],
        "primary_fills": len(base["ledger"]),
        "primary_ledger_identical": base["ledger"] == shadow["ledger"],
    }
    if args.json:
        print(json.dumps(doc, sort_keys=True))
    else:
        for key, value in doc.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
