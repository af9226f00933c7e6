"""The built-in SDK strategies, by name (what `StrategyRegistry.installed()` starts from)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from strategies.sdk.builtin.breakout import DonchianBreakout
from strategies.sdk.builtin.mean_reversion import RsiBollingerReversion
from strategies.sdk.builtin.mei import MeiAlphaV1
from strategies.sdk.strategy import Strategy

BUILTINS: Mapping[str, type[Strategy[Any]]] = MappingProxyType({
    cls.NAME: cls for cls in (DonchianBreakout, MeiAlphaV1, RsiBollingerReversion)
})
