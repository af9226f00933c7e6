"""`python -m engine.replay`: a backtest through the daemon's own code, without Ray, Redis or a venue.

The same `UnifiedEngine` tick runs over CSV candles (t,o,h,l,c,v; file `SYMBOL_anything-5m.csv`
or `SYMBOL.csv`): the shard core (`InProcessExecutor` over a `MemoryShardStore`), the exit rules,
the entry gates and sizing, and the daemon's paper stack (`PaperBroker` behind the same
`RiskManager`, polled before every tick) with the daemon's fill model and fees (the same HL_* /
AI_QUANT_PAPER_* / AI_QUANT_RISK_* variables) over a SQLite ledger in a temporary file (or `--db`).

The clock follows the candles. Bars before `--warmup` are history: they are loaded into the
shard store without a tick, as the daemon's sidecar backfill is; then every bar close is one
tick. Fills are priced at the mid the daemon would see just after a bar closed: by default the
next bar's open (`--fill next_open`; the simulator's mid path starts each bar at its open), or
the bar's close (`--fill close`). Funding accrues only with `--funding-rate` (a constant hourly
rate): recorded candles carry no funding history.

`--strategy REF` backtests any strategy the registry knows (`python -m strategies list`, or a
user's 'package.module:Class' on PYTHONPATH): it becomes the YAML's `strategies.primary` for every
symbol (per-symbol primaries are dropped; parameters under `strategies.params` still apply), and
it trades through the same engine path as in the daemon (shards, ranking, gates, risk, paper fills,
its own exit rules). Without it the YAML decides (default mei_alpha_v1).

Prints one JSON summary (with `--ledger`, every trade row as well). Exit 2 on a configuration
problem (unknown strategy, import error, bad parameter), naming it.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster.inprocess import InProcessExecutor
from cluster.shard_core import ConfigSource, ShardSettings
from cluster.shard_store import MemoryShardStore
from engine.config.env import ConfigError
from engine.config.settings import DaemonSettings
from engine.daemon.paper import build_paper_stack
from engine.enums import CandleSource, LedgerKind, Mode, PriceSource
from engine.execution.trade_store import TradeStore
from engine.marketdata.hub import KeysSnapshot, PriceQuote
from engine.risk.manager import RiskManager
from engine.tick.decision_log import EventLogger
from engine.tick.engine import UnifiedEngine
from engine.tick.strategy_manager import StrategyManager
from engine.tick.types import EngineOptions
from engine.tools.progress import Progress
from strategies.candle import Candle, interval_ms
from strategies.config import StrategyConfigError

_NAME = re.compile(r"^([A-Za-z0-9]+)")


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    interval: str = "5m"
    warmup: int = 250
    bars: int | None = None
    fill: str = "next_open"  # or "close"
    funding_rate: float = 0.0
    shards: int = 2
    symbols: tuple[str, ...] = ()
    sz_decimals: Mapping[str, int] = field(default_factory=dict)


def load_csv_dir(directory: Path, interval: str, symbols: Sequence[str] = ()) -> dict[str, list[Candle]]:
    """Read every `*.csv` of `directory` as one symbol's candles (ascending by t)."""
    iv = interval_ms(interval)
    wanted = {s.upper() for s in symbols}
    out: dict[str, list[Candle]] = {}
    for path in sorted(directory.glob("*.csv")):
        match = _NAME.match(path.name)
        if match is None:
            continue
        symbol = match.group(1).upper()
        if wanted and symbol not in wanted:
            continue
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        candles = [
            Candle(t=int(r["t"]), close_ms=int(r["t"]) + iv - 1, o=float(r["o"]), h=float(r["h"]),
                   l=float(r["l"]), c=float(r["c"]), v=float(r["v"]))
            for r in rows
        ]  # fmt: skip
        out[symbol] = sorted(candles, key=lambda c: c.t)
    if not out:
        raise ConfigError(f"--data {directory}: no CSV candles found")
    return out


def aggregate(candles: Sequence[Candle], base: str, target: str) -> list[Candle]:
    """Fold `base` bars into complete `target` bars (incomplete buckets at the edges are dropped)."""
    base_ms, target_ms = interval_ms(base), interval_ms(target)
    if target_ms == base_ms:
        return list(candles)
    if target_ms < base_ms or target_ms % base_ms:
        raise ConfigError(f"cannot build {target} candles from {base} bars (need a whole multiple)")
    per = target_ms // base_ms
    buckets: dict[int, list[Candle]] = {}
    for candle in candles:
        buckets.setdefault(candle.t - candle.t % target_ms, []).append(candle)
    out = []
    for start, group in sorted(buckets.items()):
        if len(group) != per:
            continue
        out.append(Candle(t=start, close_ms=start + target_ms - 1, o=group[0].o, h=max(c.h for c in group),
                          l=min(c.l for c in group), c=group[-1].c, v=sum(c.v for c in group)))  # fmt: skip
    return out


class ReplayMarket:
    """The engine's MarketView over replayed candles: keys, mids and the clock are set per bar."""

    def __init__(self) -> None:
        self.now = 0
        self.keys: dict[str, int] = {}
        self.mids: dict[str, float] = {}

    def venue_now_ms(self) -> int:
        return self.now

    def candle_keys(self, symbols: Sequence[str], interval: str | None = None) -> KeysSnapshot:
        return KeysSnapshot({s: self.keys.get(s) for s in symbols}, CandleSource.REDIS)

    def get_mids(self, symbols: Sequence[str], max_age_secs: float | None = None) -> dict[str, PriceQuote]:
        return {
            s: PriceQuote(
                s, self.mids.get(s), PriceSource.REDIS_MID if s in self.mids else PriceSource.NONE, 0.0
            )
            for s in symbols
        }


class ConstantFunding:
    def __init__(self, symbols: Sequence[str], rate: float) -> None:
        self._rates = dict.fromkeys(symbols, rate)

    def funding_rates(self) -> Mapping[str, float]:
        return self._rates


def run_replay(
    candles: Mapping[str, list[Candle]],
    yaml_path: Path,
    db_path: Path,
    opts: ReplayOptions,
    env: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> dict[str, object]:
    """Replay the candles through the engine; return the summary (the ledger stays in db_path).

    `progress(done, total)` is called once per bar (e.g. `engine.tools.progress.Progress.update`).
    """
    settings = DaemonSettings.from_env(os.environ if env is None else env)
    strategy = StrategyManager(yaml_path, run_mode=Mode.PAPER, strategy_mode=settings.strategy_mode,
                               interval=opts.interval)  # fmt: skip
    interval = strategy.interval  # YAML engine.interval wins, as in the daemon
    candles = {s: aggregate(series, opts.interval, interval) for s, series in candles.items()}
    symbols = sorted(candles)
    by_t: dict[int, dict[str, Candle]] = {}
    for symbol, series in candles.items():
        for candle in series:
            by_t.setdefault(candle.t, {})[symbol] = candle
    times = sorted(by_t)
    if opts.bars is not None:
        times = times[: opts.warmup + opts.bars]
    shard_store, market = MemoryShardStore(), ReplayMarket()
    executor = InProcessExecutor(
        opts.shards, lambda _i: shard_store, ShardSettings(interval=interval), strategy.config_source(),
        symbols=symbols,
    )  # fmt: skip
    store = TradeStore.open(db_path, Mode.PAPER)
    # The daemon's risk path: the same RiskManager (limits, kill switch, persisted state) and the
    # same paper stack, on the candle clock.
    risk = RiskManager.from_config(store.connection, strategy.config().risk, env)
    stack = build_paper_stack(
        store, risk, settings.paper.fill_params(use_bbo=False), settings.paper.seed_balance_usd,
        clock_ms=lambda: market.now, funding_enabled=opts.funding_rate != 0.0, recorded_ms=lambda: market.now,
    )  # fmt: skip
    engine = UnifiedEngine(
        strategy=strategy, market=market, executor=ConfigForwarder(executor), broker=stack.broker,
        trades=store, events=EventLogger(store.connection, Mode.PAPER, "replay"), watchlist=lambda: symbols,
        options=EngineOptions(
            interval=interval, entry_max_delay_ms=settings.entry_max_delay_ms,
            retry_on_capacity=settings.entry_retry_on_capacity, funding_enabled=opts.funding_rate != 0.0,
            funding_poll_ms=int(settings.paper.funding_poll_secs * 1000),
            heartbeat_secs=0.0,  # a backtest runs on bar time: no liveness line
        ),
        funding=ConstantFunding(symbols, opts.funding_rate), recorded_ms=lambda: market.now,
        sz_decimals=lambda symbol: opts.sz_decimals.get(symbol.upper()),
    )  # fmt: skip
    warm = min(opts.warmup, len(times))
    ticks = 0
    for i, t in enumerate(times):
        progress(i + 1, len(times))
        bar = by_t[t]
        for symbol, candle in bar.items():
            shard_store.add_closed(symbol, [candle])
            market.keys[symbol] = candle.close_ms
        if i < warm - 1:
            continue
        nxt = by_t.get(times[i + 1]) if i + 1 < len(times) else None
        if opts.fill == "next_open":
            if nxt is None:
                break  # no next open to fill at: the daemon would not have seen this bar's mid either
            market.mids = {s: c.o for s, c in nxt.items()}
        else:
            market.mids = {s: c.c for s, c in bar.items()}
        market.now = max(c.close_ms for c in bar.values()) + 1
        stack.before_tick()
        engine.tick()
        ticks += 1
    summary = summarise(store, ticks=ticks, bars=len(times), symbols=symbols, interval=interval)
    store.close()
    return summary


class ConfigForwarder:
    """`update_configs` for the engine's hot-reload hook over `set_configs` (replay never reloads)."""

    def __init__(self, inner: InProcessExecutor) -> None:
        self.inner = inner
        self.n_shards = inner.n_shards

    def update_configs(self, configs: ConfigSource) -> None:
        self.inner.set_configs(configs)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def with_primary(yaml_path: Path, ref: str, directory: Path) -> Path:
    """Write a copy of the strategy YAML (missing = empty) whose only primary is `ref`; return its path."""
    import yaml

    doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) if yaml_path.is_file() else None
    doc = dict(doc or {})
    block = dict(doc.get("strategies") or {})
    block["primary"] = ref
    block["symbols"] = {sym: {k: v for k, v in (own or {}).items() if k != "primary"}
                        for sym, own in (block.get("symbols") or {}).items()}
    doc["strategies"] = block
    out = directory / "replay_strategy.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    out.chmod(0o600)
    return out


def trade_rows(store: TradeStore) -> list[dict[str, object]]:
    """The position-changing ledger rows (OPEN/ADD/REDUCE/CLOSE), for summaries and parity checks."""
    return [
        {"kind": f.kind.value, "symbol": f.symbol,
         "side": None if f.position_side is None else f.position_side.value,
         "size": f.size_coins, "price": f.price, "fee_usd": f.fee_usd, "pnl_usd": f.realised_pnl_usd,
         "event_ms": f.event_ms, "reason": f.reason}
        for f in store.fills()
        if f.kind in (LedgerKind.OPEN, LedgerKind.ADD, LedgerKind.REDUCE, LedgerKind.CLOSE)
    ]  # fmt: skip


def summarise(store: TradeStore, **head: object) -> dict[str, object]:
    totals = store.totals()
    rows = trade_rows(store)
    kinds = {k.value: sum(1 for r in rows if r["kind"] == k.value)
             for k in (LedgerKind.OPEN, LedgerKind.ADD, LedgerKind.REDUCE, LedgerKind.CLOSE)}  # fmt: skip
    return {
        **head,
        "trades": len(rows),
        **{k.lower(): v for k, v in kinds.items()},
        "seed_usd": round(totals.seed_usd, 6),
        "fees_usd": round(totals.fees_usd, 6),
        "realised_pnl_usd": round(totals.realised_pnl_usd, 6),
        "funding_usd": round(totals.funding_usd, 6),
        "balance_usd": round(totals.balance_usd, 6),
        "open_positions": len(store.load_positions()),
        "ledger": rows,
    }


def parse_sz_decimals(text: str) -> dict[str, int]:
    """`ETH=4,LTC=2` -> {"ETH": 4, "LTC": 2}; raise ConfigError on a malformed item."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        symbol, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ConfigError(f"--sz-decimals: bad item {item!r} (want SYMBOL=N)")
        out[symbol.strip().upper()] = int(value)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="directory of CSV candles (t,o,h,l,c,v)")
    p.add_argument(
        "--interval",
        default="5m",
        help="interval of the CSV bars; folded into YAML engine.interval when that is longer",
    )
    p.add_argument("--yaml", type=Path, default=None, help="strategy YAML (default AI_QUANT_STRATEGY_YAML)")
    p.add_argument("--strategy", default=None, metavar="REF",
                   help="backtest this strategy as every symbol's primary (a registered name or "
                        "'package.module:Class'); default: the YAML's strategies block (mei_alpha_v1)")
    p.add_argument("--symbols", default="", help="comma-separated subset of the symbols")
    p.add_argument("--warmup", type=int, default=250, help="history bars loaded before the first tick")
    p.add_argument("--bars", type=int, default=None, help="ticks to run after the warm-up (default: all)")
    p.add_argument("--fill", choices=("next_open", "close"), default="next_open")
    p.add_argument("--funding-rate", type=float, default=0.0, help="constant hourly funding rate")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--sz-decimals", default="", help="venue size decimals, e.g. ETH=4,LTC=2 (else unrounded)")
    p.add_argument("--db", type=Path, default=None, help="keep the ledger here (default: a temp file)")
    p.add_argument("--ledger", action="store_true", help="include every trade row in the JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    yaml_path = args.yaml or Path(
        os.environ.get("AI_QUANT_STRATEGY_YAML") or "config/strategy_overrides.yaml"
    )
    opts = ReplayOptions(
        interval=args.interval, warmup=max(1, args.warmup), bars=args.bars, fill=args.fill,
        funding_rate=args.funding_rate, shards=max(1, args.shards),
        symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()),
    )  # fmt: skip
    try:
        opts = dataclasses.replace(opts, sz_decimals=parse_sz_decimals(args.sz_decimals))
        candles = load_csv_dir(args.data, args.interval, opts.symbols)
        with tempfile.TemporaryDirectory(prefix="aiq-replay-") as tmp:
            db = args.db or Path(tmp) / "replay_paper.db"
            if args.strategy is not None:
                yaml_path = with_primary(yaml_path, args.strategy, Path(tmp))
            with Progress("replay bars", 0) as bar:
                summary = run_replay(candles, yaml_path, db, opts, progress=bar.update)
    except (ConfigError, StrategyConfigError) as exc:
        print(f"engine.tools.replay: configuration error: {exc}", file=sys.stderr)
        return 2
    if not args.ledger:
        summary.pop("ledger")
    print(json.dumps(summary, indent=2, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
