"""Variables that several processes read (the driver, the sidecar, the hub): one parser, one bound.

The driver and its sidecar must agree on the interval and the history depth, so each such
variable is parsed here and nowhere else; every settings object calls these.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.config.env import ConfigError, env_bool, env_enum, env_int, env_list, env_opt_str, env_str
from engine.config.perp_dexes import PerpDexSelection, parse_perp_dex_selection
from engine.enums import Mode
from strategies.candle import interval_ms

DEFAULT_INTERVAL = "1h"
DEFAULT_LOOKBACK_BARS = 200
# The strategy's slowest indicator windows need ~50 closed bars; less history means no signal.
MIN_LOOKBACK_BARS = 50
MAX_LOOKBACK_BARS = 10_000


def env_interval(env: Mapping[str, str] | None = None) -> str:
    """AI_QUANT_INTERVAL (default 1h); ConfigError when it is not a candle interval."""
    interval = env_str("AI_QUANT_INTERVAL", DEFAULT_INTERVAL, env)
    try:
        interval_ms(interval)
    except ValueError as exc:
        raise ConfigError(f"AI_QUANT_INTERVAL={interval!r}: {exc}") from exc
    return interval


def env_lookback_bars(env: Mapping[str, str] | None = None) -> int:
    """AI_QUANT_LOOKBACK_BARS: closed bars kept and backfilled per symbol, in [50, 10000]."""
    return env_int(
        "AI_QUANT_LOOKBACK_BARS", DEFAULT_LOOKBACK_BARS, env, lo=MIN_LOOKBACK_BARS, hi=MAX_LOOKBACK_BARS
    )


DEFAULT_STATE_DIR = "state"
DEFAULT_STRATEGY_YAML = "config/strategy_overrides.yaml"
# The widest numeric watchlist. Past one IP's WS budget the sidecar splits connections, scales out
# to a fleet and falls back to REST polling (engine.sidecar.plan), so the cap only guards typos.
MAX_TOP_N = 10_000
TOP_N_ALL = "all"


def env_mode(env: Mapping[str, str] | None = None) -> Mode:
    """AI_QUANT_MODE (default paper); anything else is a ConfigError listing the valid values."""
    return env_enum("AI_QUANT_MODE", Mode, Mode.PAPER, env)


def env_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """AI_QUANT_STATE_DIR: where DBs, locks and the embedded Redis live by default."""
    return Path(env_str("AI_QUANT_STATE_DIR", DEFAULT_STATE_DIR, env))


def env_strategy_yaml(env: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """AI_QUANT_STRATEGY_YAML and whether it was named (a named file must exist; the default may not)."""
    named = env_opt_str("AI_QUANT_STRATEGY_YAML", env)
    return Path(named or DEFAULT_STRATEGY_YAML), named is not None


def env_symbols(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """AI_QUANT_SYMBOLS as written (the venue's spelling, e.g. `kPEPE`), in order, without repeats;
    empty = use the top AI_QUANT_TOP_N."""
    return tuple(dict.fromkeys(env_list("AI_QUANT_SYMBOLS", env)))


def env_instance_tag(env: Mapping[str, str] | None = None) -> str | None:
    """AI_QUANT_INSTANCE_TAG: a free-text name of this deployment (alert label, state files)."""
    return env_opt_str("AI_QUANT_INSTANCE_TAG", env)


def env_top_n(env: Mapping[str, str] | None = None) -> int | None:
    """AI_QUANT_TOP_N: watch the venue's top N by 24 h volume when AI_QUANT_SYMBOLS is unset; N in
    [1, 10000], or `all` (None here) for every market the selected perp dexes list (AI_QUANT_PERP_DEXES)."""
    raw = env_str("AI_QUANT_TOP_N", "", env).strip()
    if raw.lower() == TOP_N_ALL:
        return None
    try:
        return env_int("AI_QUANT_TOP_N", 50, env, lo=1, hi=MAX_TOP_N)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or {TOP_N_ALL!r} for every listed market)") from exc


def env_signal_on_candle_close(env: Mapping[str, str] | None = None) -> bool:
    """AI_QUANT_SIGNAL_ON_CANDLE_CLOSE: act on closed candles (1) or on the forming one (0)."""
    return env_bool("AI_QUANT_SIGNAL_ON_CANDLE_CLOSE", True, env)


def env_candle_close_grace_ms(env: Mapping[str, str] | None = None) -> int:
    """AI_QUANT_CANDLE_CLOSE_GRACE_MS: how long after its end a candle counts as closed."""
    return env_int("AI_QUANT_CANDLE_CLOSE_GRACE_MS", 2_000, env, lo=0, hi=600_000)



def env_perp_dexes(env: Mapping[str, str] | None = None) -> PerpDexSelection:
    """AI_QUANT_PERP_DEXES: the perp dexes the watchlist spans. Unset or empty = the original dex only;
    `all` = every dex the venue lists (HIP-3 builder dexes too); or a comma list of dex names, `main`
    being the original dex (e.g. `main,xyz,flx`). A malformed name is a ConfigError naming it; a name
    the venue does not list is refused at start-up."""
    raw = env_str("AI_QUANT_PERP_DEXES", "", env)
    try:
        return parse_perp_dex_selection(raw)
    except ValueError as exc:
        raise ConfigError(f"AI_QUANT_PERP_DEXES={raw!r}: {exc}") from exc
