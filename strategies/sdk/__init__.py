"""The Strategy SDK: write a strategy as declarations plus a small pure decision, run it anywhere.

What a strategy is (`strategies.sdk.strategy.Strategy`; a complete example is
`strategies/sdk/builtin/breakout.py`, a user one lives in any importable module):

* typed parameters: a frozen `StrategyParams` dataclass, each field `param(default, lo, hi, doc)`;
  YAML layers merge over the defaults and a bad value raises `StrategyParamError` naming
  strategy, symbol and field (`exit_code` 2);
* declared indicators from the library (`strategies.sdk.library`: Sma, Ema, Rsi, Atr, Adx,
  Bollinger, Macd, StochRsi, Stochastic, Donchian, SlopePct, SmaAbove), each with an incremental
  and a batch twin proven bit-identical on real candles; a declaration may read an earlier one;
* `decide(rows, ctx)` over the last `LOOKBACK_ROWS` indicator rows -> `StrategyDecision`
  (signal, confidence, score for ranking, reason code, numeric details), optionally the same
  decision for n rows at once (`decide_columns`, the array form);
* exits: `exit_rules()` (stop, take-profit, trailing, in entry-ATR multiples) and an optional
  `indicator_exit(side, rows)`; `strategies.sdk.exits` turns them into the `ExitDecision` record
  the brokers already consume.

Callers go through the fences: `evaluate` / `evaluate_columns` / `evaluate_exit` never raise for a
strategy's own bug; they return a `StrategyFault` (kind + detail) for that strategy on that symbol.
`StrategyRegistry` finds strategies: built-ins by name, the `ai_quant.strategies` entry-point
group, or `package.module:ClassName`; failures are `StrategyConfigError`s (exit 2) with the reason.
`strategy_parity` compares batch, incremental and array-form decisions over a candle history.
`python -m strategies list --json` prints the registered names. Pure: no I/O (importing a user
module is the registry's only side effect).

How it plugs in (steps 1 to 7 are wired)
----------------------------------------
Where each step lives: 1 `strategies.sdk.plan` (parsed by `strategies.config`, exposed as
`StrategyOverrides.plan` / `ConfigSource.plan`; the engine reads exits through
`StrategyPlan.primary_rules(symbol)` and, for shadow variants, `StrategyPlan.rules_for(variant)`);
2 `cluster.shard_sdk` (records: `cluster.records.VariantDecision`, `ShardDecision.primary` and
`.variants`); 4 and 5 `engine.tick.sdk_primary`; 6 `engine.tools.replay --strategy` (through the
same engine and shards as the daemon) and `strategies.check_parity --strategy`; 7
`strategies.sdk.builtin.mei`. A mei_alpha_v1 primary keeps the legacy fast path in the shards
(`IncrementalIndicators` + `decide_lean`) and its exits (`strategies.exits.check_exit`).

1. Config (owner `strategies/config.py`). The YAML gains a `strategies:` block parsed into a
   frozen plan: a global `primary` ref (default `mei_alpha_v1`), `params: {ref: {...}}` per
   strategy, `symbols: {SYM: {primary, params}}`, and `shadows: [{name, strategy, params | grid,
   symbols}]`; `strategies.sdk.variants` expands grids (lists or from/to/step ranges) into named
   variants and validates each against the schema. Per (symbol, strategy) the param
   layers are `[global params[ref], symbols[SYM].params[ref], variant overrides]`, passed to
   `StrategyRegistry.configure(ref, layers, symbol=SYM)`. The loader resolves every ref at load,
   so an unknown name, an import error or a bad parameter is a `StrategyConfigError` at start
   (exit 2) or, on a hot reload, "keep the last good config and alert".
2. Shards (`cluster/shard_core.py`). Each (symbol, variant) row holds the strategy object and an
   `IndicatorState` from `strategy.indicator_set.incremental(strategy.LOOKBACK_ROWS)`. On a closed
   candle: `state.update(t, o, h, l, c, v)`, then `evaluate(strategy, state.rows(),
   DecisionContext(symbol=..., bars=state.bars, btc_bullish=...))`; the shard returns the
   `StrategyDecision` or `StrategyFault` in its typed record. Checkpoint and rehydrate exactly
   with `state.to_state()` / `strategy.indicator_set.restore(state, K)` (JSON types, bit-exact;
   a ValueError, e.g. other declarations after a param change, means: rebuild from the Redis
   candle history, >= `strategy.warmup` bars).
3. Columnar shards (issue 12; `strategies.sdk.columnar`, `cluster.columnar_book`). Declarations
   are hashable values: a shard groups its rows by `indicator_set.specs`, keeps one numpy array
   per kernel state field across the group (`strategies.sdk.columnar_library`), and updates each
   declaration for all changed rows at once, using the same IEEE operation order as the kernels
   (the library's batch twin stays the oracle; tests/unit/test_sdk_library.py checks all three).
   Decisions: build a `ColumnWindow` (n rows x K) from those arrays and call
   `evaluate_columns`; `None` (no array form) or a `StrategyOutputError` falls back to
   `evaluate` per row, which isolates the faulty row. Both built-ins have an array form (and
   array indicator exits) proven equal to their per-row form.
4. Exits (engine exit step). For an SDK primary, a new position stores
   `entry_atr(strategy.rules, row)`; each tick calls `evaluate_exit(strategy, position, price,
   rows, symbol)` and applies the `ExitDecision` with `strategies.exits.with_exit_applied`, the
   same path as today. A fault still applies the stop and take-profit. An `INDICATOR_EXIT` code in
   `strategies.enums.ExitReason` would let indicator exits stop borrowing `trend_breakdown` /
   `take_profit`.
5. Faults (daemon). A `StrategyFault` becomes a `decision_events` row (strategy, symbol, kind,
   detail) and one alert per (strategy, symbol) until it decides again; the symbol's other
   strategies and every other symbol go on. Shadows never reach the OMS in any mode.
6. Replay and check_parity. `engine.replay --strategy REF` builds the strategy through the
   registry and runs `indicator_set.batch` + `evaluate` per bar (as `strategy_parity` does) with
   `evaluate_exit` and the shared fill model. `strategies.check_parity --strategy REF` maps
   `strategy_parity`'s report onto today's JSON (`bars`, `max_rel_err`, `signal_mismatches`);
   without `--strategy` it keeps the mei_alpha_v1 path.
7. mei_alpha_v1 on the SDK, decisions unchanged. An adapter `MeiAlphaV1(Strategy)`:
   `indicators()` returns `builtin.mei_indicators.mei_alpha_v1_indicators(cfg.indicator_params())`
   (proven bit-identical to `compute_indicators` and `IncrementalIndicators`, batch and
   incremental, on every shipped candle), `LOOKBACK_ROWS = 4`, `warmup_bars() = 1` (its own
   `decide` keeps the MIN_BARS warm-up), and `decide` projects the rows onto `MEI_ROW_COLUMNS`
   and calls the existing `signals.decide_lean(rows, ctx.bars, cfg, ctx.btc_bullish,
   symbol=ctx.symbol)`, mapping its typed record to `StrategyDecision` (reason = entry kind,
   details = the numeric snapshot). Its parameters stay the existing nested YAML schema
   (validated by `strategies/config.py`), so the adapter is built from a `StrategyConfig`, not
   from flat layers; its exits keep `strategies.exits.check_exit` through an exit hook that
   overrides the rule exits. Proof: check_parity, the held-out parity and the paper = replay e2e
   unchanged.
"""

from __future__ import annotations

from strategies.enums import Confidence, ExitReason, PositionSide, Signal
from strategies.sdk.enums import FaultKind, StrategyOrigin
from strategies.sdk.errors import (
    IndicatorDeclarationError,
    StrategyConfigError,
    StrategyLoadError,
    StrategyNotFoundError,
    StrategyOutputError,
    StrategyParamError,
    StrategySdkError,
)
from strategies.sdk.indicator_set import IndicatorSet, IndicatorState
from strategies.sdk.library import (
    LIBRARY,
    Adx,
    Atr,
    Bollinger,
    Donchian,
    Ema,
    Indicator,
    Macd,
    Rsi,
    SlopePct,
    Sma,
    SmaAbove,
    Stochastic,
    StochRsi,
)
from strategies.sdk.params import ParamSpec, StrategyParams, param
from strategies.sdk.strategy import (
    NEUTRAL,
    WARMUP,
    ColumnDecisions,
    ColumnWindow,
    DecisionContext,
    ExitRules,
    Row,
    Strategy,
    StrategyDecision,
    StrategyFault,
    evaluate,
    evaluate_columns,
    validate_decision,
)

__all__ = [
    "LIBRARY",
    "NEUTRAL",
    "WARMUP",
    "Adx",
    "Atr",
    "Bollinger",
    "ColumnDecisions",
    "ColumnWindow",
    "Confidence",
    "DecisionContext",
    "Donchian",
    "Ema",
    "ExitReason",
    "ExitRules",
    "FaultKind",
    "Indicator",
    "IndicatorDeclarationError",
    "IndicatorSet",
    "IndicatorState",
    "Macd",
    "ParamSpec",
    "PositionSide",
    "Row",
    "Rsi",
    "Signal",
    "SlopePct",
    "Sma",
    "SmaAbove",
    "StochRsi",
    "Stochastic",
    "Strategy",
    "StrategyConfigError",
    "StrategyDecision",
    "StrategyFault",
    "StrategyLoadError",
    "StrategyNotFoundError",
    "StrategyOrigin",
    "StrategyOutputError",
    "StrategyParamError",
    "StrategyParams",
    "StrategySdkError",
    "evaluate",
    "evaluate_columns",
    "param",
    "validate_decision",
]
