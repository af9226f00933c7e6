"""The watchlist filter of YAML `global.watchlist_exclude` (pure).

Entries follow the watchlist; a symbol removed from it by the exclude list gets no new entries,
while an open position on it keeps its exits (the engine evaluates open symbols regardless).
"""

from __future__ import annotations

from collections.abc import Iterable


def apply_watchlist_exclude(symbols: Iterable[str], exclude: Iterable[str]) -> tuple[str, ...]:
    """Return `symbols` upper-cased, de-duplicated in order, without those in `exclude` (any case)."""
    dropped = {s.strip().upper() for s in exclude}
    return tuple(dict.fromkeys(s.upper() for s in symbols if s.upper() not in dropped))
