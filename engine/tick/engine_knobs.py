"""YAML `global.engine` settings folded into the AI_QUANT_* variables every component reads (pure).

Why one place: the hub, the sidecar, the shards and the daemon each read their knob from the
environment handed to them (`AI_QUANT_SIGNAL_ON_CANDLE_CLOSE`, `AI_QUANT_CANDLE_CLOSE_GRACE_MS`,
`AI_QUANT_HEARTBEAT_SECS`, `AI_QUANT_LOOP_TARGET_SECS`). The daemon calls `engine_env_updates`
once after loading the strategy YAML and re-parses its frozen config with the result
(`DriverConfig.with_env`), which also reaches the children through `to_env`, so a YAML key
and its variable are one switch. Both set to different values is refused (exit 2) instead of
one silently winning. `engine.interval` keeps its own rule (YAML wins, StrategyManager).

`entry_interval` and `exit_interval` are refused unless they describe what the engine does:
entries are evaluated on each closed main-interval candle (`entry_interval` unset or equal to the
interval) and exits run every loop priced at the mid (`exit_interval` unset or `mid`). A faster
entry cadence would need the shards to evaluate forming candles of a second interval: not built.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.config.env import ConfigError, env_bool, env_float, env_int
from strategies.candle import interval_ms
from strategies.config import EngineConfig

_ENV_OF = {
    "signal_on_candle_close": "AI_QUANT_SIGNAL_ON_CANDLE_CLOSE",
    "candle_close_grace_ms": "AI_QUANT_CANDLE_CLOSE_GRACE_MS",
    "heartbeat_every_s": "AI_QUANT_HEARTBEAT_SECS",
    "loop_target_s": "AI_QUANT_LOOP_TARGET_SECS",
}
"""YAML `engine.<key>` -> the variable it sets (bounds are the variable's, engine.config.settings)."""


def _parse(key: str, env: Mapping[str, str]) -> bool | int | float:
    name = _ENV_OF[key]
    if key == "signal_on_candle_close":
        return env_bool(name, True, env)
    if key == "candle_close_grace_ms":
        return env_int(name, 2_000, env, lo=0, hi=600_000)
    if key == "heartbeat_every_s":
        return env_float(name, 30.0, env, lo=1.0, hi=86_400.0)
    return env_float(name, 5.0, env, lo=0.05, hi=3_600.0)


def _text(value: bool | int | float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def check_cadence(engine: EngineConfig, interval: str, source: str) -> None:
    """Refuse `entry_interval`/`exit_interval` values the engine would not honour; raise ConfigError."""
    entry = engine.entry_interval
    if entry is not None and entry.strip():
        try:
            same = interval_ms(entry.strip()) == interval_ms(interval)
        except ValueError as exc:
            raise ConfigError(f"{source}: engine.entry_interval={entry!r}: {exc}") from exc
        if not same:
            raise ConfigError(
                f"{source}: engine.entry_interval={entry!r} is not supported: entries are evaluated "
                f"on each closed {interval} candle; remove it or set it to {interval!r}"
            )
    exit_iv = engine.exit_interval
    if exit_iv is not None and exit_iv.strip() and exit_iv.strip().lower() != "mid":
        raise ConfigError(
            f"{source}: engine.exit_interval={exit_iv!r} is not supported: exits run every loop "
            "priced at the mid; remove it or set it to 'mid'"
        )


def engine_env_updates(
    engine: EngineConfig, env: Mapping[str, str], *, interval: str, source: str
) -> dict[str, str]:
    """Return the AI_QUANT_* values the YAML `engine` section sets, checked against `env`.

    `interval` is the interval the process runs on; `source` names the YAML file in errors.
    Raises ConfigError (exit 2) for an out-of-range value, a variable set to a different value,
    or an unsupported entry/exit cadence.
    """
    check_cadence(engine, interval, source)
    updates: dict[str, str] = {}
    for key, name in _ENV_OF.items():
        value = getattr(engine, key)
        if value is None:
            continue
        try:
            parsed = _parse(key, {name: _text(value)})
        except ConfigError as exc:
            raise ConfigError(f"{source}: engine.{key}={value!r}: {exc}") from exc
        raw = env.get(name, "").strip()
        if raw and _parse(key, env) != parsed:
            raise ConfigError(
                f"{source}: engine.{key}={value!r} conflicts with {name}={raw!r}; set only one of them"
            )
        updates[name] = _text(parsed)
    return updates
