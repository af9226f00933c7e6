"""Alerting: target parsing, redaction, mode stamping, rate limit, dedupe, bounded queue, sink isolation."""

from __future__ import annotations

import threading

import pytest

from engine.alerts.alerting import (
    Alerter,
    AlertSettings,
    AlertTarget,
    DryRunTransport,
    Secret,
    build_alerter,
    parse_targets,
    redact,
)
from engine.alerts.openclaw_cli import AlertDeliveryError
from engine.config.env import ConfigError
from engine.enums import AlertChannel, AlertKind, ForcedExitReason, Mode

DISCORD = AlertTarget(AlertChannel.DISCORD, "#alerts")
TELEGRAM = AlertTarget(AlertChannel.TELEGRAM, "@desk_chat")


class Recorder:
    """Hand-written transport fake: records, optionally fails per target, optionally blocks."""

    def __init__(self, fail: dict[AlertChannel, list[AlertDeliveryError | Exception]] | None = None) -> None:
        self.sent: list[tuple[AlertTarget, str]] = []
        self.fail = fail or {}
        self.gate: threading.Event | None = None

    def deliver(self, target: AlertTarget, text: str) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        errors = self.fail.get(target.channel)
        if errors:
            raise errors.pop(0)
        self.sent.append((target, text))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _settings(**kw) -> AlertSettings:
    base = {"targets": (DISCORD, TELEGRAM), "enabled": True, "rate_per_min": 100, "dedupe_secs": 60.0}
    return AlertSettings(**{**base, **kw})


def _alerter(transport, clock=None, **kw) -> Alerter:
    return Alerter(_settings(**kw), Mode.LIVE, transport, clock=clock or Clock(), sleep=lambda _s: None)


def test_parse_targets_reads_channel_target_pairs():
    assert parse_targets("discord:#alerts, telegram:@desk_chat,discord:#alerts") == (DISCORD, TELEGRAM)
    assert parse_targets("") == () and parse_targets(None) == ()


@pytest.mark.parametrize("raw", ["discord", "pager:#x", "discord:not a channel", "webhook:http://plain"])
def test_parse_targets_malformed_raises_config_error_naming_variable(raw):
    with pytest.raises(ConfigError, match="AI_QUANT_ALERT_TARGETS"):
        parse_targets(raw)


def test_settings_from_env_enable_and_secrets_are_redacted():
    env = {
        "AI_QUANT_ALERT_TARGETS": "discord:#alerts",
        "AI_QUANT_DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/abc",
        "AI_QUANT_INSTANCE_TAG": "paper1",
        "AI_QUANT_OPENCLAW_BIN": "/nonexistent/openclaw",
    }
    settings = AlertSettings.from_env(env)
    assert settings.enabled and settings.label == "paper1" and settings.openclaw_bin is None
    assert "abc" not in repr(settings) and "abc" not in str(settings.discord_webhook_url)
    assert not AlertSettings.from_env({**env, "AI_QUANT_ALERT_ENABLED": "0"}).enabled
    assert not AlertSettings.from_env({}).enabled
    with pytest.raises(ConfigError, match="AI_QUANT_ALERT_QUEUE_MAX"):
        AlertSettings.from_env({**env, "AI_QUANT_ALERT_QUEUE_MAX": "1"})


def test_redact_removes_known_secrets_and_secret_shapes():
    key = "0x" + "ab" * 32
    text = (
        f"key {key} hook https://discord.com/api/webhooks/123/XYZ "
        "url https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage "
        "password=hunter2 mine=s3cr3t-value"
    )
    out = redact(text, [Secret("s3cr3t-value")])
    for leaked in (key, "XYZ", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "hunter2", "s3cr3t-value"):
        assert leaked not in out
    assert "password=***" in out


def test_alerter_sync_delivers_to_every_target_with_mode_and_label():
    transport = Recorder()
    alerter = _alerter(transport, asynchronous=False, label="paper1")
    assert alerter.send(AlertKind.RESTART, "engine started", {"role": "primary"})
    assert [t for t, _ in transport.sent] == [DISCORD, TELEGRAM]
    assert transport.sent[0][1] == "[paper1] [live] restart: engine started\nrole=primary"


def test_alerter_disabled_sends_nothing():
    transport = Recorder()
    alerter = _alerter(transport, enabled=False)
    assert not alerter.send(AlertKind.RISK, "x") and transport.sent == []


def test_alerter_dedupes_identical_alerts_within_window():
    transport, clock = Recorder(), Clock()
    alerter = _alerter(transport, clock, asynchronous=False, targets=(DISCORD,))
    assert alerter.send(AlertKind.CONFIG, "bad yaml")
    assert not alerter.send(AlertKind.CONFIG, "bad yaml")
    assert alerter.send(AlertKind.HEALTH, "bad yaml")  # another kind is another alert
    clock.now = 61.0
    assert alerter.send(AlertKind.CONFIG, "bad yaml")
    assert alerter.stats.dropped_duplicate == 1 and len(transport.sent) == 3


def test_alerter_rate_limits_per_minute():
    transport, clock = Recorder(), Clock()
    alerter = _alerter(transport, clock, asynchronous=False, targets=(DISCORD,), rate_per_min=3)
    accepted = [alerter.send(AlertKind.SHARD, f"miss {i}") for i in range(5)]
    assert accepted == [True, True, True, False, False]
    clock.now = 60.0
    assert alerter.send(AlertKind.SHARD, "miss 9")
    assert alerter.stats.dropped_rate_limited == 2


def test_alerter_one_failing_sink_does_not_stop_others_and_transient_retries():
    transport = Recorder(
        fail={
            AlertChannel.DISCORD: [AlertDeliveryError("429", transient=True)],
            AlertChannel.TELEGRAM: [AlertDeliveryError("bad chat", transient=False)],
        }
    )
    alerter = _alerter(transport, asynchronous=False)
    alerter.send(AlertKind.RISK, "kill switch")
    assert [t for t, _ in transport.sent] == [DISCORD]  # discord succeeded on retry
    assert alerter.stats.delivered == 1 and alerter.stats.failed == 1


def test_alerter_crashing_sink_is_contained():
    transport = Recorder(fail={AlertChannel.DISCORD: [RuntimeError("boom")]})
    alerter = _alerter(transport, asynchronous=False)
    alerter.send(AlertKind.RISK, "x")
    assert [t for t, _ in transport.sent] == [TELEGRAM]


def test_alerter_async_does_not_block_and_drops_when_queue_full():
    transport = Recorder()
    transport.gate = threading.Event()  # the sink hangs until released
    alerter = _alerter(transport, targets=(DISCORD,), queue_max=10)
    results = [alerter.send(AlertKind.SHARD, f"m{i}") for i in range(20)]
    assert results.count(False) >= 9 and alerter.stats.dropped_queue_full >= 9
    transport.gate.set()
    assert alerter.flush(10)
    assert len(transport.sent) == alerter.stats.queued
    alerter.close()
    assert not alerter.send(AlertKind.SHARD, "after close")


def test_alerter_close_drains_queue():
    transport = Recorder()
    alerter = _alerter(transport, targets=(DISCORD,))
    for i in range(5):
        alerter.send(AlertKind.TRADE, f"fill {i}")
    alerter.close(5)
    assert [text.split(": ")[1] for _, text in transport.sent] == [f"fill {i}" for i in range(5)]


def test_build_alerter_dry_run_keeps_redacted_text():
    env = {
        "AI_QUANT_ALERT_TARGETS": "discord:#alerts",
        "AI_QUANT_ALERT_DRY_RUN": "1",
        "AI_QUANT_ALERT_ASYNC": "0",
        "AI_QUANT_TELEGRAM_BOT_TOKEN": "123456:supersecrettoken",
    }
    alerter = build_alerter(env, Mode.PAPER)
    alerter.send(AlertKind.CONFIG, "token leaked? 123456:supersecrettoken")
    transport = alerter.transport
    assert isinstance(transport, DryRunTransport)
    ((target, text),) = transport.sent
    assert target == DISCORD and "supersecrettoken" not in text and "[paper]" in text


def test_alerter_trade_burst_does_not_starve_risk_alerts():
    transport, clock = Recorder(), Clock()
    alerter = _alerter(transport, clock, asynchronous=False, targets=(DISCORD,), rate_per_min=3)
    accepted = [alerter.send(AlertKind.TRADE, f"CLOSE LONG S{i} (trade #{i})") for i in range(5)]
    assert accepted == [True, True, True, False, False]  # trades have their own budget...
    assert alerter.send(AlertKind.RISK, "trading state ACTIVE -> REDUCING")  # ...risk still goes out
    assert alerter.send(AlertKind.HEALTH, "fill_ingest_failed")
    assert [text.split(": ")[0] for _, text in transport.sent][-2:] == ["[live] risk", "[live] health"]


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[AlertKind, str, dict]] = []

    def send(self, kind, message, extra=None) -> bool:
        self.sent.append((kind, message, dict(extra or {})))
        return True


def test_notify_trade_live_ack_pending_and_rejected():
    from engine.alerts.notices import notify_trade
    from engine.enums import BrokerReject, ExecutionStatus
    from engine.execution.broker import OrderIntent, OrderResult
    from strategies.enums import PositionSide, TradeAction

    intent = OrderIntent(
        symbol="ETH", action=TradeAction.CLOSE, side=PositionSide.SHORT, reference_price=2_000.0,
        event_ms=1, reason=ForcedExitReason.DRAWDOWN_CLOSE_ALL, decision_id="d-1",
    )  # fmt: skip
    sink = _Sink()
    detail = {"oid": 7, "total_sz": 0.5, "avg_px": 2001.5}  # the venue's FilledStatus, as live_broker puts it
    ack = OrderResult(intent=intent, status=ExecutionStatus.FILLED, detail=detail)
    assert notify_trade(sink, ack)
    assert not notify_trade(sink, OrderResult(intent=intent, status=ExecutionStatus.PENDING))
    rejected = OrderResult(intent=intent, status=ExecutionStatus.REJECTED, reject=BrokerReject.NO_POSITION)
    assert not notify_trade(sink, rejected) and not notify_trade(None, ack)
    (kind, message, extra) = sink.sent[0]
    assert kind is AlertKind.TRADE and len(sink.sent) == 1
    assert message == "CLOSE SHORT ETH 0.5 @ 2001.5 (decision d-1)"
    assert extra == {"reason": "drawdown_close_all", "oid": 7}
