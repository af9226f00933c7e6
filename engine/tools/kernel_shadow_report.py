"""Decision-log report: summarise one run's decision events, or compare two runs' logs.

    python -m engine.kernel_shadow_report --db state/trading_paper.db [--since 2026-11-25T00:00Z]
    python -m engine.kernel_shadow_report --db a.db --compare b.db [--mode paper] [--compare-mode paper]

The comparison is the shadow check: two runs over the same candles (a paper run and a replay, a
new strategy build and the old one) should take the same decision for every (symbol, candle,
event type). Events are matched on that key; the report lists agreement, keys seen by only one
side, and the first disagreements. Prints JSON. Summaries and comparisons are pure functions.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.enums import DecisionStatus, Mode
from engine.tick.decision_log import DecisionEvent, read_events

_Key = tuple[str, int, str]


def summarize(events: Iterable[DecisionEvent]) -> dict[str, Any]:
    """Count decisions by type, status, action, blocking reason and symbol."""
    events = list(events)
    per_symbol: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events:
        per_symbol[event.symbol]["evaluated"] += 1
        per_symbol[event.symbol][event.status.value] += 1
    blocked = [e for e in events if e.status in (DecisionStatus.BLOCKED, DecisionStatus.REJECTED)]
    return {
        "events": len(events),
        "first_event_ms": min((e.event_ms for e in events), default=None),
        "last_event_ms": max((e.event_ms for e in events), default=None),
        "modes": sorted({e.mode.value for e in events}),
        "by_event_type": dict(Counter(e.event_type.value for e in events)),
        "by_status": dict(Counter(e.status.value for e in events)),
        "by_action_taken": dict(Counter(e.action_taken for e in events)),
        "blocked_by_reason": dict(Counter(e.reason_code or "unknown" for e in blocked)),
        "trades_linked": sum(1 for e in events if e.trade_id is not None),
        "by_symbol": {symbol: dict(counts) for symbol, counts in sorted(per_symbol.items())},
    }


def _outcome(event: DecisionEvent) -> dict[str, Any]:
    return {
        "status": event.status.value,
        "action_taken": event.action_taken,
        "reason_code": event.reason_code,
        "signal": None if event.signal is None else event.signal.value,
    }


def _index(events: Iterable[DecisionEvent]) -> dict[_Key, list[DecisionEvent]]:
    index: dict[_Key, list[DecisionEvent]] = defaultdict(list)
    for event in events:
        index[(event.symbol, event.event_ms, event.event_type.value)].append(event)
    return index


def compare(
    a_events: Iterable[DecisionEvent], b_events: Iterable[DecisionEvent], max_examples: int = 20
) -> dict[str, Any]:
    """Match two runs' decisions on (symbol, event_ms, event_type) and report where they differ."""
    a_index, b_index = _index(a_events), _index(b_events)
    matched = agreed = 0
    disagreements: list[dict[str, Any]] = []
    for key in sorted(a_index.keys() & b_index.keys()):
        for a, b in zip(a_index[key], b_index[key], strict=False):
            matched += 1
            if _outcome(a) == _outcome(b):
                agreed += 1
            elif len(disagreements) < max_examples:
                disagreements.append(
                    {
                        "symbol": key[0],
                        "event_ms": key[1],
                        "event_type": key[2],
                        "a": _outcome(a),
                        "b": _outcome(b),
                    }
                )
    only_a = sorted(a_index.keys() - b_index.keys())
    only_b = sorted(b_index.keys() - a_index.keys())
    return {
        "matched": matched,
        "agreed": agreed,
        "disagreed": matched - agreed,
        "agreement_rate": None if matched == 0 else agreed / matched,
        "only_in_a": len(only_a),
        "only_in_b": len(only_b),
        "only_in_a_examples": [list(k) for k in only_a[:max_examples]],
        "only_in_b_examples": [list(k) for k in only_b[:max_examples]],
        "disagreement_examples": disagreements,
    }


def parse_time_ms(text: str) -> int:
    """Parse epoch ms or an ISO-8601 time (naive means UTC) into UTC epoch ms."""
    if text.isdigit():
        return int(text)
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


def _load(path: Path, mode: Mode | None, since_ms: int | None, until_ms: int | None) -> list[DecisionEvent]:
    if not path.is_file():
        raise FileNotFoundError(f"decision log {path} does not exist")
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        return read_events(conn, mode=mode, since_ms=since_ms, until_ms=until_ms)
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the report; print JSON to stdout. Returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m engine.kernel_shadow_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", type=Path, required=True, help="trading DB with decision_events")
    parser.add_argument("--mode", type=Mode, choices=list(Mode), help="only this mode's events")
    parser.add_argument("--since", type=parse_time_ms, help="window start (epoch ms or ISO-8601 UTC)")
    parser.add_argument("--until", type=parse_time_ms, help="window end, exclusive")
    parser.add_argument("--compare", type=Path, help="a second run's DB to compare against")
    parser.add_argument("--compare-mode", type=Mode, choices=list(Mode), help="mode filter for --compare")
    parser.add_argument("--examples", type=int, default=20, help="max examples per list")
    args = parser.parse_args(argv)
    try:
        a_events = _load(args.db, args.mode, args.since, args.until)
        report: dict[str, Any] = {
            "db": str(args.db),
            "window": {"since_ms": args.since, "until_ms": args.until},
        }
        report["summary"] = summarize(a_events)
        if args.compare is not None:
            b_events = _load(args.compare, args.compare_mode or args.mode, args.since, args.until)
            report["compare_db"] = str(args.compare)
            report["compare_summary"] = summarize(b_events)
            report["comparison"] = compare(a_events, b_events, args.examples)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"kernel_shadow_report: {exc}", file=sys.stderr)
        return 2
    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
