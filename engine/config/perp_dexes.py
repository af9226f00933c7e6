"""Which perp dexes the engine trades (AI_QUANT_PERP_DEXES) and how it spells their symbols. Pure.

The original Hyperliquid perp dex is named "" on the wire (written `main` in the variable); HIP-3
builder dexes have short lower-case names, and their coins are ``dex:COIN`` (engine.venue.dexes has
the venue-side facts). Original-dex symbols have always been upper-cased by this engine; a builder
dex's full name is kept exactly as the venue spells it, since orders, candles, Redis keys and the
ledger must all name the same coin the venue does (``xyz:kBONK``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ORIGINAL_DEX = ""
ORIGINAL_DEX_WORD = "main"  # how AI_QUANT_PERP_DEXES names the original dex
ALL_DEXES_WORD = "all"
DEFAULT_COLLATERAL = "USDC"  # the original dex's collateral
DEX_NAME_RE = re.compile(r"^[a-z0-9]{1,6}$")  # HIP-3 dex names: short, lower-case


def dex_of(symbol: str) -> str:
    """The perp dex of a full coin name: ``xyz:TSLA`` → ``xyz``; ``BTC`` → "" (the original dex)."""
    dex, sep, _ = symbol.partition(":")
    return dex if sep else ORIGINAL_DEX


def normalise_symbol(symbol: str) -> str:
    """The engine's spelling of a symbol: original-dex names upper-cased as always; a builder dex's
    ``dex:COIN`` kept exactly (it must round-trip to the venue unchanged)."""
    name = symbol.strip()
    return name if ":" in name else name.upper()


@dataclass(frozen=True, slots=True)
class PerpDexSelection:
    """AI_QUANT_PERP_DEXES parsed: every dex the venue lists, or these names ("" = the original)."""

    every: bool = False
    names: tuple[str, ...] = (ORIGINAL_DEX,)

    @property
    def original_only(self) -> bool:
        return not self.every and self.names == (ORIGINAL_DEX,)

    def to_env(self) -> str:
        if self.every:
            return ALL_DEXES_WORD
        return ",".join(ORIGINAL_DEX_WORD if n == ORIGINAL_DEX else n for n in self.names)


def parse_perp_dex_selection(text: str) -> PerpDexSelection:
    """``""`` → the original dex only; ``all``; or a comma list of dex names (``main`` = the
    original dex). ValueError naming the first bad entry."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        return PerpDexSelection()
    if items == [ALL_DEXES_WORD]:
        return PerpDexSelection(every=True, names=())
    names: list[str] = []
    for item in items:
        if item == ALL_DEXES_WORD:
            raise ValueError("'all' cannot be combined with dex names")
        name = ORIGINAL_DEX if item == ORIGINAL_DEX_WORD else item
        if name and not DEX_NAME_RE.match(name):
            raise ValueError(f"{item!r} is not a perp dex name (1-6 lower-case letters or digits, or 'main')")
        if name not in names:
            names.append(name)
    return PerpDexSelection(names=tuple(names))
