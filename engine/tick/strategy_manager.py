"""Strategy YAML loading and hot reload for the driver.

Owns watching `AI_QUANT_STRATEGY_YAML` (default `config/strategy_overrides.yaml`) by stat
polling and serving the merged, validated per-symbol `StrategyConfig` built by
`strategies.config` (code defaults <- global <- symbols.<SYM> <- live (dry_live/live) <-
modes.<AI_QUANT_STRATEGY_MODE>). A reload builds a whole new set of configs and swaps it in; a file
that fails to read, parse or validate, is a symlink, is world-writable, or vanished keeps the
last good config and raises one CONFIG alert per bad version. `engine.interval` is fixed for the
life of the process: a change is reported as RESTART_REQUIRED (everything else still applies).

At start-up a bad file is a configuration error (raised), not a silent fallback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from cluster.shard_core import ConfigSource
from engine.enums import AlertKind, Mode, ReloadOutcome
from engine.runtime.clock import wall_ms
from strategies.config import (
    LiveDefaults,
    StrategyConfig,
    StrategyConfigError,
    StrategyOverrides,
    parse_overrides,
)
from strategies.enums import StrategyMode

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    def send(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class StrategySnapshot:
    """Which overrides are live: the file, its version stamp, and the SHA-256 of the parsed document."""

    yaml_path: str
    mtime_ns: int | None
    config_id: str
    loaded_ms: int


@dataclass(frozen=True, slots=True)
class _Loaded:
    overrides: StrategyOverrides
    config_id: str
    signature: tuple[int, int, int, int] | None


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)


def config_id(doc: object) -> str:
    """Return the SHA-256 of the canonical JSON of a parsed YAML document (ignores order and comments)."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class StrategyManager:
    """Serves per-symbol strategy configs and reloads them when the YAML changes."""

    def __init__(
        self,
        yaml_path: Path,
        *,
        run_mode: Mode,
        strategy_mode: StrategyMode | None = None,
        live_defaults: LiveDefaults | None = None,
        alerts: AlertSink | None = None,
        interval: str | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        """Load the file (missing = code defaults); raise StrategyConfigError if it is bad.

        `interval` is the running interval from the environment; YAML `engine.interval` wins.
        """
        self._path = yaml_path
        self._live = run_mode is not Mode.PAPER
        self._strategy_mode = strategy_mode
        self._live_defaults = live_defaults or LiveDefaults()
        self._alerts = alerts
        self._clock_ms = clock_ms
        signature = _signature(yaml_path)
        loaded = (
            self._load(signature)
            if signature is not None
            else _Loaded(StrategyOverrides(), config_id(None), None)
        )
        self._loaded = loaded
        self._cache: dict[str | None, StrategyConfig] = {}
        self._loaded_ms = clock_ms()
        self._bad_signature: tuple[int, int, int, int] | None = None
        self.last_error: str | None = None
        self.restart_required = False
        yaml_interval = self.config(None).engine.interval
        self._interval = yaml_interval or interval or "1h"
        log.info(
            "strategy config loaded path=%s config_id=%s interval=%s",
            yaml_path,
            loaded.config_id[:12],
            self._interval,
        )

    @property
    def path(self) -> Path:
        """The strategy YAML this manager watches."""
        return self._path

    @property
    def interval(self) -> str:
        """The candle interval this process runs on (fixed until restart)."""
        return self._interval

    @property
    def strategy_mode(self) -> StrategyMode | None:
        return self._strategy_mode

    @property
    def overrides(self) -> StrategyOverrides:
        """The validated overrides now in force (what shards need to rebuild their configs)."""
        return self._loaded.overrides

    @property
    def live(self) -> bool:
        """True when the `live` overlay is merged (dry_live and live)."""
        return self._live

    def snapshot(self) -> StrategySnapshot:
        signature = self._loaded.signature
        return StrategySnapshot(
            yaml_path=str(self._path),
            mtime_ns=None if signature is None else signature[0],
            config_id=self._loaded.config_id,
            loaded_ms=self._loaded_ms,
        )

    def config(self, symbol: str | None = None) -> StrategyConfig:
        """Return the merged config of `symbol` (None = the global view)."""
        key = symbol.upper() if symbol else None
        cached = self._cache.get(key)
        if cached is None:
            cached = self._resolve(self._loaded.overrides, key)
            self._cache[key] = cached
        return cached

    def set_strategy_mode(self, mode: StrategyMode | None) -> None:
        """Switch the `modes.<mode>` overlay (applies from the next `config` call)."""
        self._strategy_mode = mode
        self._cache = {}

    def config_source(self, overrides: StrategyOverrides | None = None) -> ConfigSource:
        """The picklable recipe the shards resolve configs from: the only place one is built, so
        the driver's and the shards' per-symbol configs come from the same merge."""
        mode = self._strategy_mode
        return ConfigSource(
            overrides=self._loaded.overrides if overrides is None else overrides,
            live=self._live,
            strategy_mode=None if mode is None else mode.value,
            live_defaults=self._live_defaults,
        )

    def _resolve(self, overrides: StrategyOverrides, symbol: str | None) -> StrategyConfig:
        return self.config_source(overrides).resolve(symbol)

    def _load(self, signature: tuple[int, int, int, int] | None) -> _Loaded:
        # Raises StrategyConfigError for anything that makes the file unusable.
        path = self._path
        try:
            st = path.lstat()
        except FileNotFoundError:
            raise StrategyConfigError(f"{path}: file vanished") from None
        if stat.S_ISLNK(st.st_mode):
            raise StrategyConfigError(f"{path}: refusing a symlinked strategy file")
        if st.st_mode & stat.S_IWOTH:
            raise StrategyConfigError(f"{path}: refusing a world-writable strategy file (chmod o-w)")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StrategyConfigError(f"{path}: cannot read: {exc}") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise StrategyConfigError(f"{path}: YAML syntax error: {exc}") from exc
        overrides = parse_overrides(doc, str(path))
        self._validate(overrides)
        return _Loaded(overrides, config_id(doc), signature)

    def _validate(self, overrides: StrategyOverrides) -> None:
        # Build the global view and every symbol named in the file, so merge-time errors surface now.
        symbols = {None, *overrides.symbols, *overrides.live_symbols}
        for _glob, mode_symbols in overrides.modes.values():
            symbols.update(mode_symbols)
        for symbol in symbols:
            self._resolve(overrides, symbol)

    def maybe_reload(self) -> ReloadOutcome:
        """Poll the file once; reload on change. Never raises: a bad file keeps the last good config."""
        signature = _signature(self._path)
        if signature == self._loaded.signature or (
            signature is not None and signature == self._bad_signature
        ):
            return ReloadOutcome.UNCHANGED if self.last_error is None else ReloadOutcome.KEPT_LAST_GOOD
        if signature is None and self._bad_signature == (0, 0, 0, 0):
            return ReloadOutcome.KEPT_LAST_GOOD
        try:
            if signature is None:
                raise StrategyConfigError(f"{self._path}: file vanished")
            loaded = self._load(signature)
        except StrategyConfigError as exc:
            return self._keep_last_good(signature, str(exc))
        self._bad_signature = None
        self.last_error = None
        if loaded.config_id == self._loaded.config_id:
            self._loaded = loaded
            return ReloadOutcome.UNCHANGED
        return self._swap(loaded)

    def _keep_last_good(self, signature: tuple[int, int, int, int] | None, error: str) -> ReloadOutcome:
        self._bad_signature = signature if signature is not None else (0, 0, 0, 0)
        self.last_error = error
        log.error("strategy config rejected, keeping last good path=%s error=%s", self._path, error)
        if self._alerts is not None:
            self._alerts.send(
                AlertKind.CONFIG, "strategy config rejected; keeping last good", {"error": error[:300]}
            )
        return ReloadOutcome.KEPT_LAST_GOOD

    def _swap(self, loaded: _Loaded) -> ReloadOutcome:
        new_global = self._resolve(loaded.overrides, None)
        old_engine = self.config(None).engine
        self._loaded = loaded
        self._cache = {None: new_global}
        self._loaded_ms = self._clock_ms()
        new_interval = new_global.engine.interval
        log.info("strategy config reloaded path=%s config_id=%s", self._path, loaded.config_id[:12])
        if new_interval is not None and new_interval != self._interval:
            self.restart_required = True
            log.warning("engine.interval changed %s -> %s: restart required", self._interval, new_interval)
            if self._alerts is not None:
                self._alerts.send(
                    AlertKind.CONFIG,
                    "engine.interval changed; restart required (still running the old interval)",
                    {"running": self._interval, "configured": new_interval},
                )
            return ReloadOutcome.RESTART_REQUIRED
        if new_global.engine != old_engine:  # engine.* is applied at start (engine.tick.engine_knobs)
            self.restart_required = True
            log.warning("engine section changed: restart required to apply it")
            if self._alerts is not None:
                self._alerts.send(AlertKind.CONFIG, "engine.* changed; restart required", {})
            return ReloadOutcome.RESTART_REQUIRED
        return ReloadOutcome.RELOADED
