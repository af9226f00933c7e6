"""`python -m engine.status`: what a daemon is doing (or did), at a glance, from its state directory.

Reads the trading DB read-only (SQLite `mode=ro`: safe while the daemon runs, and works on a
stopped daemon's state dir): mode, trading state and breaker counters, kill-switch tokens, open
positions (entry, mark, size, unrealised PnL, age), realised PnL / fees / funding today (UTC) and
in total, cash and equity, the last tick's decision events and gate blocks. Marks are the newest
candle closes of the sidecar's candle DBs under the state dir; a position without one is valued
at its entry and says so. Facts the DB does not hold are listed under `missing`, never guessed:
the per-tick latency breakdown and shard answers come from the daemon's `last_tick_<mode>.json`.

Exit codes: 0, or 2 when the state dir or its trading DB is missing or unreadable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config.env import ConfigError
from engine.config.settings import lock_file_name
from engine.enums import DecisionStatus, GateCode, LedgerKind, Mode
from engine.execution.gates import live_gate
from engine.runtime.lock import read_holder_pid
from engine.tick.last_tick import LastTick, last_tick_path, read_last_tick
from engine.tools import metrics, run_db

HOUR_MS = 3_600_000
MISSING_TICK = (
    "last tick latency breakdown and shard answers: no last_tick_<mode>.json in the state dir (the "
    "daemon writes it after every tick; a run that never ticked has none)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionLine:
    symbol: str
    side: str
    size_coins: float
    entry_price: float
    mark: float | None
    mark_source: str | None
    unrealised_pnl_usd: float
    notional_usd: float
    leverage: float | None  # None in live / dry_live: the venue fills do not carry it
    opened_ms: int
    age_secs: float | None  # None when the position's clock (e.g. the simulator's) is ahead of ours
    trailing_sl: float | None
    tp1_taken: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PnlLine:
    realised_pnl_usd: float
    fees_usd: float
    funding_usd: float
    net_usd: float
    fills: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    state_dir: str
    db: str
    mode: str
    now_ms: int
    daemon: dict[str, Any]
    risk: dict[str, Any] | None
    send_gate: dict[str, Any] | None
    seed_usd: float
    cash_usd: float
    equity_usd: float
    equity_basis: str
    unrealised_pnl_usd: float
    close_fees_usd: float
    unmarked: list[str]
    positions: list[PositionLine]
    today: PnlLine
    total: PnlLine
    last_tick: dict[str, Any] | None
    gate_blocks_last_hour: dict[str, int]
    shard_timeouts_last_hour: int
    missing: list[str]

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _pnl(fills: Sequence[Any]) -> PnlLine:
    realised = sum(f.realised_pnl_usd for f in fills)
    fees = sum(f.fee_usd for f in fills)
    funding = sum(f.funding_usd for f in fills)
    return PnlLine(realised_pnl_usd=realised, fees_usd=fees, funding_usd=funding,
                   net_usd=realised - fees + funding, fills=len(fills))  # fmt: skip


def _daemon(state_dir: Path, mode: Mode) -> dict[str, Any]:
    pid = read_holder_pid(state_dir / lock_file_name(mode))
    alive = False
    if pid is not None:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    return {"lock_pid": pid, "pid_alive": alive}


def _last_tick(conn: sqlite3.Connection, mode: Mode) -> dict[str, Any] | None:
    if not run_db.has_table(conn, "decision_events"):
        return None
    row = conn.execute(
        "SELECT run_id, tick_id FROM decision_events WHERE mode=? AND tick_id IS NOT NULL "
        "ORDER BY seq DESC LIMIT 1",
        (mode.value,),
    ).fetchone()
    if row is None:
        return None
    run_id, tick_id = row
    counts = conn.execute(
        "SELECT status, COUNT(*), MAX(recorded_ms), MAX(event_ms) FROM decision_events "
        "WHERE mode=? AND run_id IS ? AND tick_id=? GROUP BY status",
        (mode.value, run_id, tick_id),
    ).fetchall()
    return {
        "run_id": run_id,
        "tick_id": tick_id,
        "recorded_ms": max(int(c[2]) for c in counts),
        "candle_ms": max(int(c[3]) for c in counts),
        "events": {str(c[0]): int(c[1]) for c in counts},
        "latency_ms": None,
    }


def _with_tick_file(
    from_db: dict[str, Any] | None, tick: LastTick | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """Add the daemon's last-tick file (latency breakdown, market, shard answers) to the DB's view."""
    if tick is None:
        return from_db, [MISSING_TICK]
    merged = dict(from_db or {"run_id": None, "tick_id": tick.tick, "events": {}})
    merged["latency_ms"] = {k: v for k, v in tick.metrics.items() if k.endswith("_ms")}
    merged.update(market=tick.market, shard_answers=dict(tick.shard_answers), wall_ms=tick.wall_ms,
                  daemon_tick=tick.tick, status_line=tick.status_line)  # fmt: skip
    return merged, []


def _gate_blocks(conn: sqlite3.Connection, mode: Mode, since_ms: int) -> dict[str, int]:
    if not run_db.has_table(conn, "decision_events"):
        return {}
    rows = conn.execute(
        "SELECT COALESCE(reason_code, 'unknown'), COUNT(*) FROM decision_events "
        "WHERE mode=? AND status=? AND recorded_ms>=? GROUP BY 1 ORDER BY 2 DESC",
        (mode.value, DecisionStatus.BLOCKED.value, since_ms),
    ).fetchall()
    return {str(code): int(n) for code, n in rows}


def _position_lines(
    value: metrics.AccountValue, marks: dict[str, run_db.Mark], now_ms: int, *, with_leverage: bool
) -> list[PositionLine]:
    lines = []
    for marked in value.positions:
        p = marked.position
        mark = marks.get(p.symbol)
        age_secs = (now_ms - p.opened_ms) / 1000.0 if now_ms >= p.opened_ms else None
        lines.append(PositionLine(
            symbol=p.symbol, side=p.side.value, size_coins=p.size_coins, entry_price=p.entry_price,
            mark=None if mark is None else mark.price, mark_source=None if mark is None else mark.source,
            unrealised_pnl_usd=marked.unrealised_pnl_usd,
            notional_usd=p.size_coins * (p.entry_price if mark is None else mark.price),
            leverage=p.leverage if with_leverage else None,
            opened_ms=p.opened_ms, age_secs=age_secs,
            trailing_sl=p.trailing_sl, tp1_taken=p.tp1_taken,
        ))  # fmt: skip
    return lines


def collect(state_dir: Path, mode: Mode | None = None, now_ms: int | None = None) -> Status:
    """Build the status of the run in `state_dir`; raises ConfigError when there is nothing to read."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    db = run_db.find_trading_db(state_dir, mode)
    conn = run_db.connect(db.path)
    try:
        fills = run_db.read_fills(conn, db.mode)
        positions = run_db.read_open_positions(conn, db.mode)
        marks = run_db.read_marks(state_dir, set(positions))
        cash = fills[-1].balance_usd if fills else 0.0
        value = metrics.value_account(cash, positions, {s: m.price for s, m in marks.items()},
                                      run_db.fee_rates(conn, positions))  # fmt: skip
        equity, basis = metrics.run_equity(db.mode, value)
        risk = run_db.read_risk(conn)
        day_start = now - now % metrics.DAY_MS
        blocks = _gate_blocks(conn, db.mode, now - HOUR_MS)
        last_tick = _last_tick(conn, db.mode)
    finally:
        conn.close()
    last_tick, missing = _with_tick_file(last_tick, read_last_tick(last_tick_path(state_dir, db.mode)))
    gate = None if db.mode is Mode.PAPER else live_gate(db.mode)
    return Status(
        state_dir=str(state_dir), db=str(db.path), mode=db.mode.value, now_ms=now,
        daemon=_daemon(state_dir, db.mode),
        risk=None if risk is None else dataclasses.asdict(risk),
        send_gate=None if gate is None else {
            "may_send": gate.may_send, "reason": gate.reason.value, "variable": gate.variable,
            "as_seen_by": "this shell's environment",
        },
        seed_usd=sum(f.cash_delta_usd for f in fills if f.kind is LedgerKind.SEED),
        cash_usd=cash, equity_usd=equity, equity_basis=basis, unrealised_pnl_usd=value.unrealised_pnl_usd,
        close_fees_usd=value.close_fees_usd, unmarked=list(value.unmarked),
        positions=_position_lines(value, marks, now, with_leverage=db.mode is Mode.PAPER),
        today=_pnl([f for f in fills if f.event_ms >= day_start]), total=_pnl(fills),
        last_tick=last_tick, gate_blocks_last_hour=blocks,
        shard_timeouts_last_hour=blocks.get(GateCode.SHARD_TIMEOUT.value, 0),
        missing=missing,
    )  # fmt: skip


def _money(x: float) -> str:
    return f"{x:,.2f}"


def render_text(s: Status) -> str:
    """The human view: a few aligned lines, positions as a table."""
    pid = s.daemon["lock_pid"]
    running = f"running (pid {pid})" if s.daemon["pid_alive"] else "not running"
    out = [
        f"mode {s.mode}  daemon {running}  db {s.db}",
        f"trading state {s.risk['state'] if s.risk else 'n/a (no risk manager in this mode)'}"
        + (f"  send gate {'OPEN' if s.send_gate['may_send'] else 'closed'} ({s.send_gate['reason']})"
           if s.send_gate else ""),
        f"{'cash' if s.mode == Mode.PAPER.value else 'account value'} {_money(s.cash_usd)}  "
        f"equity {_money(s.equity_usd)}  unrealised {_money(s.unrealised_pnl_usd)}  "
        f"(seed {_money(s.seed_usd)})",
    ]  # fmt: skip
    for name, line in (("today", s.today), ("total", s.total)):
        out.append(
            f"{name:5} realised {_money(line.realised_pnl_usd)}  fees {_money(line.fees_usd)}  "
            f"funding {_money(line.funding_usd)}  net {_money(line.net_usd)}  ({line.fills} rows)"
        )
    out.append(f"open positions: {len(s.positions)}")
    for p in s.positions:
        mark = "no mark" if p.mark is None else f"{p.mark:g}"
        age = "n/a" if p.age_secs is None else f"{p.age_secs / 60:.1f} min"
        out.append(f"  {p.symbol:8} {p.side:5} size {p.size_coins:g} entry {p.entry_price:g} mark {mark} "
                   f"uPnL {_money(p.unrealised_pnl_usd)} age {age}")  # fmt: skip
    if s.unmarked:
        out.append(f"  valued at entry (no mark): {', '.join(s.unmarked)}")
    if s.last_tick:
        t = s.last_tick
        out.append(f"last tick {t['tick_id']} (run {t['run_id']}) events {t['events']}")
        if t.get("latency_ms"):
            lat = " ".join(f"{k.removeprefix('tick_').removesuffix('_ms')}={v:.1f}ms"
                           for k, v in t["latency_ms"].items())  # fmt: skip
            out.append(f"  latency {lat}; market {t['market']}; shard answers {t['shard_answers'] or 'none'}")
    out.append(f"gate blocks last hour: {s.gate_blocks_last_hour or 'none'}")
    out.extend(f"not recorded: {m}" for m in s.missing)
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.status", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=None,
                   help="the daemon's state dir (default AI_QUANT_STATE_DIR, else ./state)")  # fmt: skip
    p.add_argument("--mode", choices=[m.value for m in Mode], default=None,
                   help="which trading_<mode>.db (default: the most recently written)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    state_dir = args.state_dir or Path(os.environ.get("AI_QUANT_STATE_DIR") or "state")
    try:
        status = collect(state_dir, None if args.mode is None else Mode(args.mode))
    except ConfigError as exc:
        print(f"engine.status: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(status.as_json(), indent=2) if args.json else render_text(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
