"""Which feed carries the watchlist's markets, summed per perp dex, for the status line and the web page.

The hub answers per market (a sidecar's WebSocket, a sidecar's REST polling, or none: beyond
every budget, or its sidecar died and no other took it yet). An operator needs the sums: the
status line carries `sources=ws:N,rest:N,none:N` every tick (a market on `none` is one the
engine cannot see), and the daemon keeps the per-dex counts in a small JSON file beside its
trading DB that the web page reads (the page never touches Redis). The file is overwritten
atomically (temp file + rename), like the last-tick file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.config.perp_dexes import ORIGINAL_DEX_WORD, dex_of
from engine.enums import Mode
from engine.runtime.clock import wall_ms
from engine.runtime.json_file import StatusFile
from engine.sidecar.plan import MarketSource


def market_sources_path(state_dir: Path, mode: Mode) -> Path:
    """Where the daemon of `mode` keeps the source counts (beside its trading DB)."""
    return state_dir / f"market_sources_{mode.value}.json"


@dataclass(frozen=True, slots=True)
class SourceCounts:
    """Markets per source, in total and per perp dex (`main` = the original dex)."""

    wall_ms: int
    total: Mapping[str, int]
    per_dex: Mapping[str, Mapping[str, int]]

    def status_text(self) -> str:
        t = self.total
        return ",".join(f"{s.value}:{t.get(s.value, 0)}" for s in MarketSource)

    def to_json(self) -> dict[str, Any]:
        return {"wall_ms": self.wall_ms, "total": dict(self.total),
                "per_dex": {d: dict(c) for d, c in self.per_dex.items()}}  # fmt: skip


def count_sources(sources: Mapping[str, MarketSource], now_ms: int) -> SourceCounts:
    """Sum per source and per dex (dexes in first-seen order, every source present, zeros too)."""
    total = {s.value: 0 for s in MarketSource}
    per_dex: dict[str, dict[str, int]] = {}
    for market, source in sources.items():
        dex = dex_of(market) or ORIGINAL_DEX_WORD
        total[source.value] += 1
        per_dex.setdefault(dex, {s.value: 0 for s in MarketSource})[source.value] += 1
    return SourceCounts(now_ms, total, per_dex)


def read_market_sources(path: Path) -> SourceCounts | None:
    """The counts a daemon last wrote at `path`; None when there are none or they do not parse."""
    try:
        raw = json.loads(path.read_text())
        return SourceCounts(
            wall_ms=int(raw["wall_ms"]),
            total={str(k): int(v) for k, v in raw["total"].items()},
            per_dex={str(d): {str(k): int(v) for k, v in c.items()} for d, c in raw["per_dex"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


class SourcesReader(Protocol):
    """What the probe needs from the hub (engine.marketdata.hub.MarketDataHub has it)."""

    def market_sources(
        self, symbols: Sequence[str], interval: str | None = None
    ) -> dict[str, MarketSource]: ...


class MarketSourcesProbe:
    """Reads the watchlist's sources once per call, keeps the file current, returns the status text."""

    def __init__(self, hub: SourcesReader, watchlist: Sequence[str], path: Path | None) -> None:
        self._hub = hub
        self._watchlist = tuple(watchlist)
        self._file = None if path is None else StatusFile(path, "market sources")

    def __call__(self) -> str:
        counts = count_sources(self._hub.market_sources(self._watchlist), wall_ms())
        if self._file is not None:
            self._file.write(counts.to_json())
        return f"sources={counts.status_text()}"
