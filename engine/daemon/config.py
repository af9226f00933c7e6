"""The driver's configuration: parsed once, at start-up, from the environment; frozen afterwards.

`DriverConfig.from_env(env)` reads every variable the driver needs through the component settings
(`DaemonSettings`, `RuntimeSettings`, `HubSettings`, `RedisSettings`, and for dry_live/live the
secrets file, `OmsConfig`, `LiveBrokerConfig`, `ReconcilerConfig`), so a bad value, a missing
strategy YAML or a bad secrets file stops the process (exit 2) before anything starts. The
environment it was built from is kept read-only (`env`): nothing writes `os.environ` or the
mapping to pass values on. What the children must know that is only decided while starting (the
interval after YAML `engine.interval`, the resolved watchlist, the venue URL of a spawned
simulator, the Redis URL, the traded account) goes into a fresh mapping built by `to_env()`.

The strategy YAML itself is read by `StrategyManager` (engine/tick/strategy_manager.py), once,
at the node's start; a path named in AI_QUANT_STRATEGY_YAML that does not exist is refused here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from engine.config.env import ConfigError, env_enum, env_float, env_opt_str
from engine.config.settings import DaemonSettings
from engine.config.shared import env_strategy_yaml
from engine.daemon.services import RuntimeSettings, Venue, apply_venue_defaults
from engine.enums import LiquidationPolicy, Mode
from engine.execution.address_budget import AddressBudgetConfig
from engine.execution.live_broker import LiveBrokerConfig
from engine.marketdata.hub import HubSettings
from engine.oms.ledger import OmsConfig
from engine.oms.liquidation import ENV_LIQUIDATION_RISK_STATE
from engine.oms.reconciler import ReconcilerConfig
from engine.runtime.redis_runtime import REDIS_URL_ENV, RedisSettings
from engine.venue.exchange_client import SigningKey
from engine.venue.info_client import HL_BASE_URL_ENV, hl_base_url
from engine.venue.secrets import load_live_secrets_from_env

ENV_ACCOUNT_ADDRESS = "AI_QUANT_ACCOUNT_ADDRESS"
ENV_STRATEGY_YAML = "AI_QUANT_STRATEGY_YAML"


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveConfig:
    """dry_live/live only: the wallet (the key only as a SigningKey) and the venue-side settings."""

    key: SigningKey
    user: str
    startup_reconcile_secs: float
    oms: OmsConfig
    broker: LiveBrokerConfig
    reconciler: ReconcilerConfig
    address_budget: AddressBudgetConfig = field(default_factory=AddressBudgetConfig)  # per-address requests
    liquidation_policy: LiquidationPolicy = LiquidationPolicy.REDUCING  # risk state after a liquidation


@dataclass(frozen=True, slots=True, kw_only=True)
class DriverConfig:
    """Everything the driver reads at start-up, validated; build with `from_env`."""

    env: Mapping[str, str]
    mode: Mode
    settings: DaemonSettings
    runtime: RuntimeSettings
    hub: HubSettings
    redis: RedisSettings
    venue_url: str
    live: LiveConfig | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DriverConfig:
        """Parse and validate; raise ConfigError (exit 2) naming the first bad variable or file."""
        full = apply_venue_defaults(env)
        settings = DaemonSettings.from_env(full)
        strategy_yaml, named = env_strategy_yaml(full)
        if named and not strategy_yaml.is_file():
            raise ConfigError(f"{ENV_STRATEGY_YAML}={str(strategy_yaml)!r}: no such file")
        runtime = RuntimeSettings.from_env(full)
        live = _live_config(full, settings.mode) if settings.mode is not Mode.PAPER else None
        return cls(
            env=MappingProxyType(full),
            mode=settings.mode,
            settings=settings,
            runtime=runtime,
            hub=HubSettings.from_env(full),
            redis=RedisSettings.from_env(full),
            venue_url="" if runtime.venue is Venue.SIMULATOR else hl_base_url(full),
            live=live,
        )

    def with_env(self, updates: Mapping[str, str]) -> DriverConfig:
        """A new config with `updates` applied to the environment it was parsed from (the YAML
        `engine.*` keys that are the same switch as a variable: engine.tick.engine_knobs)."""
        return self if not updates else DriverConfig.from_env({**self.env, **updates})

    def to_env(
        self,
        *,
        interval: str,
        symbols: Sequence[str],
        venue_url: str,
        redis_url: str | None = None,
        redis_prefix: str | None = None,
    ) -> dict[str, str]:
        """The environment of a child process (the sidecar): ours, plus what start-up decided."""
        child = dict(self.env)
        child.update(
            AI_QUANT_INTERVAL=interval,
            AI_QUANT_SYMBOLS=",".join(symbols),
            **{HL_BASE_URL_ENV: venue_url},
        )
        if self.runtime.venue is Venue.SIMULATOR:
            child.pop("HL_WS_URL", None)  # the sidecar derives the simulator's WS URL from its REST URL
        if redis_url is not None:
            child[REDIS_URL_ENV] = redis_url
        if redis_prefix is not None:
            child["AI_QUANT_REDIS_PREFIX"] = redis_prefix
        if self.live is not None:
            child[ENV_ACCOUNT_ADDRESS] = self.live.user
        return child


def _live_config(env: Mapping[str, str], mode: Mode) -> LiveConfig:
    """The secrets file (refused if bad or world-readable) and the venue-side settings."""
    reconcile_secs = env_float("AI_QUANT_LIVE_STARTUP_RECONCILE_SECS", 60.0, env, lo=1.0, hi=3_600.0)
    secrets = load_live_secrets_from_env(env)
    user = account_address(env, secrets.main_address)
    return LiveConfig(
        key=secrets.signing_key(),
        user=user,
        startup_reconcile_secs=reconcile_secs,
        oms=OmsConfig.from_env(env),
        broker=LiveBrokerConfig.from_env(user, env),
        reconciler=ReconcilerConfig.from_env(user, str(mode), env),
        address_budget=AddressBudgetConfig.from_env(env),
        liquidation_policy=env_enum(
            ENV_LIQUIDATION_RISK_STATE, LiquidationPolicy, LiquidationPolicy.REDUCING, env
        ),
    )


def account_address(env: Mapping[str, str], main_address: str) -> str:
    """The account the sidecar forwards events for must be the wallet we trade: refuse another."""
    configured = env_opt_str(ENV_ACCOUNT_ADDRESS, env)
    if configured and configured.lower() != main_address.lower():
        raise ConfigError(
            f"{ENV_ACCOUNT_ADDRESS}={configured} is not the secrets file's main_address ({main_address})"
        )
    return main_address
