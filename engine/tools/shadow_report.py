"""`python -m engine.shadow_report`: rank the shadow variants against the primary over a window.

    python -m engine.shadow_report [--state-dir D | --db PATH] [--mode paper] [--since T] [--until T] [--json]
    python -m engine.shadow_report --promote VARIANT [--strategy-yaml Y] [--artifacts-dir A] [--role primary]

Reads the trading DB read-only: the primary's book is the `trades` ledger (engine.execution.trade_store),
each variant's its rows of `shadow_trades` (engine.tick.shadow_store), both of `--mode`. Per book,
over the rows with `since <= event_ms < until` (T: epoch ms, or an ISO date/time, UTC if no zone):

* `pnl_usd` = realised PnL - fees + funding (closed trades; open positions are not marked);
* `fees_usd`, `funding_usd`; `trades` = closing fills (CLOSE, and the primary's REDUCE);
* `win_rate` = closing fills with a positive gross realised PnL / trades (null without trades);
* `max_drawdown_usd` = the largest fall of the cumulative `pnl_usd` curve from its running peak
  (the curve starts at 0 at `since`, rows in time order);
* `return_pct` = pnl_usd / the notional opened in the window x 100 (sizes differ: the primary is
  sized by the account, a shadow at a fixed notional, so compare this rather than raw USD);
* `pnl_vs_primary_usd` = the variant's pnl_usd - the primary's.

Variants rank by pnl_usd (then name). `--promote` writes a shadow variant of the strategy YAML as
the promoted config (engine.tick.promoted_config.promote_variant). Exit 2 on bad arguments, a
missing DB or an unknown variant.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.config.env import ConfigError
from engine.config.shared import env_state_dir, env_strategy_yaml
from engine.enums import LedgerKind, Mode
from engine.storage.sqlite import open_db
from engine.tick.promoted_config import PROMOTED_ROLES, artifacts_dir, promote_variant
from strategies.enums import StrategyMode

PRIMARY = "primary"
_OPENING = frozenset({LedgerKind.OPEN.value, LedgerKind.ADD.value})
_CLOSING = frozenset({LedgerKind.CLOSE.value, LedgerKind.REDUCE.value})
_COUNTED = _OPENING | _CLOSING | {LedgerKind.FUNDING.value}


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The fields of one ledger row the report needs (either ledger)."""

    kind: str
    notional_usd: float
    fee_usd: float
    realised_pnl_usd: float
    funding_usd: float


@dataclass(frozen=True, slots=True)
class BookStats:
    """One book's numbers over the window (see the module docstring)."""

    name: str
    strategy: str
    pnl_usd: float
    max_drawdown_usd: float
    win_rate: float | None
    trades: int
    wins: int
    fees_usd: float
    funding_usd: float
    opened_notional_usd: float
    return_pct: float | None


def summarize(name: str, strategy: str, rows: Iterable[LedgerRow]) -> BookStats:
    """Fold one book's rows (time order) into its stats. Pure."""
    pnl = peak = drawdown = fees = funding = opened = 0.0
    trades = wins = 0
    for row in rows:
        if row.kind not in _COUNTED:
            continue
        fees += row.fee_usd
        funding += row.funding_usd
        pnl += row.realised_pnl_usd - row.fee_usd + row.funding_usd
        peak = max(peak, pnl)
        drawdown = max(drawdown, peak - pnl)
        if row.kind in _OPENING:
            opened += row.notional_usd
        elif row.kind in _CLOSING:
            trades += 1
            wins += row.realised_pnl_usd > 0
    return BookStats(
        name=name, strategy=strategy, pnl_usd=pnl, max_drawdown_usd=drawdown,
        win_rate=wins / trades if trades else None, trades=trades, wins=wins, fees_usd=fees,
        funding_usd=funding, opened_notional_usd=opened,
        return_pct=pnl / opened * 100.0 if opened > 0 else None,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    since_ms: int
    until_ms: int | None


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
    return row is not None


def _window_sql(window: Window) -> tuple[str, list[object]]:
    if window.until_ms is None:
        return "event_ms >= ?", [window.since_ms]
    return "event_ms >= ? AND event_ms < ?", [window.since_ms, window.until_ms]


def primary_stats(conn: sqlite3.Connection, mode: Mode, window: Window) -> BookStats:
    """The primary's book from `trades` (empty when the table does not exist yet)."""
    if not _has_table(conn, "trades"):
        return summarize(PRIMARY, PRIMARY, ())
    where, args = _window_sql(window)
    rows = conn.execute(
        "SELECT kind, notional_usd, fee_usd, realised_pnl_usd, funding_usd FROM trades "
        f"WHERE mode=? AND {where} ORDER BY event_ms, id",
        [mode.value, *args],
    ).fetchall()
    return summarize(PRIMARY, PRIMARY, (LedgerRow(*r) for r in rows))


def variant_stats(conn: sqlite3.Connection, mode: Mode, window: Window) -> list[BookStats]:
    """Every variant with a row in the window, ranked by pnl_usd (then name)."""
    if not _has_table(conn, "shadow_trades"):
        return []
    where, args = _window_sql(window)
    rows = conn.execute(
        "SELECT variant, strategy, kind, notional_usd, fee_usd, realised_pnl_usd, funding_usd "
        f"FROM shadow_trades WHERE mode=? AND {where} ORDER BY event_ms, id",
        [mode.value, *args],
    ).fetchall()
    books: dict[str, list[LedgerRow]] = {}
    strategies: dict[str, str] = {}
    for variant, strategy, *values in rows:
        books.setdefault(variant, []).append(LedgerRow(*values))
        strategies[variant] = strategy
    stats = [summarize(name, strategies[name], book) for name, book in books.items()]
    return sorted(stats, key=lambda s: (-s.pnl_usd, s.name))


def report(conn: sqlite3.Connection, mode: Mode, window: Window) -> dict[str, object]:
    """The JSON document: window, the primary's stats, and the ranked variants against it."""
    primary = primary_stats(conn, mode, window)
    variants = []
    for rank, stats in enumerate(variant_stats(conn, mode, window), start=1):
        vs_primary = stats.pnl_usd - primary.pnl_usd
        variants.append({"rank": rank, **asdict(stats), "pnl_vs_primary_usd": vs_primary})
    return {
        "mode": mode.value,
        "since_ms": window.since_ms,
        "until_ms": window.until_ms,
        "primary": asdict(primary),
        "variants": variants,
    }


def parse_time(raw: str, flag: str) -> int:
    """Epoch milliseconds, or an ISO date / date-time (UTC when it has no zone); ConfigError otherwise."""
    text = raw.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {raw!r} is neither epoch ms nor an ISO date/time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, spec)


def render_text(doc: Mapping[str, object]) -> str:
    """A fixed-width table: the primary first, then the variants by rank."""
    head = f"{'rank':>4} {'book':<40} {'pnl_usd':>11} {'vs_primary':>11} {'max_dd':>10} {'win%':>6} " \
           f"{'trades':>6} {'fees_usd':>9} {'ret%':>7}"  # fmt: skip
    lines = [head]
    primary = doc["primary"]
    assert isinstance(primary, Mapping)
    rows: Sequence[Mapping[str, object]] = [{"rank": "-", **primary, "pnl_vs_primary_usd": 0.0},
                                            *doc["variants"]]  # type: ignore[misc]  # fmt: skip
    for r in rows:
        win = r["win_rate"]
        lines.append(
            f"{r['rank']!s:>4} {str(r['name'])[:40]:<40} {_fmt(r['pnl_usd'], '.2f'):>11} "  # type: ignore[arg-type]
            f"{_fmt(r['pnl_vs_primary_usd'], '+.2f'):>11} {_fmt(r['max_drawdown_usd'], '.2f'):>10} "  # type: ignore[arg-type]
            f"{_fmt(None if win is None else win * 100, '.1f'):>6} {r['trades']!s:>6} "  # type: ignore[operator]
            f"{_fmt(r['fees_usd'], '.2f'):>9} {_fmt(r['return_pct'], '.2f'):>7}"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engine.shadow_report",
                                     description="Rank shadow variants against the primary.")  # fmt: skip
    parser.add_argument("--state-dir", type=Path, default=None, help="AI_QUANT_STATE_DIR (default: state)")
    parser.add_argument("--db", type=Path, default=None, help="default: <state-dir>/trading_<mode>.db")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.PAPER.value)
    parser.add_argument("--since", default=None, help="window start: epoch ms or ISO date/time (UTC)")
    parser.add_argument("--until", default=None, help="window end (exclusive): epoch ms or ISO date/time")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--promote", default=None, metavar="VARIANT", help="promote a shadow variant")
    parser.add_argument("--strategy-yaml", type=Path, default=None, help="default: AI_QUANT_STRATEGY_YAML")
    parser.add_argument("--artifacts-dir", type=Path, default=None, help="default: AI_QUANT_ARTIFACTS_DIR")
    roles = [r.value for r in PROMOTED_ROLES]
    parser.add_argument("--role", choices=roles, default=StrategyMode.PRIMARY.value)
    return parser.parse_args(argv)


def _promote(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    yaml_path = args.strategy_yaml or env_strategy_yaml(env)[0]
    artifacts = args.artifacts_dir or artifacts_dir(env)
    done = promote_variant(yaml_path, args.promote, artifacts, role=StrategyMode(args.role))
    doc = {"variant": done.variant, "strategy": done.strategy, "params": dict(done.params),
           "role": done.role.value, "path": str(done.path),
           "use": f"restart the daemon with AI_QUANT_PROMOTED_ROLE={done.role.value}"}  # fmt: skip
    text = f"promoted {done.variant} -> {done.path} ({doc['use']})"
    print(json.dumps(doc, sort_keys=True) if args.json else text)
    return 0


def run(argv: Sequence[str] | None, env: Mapping[str, str]) -> int:
    """Parse, report or promote; raise ConfigError for a configuration problem."""
    args = _args(argv)
    if args.promote is not None:
        return _promote(args, env)
    mode = Mode(args.mode)
    db = args.db or (args.state_dir or env_state_dir(env)) / f"trading_{mode.value}.db"
    if not db.is_file():
        raise ConfigError(f"trading DB {db} not found (use --state-dir or --db)")
    window = Window(
        since_ms=0 if args.since is None else parse_time(args.since, "--since"),
        until_ms=None if args.until is None else parse_time(args.until, "--until"),
    )
    if window.until_ms is not None and window.until_ms <= window.since_ms:
        raise ConfigError(f"--until ({window.until_ms}) must be after --since ({window.since_ms})")
    conn = open_db(db, read_only=True)
    try:
        doc = report(conn, mode, window)
    finally:
        conn.close()
    print(json.dumps({"db": str(db), **doc}, sort_keys=True) if args.json else render_text(doc))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import os

    try:
        return run(argv, os.environ)
    except ConfigError as e:
        print(f"shadow_report: {e}", file=sys.stderr)
        return 2
