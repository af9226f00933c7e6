"""Start-up facts about the perp dexes the driver trades (AI_QUANT_PERP_DEXES), read from the venue once.

The info client spans the selected dexes by itself (engine.venue.info_client); what the rest of the
driver needs besides is each dex's fee multiplier (the paper fill model) and collateral token (the
risk manager's per-collateral cap). A selected dex the venue does not list is a configuration
error (exit 2); an unreachable venue is retried until it answers or the daemon is stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from engine.config.env import ConfigError
from engine.daemon.stop import StopFlag
from engine.venue.dexes import ORIGINAL, PerpDex
from engine.venue.errors import ParseError
from engine.venue.info_client import HyperliquidInfoClient

log = logging.getLogger("engine.daemon")


@dataclass(frozen=True, slots=True)
class PerpDexFacts:
    """The traded dexes, with each one's collateral token by name."""

    dexes: tuple[PerpDex, ...] = (ORIGINAL,)
    collateral: tuple[tuple[str, str], ...] = (("", "USDC"),)

    @property
    def fee_multipliers(self) -> tuple[tuple[str, float], ...]:
        return tuple((d.name, d.fee_multiplier) for d in self.dexes if d.name)


def load_perp_dex_facts(info: HyperliquidInfoClient, stop: StopFlag) -> PerpDexFacts:
    """Resolve AI_QUANT_PERP_DEXES against the venue's `perpDexs` and read the collateral tokens."""
    if info.selection.original_only:
        return PerpDexFacts()
    delay = 0.5
    while not stop:
        try:
            dexes = info.traded_dexes()
            collateral = info.dex_collateral()
        except (ValueError, ParseError) as exc:
            if isinstance(exc, ParseError):
                raise
            raise ConfigError(f"AI_QUANT_PERP_DEXES={info.selection.to_env()}: {exc}") from exc
        except Exception as exc:  # venue not reachable yet: retry with backoff
            log.warning("perpDexs query failed error=%s; retrying in %.1fs", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
            continue
        log.info("perp dexes %s", ",".join(f"{d.name or 'main'}({collateral[d.name]})" for d in dexes))
        return PerpDexFacts(dexes=dexes, collateral=tuple(collateral.items()))
    return PerpDexFacts()
