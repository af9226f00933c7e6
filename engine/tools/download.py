"""`python -m engine.download`: historical candles from Hyperliquid's `candleSnapshot` into replay CSVs.

Writes `<out>/<SYMBOL>_<interval>.csv` with the columns `engine.replay` reads (t,o,h,l,c,v; t is
the bar's open time in UTC ms), ascending, closed bars only (the forming bar is left for the next
run). Keep one interval per directory: `engine.replay --data` reads every CSV of a directory.

- Paged: one request covers at most `--page-candles` bars (the venue answers at most 5,000); an
  answer that stops short of its window is continued from its last bar, so a truncated answer
  never loses bars.
- Within the REST weight budget: requests go through the info client and its `RateBudget`
  (`--weight-per-min`, by default half the venue's per-IP 1,200 so that a daemon on the same IP
  keeps its share), which waits rather than provoking an HTTP 429.
- Resumable: every page is appended and fsynced before the next request; a re-run reads the last
  complete row of each file (a half-written last line from a crash is cut off) and continues after
  it, so nothing is fetched or written twice.
- The venue keeps only the most recent 5,000 bars per interval: older windows come back empty and
  are reported as `unavailable`, not retried.

Progress: a bar on a terminal, periodic counts otherwise (engine/tools/progress.py).
Exit codes: 0; 1 when the venue failed (what was written is kept: re-run to resume); 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.config.env import ConfigError
from engine.tools.progress import Progress
from engine.tools.timeargs import parse_time_ms
from engine.venue.errors import VenueError
from engine.venue.info_client import HyperliquidInfoClient, hl_base_url
from engine.venue.rate_budget import DEFAULT_WEIGHT_PER_MINUTE, RateBudget
from strategies.candle import Candle, interval_ms

VENUE_ANSWER_CAP = 5_000
DOWNLOAD_WEIGHT_PER_MINUTE = DEFAULT_WEIGHT_PER_MINUTE // 2
HEADER = ("t", "o", "h", "l", "c", "v")


class CandleSource(Protocol):
    def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> tuple[Candle, ...]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolResult:
    symbol: str
    path: Path
    written: int  # new rows this run
    first_ms: int | None  # the first bar written this run
    resumed_after_ms: int | None  # the last bar already in the file, if any
    requests: int
    unavailable: tuple[tuple[int, int], ...]  # windows the venue returned nothing for


def csv_path(out_dir: Path, symbol: str, interval: str) -> Path:
    return out_dir / f"{symbol.upper()}_{interval}.csv"


def last_complete_t(path: Path) -> int | None:
    """The open time of the last complete row of `path`; a torn last line (no newline) is cut off.

    Raises ConfigError when the file is not a candle CSV of this format.
    """
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            handle.truncate(cut)
            data = data[:cut]
    lines = data.decode().splitlines()
    if not lines or tuple(lines[0].split(",")) != HEADER:
        raise ConfigError(f"{path}: not a candle CSV (first line must be {','.join(HEADER)})")
    if len(lines) == 1:
        return None
    return int(lines[-1].split(",", 1)[0])


def _append(path: Path, candles: Sequence[Candle]) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if new:
            writer.writerow(HEADER)
        writer.writerows((c.t, repr(c.o), repr(c.h), repr(c.l), repr(c.c), repr(c.v)) for c in candles)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    interval: str
    start_ms: int
    end_ms: int  # inclusive upper bound on a bar's open time
    page_candles: int = VENUE_ANSWER_CAP


def download_symbol(
    source: CandleSource,
    symbol: str,
    plan: Plan,
    out_dir: Path,
    *,
    now_ms: Callable[[], int],
    progress: Progress | None = None,
    max_pages: int | None = None,
) -> SymbolResult:
    """Fetch `symbol`'s closed bars in [start, end] after what the file already holds; append them."""
    iv = interval_ms(plan.interval)
    path = csv_path(out_dir, symbol, plan.interval)
    resumed = last_complete_t(path)
    # An existing file is continued right after its last bar (never leaving a hole in it); a new
    # file starts at the first bar boundary at or before --start.
    cursor = plan.start_ms - plan.start_ms % iv if resumed is None else resumed + iv
    if progress is not None:
        progress.advance(max(0, (min(cursor, plan.end_ms + iv) - plan.start_ms) // iv))
    last, first = resumed, None
    written = requests = 0
    unavailable: list[tuple[int, int]] = []
    while cursor <= plan.end_ms and (max_pages is None or requests < max_pages):
        window_end = min(plan.end_ms, cursor + plan.page_candles * iv - 1)
        answer = source.candle_snapshot(symbol, plan.interval, cursor, window_end)
        requests += 1
        fetched_at = now_ms()
        fresh = sorted(
            (c for c in answer if cursor <= c.t <= window_end and c.close_ms < fetched_at
             and (last is None or c.t > last)),
            key=lambda c: c.t,
        )  # fmt: skip
        if fresh:
            if fresh[0].t > cursor:
                unavailable.append((cursor, fresh[0].t - 1))
            _append(path, fresh)
            written += len(fresh)
            first = fresh[0].t if first is None else first
            last = fresh[-1].t
            step_to = last + iv
        else:
            unavailable.append((cursor, window_end))
            step_to = window_end + 1
        if progress is not None:
            progress.advance((min(step_to, plan.end_ms + iv) - cursor) // iv)
        if fresh and any(c.close_ms >= fetched_at for c in answer):
            break  # reached the forming bar: nothing newer is closed yet
        cursor = step_to
    return SymbolResult(
        symbol=symbol, path=path, written=written, first_ms=first, resumed_after_ms=resumed,
        requests=requests, unavailable=tuple(unavailable),
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.download", description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", required=True, help="comma-separated coins, e.g. BTC,ETH")
    p.add_argument("--interval", default="5m")
    p.add_argument("--start", required=True, help="first bar: epoch ms or ISO time (UTC)")
    p.add_argument("--end", default=None, help="last bar open time: epoch ms or ISO (default: now)")
    p.add_argument("--out", type=Path, default=None, help="directory (default data/candles_<interval>)")
    p.add_argument(
        "--base-url", default=None, help="venue REST URL (default AI_QUANT_HL_BASE_URL, else mainnet)"
    )
    p.add_argument("--page-candles", type=int, default=VENUE_ANSWER_CAP, help="bars per request (<= 5000)")
    p.add_argument("--weight-per-min", type=int, default=DOWNLOAD_WEIGHT_PER_MINUTE,
                   help="REST weight per minute this download may use (default: half the venue's per-IP "
                        "1,200, leaving the rest to a daemon on the same IP)")  # fmt: skip
    return p


def _plan(args: argparse.Namespace, now: int) -> Plan:
    interval_ms(args.interval)  # raises ValueError for an unknown interval
    start = parse_time_ms(args.start)
    end = parse_time_ms(args.end) if args.end else now
    if start is None or end is None or start > end:
        raise ConfigError(f"--start {args.start} must be before --end {args.end or 'now'}")
    if not 1 <= args.page_candles <= VENUE_ANSWER_CAP:
        raise ConfigError(f"--page-candles must be 1..{VENUE_ANSWER_CAP}, got {args.page_candles}")
    return Plan(interval=args.interval, start_ms=start, end_ms=end, page_candles=args.page_candles)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def wall_ms() -> int:
        return time.time_ns() // 1_000_000

    try:
        plan = _plan(args, wall_ms())
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        if not symbols:
            raise ConfigError("--symbols is empty")
        base_url = args.base_url.rstrip("/") if args.base_url else hl_base_url()
        budget = RateBudget(args.weight_per_min)
    except (ConfigError, ValueError) as exc:
        print(f"engine.download: {exc}", file=sys.stderr)
        return 2
    out_dir = args.out or Path(f"data/candles_{args.interval}")
    out_dir.mkdir(parents=True, exist_ok=True)
    iv = interval_ms(plan.interval)
    total = len(symbols) * ((plan.end_ms - plan.start_ms) // iv + 1)
    with HyperliquidInfoClient(base_url, timeout_secs=15.0, budget=budget) as client, \
            Progress(f"download {plan.interval}", total) as progress:  # fmt: skip
        for symbol in symbols:
            try:
                result = download_symbol(client, symbol, plan, out_dir, now_ms=wall_ms, progress=progress)
            except ConfigError as exc:
                print(f"\nengine.download: {symbol}: {exc}", file=sys.stderr)
                return 2
            except VenueError as exc:  # what was written stays: a re-run resumes after it
                print(f"\nengine.download: {symbol}: venue error {exc} (re-run to resume)", file=sys.stderr)
                return 1
            _say(result)
    return 0


def _say(r: SymbolResult) -> None:
    gaps = (
        f", nothing served for {len(r.unavailable)} window(s) (older than the venue keeps?)"
        if r.unavailable
        else ""
    )
    resumed = "" if r.resumed_after_ms is None else f" after {r.resumed_after_ms}"
    print(
        f"{r.symbol}: {r.written} new bars{resumed} in {r.requests} requests -> {r.path}{gaps}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
