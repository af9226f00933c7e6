"""mei_alpha_v1 on the SDK: the house strategy behind the same interface as every other one.

`MeiAlphaV1` declares mei's indicator frame from the library (`mei_indicators`, proven bit-identical
to `compute_indicators` and `IncrementalIndicators`) and decides with the unchanged
`signals.decide_lean` over the last 4 rows, so every decision (signal, confidence, score, entry
kind) is exactly the legacy one. Its parameters stay the nested YAML schema owned by
`strategies/config.py`: the adapter is built from a resolved `StrategyConfig` (`from_config`);
the flat SDK parameter layer is empty, so `configure()` gives the code defaults and any flat
parameter is refused naming the field.

Warm-up: `warmup_bars() = 1`, because `decide_lean` applies mei's own MIN_BARS warm-up (a
NEUTRAL before it, identical to the legacy path).

Exits: mei's real exits are `strategies.exits.check_exit` (breakeven, partial take-profit,
volatility-buffered trailing, RSI and MACD exits ...), which the engine keeps for a mei_alpha_v1
primary. `exit_rules()` states mei's core levels in the SDK's terms (stop `sl_atr_mult`,
take-profit `tp_atr_mult`, trailing from `trailing_start_atr` at `trailing_distance_atr`) for
callers that only speak `ExitRules` (a mei shadow's paper book, `engine.replay --strategy`);
that is an approximation of `check_exit`, named as such in the README. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from strategies.config import StrategyConfig, default_config
from strategies.sdk.builtin.mei_indicators import mei_alpha_v1_indicators
from strategies.sdk.library import Indicator
from strategies.sdk.params import StrategyParams
from strategies.sdk.strategy import DecisionContext, ExitRules, Row, Strategy, StrategyDecision
from strategies.signals import SignalFeatures, decide_lean

_FEATURE_NAMES = tuple(f.name for f in fields(SignalFeatures))


@dataclass(frozen=True, kw_only=True, slots=True)
class MeiParams(StrategyParams):
    """No flat parameters: mei_alpha_v1 is configured by the nested YAML sections (trade, ...)."""


def _details(features: SignalFeatures | None) -> dict[str, float | bool]:
    if features is None:
        return {}
    out: dict[str, float | bool] = {}
    for name in _FEATURE_NAMES:
        value = getattr(features, name)
        if isinstance(value, bool) or math.isfinite(value):
            out[name] = value
    return out


class MeiAlphaV1(Strategy[MeiParams]):
    """The adapter (see the module docstring)."""

    NAME = "mei_alpha_v1"
    SUMMARY = "EMA/ADX trend entries with MACD/RSI/volume gates, pullback and slow-drift fallbacks"
    PARAMS = MeiParams
    LOOKBACK_ROWS = 4  # current bar + 3 previous MACD histograms

    def __init__(self, params: MeiParams, cfg: StrategyConfig | None = None) -> None:
        """Bind the (empty) flat params and the resolved nested config (code defaults if None)."""
        self.cfg = cfg if cfg is not None else default_config()
        super().__init__(params)

    @classmethod
    def from_config(cls, cfg: StrategyConfig) -> MeiAlphaV1:
        """Build from a resolved per-symbol `StrategyConfig` (the YAML's nested sections)."""
        return cls(MeiParams(), cfg)

    def indicators(self) -> Sequence[Indicator]:
        return mei_alpha_v1_indicators(self.cfg.indicator_params())

    def warmup_bars(self) -> int:
        return 1

    def exit_rules(self) -> ExitRules:
        trade = self.cfg.trade
        trailing = trade.trailing_distance_atr > 0
        return ExitRules(atr_column="ATR", stop_loss_atr=trade.sl_atr_mult,
                         take_profit_atr=trade.tp_atr_mult if trade.tp_atr_mult > 0 else None,
                         trailing_start_atr=trade.trailing_start_atr if trailing else None,
                         trailing_distance_atr=trade.trailing_distance_atr if trailing else None)

    def decide(self, rows: Sequence[Row], ctx: DecisionContext) -> StrategyDecision:
        # decide_lean reads only mei's columns by key; the three extra declared columns are ignored
        d = decide_lean(rows, ctx.bars, self.cfg, ctx.btc_bullish, symbol=ctx.symbol)
        return StrategyDecision(d.signal, d.confidence, float(d.score), d.entry_kind.value,
                                _details(d.features))
