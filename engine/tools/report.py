"""`python -m engine.report`: one self-contained HTML report (plus the equity curve as a PNG) of a run.

Sources: a daemon's state dir (paper, dry_live or live; read-only, safe while it runs), a trading
DB file (`--db`, e.g. a replay's `--db`), or a replay run here (`--replay DATA_DIR`, the options of
`python -m engine.replay`). Over an optional window (`--since` / `--until`, ISO time or epoch ms)
it shows total return, max drawdown, Sharpe, Sortino, Calmar, win rate, profit factor, average
win / loss, exposure, fees and funding; tables per symbol, per exit reason and per strategy (one
strategy today: trades carry no strategy id yet); equity and drawdown charts; the round trips.

Every number comes from `engine/tools/metrics.py` (the definitions are written there). When the
window reaches the end of the ledger, the curve ends at the run's equity as `engine.status`
computes it: cash plus open positions at the newest marks, less the fees to close them.
Charts are drawn with matplotlib's Agg backend (no display needed) and embedded as base64.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import sqlite3
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.config.env import ConfigError
from engine.enums import LedgerKind, Mode
from engine.execution.broker import Fill
from engine.tools import metrics, run_db
from engine.tools.progress import Progress
from engine.tools.timeargs import parse_time_ms

MAX_TRIP_ROWS = 500
CASH_NOTE = "between ledger rows the curve is the cash balance (open positions are not marked to market)"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportData:
    title: str
    source: str
    mode: Mode
    fills: tuple[Fill, ...]
    points: tuple[metrics.EquityPoint, ...]
    trips: tuple[metrics.RoundTrip, ...]
    metrics: metrics.RunMetrics
    account: metrics.AccountValue | None  # open positions at the end (None: window ends in the past)
    notes: tuple[str, ...]

    @property
    def end_equity_usd(self) -> float:
        return self.points[-1].equity_usd


def _start_point(
    fills: list[Fill], before_usd: float | None, since_ms: int | None, first_decision_ms: int | None
) -> tuple[metrics.EquityPoint, list[Fill]]:
    """The equity the window starts from, and the rows after it (leading SEED rows are the start).

    A seed is stamped when the broker is built, which in a replay is before the candle clock has
    started (t=0): the run then starts at its first decision or ledger row, whichever comes first.
    """
    if before_usd is not None and since_ms is not None:
        return metrics.EquityPoint(since_ms, before_usd), fills
    seeds = 0
    while seeds < len(fills) and fills[seeds].kind is LedgerKind.SEED:
        seeds += 1
    if seeds:
        seed, rest = fills[seeds - 1], fills[seeds:]
        active = [t for t in (first_decision_ms, rest[0].event_ms if rest else None) if t is not None]
        start_ms = max(seed.event_ms, min(active)) if active else seed.event_ms
        return metrics.EquityPoint(start_ms, seed.balance_usd), rest
    first = fills[0]
    return metrics.EquityPoint(first.event_ms, first.balance_usd - first.cash_delta_usd), fills


def build(
    db_path: Path,
    mode: Mode,
    *,
    marks: Mapping[str, run_db.Mark],
    since_ms: int | None = None,
    until_ms: int | None = None,
    title: str,
    end_ms: int | None = None,
) -> ReportData:
    """Read the ledger window from the DB (read-only) and compute everything the report shows.

    `end_ms` is when open positions are valued (default: the newest of the last row and the marks).
    """
    conn = run_db.connect(db_path)
    try:
        fills = run_db.read_fills(conn, mode, since_ms, until_ms)
        if not fills:
            raise ConfigError(f"{db_path}: no {mode.value} ledger rows in the window")
        before = None if since_ms is None else run_db.balance_before(conn, mode, since_ms)
        start, rows = _start_point(fills, before, since_ms, run_db.first_decision_ms(conn, mode, since_ms))
        points = metrics.equity_curve(rows, start.equity_usd, start.t_ms)
        account, notes = (
            None,
            [CASH_NOTE if mode is Mode.PAPER else f"equity is {metrics.VENUE_EQUITY_BASIS}"],
        )
        if until_ms is None:
            account = _value_at_end(conn, mode, fills[-1].balance_usd, points, marks, end_ms, notes)
        else:
            notes.append(
                "the window ends in the past: open positions then are not valued (no historical marks)"
            )
    finally:
        conn.close()
    trips = metrics.round_trips(rows)
    return ReportData(
        title=title, source=str(db_path), mode=mode, fills=tuple(rows), points=tuple(points),
        trips=tuple(trips), metrics=metrics.run_metrics(rows, points, trips), account=account,
        notes=tuple(notes),
    )  # fmt: skip


def _value_at_end(
    conn: sqlite3.Connection,
    mode: Mode,
    last_balance_usd: float,
    points: list[metrics.EquityPoint],
    marks: Mapping[str, run_db.Mark],
    end_ms: int | None,
    notes: list[str],
) -> metrics.AccountValue:
    """Value the open positions now; in paper, append the curve's last point (the run's equity)."""
    positions = run_db.read_open_positions(conn, mode)
    account = metrics.value_account(
        last_balance_usd, positions, {s: m.price for s, m in marks.items()}, run_db.fee_rates(conn, positions)
    )
    if mode is not Mode.PAPER:
        notes.append("deposits and withdrawals show as returns")
        return account  # the account value on the rows already holds the positions
    if positions:
        newest = max([points[-1].t_ms, *(m.close_ms for s, m in marks.items() if s in positions)])
        points.append(metrics.EquityPoint(end_ms or newest, account.equity_usd))
        notes.append(f"the last point values {len(positions)} open position(s) at the newest marks")
    if account.unmarked:
        notes.append(f"no mark for {', '.join(account.unmarked)}: valued at the entry price")
    return account


# --- charts -------------------------------------------------------------------------------------


def _times(points: Sequence[metrics.EquityPoint]) -> list[datetime]:
    return [datetime.fromtimestamp(p.t_ms / 1000, tz=UTC) for p in points]


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def equity_png(points: Sequence[metrics.EquityPoint], title: str) -> bytes:
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    ax.step(_times(points), [p.equity_usd for p in points], where="post", color="#1f6fb2", linewidth=1.4)
    ax.set_title(f"Equity (USD): {title}")
    ax.grid(True, alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def drawdown_png(points: Sequence[metrics.EquityPoint]) -> bytes:
    fig = Figure(figsize=(10, 2.4))
    ax = fig.add_subplot()
    dd = [100.0 * x for x in metrics.drawdowns(points)]
    ax.fill_between(_times(points), dd, 0.0, step="post", color="#c0392b", alpha=0.5)
    ax.set_title("Drawdown (%)")
    ax.grid(True, alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


# --- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.neg{color:#b03030}.pos{color:#207a20}img{max-width:100%}.note{color:#666}
"""


def _fmt(value: float | None, kind: str = "usd") -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100.0 * value:.2f}%"
    if kind == "ratio":
        return f"{value:.2f}"
    return f"{value:,.2f}"


def _cell(value: float | None, kind: str = "usd") -> str:
    css = "" if value is None or kind == "ratio" else (" class='neg'" if value < 0 else " class='pos'")
    return f"<td{css}>{_fmt(value, kind)}</td>"


def _ms(t_ms: int | None) -> str:
    if t_ms is None:
        return "open"
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _stats_table(name: str, groups: Mapping[str, metrics.TradeStats]) -> str:
    head = (
        "<tr><th>" + html.escape(name) + "</th><th>trades</th><th>win rate</th><th>net PnL</th>"
        "<th>profit factor</th><th>avg win</th><th>avg loss</th><th>fees</th><th>funding</th></tr>"
    )
    rows = [
        f"<tr><td>{html.escape(key)}</td><td>{s.trades}</td>{_cell(s.win_rate, 'pct')}{_cell(s.net_pnl_usd)}"
        f"{_cell(s.profit_factor, 'ratio')}{_cell(s.avg_win_usd)}{_cell(s.avg_loss_usd)}{_cell(-s.fees_usd)}"
        f"{_cell(s.funding_usd)}</tr>"
        for key, s in groups.items()
    ]
    return f"<table>{head}{''.join(rows) or '<tr><td>no closed trades</td></tr>'}</table>"


def _headline(d: ReportData) -> str:
    m, t = d.metrics, d.metrics.trades
    items = [
        ("start equity", _cell(m.start_equity_usd)), ("end equity", _cell(m.end_equity_usd)),
        ("total return", _cell(m.total_return, "pct")), ("max drawdown", _cell(-m.max_drawdown, "pct")),
        ("max drawdown (USD)", _cell(-m.max_drawdown_usd)),
        ("Sharpe (daily, x sqrt 365)", _cell(m.sharpe, "ratio")),
        ("Sortino", _cell(m.sortino, "ratio")), ("Calmar", _cell(m.calmar, "ratio")),
        ("closed trades", f"<td>{t.trades}</td>"), ("open trades", f"<td>{m.open_trades}</td>"),
        ("win rate", _cell(t.win_rate, "pct")), ("profit factor", _cell(t.profit_factor, "ratio")),
        ("average win", _cell(t.avg_win_usd)), ("average loss", _cell(t.avg_loss_usd)),
        ("exposure (time with a position)", _cell(m.exposure, "pct")),
        ("realised PnL", _cell(m.realised_pnl_usd)), ("fees", _cell(-m.fees_usd)),
        ("funding", _cell(m.funding_usd)),
    ]  # fmt: skip
    return "<table>" + "".join(f"<tr><th>{k}</th>{v}</tr>" for k, v in items) + "</table>"


def _trips_table(trips: Sequence[metrics.RoundTrip]) -> str:
    shown = list(trips)[-MAX_TRIP_ROWS:]
    rows = [
        f"<tr><td>{html.escape(t.symbol)}</td><td>{'' if t.side is None else t.side.value}</td>"
        f"<td>{_ms(t.open_ms)}</td><td>{_ms(t.close_ms)}</td><td>{html.escape(t.entry_reason)}</td>"
        f"<td>{html.escape(t.exit_reason or '')}</td>{_cell(t.realised_pnl_usd)}{_cell(-t.fees_usd)}"
        f"{_cell(t.funding_usd)}{_cell(t.net_pnl_usd)}</tr>"
        for t in shown
    ]
    head = ("<tr><th>symbol</th><th>side</th><th>opened (UTC)</th><th>closed</th><th>entry</th><th>exit</th>"
            "<th>realised</th><th>fees</th><th>funding</th><th>net</th></tr>")  # fmt: skip
    more = "" if len(trips) <= MAX_TRIP_ROWS else f"<p class='note'>last {MAX_TRIP_ROWS} of {len(trips)}</p>"
    return more + f"<table>{head}{''.join(rows)}</table>"


def render_html(d: ReportData, equity: bytes, drawdown: bytes) -> str:
    """The whole report as one HTML document (images inline as base64 PNG)."""
    first, last = d.points[0].t_ms, d.points[-1].t_ms
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in d.notes)
    b64 = base64.b64encode
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(d.title)}</title><style>{_CSS}</style></head><body>
<h1>{html.escape(d.title)}</h1>
<p>mode <b>{d.mode.value}</b> &middot; source {html.escape(d.source)} &middot; {_ms(first)} to {_ms(last)} UTC
&middot; {len(d.fills)} ledger rows</p>{notes}
<h2>Summary</h2>{_headline(d)}
<h2>Equity</h2><img alt="equity curve" src="data:image/png;base64,{b64(equity).decode()}">
<img alt="drawdown" src="data:image/png;base64,{b64(drawdown).decode()}">
<h2>Per symbol</h2>{_stats_table("symbol", metrics.grouped(d.trips, lambda t: t.symbol))}
<h2>Per exit reason</h2>{_stats_table("exit reason", metrics.grouped(d.trips, lambda t: t.exit_reason or ""))}
<h2>Per strategy</h2>{_stats_table("strategy", metrics.grouped(d.trips, lambda t: t.strategy))}
<h2>Round trips</h2>{_trips_table(d.trips)}
</body></html>
"""


def write_report(d: ReportData, out: Path) -> tuple[Path, Path]:
    """Write `out` (HTML) and the equity curve next to it (`<out stem>.png`); return both paths."""
    equity = equity_png(d.points, d.title)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    png.write_bytes(equity)
    out.write_text(render_html(d, equity, drawdown_png(d.points)), encoding="utf-8")
    return out, png


# --- sources ------------------------------------------------------------------------------------


def from_replay(args: argparse.Namespace, db_path: Path, since: int | None, until: int | None) -> ReportData:
    """Run `engine.replay` over args.replay into db_path, then report on it (marks: last closes)."""
    from engine.tools.replay import ReplayOptions, load_csv_dir, run_replay

    opts = ReplayOptions(interval=args.interval, warmup=max(1, args.warmup), bars=args.bars, fill=args.fill,
                         funding_rate=args.funding_rate)  # fmt: skip
    yaml_path = args.yaml or Path(
        os.environ.get("AI_QUANT_STRATEGY_YAML") or "config/strategy_overrides.yaml"
    )
    candles = load_csv_dir(args.replay, args.interval)
    with Progress("replay bars", 0) as bar:
        run_replay(candles, yaml_path, db_path, opts, progress=bar.update)
    marks = {s: run_db.Mark(c[-1].c, c[-1].close_ms, "replay last close") for s, c in candles.items() if c}
    end = max(m.close_ms for m in marks.values()) if marks else None
    return build(db_path, Mode.PAPER, marks=marks, since_ms=since, until_ms=until,
                 title=f"replay of {args.replay}", end_ms=end)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.report", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--state-dir", type=Path, help="a daemon's state dir (default AI_QUANT_STATE_DIR or ./state)"
    )
    src.add_argument("--db", type=Path, help="a trading DB file (e.g. a replay's --db)")
    src.add_argument(
        "--replay", type=Path, metavar="DATA_DIR", help="run engine.replay over this CSV dir first"
    )
    p.add_argument(
        "--mode",
        choices=[m.value for m in Mode],
        default=None,
        help="ledger mode (default: the newest trading_<mode>.db, or the --db file's own)",
    )
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write (the PNG goes next to it)")
    p.add_argument("--since", default=None, help="window start: epoch ms or ISO time (UTC)")
    p.add_argument("--until", default=None, help="window end (exclusive): epoch ms or ISO time (UTC)")
    p.add_argument("--title", default=None)
    r = p.add_argument_group("replay options (with --replay; as python -m engine.replay)")
    r.add_argument("--yaml", type=Path, default=None)
    r.add_argument("--interval", default="5m")
    r.add_argument("--warmup", type=int, default=250)
    r.add_argument("--bars", type=int, default=None)
    r.add_argument("--fill", choices=("next_open", "close"), default="next_open")
    r.add_argument("--funding-rate", type=float, default=0.0)
    r.add_argument("--replay-db", type=Path, default=None, help="keep the replay's ledger here")
    return p


def _load(args: argparse.Namespace, tmp: Path) -> ReportData:
    since, until = parse_time_ms(args.since), parse_time_ms(args.until)
    mode = None if args.mode is None else Mode(args.mode)
    if args.replay is not None:
        return from_replay(args, args.replay_db or tmp / "replay_paper.db", since, until)
    if args.db is not None:
        if not args.db.is_file():
            raise ConfigError(f"--db {args.db} does not exist")
        return build(args.db, mode or run_db.ledger_mode(args.db), marks={}, since_ms=since, until_ms=until,
                     title=args.title or args.db.name)  # fmt: skip
    state_dir = args.state_dir or Path(os.environ.get("AI_QUANT_STATE_DIR") or "state")
    db = run_db.find_trading_db(state_dir, mode)
    conn = run_db.connect(db.path)
    try:
        symbols = set(run_db.read_positions(conn, db.mode))
    finally:
        conn.close()
    marks = run_db.read_marks(state_dir, symbols)
    title = args.title or f"{db.mode.value} run in {state_dir}"
    return build(db.path, db.mode, marks=marks, since_ms=since, until_ms=until, title=title)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="aiq-report-") as tmp:
            data = _load(args, Path(tmp))
    except ConfigError as exc:
        print(f"engine.report: {exc}", file=sys.stderr)
        return 2
    html_path, png_path = write_report(data, args.out)
    m = data.metrics
    ret = _fmt(m.total_return, "pct")
    print(f"wrote {html_path} and {png_path}: {m.trades.trades} closed trades, return {ret}, "
          f"end equity {_fmt(data.end_equity_usd)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
