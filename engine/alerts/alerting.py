"""Operator alerts: non-blocking, rate-limited, redacted, stamped with the mode.

`AI_QUANT_ALERT_TARGETS` lists `channel:target` pairs (e.g. `discord:#alerts,telegram:@chat`).
Delivery goes through `openclaw message send` when that CLI is installed (engine.alerts.openclaw_cli),
else straight to the Discord webhook (`AI_QUANT_DISCORD_WEBHOOK_URL`) or the Telegram Bot API
(`AI_QUANT_TELEGRAM_BOT_TOKEN`) over `requests`. `AI_QUANT_ALERT_DRY_RUN=1` only logs.

`Alerter.send` never blocks the trading loop: it formats, redacts and rate-limits in the caller's
thread and hands the message to one background worker through a bounded queue (full = drop and
count). Each target is isolated: one broken sink cannot stop the others, and nothing here raises
into the caller. TRADE alerts (one per fill) have their own per-minute budget, so a burst of
fills (a close-all) can never use up the budget a risk or health alert needs.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from engine.alerts import openclaw_cli
from engine.alerts.openclaw_cli import AlertDeliveryError
from engine.config.env import ConfigError, env_bool, env_float, env_int, env_opt_str, env_str
from engine.config.secret import Secret
from engine.config.shared import env_instance_tag
from engine.enums import AlertChannel, AlertKind, Mode

log = logging.getLogger(__name__)

REDACTED = "***"
_SECRET_PATTERNS = (
    re.compile(r"https://(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks/\S+"),
    re.compile(r"\bbot\d{5,12}:[A-Za-z0-9_-]{20,}"),
    re.compile(r"\b\d{5,12}:[A-Za-z0-9_-]{30,}\b"),
    re.compile(r"\b0x[0-9a-fA-F]{64}\b"),
    re.compile(r"(?i)(secret|private[_ ]?key|api[_ ]?key|token|password)(\s*[=:]\s*)\S+"),
)


def redact(text: str, secrets: Iterable[Secret] = ()) -> str:
    """Replace known secret values and secret-looking patterns (webhooks, bot tokens, keys) by ***."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


@dataclass(frozen=True, slots=True)
class AlertTarget:
    channel: AlertChannel
    target: str


def parse_targets(raw: str | None, name: str = "AI_QUANT_ALERT_TARGETS") -> tuple[AlertTarget, ...]:
    """Parse `channel:target,...`; raise ConfigError naming the variable on a malformed pair."""
    if raw is None or not raw.strip():
        return ()
    targets = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        channel_text, sep, target = item.partition(":")
        try:
            channel = AlertChannel(channel_text.strip().lower())
        except ValueError:
            valid = ", ".join(c.value for c in AlertChannel)
            raise ConfigError(f"{name}: unknown channel in {item!r}; expected one of: {valid}") from None
        target = target.strip()
        if not sep or not openclaw_cli.valid_target(channel, target):
            raise ConfigError(f"{name}: invalid {channel.value} target in {item!r}")
        targets.append(AlertTarget(channel, target))
    return tuple(dict.fromkeys(targets))


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """Alert delivery settings (reference §19.9 names, plus the direct-transport secrets)."""

    targets: tuple[AlertTarget, ...] = ()
    enabled: bool = False
    dry_run: bool = False
    asynchronous: bool = True
    queue_max: int = 200
    send_timeout_secs: float = 6.0
    retries: int = 2
    label: str | None = None
    rate_per_min: int = 30
    dedupe_secs: float = 60.0
    openclaw_bin: str | None = None
    discord_webhook_url: Secret | None = None
    telegram_bot_token: Secret | None = None
    telegram_api_url: str = "https://api.telegram.org"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlertSettings:
        """Parse the alert variables; raise ConfigError naming a bad one."""
        targets = parse_targets(env.get("AI_QUANT_ALERT_TARGETS"))
        webhook = env_opt_str("AI_QUANT_DISCORD_WEBHOOK_URL", env)
        token = env_opt_str("AI_QUANT_TELEGRAM_BOT_TOKEN", env)
        return cls(
            targets=targets,
            enabled=bool(targets) and env_bool("AI_QUANT_ALERT_ENABLED", True, env),
            dry_run=env_bool("AI_QUANT_ALERT_DRY_RUN", False, env),
            asynchronous=env_bool("AI_QUANT_ALERT_ASYNC", True, env),
            queue_max=env_int("AI_QUANT_ALERT_QUEUE_MAX", 200, env, lo=10, hi=5_000),
            send_timeout_secs=env_float("AI_QUANT_ALERT_SEND_TIMEOUT_S", 6.0, env, lo=1.0, hi=30.0),
            retries=env_int("AI_QUANT_DISCORD_SEND_RETRIES", 2, env, lo=0, hi=5),
            label=env_opt_str("AI_QUANT_DISCORD_LABEL", env) or env_instance_tag(env),
            rate_per_min=env_int("AI_QUANT_ALERT_RATE_PER_MIN", 30, env, lo=1, hi=10_000),
            dedupe_secs=env_float("AI_QUANT_ALERT_DEDUPE_SECS", 60.0, env, lo=0.0, hi=86_400.0),
            openclaw_bin=openclaw_cli.find_openclaw(env),
            discord_webhook_url=None if webhook is None else Secret(webhook),
            telegram_bot_token=None if token is None else Secret(token),
            telegram_api_url=env_str("AI_QUANT_TELEGRAM_API_URL", "https://api.telegram.org", env).rstrip(
                "/"
            ),
        )

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(s for s in (self.discord_webhook_url, self.telegram_bot_token) if s is not None)


class AlertTransport(Protocol):
    def deliver(self, target: AlertTarget, text: str) -> None:
        """Deliver one message to one target; raise AlertDeliveryError on failure."""
        ...


class OpenclawTransport:
    """Delivers through `openclaw message send`."""

    def __init__(self, binary: str, timeout_secs: float) -> None:
        self._binary = binary
        self._timeout = timeout_secs

    def deliver(self, target: AlertTarget, text: str) -> None:
        openclaw_cli.send_message(self._binary, target.channel, target.target, text, self._timeout)


class HttpTransport:
    """Delivers to a Discord webhook, the Telegram Bot API, or an https webhook target."""

    def __init__(self, settings: AlertSettings, session: requests.Session | None = None) -> None:
        self._settings = settings
        self._session = session or requests.Session()

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        try:
            response = self._session.post(url, json=payload, timeout=self._settings.send_timeout_secs)
        except requests.RequestException as exc:
            raise AlertDeliveryError(f"HTTP error {type(exc).__name__}", transient=True) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise AlertDeliveryError(f"HTTP {response.status_code}", transient=True)
        if response.status_code >= 300:
            raise AlertDeliveryError(f"HTTP {response.status_code}", transient=False)

    def deliver(self, target: AlertTarget, text: str) -> None:
        text = openclaw_cli.check_message(text)
        settings = self._settings
        if target.channel is AlertChannel.DISCORD:
            if settings.discord_webhook_url is None:
                raise AlertDeliveryError(
                    "discord needs openclaw or AI_QUANT_DISCORD_WEBHOOK_URL", transient=False
                )
            self._post(settings.discord_webhook_url.reveal(), {"content": text[:2_000]})
        elif target.channel is AlertChannel.TELEGRAM:
            if settings.telegram_bot_token is None:
                raise AlertDeliveryError(
                    "telegram needs openclaw or AI_QUANT_TELEGRAM_BOT_TOKEN", transient=False
                )
            url = f"{settings.telegram_api_url}/bot{settings.telegram_bot_token.reveal()}/sendMessage"
            self._post(url, {"chat_id": target.target, "text": text[:4_096]})
        elif target.channel is AlertChannel.WEBHOOK:
            self._post(target.target, {"text": text})
        else:
            raise AlertDeliveryError(f"{target.channel} needs the openclaw CLI", transient=False)


@dataclass
class DryRunTransport:
    """Logs (redacted) instead of sending; keeps what it would have sent, for inspection."""

    sent: list[tuple[AlertTarget, str]] = field(default_factory=list)

    def deliver(self, target: AlertTarget, text: str) -> None:
        self.sent.append((target, text))
        log.info("alert dry-run channel=%s target=%s text=%s", target.channel, _show_target(target), text)


def _show_target(target: AlertTarget) -> str:
    value = target.target
    if len(value) <= 32 and "/" not in value:
        return value
    return "…" if len(value) <= 12 else f"{value[:6]}…{value[-4:]}"


@dataclass
class AlertStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped_queue_full: int = 0
    dropped_rate_limited: int = 0
    dropped_duplicate: int = 0


_STOP = object()


class Alerter:
    """Formats, rate-limits and hands alerts to a background worker. Thread-safe `send`."""

    def __init__(
        self,
        settings: AlertSettings,
        mode: Mode,
        transport: AlertTransport,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._mode = mode
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue_max)
        self._lock = threading.Lock()
        self._recent: dict[bool, deque[float]] = {True: deque(), False: deque()}  # by "is a TRADE"
        self._last_seen: dict[tuple[AlertKind, str], float] = {}
        self._worker: threading.Thread | None = None
        self._closed = False
        self.stats = AlertStats()

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def transport(self) -> AlertTransport:
        return self._transport

    def format(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> str:
        """Return the redacted text sent for an alert: `[label] [mode] kind: message` + k=v lines."""
        label = f"[{self._settings.label}] " if self._settings.label else ""
        text = f"{label}[{self._mode.value}] {kind.value}: {message}"
        if extra:
            text += "\n" + " ".join(f"{key}={value}" for key, value in extra.items())
        return redact(text, self._settings.secrets)

    def send(self, kind: AlertKind, message: str, extra: Mapping[str, object] | None = None) -> bool:
        """Queue an alert (never blocks, never raises); return True if it was accepted."""
        if not self._settings.enabled or self._closed:
            return False
        text = self.format(kind, message, extra)
        with self._lock:
            if not self._admit(kind, message):
                return False
            if not self._settings.asynchronous:
                self.stats.queued += 1
        if not self._settings.asynchronous:
            self._deliver_all(text)
            return True
        self._ensure_worker()
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            with self._lock:
                self.stats.dropped_queue_full += 1
                dropped = self.stats.dropped_queue_full
            if dropped == 1 or dropped % 100 == 0:
                log.warning("alert queue full mode=%s dropped=%d", self._mode, dropped)
            return False
        with self._lock:
            self.stats.queued += 1
        return True

    def _admit(self, kind: AlertKind, message: str) -> bool:
        # Caller holds the lock. Dedupe identical (kind, message) first, then the per-minute budget.
        now = self._clock()
        key = (kind, message)
        last = self._last_seen.get(key)
        if last is not None and now - last < self._settings.dedupe_secs:
            self.stats.dropped_duplicate += 1
            return False
        recent = self._recent[kind is AlertKind.TRADE]
        while recent and now - recent[0] >= 60.0:
            recent.popleft()
        if len(recent) >= self._settings.rate_per_min:
            self.stats.dropped_rate_limited += 1
            return False
        recent.append(now)
        self._last_seen[key] = now
        if len(self._last_seen) > 1_000:
            cutoff = now - self._settings.dedupe_secs
            self._last_seen = {k: t for k, t in self._last_seen.items() if t >= cutoff}
        return True

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return
            self._worker = threading.Thread(target=self._run, name="alert-worker", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._deliver_all(str(item))
            finally:
                self._queue.task_done()

    def _deliver_all(self, text: str) -> None:
        for target in self._settings.targets:
            ok = self._deliver_one(target, text)
            with self._lock:
                if ok:
                    self.stats.delivered += 1
                else:
                    self.stats.failed += 1

    def _deliver_one(self, target: AlertTarget, text: str) -> bool:
        for attempt in range(self._settings.retries + 1):
            try:
                self._transport.deliver(target, text)
                return True
            except AlertDeliveryError as exc:
                log.warning(
                    "alert delivery failed mode=%s channel=%s attempt=%d transient=%s error=%s",
                    self._mode, target.channel, attempt + 1, exc.transient,
                    redact(str(exc), self._settings.secrets),
                )  # fmt: skip
                if not exc.transient:
                    return False
                self._sleep(min(2.0, 0.35 * (attempt + 1)))
            except Exception as exc:  # a broken sink must not kill the worker or the other sinks
                log.error(
                    "alert sink crashed mode=%s channel=%s error=%s",
                    self._mode,
                    target.channel,
                    type(exc).__name__,
                )
                return False
        return False

    def flush(self, timeout_secs: float = 5.0) -> bool:
        """Wait until every queued alert was handled; return False on timeout."""
        deadline = time.monotonic() + timeout_secs
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_secs: float = 2.0) -> None:
        """Drain for up to `timeout_secs`, then stop the worker. Later sends are ignored."""
        self._closed = True
        worker = self._worker
        if worker is None or not worker.is_alive():
            return
        self.flush(timeout_secs)
        try:
            self._queue.put(_STOP, timeout=timeout_secs)
        except queue.Full:
            log.warning("alert worker did not drain in time mode=%s", self._mode)
            return
        worker.join(timeout_secs)


def build_alerter(env: Mapping[str, str], mode: Mode) -> Alerter:
    """Build the alerter from the environment, picking dry-run, openclaw or direct HTTP delivery."""
    settings = AlertSettings.from_env(env)
    transport: AlertTransport
    if settings.dry_run:
        transport = DryRunTransport()
    elif settings.openclaw_bin is not None:
        transport = OpenclawTransport(settings.openclaw_bin, settings.send_timeout_secs)
    else:
        transport = HttpTransport(settings)
    return Alerter(settings, mode, transport)
