"""Log format of the daemon: UTC timestamp, level, [mode], logger, message, context as key=value.

The mode is stamped on every line (our own records, library records and the forwarded output of
child processes alike), so a paper line can never be mistaken for a live one in a shared journal.
Timestamps are UTC with milliseconds and a trailing `Z`. Fields passed through `extra=` are
appended as `key=value` so structured context survives a plain-text sink (journald).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

_STD_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "mode"}
_QUIET = ("urllib3", "filelock", "ray", "asyncio", "websockets")


class ModeFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678Z INFO [paper] engine.daemon.cli: message k=v`."""

    converter = time.gmtime

    def __init__(self, mode: str) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(mode)s] %(name)s: %(message)s")
        self.mode = mode

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        record.mode = self.mode
        line = super().format(record)
        # Context passed with extra= is appended; private attributes (Ray adds `_ray_timestamp_ns`) are not.
        extra = {k: v for k, v in vars(record).items() if k not in _STD_KEYS and not k.startswith("_")}
        return line + "".join(f" {k}={v}" for k, v in extra.items())


def setup_logging(mode: str, level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Route every logger to one stream handler with the mode-stamped format; return the handler."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(ModeFormatter(mode))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler


def set_mode(handler: logging.Handler, mode: str) -> None:
    """Change the stamped mode (the mode is known only after the environment is parsed)."""
    formatter = handler.formatter
    if isinstance(formatter, ModeFormatter):
        formatter.mode = mode
