"""The paper fill model's parameters: Hyperliquid fee rates and how fills are priced.

Why here and not in engine/execution/fill_model.py (which prices the fills and re-exports these):
they are configuration values, built from `HL_*` variables by `engine.config.settings`, and the
config package sits below every component, so it must not import execution/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.config.perp_dexes import dex_of
from engine.enums import FeeMode


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeSchedule:
    """Hyperliquid perp fee rates (fractions, not bps). Defaults are the base-tier rates."""

    taker_rate: float = 0.00045
    maker_rate: float = 0.00015
    referral_discount_pct: float = 0.0
    builder_fee_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("taker_rate", "maker_rate", "builder_fee_rate"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"FeeSchedule.{name} must be a finite non-negative rate, got {value!r}")
        if not 0.0 <= self.referral_discount_pct <= 100.0:
            raise ValueError(
                f"FeeSchedule.referral_discount_pct must be in [0, 100], got {self.referral_discount_pct}"
            )

    def rate(self, mode: FeeMode) -> float:
        """Return the effective fee rate for a taker or maker fill."""
        base = self.taker_rate if mode is FeeMode.TAKER else self.maker_rate
        return base * (1.0 - self.referral_discount_pct / 100.0) + self.builder_fee_rate


@dataclass(frozen=True, slots=True, kw_only=True)
class FillModelParams:
    """How paper fills are priced. Ages are the freshness limits for quotes, in ms."""

    fees: FeeSchedule = FeeSchedule()
    fee_mode: FeeMode = FeeMode.TAKER
    slippage_bps: float = 10.0
    use_bbo: bool = True
    bbo_max_age_ms: int = 15_000
    mid_max_age_ms: int = 10_000
    # (perp dex, fee multiplier) of HIP-3 builder dexes: their deployer charges base x (1 + scale)
    dex_fee_multipliers: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for dex, multiplier in self.dex_fee_multipliers:
            if not math.isfinite(multiplier) or multiplier < 1.0:
                raise ValueError(f"FillModelParams: fee multiplier of dex {dex!r} is {multiplier}, below 1")
        if not math.isfinite(self.slippage_bps) or self.slippage_bps < 0:
            raise ValueError(
                f"FillModelParams.slippage_bps must be finite and >= 0, got {self.slippage_bps!r}"
            )

    @property
    def fee_rate(self) -> float:
        """The original dex's fee rate."""
        return self.fees.rate(self.fee_mode)

    def fee_rate_for(self, symbol: str) -> float:
        """The fee rate of a fill on `symbol`'s perp dex: the base rate times the dex's multiplier
        (1 on the original dex; referral and builder-code parts scale alike, a simplification)."""
        dex = dex_of(symbol)
        if not dex:
            return self.fee_rate
        return self.fee_rate * dict(self.dex_fee_multipliers).get(dex, 1.0)
