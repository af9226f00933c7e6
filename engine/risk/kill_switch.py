"""The operator's soft kill switch: `AI_QUANT_KILL_SWITCH` and the file `AI_QUANT_KILL_SWITCH_FILE`.

ONE parser (`parse_kill_text`) serves both sources, so a value can never mean one thing here and
another elsewhere (reference quirk §18.10). Tokens, case-insensitive, surrounding whitespace
ignored:

- `close_only`, `close`, `reduce` → CLOSE_ONLY (no entries; exits and cancels pass);
- `halt_all`, `halt`, `stop`, `full`, `2` → HALT_ALL (no orders at all; cancels pass);
- `1`, `true`, `yes`, `on` → the mode in `AI_QUANT_KILL_SWITCH_MODE` (default close_only);
- `clear`, `resume`, `unpause` → CLEAR;
- `0`, `false`, `no`, `off` and an unset/empty variable → no command from this source;
- anything else → CLOSE_ONLY, flagged unrecognised (fail closed; the caller alerts).

The file is read on every poll (each tick) and needs no restart. Only its first non-empty line
counts. A missing file is "no command" (deleting it does not lift a kill: only `clear` does); an
existing but empty file, or one that cannot be read, is CLOSE_ONLY (touch it to stop entries).

`kill_events` turns readings into trading-state events: CLOSE_ONLY and HALT_ALL are levels
(applied every poll while present; the transition table makes repeats no-ops), CLEAR is an edge
(applied once when it first appears in a source, remembered across restarts), so a `clear` left
in the file or the environment never cancels a later breaker trip. Clears are applied before
levels, so a remaining `halt_all` in the other source wins. `AI_QUANT_HARD_KILL_SWITCH` is not a
state: it is read before every order by engine/execution/gates.py and the RiskManager.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.config.env import ConfigError, env_enum, env_opt_str
from engine.enums import KillCommand, KillSource, TradingStateEvent

ENV_KILL_SWITCH = "AI_QUANT_KILL_SWITCH"
ENV_KILL_SWITCH_MODE = "AI_QUANT_KILL_SWITCH_MODE"
ENV_KILL_SWITCH_FILE = "AI_QUANT_KILL_SWITCH_FILE"

_TOKENS: Mapping[str, KillCommand | None] = {
    "close_only": KillCommand.CLOSE_ONLY,
    "close": KillCommand.CLOSE_ONLY,
    "reduce": KillCommand.CLOSE_ONLY,
    "halt_all": KillCommand.HALT_ALL,
    "halt": KillCommand.HALT_ALL,
    "stop": KillCommand.HALT_ALL,
    "full": KillCommand.HALT_ALL,
    "2": KillCommand.HALT_ALL,
    "clear": KillCommand.CLEAR,
    "resume": KillCommand.CLEAR,
    "unpause": KillCommand.CLEAR,
    "0": None,
    "false": None,
    "no": None,
    "off": None,
}
_TRUTHY = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True, slots=True)
class KillReading:
    """What one source says now. `token` is the normalised text ("" when the source is silent)."""

    source: KillSource
    command: KillCommand | None
    token: str
    recognised: bool = True


def parse_kill_text(
    text: str | None, *, truthy_mode: KillCommand = KillCommand.CLOSE_ONLY
) -> tuple[KillCommand | None, str, bool]:
    """Parse one kill-switch value into (command, normalised token, recognised). Never raises."""
    token = (text or "").strip().lower()
    if not token:
        return None, "", True
    if token in _TRUTHY:
        return truthy_mode, token, True
    if token in _TOKENS:
        return _TOKENS[token], token, True
    return KillCommand.CLOSE_ONLY, token, False


def _truthy_mode(env: Mapping[str, str]) -> KillCommand:
    try:
        mode = env_enum(ENV_KILL_SWITCH_MODE, KillCommand, KillCommand.CLOSE_ONLY, env)
    except ConfigError:
        return KillCommand.CLOSE_ONLY  # polled each tick: never raise; a bad mode still stops entries
    return KillCommand.CLOSE_ONLY if mode is KillCommand.CLEAR else mode


def _read_file(path: Path) -> tuple[str | None, bool]:
    # Returns (first non-empty line or "" for an empty file, readable); None when absent.
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, True
    except OSError:
        return None, False
    for line in text.splitlines():
        if line.strip():
            return line, True
    return "", True


@dataclass(frozen=True, slots=True)
class KillSwitchSources:
    """The two soft-kill sources; `poll()` re-reads both (environment mapping and file) each time."""

    env: Mapping[str, str] | None = None
    file_path: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KillSwitchSources:
        """Take the file path from AI_QUANT_KILL_SWITCH_FILE (unset = no file source)."""
        path = env_opt_str(ENV_KILL_SWITCH_FILE, env)
        return cls(env=env, file_path=None if path is None else Path(path).expanduser())

    def poll(self) -> tuple[KillReading, KillReading]:
        """Read the environment variable and the file now; return (env reading, file reading)."""
        source = os.environ if self.env is None else self.env
        mode = _truthy_mode(source)
        command, token, ok = parse_kill_text(source.get(ENV_KILL_SWITCH), truthy_mode=mode)
        env_reading = KillReading(KillSource.ENV, command, token, ok)
        if self.file_path is None:
            return env_reading, KillReading(KillSource.FILE, None, "")
        text, readable = _read_file(self.file_path)
        if not readable:
            file_reading = KillReading(KillSource.FILE, KillCommand.CLOSE_ONLY, "<unreadable>", False)
        elif text is None:
            file_reading = KillReading(KillSource.FILE, None, "")
        elif text == "":
            file_reading = KillReading(KillSource.FILE, KillCommand.CLOSE_ONLY, "<empty>")
        else:
            command, token, ok = parse_kill_text(text, truthy_mode=mode)
            file_reading = KillReading(KillSource.FILE, command, token, ok)
        return env_reading, file_reading


_LEVEL_EVENTS: Mapping[KillCommand, TradingStateEvent] = {
    KillCommand.CLOSE_ONLY: TradingStateEvent.KILL_CLOSE_ONLY,
    KillCommand.HALT_ALL: TradingStateEvent.KILL_HALT_ALL,
}


def kill_events(
    readings: tuple[KillReading, ...], last_tokens: Mapping[KillSource, str]
) -> list[tuple[TradingStateEvent, KillReading]]:
    """Return the trading-state events the readings call for, clears (edges) first, then levels."""
    clears = [
        (TradingStateEvent.CLEAR, reading)
        for reading in readings
        if reading.command is KillCommand.CLEAR and last_tokens.get(reading.source, "") != reading.token
    ]
    levels = [
        (_LEVEL_EVENTS[reading.command], reading)
        for reading in readings
        if reading.command is not None and reading.command is not KillCommand.CLEAR
    ]
    return clears + levels
