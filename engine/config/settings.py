"""The daemon's frozen settings, built once at start-up from `AI_QUANT_*` (and `HL_*`) variables.

Names, defaults and meanings are the reference engine's (§19) unless noted. Every value is
parsed through `engine.config.env`, so a malformed or out-of-range value raises ConfigError naming the
variable before anything starts. Paper never shares a DB file or a lock with dry_live or live:
the default DB is per mode and the default lock is `ai_quant_paper.lock` or `ai_quant_live.lock`
(dry_live and live share the live lock, so they exclude each other).

Our additions (not in the reference): `AI_QUANT_STATE_DIR` (where DBs and locks go by default).
Strategy knobs (max open positions, cooldowns, sizing) come from the strategy YAML
(`strategies.config`); only their live/dry_live env defaults are read here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.env import (
    ConfigError,
    env_bool,
    env_enum,
    env_float,
    env_int,
    env_opt_str,
    env_str,
)
from engine.config.fill_params import FeeSchedule, FillModelParams
from engine.config.perp_dexes import PerpDexSelection, normalise_symbol
from engine.config.shared import (
    env_candle_close_grace_ms,
    env_instance_tag,
    env_interval,
    env_lookback_bars,
    env_mode,
    env_perp_dexes,
    env_signal_on_candle_close,
    env_state_dir,
    env_strategy_yaml,
    env_symbols,
    env_top_n,
)
from engine.enums import FeeMode, Mode
from strategies.candle import interval_ms
from strategies.config import LiveDefaults, StrategyConfigError, parse_strategy_mode
from strategies.enums import StrategyMode

ENTRY_MAX_DELAY_HARD_MAX_MS = 7_200_000


def lock_file_name(mode: Mode) -> str:
    """Return the default lock file name: paper has its own, dry_live and live share one."""
    return "ai_quant_paper.lock" if mode is Mode.PAPER else "ai_quant_live.lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class PaperSettings:
    """The paper fill model and seed (reference §19.4)."""

    seed_balance_usd: float = 10_000.0
    funding_enabled: bool = True
    funding_poll_secs: float = 60.0
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    fee_mode: FeeMode = FeeMode.TAKER
    slippage_bps: float = 10.0

    def fill_params(self, *, use_bbo: bool = True) -> FillModelParams:
        """Return the fill model parameters (BBO use comes from the strategy's trade.use_bbo_for_fills)."""
        return FillModelParams(
            fees=self.fees, fee_mode=self.fee_mode, slippage_bps=self.slippage_bps, use_bbo=use_bbo
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonSettings:
    """Everything the driver reads from the environment, validated. Build with `from_env`."""

    mode: Mode = Mode.PAPER
    interval: str = "1h"
    lookback_bars: int = 200
    signal_on_candle_close: bool = True
    candle_close_grace_ms: int = 2_000
    loop_target_secs: float = 5.0
    heartbeat_secs: float = 30.0
    entry_max_delay_ms: int = 0
    entry_retry_on_capacity: bool = False
    state_dir: Path = Path("state")
    db_path: Path = Path("state/trading_paper.db")
    lock_path: Path = Path("state/ai_quant_paper.lock")
    strategy_yaml: Path = Path("config/strategy_overrides.yaml")
    strategy_mode: StrategyMode | None = None
    symbols: tuple[str, ...] = ()
    perp_dexes: PerpDexSelection = field(default_factory=PerpDexSelection)
    top_n: int | None = 50  # None = every listed market (AI_QUANT_TOP_N=all)
    instance_tag: str | None = None
    run_id: str | None = None
    paper: PaperSettings = field(default_factory=PaperSettings)
    live_defaults: LiveDefaults = field(default_factory=LiveDefaults)

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)

    @property
    def is_live_family(self) -> bool:
        """True for dry_live and live (the modes that merge the YAML `live` overlay)."""
        return self.mode is not Mode.PAPER

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DaemonSettings:
        """Parse and validate the environment; raise ConfigError naming the first bad variable."""
        env = os.environ if env is None else env
        mode = env_mode(env)
        interval = env_interval(env)
        state_dir = env_state_dir(env)
        return cls(
            mode=mode,
            interval=interval,
            lookback_bars=env_lookback_bars(env),
            signal_on_candle_close=env_signal_on_candle_close(env),
            candle_close_grace_ms=env_candle_close_grace_ms(env),
            loop_target_secs=env_float("AI_QUANT_LOOP_TARGET_SECS", 5.0, env, lo=0.05, hi=3_600.0),
            heartbeat_secs=env_float("AI_QUANT_HEARTBEAT_SECS", 30.0, env, lo=1.0, hi=86_400.0),
            entry_max_delay_ms=_entry_max_delay_ms(env),
            entry_retry_on_capacity=env_bool("AI_QUANT_ENTRY_RETRY_ON_CAPACITY", False, env),
            state_dir=state_dir,
            db_path=Path(env_str("AI_QUANT_DB_PATH", str(state_dir / f"trading_{mode.value}.db"), env)),
            lock_path=Path(env_str("AI_QUANT_LOCK_PATH", str(state_dir / lock_file_name(mode)), env)),
            strategy_yaml=env_strategy_yaml(env)[0],
            strategy_mode=_strategy_mode(env),
            symbols=tuple(dict.fromkeys(normalise_symbol(s) for s in env_symbols(env))),
            perp_dexes=env_perp_dexes(env),
            top_n=env_top_n(env),
            instance_tag=env_instance_tag(env),
            run_id=env_opt_str("AI_QUANT_RUN_ID", env),
            paper=_paper(env),
            live_defaults=LiveDefaults(
                max_open_positions=env_int("AI_QUANT_LIVE_MAX_OPEN_POSITIONS", 1, env, lo=1, hi=100),
                max_notional_usd_per_order=env_float(
                    "AI_QUANT_LIVE_MAX_NOTIONAL_USD_PER_ORDER", 15.0, env, lo=0.0
                ),
                min_margin_usd=env_float("AI_QUANT_LIVE_MIN_MARGIN_USD", 6.0, env, lo=0.0),
            ),
        )


def _entry_max_delay_ms(env: Mapping[str, str]) -> int:
    # ms wins when set and > 0; else seconds x 1000. Above the 2 h hard maximum is an error here
    # (the reference clamped with a warning; we fail at start-up instead).
    hard = ENTRY_MAX_DELAY_HARD_MAX_MS
    delay_ms = env_int("AI_QUANT_ENTRY_MAX_DELAY_MS", 0, env, lo=0, hi=hard)
    if delay_ms > 0:
        return delay_ms
    delay_s = env_float("AI_QUANT_ENTRY_MAX_DELAY_S", 0.0, env, lo=0.0, hi=hard / 1000.0)
    return round(delay_s * 1000.0)


def _strategy_mode(env: Mapping[str, str]) -> StrategyMode | None:
    raw = env_opt_str("AI_QUANT_STRATEGY_MODE", env)
    try:
        return parse_strategy_mode(raw)
    except StrategyConfigError as exc:
        raise ConfigError(f"AI_QUANT_STRATEGY_MODE={raw!r}: {exc}") from exc


def _paper(env: Mapping[str, str]) -> PaperSettings:
    fees = FeeSchedule(
        taker_rate=env_float("HL_PERP_TAKER_FEE_RATE", 0.00045, env, lo=0.0, hi=0.01),
        maker_rate=env_float("HL_PERP_MAKER_FEE_RATE", 0.00015, env, lo=0.0, hi=0.01),
        referral_discount_pct=env_float("HL_REFERRAL_DISCOUNT_PCT", 0.0, env, lo=0.0, hi=100.0),
        builder_fee_rate=env_float("HL_BUILDER_FEE_RATE", 0.0, env, lo=0.0, hi=0.01),
    )
    return PaperSettings(
        seed_balance_usd=env_float("AI_QUANT_PAPER_BALANCE", 10_000.0, env, lo=0.01),
        funding_enabled=env_bool("HL_FUNDING_ENABLED", True, env),
        funding_poll_secs=env_float("AI_QUANT_PAPER_FUNDING_SECS", 60.0, env, lo=1.0, hi=86_400.0),
        fees=fees,
        fee_mode=env_enum("HL_FEE_MODE", FeeMode, FeeMode.TAKER, env),
        slippage_bps=env_float("HL_SLIPPAGE_BPS", 10.0, env, lo=0.0, hi=1_000.0),
    )
