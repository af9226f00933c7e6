"""engine.risk.health_guard: findings from fill-path samples, edge-triggered keys, cooldown, resolution;
engine.risk.close_all: the close-all plan's price rules; the drawdown policy setting."""

from __future__ import annotations

import pytest

from engine.config.env import ConfigError
from engine.enums import DrawdownPolicy, HealthKey, KillCommand, PriceSource
from engine.execution.broker import Position
from engine.marketdata.hub import PriceQuote
from engine.risk.close_all import CloseAllSettings, ForcedClose, SkippedClose, plan_close_all
from engine.risk.health_guard import HealthFinding, HealthGuard, HealthMonitor, HealthSample, HealthSettings
from engine.risk.limits import RiskLimits
from strategies.enums import PositionSide

T = 1_800_000_000_000


def _keys(findings: list[HealthFinding]) -> list[HealthKey]:
    return [f.key for f in findings]


def test_monitor_ingest_streak_reaches_limit_and_success_resets_it() -> None:
    monitor = HealthMonitor(HealthSettings(), started_ms=T)
    for _ in range(4):
        assert monitor.findings(HealthSample(ingest_ok=False), T) == []
    (finding,) = monitor.findings(HealthSample(ingest_ok=False), T)
    assert finding.key is HealthKey.FILL_INGEST_FAILED and finding.kill is KillCommand.CLOSE_ONLY
    assert finding.details == {"consecutive_failures": 5, "limit": 5}
    assert monitor.findings(HealthSample(), T) != []  # not observed: the streak stands
    assert monitor.findings(HealthSample(ingest_ok=True), T) == [] and monitor.fail_streak == 0


def test_monitor_pending_fills_at_limit_and_kill_flag_off_means_alert_only() -> None:
    monitor = HealthMonitor(HealthSettings(pending_fills_to_kill=100, pending_fills_kill=False), started_ms=T)
    assert monitor.findings(HealthSample(pending_fills=99), T) == []
    (finding,) = monitor.findings(HealthSample(pending_fills=100), T)
    assert finding.key is HealthKey.PENDING_FILLS and finding.kill is None


def test_monitor_unmatched_fills_window_and_startup_grace() -> None:
    settings = HealthSettings(unmatched_window_secs=900.0, unmatched_grace_secs=120.0, unmatched_alert_n=2)
    monitor = HealthMonitor(settings, started_ms=T)
    two = HealthSample(unmatched_fill_ms=(T + 100_000, T + 110_000))
    assert monitor.findings(two, T + 119_000) == []  # start-up backfill grace
    (finding,) = monitor.findings(two, T + 121_000)
    assert finding.key is HealthKey.UNMATCHED_FILLS and finding.kill is None and finding.details["count"] == 2
    old_and_new = HealthSample(unmatched_fill_ms=(T - 1_000_000, T + 200_000))
    assert monitor.findings(old_and_new, T + 300_000) == []  # only one inside the window


def test_monitor_disabled_finds_nothing() -> None:
    monitor = HealthMonitor(HealthSettings(enabled=False, unmatched_grace_secs=0.0), started_ms=T)
    assert monitor.findings(HealthSample(pending_fills=10**6, unmatched_fill_ms=(T,)), T) == []


def _finding(key: HealthKey = HealthKey.PENDING_FILLS) -> HealthFinding:
    return HealthFinding(key=key, message="m", kill=KillCommand.CLOSE_ONLY)


def test_guard_is_edge_triggered_with_cooldown_and_resolution() -> None:
    guard = HealthGuard(HealthSettings(alert_cooldown_secs=300.0, resolve_after_secs=600.0))
    (first,) = guard.observe([_finding()], T)
    assert first.notify and first.finding.kill is KillCommand.CLOSE_ONLY
    for i in range(1, 10):  # the condition lasts: no new activation
        assert guard.observe([_finding()], T + i * 1_000) == []
    assert guard.resolve(T + 9_000 + 599_000) == []
    assert guard.resolve(T + 9_000 + 600_000) == [HealthKey.PENDING_FILLS]
    assert guard.active == frozenset()
    # Back within the alert cooldown of the last alert? No: 609 s > 300 s, so it alerts again.
    (again,) = guard.observe([_finding()], T + 609_000)
    assert again.notify


def test_guard_reactivation_inside_cooldown_still_kills_but_does_not_alert() -> None:
    guard = HealthGuard(HealthSettings(alert_cooldown_secs=300.0, resolve_after_secs=60.0))
    assert guard.observe([_finding()], T)[0].notify
    assert guard.resolve(T + 60_000) == [HealthKey.PENDING_FILLS]
    (quiet,) = guard.observe([_finding()], T + 61_000)
    assert quiet.finding.kill is KillCommand.CLOSE_ONLY and not quiet.notify
    guard.resolve(T + 200_000)
    assert guard.observe([_finding()], T + 301_000)[0].notify  # cooldown over


def test_guard_keys_are_independent_and_resolve_zero_disables() -> None:
    guard = HealthGuard(HealthSettings(resolve_after_secs=0.0))
    acts = guard.observe([_finding(HealthKey.PENDING_FILLS), _finding(HealthKey.UNMATCHED_FILLS)], T)
    assert [a.finding.key for a in acts] == [HealthKey.PENDING_FILLS, HealthKey.UNMATCHED_FILLS]
    assert guard.resolve(T + 10**9) == [] and len(guard.active) == 2


def test_health_settings_from_env_parses_and_names_bad_values() -> None:
    settings = HealthSettings.from_env({
        "AI_QUANT_HEALTH_GUARD": "0", "AI_QUANT_HEALTH_FILL_INGEST_KILL_MODE": "halt_all",
        "AI_QUANT_HEALTH_UNMATCHED_KILL_MODE": "clear", "AI_QUANT_HEALTH_PENDING_FILLS_TO_KILL": "50",
    })  # fmt: skip
    assert not settings.enabled and settings.fill_ingest_kill_mode is KillCommand.HALT_ALL
    assert settings.unmatched_kill_mode is KillCommand.CLOSE_ONLY and settings.pending_fills_to_kill == 50
    with pytest.raises(ConfigError, match="AI_QUANT_HEALTH_ALERT_COOLDOWN_S"):
        HealthSettings.from_env({"AI_QUANT_HEALTH_ALERT_COOLDOWN_S": "soon"})
    with pytest.raises(ConfigError, match="AI_QUANT_HEALTH_PENDING_FILLS_KILL_MODE"):
        HealthSettings.from_env({"AI_QUANT_HEALTH_PENDING_FILLS_KILL_MODE": "panic"})


# --- close-all plan ---------------------------------------------------------------------------------


def _position(symbol: str, side: PositionSide = PositionSide.LONG) -> Position:
    return Position(
        symbol=symbol, side=side, size_coins=1.0, entry_price=100.0, leverage=1.0, margin_used_usd=100.0,
        open_trade_id=1, opened_ms=T, last_funding_ms=T,
    )  # fmt: skip


def _quote(symbol: str, price: float | None, age: float | None) -> PriceQuote:
    return PriceQuote(symbol, price, PriceSource.REDIS_MID, age)


def test_plan_close_all_price_rules_in_symbol_order() -> None:
    positions = {s: _position(s) for s in ("SOL", "BTC", "ETH", "DOGE", "ARB")}
    positions["SOL"] = _position("SOL", PositionSide.SHORT)
    quotes = {
        "SOL": _quote("SOL", 150.0, 2.0),
        "BTC": _quote("BTC", 147.0, 20.0),  # older than 10 s, within 60 s: used, flagged stale
        "ETH": _quote("ETH", 99.0, 120.0),  # older than the limit: skipped
        "DOGE": _quote("DOGE", None, None),
    }
    closes, skipped = plan_close_all(positions, quotes, CloseAllSettings())
    assert closes == (
        ForcedClose(symbol="BTC", side=PositionSide.LONG, price=147.0, age_secs=20.0, stale=True),
        ForcedClose(symbol="SOL", side=PositionSide.SHORT, price=150.0, age_secs=2.0, stale=False),
    )
    assert skipped == (
        SkippedClose(symbol="ARB", reason="no_price", age_secs=None),
        SkippedClose(symbol="DOGE", reason="no_price", age_secs=None),
        SkippedClose(symbol="ETH", reason="stale_price", age_secs=120.0),
    )
    unknown_age = {"BTC": _quote("BTC", 100.0, None)}
    assert plan_close_all({"BTC": _position("BTC")}, unknown_age, CloseAllSettings())[0] == ()


def test_close_all_settings_clamp_is_a_config_error() -> None:
    assert CloseAllSettings.from_env({}).stale_mid_max_age_secs == 60.0
    env = {"AI_QUANT_DRAWDOWN_CLOSE_ALL_STALE_MID_MAX_AGE_S": "601"}
    with pytest.raises(ConfigError, match="AI_QUANT_DRAWDOWN_CLOSE_ALL_STALE_MID_MAX_AGE_S"):
        CloseAllSettings.from_env(env)


def test_drawdown_reduce_policy_from_yaml_env_wins_and_bad_value_named() -> None:
    assert RiskLimits.from_sources({}, {}).drawdown_reduce_policy is DrawdownPolicy.NONE
    yaml = {"drawdown_reduce_policy": "close_all"}
    assert RiskLimits.from_sources(yaml, {}).drawdown_reduce_policy is DrawdownPolicy.CLOSE_ALL
    env = {"AI_QUANT_RISK_DRAWDOWN_REDUCE_POLICY": "none"}
    assert RiskLimits.from_sources(yaml, env).drawdown_reduce_policy is DrawdownPolicy.NONE
    with pytest.raises(ConfigError, match=r"risk\.drawdown_reduce_policy"):
        RiskLimits.from_sources({"drawdown_reduce_policy": "flatten"}, {})
    with pytest.raises(ConfigError, match="AI_QUANT_RISK_DRAWDOWN_REDUCE_POLICY"):
        RiskLimits.from_sources({}, {"AI_QUANT_RISK_DRAWDOWN_REDUCE_POLICY": "flatten"})


def test_guard_off_switch_silences_only_the_fill_path_monitor() -> None:
    settings = HealthSettings(enabled=False)
    guard = HealthGuard(settings)
    assert HealthMonitor(settings, started_ms=T).findings(HealthSample(pending_fills=10**6), T) == []
    (act,) = guard.observe([HealthFinding(key=HealthKey.CLOSE_ALL_BLOCKED, message="stuck")], T)
    assert act.notify and act.finding.kill is None
