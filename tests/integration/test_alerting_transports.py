"""Alert transports for real: a stand-in `openclaw` executable, and Discord/Telegram HTTP on loopback."""

from __future__ import annotations

import json
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.alerts.alerting import Alerter, AlertSettings, AlertTarget, HttpTransport, Secret, build_alerter
from engine.alerts.openclaw_cli import AlertDeliveryError, find_openclaw, send_message
from engine.enums import AlertChannel, AlertKind, Mode

_FAKE_CLI = """#!/bin/sh
printf '%s\\n' "$@" > "{out}"
exit "${{FAKE_EXIT:-0}}"
"""


@pytest.fixture
def fake_openclaw(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "args.txt"
    binary = tmp_path / "openclaw"
    binary.write_text(_FAKE_CLI.format(out=out))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary, out


def test_openclaw_send_passes_channel_target_and_message(fake_openclaw):
    binary, out = fake_openclaw
    send_message(str(binary), AlertChannel.DISCORD, "#alerts", "hello\nworld", timeout_secs=10)
    assert out.read_text().split("\n")[:8] == [
        "message", "send", "--channel", "discord", "--target", "#alerts", "--message", "hello",
    ]  # fmt: skip


def test_openclaw_invalid_target_is_refused_before_spawning(fake_openclaw):
    binary, out = fake_openclaw
    with pytest.raises(AlertDeliveryError) as info:
        send_message(str(binary), AlertChannel.WEBHOOK, "http://insecure", "x", timeout_secs=10)
    assert not info.value.transient and not out.exists()


@pytest.mark.parametrize(("code", "transient"), [("143", True), ("2", False)])
def test_openclaw_exit_codes_classified(fake_openclaw, monkeypatch, code, transient):
    binary, _ = fake_openclaw
    monkeypatch.setenv("FAKE_EXIT", code)
    with pytest.raises(AlertDeliveryError) as info:
        send_message(str(binary), AlertChannel.TELEGRAM, "@desk_chat", "x", timeout_secs=10)
    assert info.value.transient is transient


def test_build_alerter_prefers_openclaw_when_present(fake_openclaw):
    binary, out = fake_openclaw
    env = {"AI_QUANT_ALERT_TARGETS": "telegram:@desk_chat", "AI_QUANT_OPENCLAW_BIN": str(binary)}
    assert find_openclaw(env) == str(binary)
    alerter = build_alerter(env, Mode.DRY_LIVE)
    assert alerter.send(AlertKind.RESTART, "engine started")
    alerter.close(10)
    assert "[dry_live] restart: engine started" in out.read_text()


class _Sink:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.status = 204


@pytest.fixture
def http_sink():
    sink = _Sink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            sink.received.append((self.path, json.loads(body)))
            self.send_response(sink.status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sink
    server.shutdown()
    server.server_close()


def test_http_transport_posts_discord_webhook_and_telegram(http_sink):
    base, sink = http_sink
    env = {
        "AI_QUANT_ALERT_TARGETS": "discord:#alerts,telegram:-100123456",
        "AI_QUANT_DISCORD_WEBHOOK_URL": f"{base}/api/webhooks/1/tok",
        "AI_QUANT_TELEGRAM_BOT_TOKEN": "42:tgtoken",
        "AI_QUANT_TELEGRAM_API_URL": base,
        "AI_QUANT_OPENCLAW_BIN": "/nonexistent/openclaw",
        "AI_QUANT_ALERT_ASYNC": "0",
    }
    settings = AlertSettings.from_env(env)
    alerter = Alerter(settings, Mode.PAPER, HttpTransport(settings))
    alerter.send(AlertKind.HEALTH, "redis down")
    assert sink.received == [
        ("/api/webhooks/1/tok", {"content": "[paper] health: redis down"}),
        ("/bot42:tgtoken/sendMessage", {"chat_id": "-100123456", "text": "[paper] health: redis down"}),
    ]
    assert alerter.stats.delivered == 2


@pytest.mark.parametrize(("status", "transient"), [(503, True), (429, True), (400, False)])
def test_http_transport_classifies_http_status(http_sink, status, transient):
    base, sink = http_sink
    sink.status = status
    settings = AlertSettings(discord_webhook_url=Secret(f"{base}/api/webhooks/1/tok"))
    with pytest.raises(AlertDeliveryError) as info:
        HttpTransport(settings).deliver(AlertTarget(AlertChannel.DISCORD, "#alerts"), "x")
    assert info.value.transient is transient


def test_http_transport_without_webhook_is_permanent_failure():
    with pytest.raises(AlertDeliveryError) as info:
        HttpTransport(AlertSettings()).deliver(AlertTarget(AlertChannel.DISCORD, "#alerts"), "x")
    assert not info.value.transient
