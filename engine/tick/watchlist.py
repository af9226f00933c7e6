"""The watchlist filter of YAML `global.watchlist_exclude` (pure).

Entries follow the watchlist; a symbol removed from it by the exclude list gets no new entries,
while an open position on it keeps its exits (the engine evaluates open symbols regardless).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.config.perp_dexes import normalise_symbol


def apply_watchlist_exclude(symbols: Iterable[str], exclude: Iterable[str]) -> tuple[str, ...]:
    """Return `symbols` in the engine's spelling (original-dex names upper-cased, a builder dex's
    `dex:COIN` exact), de-duplicated in order, without those in `exclude` (same spelling rule)."""
    dropped = {normalise_symbol(s) for s in exclude}
    names = (normalise_symbol(s) for s in symbols)
    return tuple(dict.fromkeys(s for s in names if s not in dropped))
