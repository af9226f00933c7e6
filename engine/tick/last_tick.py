"""The last tick's numbers on disk, for readers outside the daemon (`python -m engine.status`, the
web page): the latency breakdown, what the tick did, whether the market data was usable, and how
the shards answered.

Why a file and not the trading DB: it is overwritten every tick (a few hundred bytes), never a
record, and a reader must never contend with the ledger's writer. The write is atomic (temp file
+ rename), so a reader sees the previous tick or this one, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.enums import Mode
from engine.runtime.clock import wall_ms
from engine.runtime.json_file import StatusFile
from engine.tick.types import TickReport


def last_tick_path(state_dir: Path, mode: Mode) -> Path:
    """Where the daemon of `mode` keeps its last tick (beside its trading DB)."""
    return state_dir / f"last_tick_{mode.value}.json"


@dataclass(frozen=True, slots=True)
class LastTick:
    """What one tick reported: `metrics` is `TickReport.metrics()` (the `tick_*_ms` latency
    breakdown, counts, cash and equity); `shard_answers` counts the shards' record statuses."""

    wall_ms: int
    tick: int
    market: str
    status_line: str
    metrics: Mapping[str, float]
    shard_answers: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "wall_ms": self.wall_ms, "tick": self.tick, "market": self.market,
            "status_line": self.status_line, "metrics": dict(self.metrics),
            "shard_answers": dict(self.shard_answers),
        }  # fmt: skip


class LastTickWriter:
    """Overwrites the file after every tick; a failed write is logged once and never stops the loop."""

    def __init__(self, path: Path) -> None:
        self._file = StatusFile(path, "last tick")

    def write(self, report: TickReport, shard_answers: Mapping[str, int]) -> None:
        record = LastTick(
            wall_ms=wall_ms(), tick=report.tick_id, market=report.market,
            status_line=report.status_line(), metrics=report.metrics(), shard_answers=shard_answers,
        )  # fmt: skip
        self._file.write(record.to_json())


def read_last_tick(path: Path) -> LastTick | None:
    """The last tick a daemon wrote at `path`; None when there is none or it does not parse."""
    try:
        raw = json.loads(path.read_text())
        return LastTick(
            wall_ms=int(raw["wall_ms"]), tick=int(raw["tick"]), market=str(raw["market"]),
            status_line=str(raw["status_line"]),
            metrics={str(k): float(v) for k, v in raw["metrics"].items()},
            shard_answers={str(k): int(v) for k, v in raw["shard_answers"].items()},
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
