"""Sidecar settings (`AI_QUANT_*`, `HL_WS_*`) and the watchlist: parsed once at start-up.

Names keep the reference sidecar's where one exists (Part 2.2 of the sidecar notes); our
additions are marked in `.env.example`. The per-IP WebSocket budget defaults to the venue's
documented limits (10 connections, 30 new connections a minute, 1,000 subscriptions, 2,000
messages a minute); markets beyond it go to REST polling (`engine.sidecar.plan`), and several
sidecars on distinct IPs share a watchlist as a fleet (`engine.sidecar.fleet`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.env import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_opt_str,
    env_str,
)
from engine.config.perp_dexes import PerpDexSelection
from engine.config.shared import (
    env_candle_close_grace_ms,
    env_interval,
    env_lookback_bars,
    env_mode,
    env_perp_dexes,
    env_symbols,
    env_top_n,
)
from engine.enums import Mode
from engine.runtime.redis_runtime import RedisSettings
from engine.sidecar.plan import WsBudget, rest_market_capacity, ws_market_capacity
from engine.venue.info_client import hl_base_url, normalise_address
from strategies.candle import interval_ms


def default_ws_url(base_url: str) -> str:
    """The venue's WS endpoint next to its REST base URL: https→wss, http→ws, path /ws."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :].rstrip("/") + "/ws"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :].rstrip("/") + "/ws"
    raise ConfigError(f"cannot derive a WS URL from {base_url!r}; set HL_WS_URL")


def candles_db_path(db_dir: Path, interval: str) -> Path:
    """`<dir>/candles_<iv>.db` with the reference's sanitising of the interval name."""
    name = re.sub(r"[^0-9a-z]", "_", interval.lower()).strip("_") or "unknown"
    return db_dir / f"candles_{name}.db"


@dataclass(frozen=True, kw_only=True)
class SidecarSettings:
    """Everything the sidecar reads from the environment. Defaults are written here once."""

    info_base_url: str
    ws_url: str
    mode: Mode = Mode.PAPER
    interval: str = "1h"
    symbols: tuple[str, ...] = ()
    perp_dexes: PerpDexSelection = field(default_factory=PerpDexSelection)  # AI_QUANT_PERP_DEXES
    top_n: int | None = 50  # None = every listed market (AI_QUANT_TOP_N=all)
    lookback_bars: int = 200
    enable_bbo: bool = True
    account_address: str | None = None
    close_grace_ms: int = 2_000
    ping_secs: float = 20.0
    reconnect_min_secs: float = 0.5
    reconnect_max_secs: float = 30.0
    sub_send_ms: int = 10
    rest_timeout_secs: float = 10.0
    rest_min_gap_ms: int = 500
    rest_max_inflight: int = 4
    rest_weight_per_minute: int = 1200
    verify_secs: float = 10.0
    cross_check: bool = True
    flush_ms: int = 50
    heartbeat_ms: int = 1_000
    candles_db_dir: Path = Path("state/candles_dbs")
    sqlite_keep_bars: int = 5_000
    anchor_symbol: str = "BTC"
    ws_budget: WsBudget = field(default_factory=WsBudget)
    local_addr: str | None = None
    sidecar_id: str = "sidecar"
    member_ttl_ms: int = 5_000
    rest_poll: bool = True
    rest_poll_share: float = 0.5
    redis: RedisSettings

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)

    @property
    def candles_db_path(self) -> Path:
        return candles_db_path(self.candles_db_dir, self.interval)

    @property
    def keep_bars(self) -> int:
        """Closed candles kept per symbol in Redis: the lookback plus the reference's +50."""
        return self.lookback_bars + 50

    @property
    def wants_account_events(self) -> bool:
        return self.mode in (Mode.LIVE, Mode.DRY_LIVE)

    def subscription_count(self, n_symbols: int, builder_dexes: int = 0) -> int:
        """allMids (+ one allMids per builder dex of the watchlist) + candle per symbol (+ bbo per
        symbol) (+ userFills and orderUpdates)."""
        account = 2 if self.wants_account_events else 0
        return 1 + builder_dexes + n_symbols * (2 if self.enable_bbo else 1) + account

    @property
    def ws_market_capacity(self) -> int:
        """Markets this sidecar's IP can carry on WebSocket (see engine.sidecar.plan)."""
        return self.ws_capacity(0)

    def ws_capacity(self, builder_dexes: int) -> int:
        """Markets on WebSocket when `builder_dexes` allMids subscriptions are fixed besides."""
        per_market = 2 if self.enable_bbo else 1
        return ws_market_capacity(
            self.ws_budget, fixed_subs=self.subscription_count(0, builder_dexes), subs_per_market=per_market
        )

    @property
    def rest_market_capacity(self) -> int:
        """Markets this sidecar can keep current by REST polling (0 when polling is off)."""
        if not self.rest_poll:
            return 0
        return rest_market_capacity(self.rest_weight_per_minute, self.rest_poll_share, self.interval_ms)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SidecarSettings:
        """Build from the environment; raise ConfigError naming the first bad variable."""
        base = hl_base_url(env)
        interval = env_interval(env)
        mode = env_mode(env)
        address = env_opt_str("AI_QUANT_ACCOUNT_ADDRESS", env)
        if address is not None:
            try:
                address = normalise_address(address)
            except ValueError as exc:
                raise ConfigError(f"AI_QUANT_ACCOUNT_ADDRESS={address!r} is not a 0x address") from exc
        if mode in (Mode.LIVE, Mode.DRY_LIVE) and address is None:
            raise ConfigError(
                f"AI_QUANT_ACCOUNT_ADDRESS is required in {mode.value} (fills reach the driver)"
            )
        redis = RedisSettings.from_env(env)
        local_addr = _local_addr(env)
        heartbeat_ms = env_int("AI_QUANT_SIDECAR_HEARTBEAT_MS", 1_000, env, lo=10, hi=60_000)
        member_ttl_ms = env_int("AI_QUANT_SIDECAR_MEMBER_TTL_MS", 5_000, env, lo=100, hi=600_000)
        if member_ttl_ms < 2 * heartbeat_ms:
            raise ConfigError(
                f"AI_QUANT_SIDECAR_MEMBER_TTL_MS={member_ttl_ms} must be at least twice "
                f"AI_QUANT_SIDECAR_HEARTBEAT_MS={heartbeat_ms} (a live sidecar must never look dead)"
            )
        default_id = f"{socket.gethostname()}/{local_addr or 'default'}"
        return cls(
            info_base_url=base,
            ws_url=env_str("HL_WS_URL", default_ws_url(base), env),
            mode=mode,
            interval=interval,
            symbols=env_symbols(env),
            perp_dexes=env_perp_dexes(env),
            top_n=env_top_n(env),
            lookback_bars=env_lookback_bars(env),
            enable_bbo=env_bool("AI_QUANT_WS_ENABLE_BBO", True, env),
            account_address=address,
            close_grace_ms=env_candle_close_grace_ms(env),
            ping_secs=env_float("HL_WS_PING_SECS", 20.0, env, lo=1.0, hi=50.0),
            reconnect_min_secs=env_float("HL_WS_RECONNECT_SECS", 0.5, env, lo=0.01, hi=60.0),
            reconnect_max_secs=env_float("HL_WS_RECONNECT_MAX_SECS", 30.0, env, lo=0.01, hi=600.0),
            sub_send_ms=env_int("HL_WS_SUB_SEND_MS", 10, env, lo=0, hi=10_000),
            rest_timeout_secs=env_float("AI_QUANT_CANDLE_REST_TIMEOUT_S", 10.0, env, lo=0.1, hi=120.0),
            rest_min_gap_ms=env_int("AI_QUANT_CANDLE_REST_MIN_GAP_MS", 500, env, lo=0, hi=60_000),
            rest_max_inflight=env_int("AI_QUANT_CANDLE_REST_MAX_INFLIGHT", 4, env, lo=1, hi=64),
            rest_weight_per_minute=env_int("AI_QUANT_REST_WEIGHT_PER_MIN", 1200, env, lo=1),
            verify_secs=env_float("AI_QUANT_CANDLE_VERIFY_SECS", 10.0, env, lo=0.05, hi=3_600.0),
            cross_check=env_bool("AI_QUANT_CANDLE_CROSS_CHECK", True, env),
            flush_ms=env_int("AI_QUANT_SIDECAR_FLUSH_MS", 50, env, lo=1, hi=10_000),
            heartbeat_ms=heartbeat_ms,
            candles_db_dir=Path(
                env_str("AI_QUANT_CANDLES_DB_DIR", str(redis.state_dir / "candles_dbs"), env)
            ),
            anchor_symbol=env_str("AI_QUANT_ANCHOR_SYMBOL", "BTC", env),
            sqlite_keep_bars=env_int("AI_QUANT_CANDLE_SQLITE_KEEP_BARS", 5_000, env, lo=0),
            ws_budget=_ws_budget(env),
            local_addr=local_addr,
            sidecar_id=env_str("AI_QUANT_SIDECAR_ID", default_id, env),
            member_ttl_ms=member_ttl_ms,
            rest_poll=env_bool("AI_QUANT_CANDLE_REST_POLL", True, env),
            rest_poll_share=env_float("AI_QUANT_CANDLE_REST_POLL_SHARE", 0.5, env, lo=0.0, hi=1.0),
            redis=redis,
        )


def _ws_budget(env: Mapping[str, str] | None) -> WsBudget:
    """The per-IP WebSocket budget; defaults are the venue's documented limits."""
    d = WsBudget()
    return WsBudget(
        max_connections=env_int("HL_WS_MAX_CONNECTIONS", d.max_connections, env, lo=1, hi=1_000),
        max_new_connections_per_min=env_int(
            "HL_WS_MAX_NEW_CONNECTIONS_PER_MIN", d.max_new_connections_per_min, env, lo=1, hi=10_000
        ),
        max_subscriptions=env_int("HL_WS_MAX_SUBSCRIPTIONS", d.max_subscriptions, env, lo=1, hi=1_000_000),
        subs_per_connection=env_int(
            "HL_WS_SUBS_PER_CONNECTION", d.subs_per_connection, env, lo=1, hi=1_000_000
        ),
        max_messages_per_min=env_int(
            "HL_WS_MAX_MESSAGES_PER_MIN", d.max_messages_per_min, env, lo=10, hi=10_000_000
        ),
    )


def _local_addr(env: Mapping[str, str] | None) -> str | None:
    """AI_QUANT_SIDECAR_LOCAL_ADDR: the source IP of the sidecar's venue connections, or None."""
    value = env_opt_str("AI_QUANT_SIDECAR_LOCAL_ADDR", env)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ConfigError(f"AI_QUANT_SIDECAR_LOCAL_ADDR={value!r} is not an IP address") from exc


def top_symbols_by_volume(coins_and_volumes: Sequence[tuple[str, float]], n: int | None) -> tuple[str, ...]:
    """The n coins with the highest 24 h notional volume (ties by name, for a stable list); every
    coin, ranked, when n is None (AI_QUANT_TOP_N=all)."""
    ranked = sorted(coins_and_volumes, key=lambda cv: (-cv[1], cv[0]))
    return tuple(coin for coin, _ in ranked[:n])


def build_watchlist(
    explicit: Sequence[str], top_n: int | None, anchor: str, listed: Sequence[tuple[str, float]] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return (watchlist, dropped): explicit symbols (or the top N by volume), anchor first.

    `listed` is the venue's (coin, dayNtlVlm) list, or None when it could not be read (explicit
    symbols are then taken as given). Explicit symbols the venue does not list are dropped; the
    anchor (the strategy's BTC trend gate) is added when the venue lists it.
    """
    if listed is None:
        if not explicit:
            raise ConfigError("no AI_QUANT_SYMBOLS and the venue's volume list is unavailable")
        return tuple(dict.fromkeys(explicit)), ()
    names = {coin for coin, _ in listed}
    chosen = list(dict.fromkeys(explicit)) if explicit else list(top_symbols_by_volume(listed, top_n))
    dropped = tuple(s for s in chosen if s not in names)
    kept = [s for s in chosen if s in names]
    if anchor in names and anchor not in kept:
        kept.insert(0, anchor)
    if not kept:
        raise ConfigError(f"none of AI_QUANT_SYMBOLS={','.join(explicit)} is listed by the venue")
    return tuple(kept), dropped
